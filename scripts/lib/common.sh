# shellcheck shell=bash
# Shared helpers for the project's bash scripts (scripts/test, scripts/bench):
# messages to stderr, command lookup, root and apt-get. Source it; it defines
# functions only.

header() { printf '==> %s\n' "$*" >&2; }
info() { printf '    %s\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}
have() { command -v "$1" >/dev/null 2>&1; }

# Runs a command as root: directly when we are root, through sudo otherwise.
as_root() {
    if [[ ${EUID} -eq 0 ]]; then
        "$@"
    elif have sudo; then
        sudo "$@"
    else
        die "need root to run: $*"
    fi
}

# Installs Debian packages; runs 'apt-get update' only if the first try fails.
apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get install -y -q "$@" ||
        { as_root apt-get update -q && as_root apt-get install -y -q "$@"; }
}
