#!/usr/bin/env bash
# Shared by deploy-stage.sh, deploy-prod.sh and run-migration-task.sh; sourced,
# not run. Finds the ferry binary and splits the wrappers' arguments. To use
# the wrappers from an application's repository, copy them with this file,
# keeping scripts/lib/ beside them (docs/github-actions.md).

ferry_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

say() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }

usage_error() {
    say "$*"
    say "run with --help for usage"
    exit 2
}

# Sets FERRY_BIN: $FERRY_BIN, else $FERRY, else `ferry` on PATH, else, when
# these scripts are in ferry's own repository, a release build of it (cargo
# build --release --locked). Copied into an application's repository, they
# never build: ferry must be installed (scripts/install.sh, the setup action).
find_ferry() {
    if [[ -n ${FERRY_BIN:-} ]]; then
        :
    elif [[ -n ${FERRY:-} ]]; then
        FERRY_BIN=${FERRY}
    elif command -v ferry >/dev/null 2>&1; then
        FERRY_BIN=$(command -v ferry)
    elif [[ -f ${ferry_repo}/Cargo.toml ]] && grep -q '^name = "ferry"$' "${ferry_repo}/Cargo.toml"; then
        command -v cargo >/dev/null 2>&1 ||
            usage_error "no ferry: set FERRY_BIN, put ferry on PATH, or install the Rust toolchain to build it"
        say "ferry is not on PATH; building it (cargo build --release --locked)"
        (cd "${ferry_repo}" && cargo build --release --locked --quiet) || exit 2
        FERRY_BIN=${CARGO_TARGET_DIR:-${ferry_repo}/target}/release/ferry
    else
        usage_error "ferry is not on PATH: install it (ferry's scripts/install.sh, or its setup action in a workflow) or set FERRY_BIN to its path"
    fi
    [[ -x ${FERRY_BIN} ]] || usage_error "ferry binary ${FERRY_BIN} is not executable"
}

# Splits "$@" into GLOBAL_ARGS (the flags that choose config, credentials and
# output detail: --config, --profile, --region, -v; given to every ferry call)
# and PASS_ARGS (everything else, given to the main command only). A wrapper's
# own flags are taken out first by the wrapper. `--image IMAGE` becomes
# FERRY_IMAGE, exported, so the plan a person reviews names the image the
# deploy runs.
split_args() {
    GLOBAL_ARGS=()
    PASS_ARGS=()
    while [[ $# -gt 0 ]]; do
        case $1 in
        --config | --profile | --region)
            [[ $# -ge 2 ]] || usage_error "$1 needs a value"
            GLOBAL_ARGS+=("$1" "$2")
            shift 2
            ;;
        --config=* | --profile=* | --region=* | -v | -vv | -vvv | --verbose)
            GLOBAL_ARGS+=("$1")
            shift
            ;;
        --image)
            [[ $# -ge 2 ]] || usage_error "$1 needs a value"
            export FERRY_IMAGE=$2
            shift 2
            ;;
        --image=*)
            export FERRY_IMAGE=${1#--image=}
            shift
            ;;
        *)
            PASS_ARGS+=("$1")
            shift
            ;;
        esac
    done
}

# Runs ferry with GLOBAL_ARGS, echoing the command to stderr first.
run_ferry() {
    say "${FERRY_IMAGE:+FERRY_IMAGE=${FERRY_IMAGE} }ferry $*${GLOBAL_ARGS[*]:+ ${GLOBAL_ARGS[*]}}"
    "${FERRY_BIN}" "$@" "${GLOBAL_ARGS[@]}"
}

# Prints `ferry plan ENV` on stderr (stdout stays the deploy's); a plan that
# fails ends the wrapper with ferry's exit code, before anything is deployed.
plan_or_exit() {
    local code=0
    run_ferry plan "$1" >&2 || code=$?
    if [[ ${code} -ne 0 ]]; then
        say "ferry plan $1 failed (exit ${code}); not deploying"
        exit "${code}"
    fi
}
