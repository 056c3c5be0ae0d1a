#!/bin/sh
# Install ferry from a release: the archive for this OS and CPU, checked
# against the release's SHA256SUMS, into ~/.local/bin or $FERRY_INSTALL_DIR.
# `install.sh --help` (the usage() text below) has the options and the
# environment variables it reads. POSIX sh.
set -eu

# The releases URL, filled in by scripts/package-release.sh in the copy
# attached to each release (so that `curl ... | sh` knows where to look).
stamped_download_url=''

say() { printf 'install.sh: %s\n' "$*" >&2; }

die() {
    say "error: $*"
    exit 1
}

usage_error() {
    say "error: $*"
    say "run with --help for usage"
    exit 2
}

usage() {
    cat <<'EOF'
Install ferry from a release: picks the archive for this OS and CPU, checks
it against the release's SHA256SUMS and puts `ferry` in ~/.local/bin (or
$FERRY_INSTALL_DIR). Nothing is installed unless the checksum matches.

  install.sh [--version vX.Y.Z] [--help]
  curl -fsSL <releases URL>/latest/download/install.sh | sh -s -- --version vX.Y.Z

  --version TAG   the release to install, e.g. v1.2.3 (default: latest)

Environment:
  FERRY_INSTALL_DIR   where to install (default: ~/.local/bin)
  FERRY_DOWNLOAD_URL  where the releases are: assets are fetched from
                      $FERRY_DOWNLOAD_URL/download/<tag>/<asset>, or
                      $FERRY_DOWNLOAD_URL/latest/download/<asset> for the
                      latest one (default: the GitHub releases of ferry's
                      repository)
  FERRY_INSTALL_OS, FERRY_INSTALL_ARCH
                      stand in for `uname -s` and `uname -m`: for tests, and
                      to fetch another machine's binary when packaging

Release assets: ferry-<target>.tar.gz for x86_64-unknown-linux-musl,
aarch64-unknown-linux-musl, x86_64-apple-darwin and aarch64-apple-darwin,
each holding ferry-<target>/ferry; and SHA256SUMS.

The setup action (action.yml) runs this script for its steps:
  --github-action resolve   writes the release (INPUT_VERSION, else the tag
                            in .github/action-version beside the action),
                            target, install directory and whether to cache
                            it to $GITHUB_OUTPUT
  --github-action path      adds $FERRY_INSTALL_DIR to $GITHUB_PATH and
                            writes the installed version to $GITHUB_OUTPUT

Exit codes: 0 installed, 1 failed (download, checksum, unsupported
platform), 2 usage.
EOF
}

# The directory of this script when it is run from a file (not from a pipe).
script_dir() {
    case $0 in
    */install.sh | install.sh)
        if [ -f "$0" ]; then
            CDPATH='' cd -- "$(dirname -- "$0")" && pwd
        fi
        ;;
    esac
}

# `repository = "..."` of ferry's Cargo.toml next to scripts/, if this is ferry's.
cargo_repository() {
    dir=$(script_dir)
    if [ -z "${dir}" ] || [ ! -f "${dir}/../Cargo.toml" ]; then
        return 0
    fi
    grep -q '^name = "ferry"$' "${dir}/../Cargo.toml" || return 0
    sed -n 's/^repository = "\(.*\)"$/\1/p' "${dir}/../Cargo.toml" | head -n 1
}

# Where the releases are: FERRY_DOWNLOAD_URL, the stamped URL, or Cargo.toml's.
download_url() {
    if [ -n "${FERRY_DOWNLOAD_URL:-}" ]; then
        printf '%s\n' "${FERRY_DOWNLOAD_URL%/}"
    elif [ -n "${stamped_download_url}" ]; then
        printf '%s\n' "${stamped_download_url}"
    else
        repository=$(cargo_repository)
        [ -n "${repository}" ] ||
            die "cannot tell where ferry's releases are: set FERRY_DOWNLOAD_URL (e.g. https://github.com/OWNER/ferry/releases)"
        printf '%s/releases\n' "${repository%/}"
    fi
}

# The release target for this machine, or a clear refusal.
detect_target() {
    os=${FERRY_INSTALL_OS:-$(uname -s)}
    arch=${FERRY_INSTALL_ARCH:-$(uname -m)}
    case ${os} in
    Linux) os_part=unknown-linux-musl ;;
    Darwin) os_part=apple-darwin ;;
    *) os_part='' ;;
    esac
    case ${arch} in
    x86_64 | amd64) cpu=x86_64 ;;
    aarch64 | arm64) cpu=aarch64 ;;
    *) cpu='' ;;
    esac
    if [ -z "${os_part}" ] || [ -z "${cpu}" ]; then
        say "error: ferry has no release binary for ${os} on ${arch}"
        say "releases exist for Linux and macOS (Darwin) on x86_64 and aarch64 (arm64);"
        repository=$(cargo_repository)
        if [ -z "${repository}" ] && [ -n "${stamped_download_url}" ]; then
            repository=${stamped_download_url%/releases}
        fi
        say "elsewhere build it from source: cargo install --locked --git ${repository:-<the ferry repository URL>}"
        exit 1
    fi
    printf '%s-%s\n' "${cpu}" "${os_part}"
}

# vX.Y.Z, X.Y.Z (taken as vX.Y.Z) or latest.
normalise_version() {
    case $1 in
    '' | *[!A-Za-z0-9._+-]*) usage_error "--version wants a release tag such as v1.2.3 or latest (got '$1')" ;;
    latest | v[0-9]*) printf '%s\n' "$1" ;;
    [0-9]*) printf 'v%s\n' "$1" ;;
    *) usage_error "--version wants a release tag such as v1.2.3 or latest (got '$1')" ;;
    esac
}

fetch() {
    if command -v curl >/dev/null 2>&1; then
        curl -fsSL --retry 3 -o "$2" "$1" || die "could not download $1"
    elif command -v wget >/dev/null 2>&1; then
        wget -q -O "$2" "$1" || die "could not download $1"
    else
        die "neither curl nor wget is installed; install one of them"
    fi
}

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d ' ' -f 1
    elif command -v shasum >/dev/null 2>&1; then
        shasum -a 256 "$1" | cut -d ' ' -f 1
    else
        die "neither sha256sum nor shasum is installed: cannot verify the download"
    fi
}

install_release() {
    version=$1
    target=$(detect_target)
    base=$(download_url)
    if [ "${version}" = latest ]; then
        url="${base}/latest/download"
    else
        url="${base}/download/${version}"
    fi
    asset="ferry-${target}.tar.gz"
    if [ -n "${FERRY_INSTALL_DIR:-}" ]; then
        dir=${FERRY_INSTALL_DIR}
    else
        [ -n "${HOME:-}" ] || die "HOME is not set: set FERRY_INSTALL_DIR"
        dir="${HOME}/.local/bin"
    fi

    tmp=$(mktemp -d 2>/dev/null || mktemp -d -t ferry-install)
    trap 'rm -rf "${tmp}"' EXIT
    trap 'exit 130' INT TERM

    say "downloading ${asset} (${version}) from ${url}"
    fetch "${url}/SHA256SUMS" "${tmp}/SHA256SUMS"
    fetch "${url}/${asset}" "${tmp}/${asset}"

    expected=$(awk -v f="${asset}" '$2 == f || $2 == "*" f { print $1; exit }' "${tmp}/SHA256SUMS")
    [ -n "${expected}" ] || die "SHA256SUMS of ${version} has no line for ${asset}; nothing was installed"
    actual=$(sha256_of "${tmp}/${asset}")
    expected=$(printf '%s' "${expected}" | tr 'A-F' 'a-f')
    if [ "${actual}" != "${expected}" ]; then
        say "error: checksum mismatch for ${asset}: SHA256SUMS says ${expected}, the download is ${actual}"
        die "refusing to install a download that does not match its checksum; nothing was installed"
    fi

    mkdir "${tmp}/unpacked"
    tar -xzf "${tmp}/${asset}" -C "${tmp}/unpacked" || die "${asset} is not a readable .tar.gz; nothing was installed"
    binary="${tmp}/unpacked/ferry-${target}/ferry"
    [ -f "${binary}" ] || die "${asset} has no ferry-${target}/ferry; nothing was installed"

    mkdir -p "${dir}" || die "cannot create ${dir}: set FERRY_INSTALL_DIR to a writable directory"
    # Copy beside the destination, then rename: a running ferry is never half-written.
    cp "${binary}" "${dir}/.ferry.new.$$" || die "cannot write to ${dir}: set FERRY_INSTALL_DIR to a writable directory"
    chmod 755 "${dir}/.ferry.new.$$"
    mv -f "${dir}/.ferry.new.$$" "${dir}/ferry"

    say "installed ${dir}/ferry (${version}, ${target})"
    if reported=$("${dir}/ferry" --version 2>/dev/null); then
        say "${reported}"
    fi
    case ":${PATH:-}:" in
    *":${dir}:"*) ;;
    *) say "${dir} is not on PATH: add it, e.g. export PATH=\"${dir}:\$PATH\"" ;;
    esac
    say "shell completions: ferry completions bash|zsh|fish|powershell; man pages: ferry man --dir DIR"
}

# --github-action resolve: which release, where it goes, whether to cache.
action_resolve() {
    [ -n "${GITHUB_OUTPUT:-}" ] || usage_error "--github-action needs GITHUB_OUTPUT (it runs inside a GitHub Actions step)"
    version=${INPUT_VERSION:-}
    if [ -z "${version}" ]; then
        file="$(script_dir)/../.github/action-version"
        [ -f "${file}" ] || die "no version given and ${file} is missing"
        version=$(tr -d ' \t\r\n' <"${file}")
    fi
    version=$(normalise_version "${version}")
    target=$(detect_target)
    root=${RUNNER_TOOL_CACHE:-${RUNNER_TEMP:-${TMPDIR:-/tmp}}}
    cache=true
    # "latest" moves: a cached copy would go stale.
    [ "${version}" != latest ] || cache=false
    {
        printf 'version=%s\n' "${version}"
        printf 'target=%s\n' "${target}"
        printf 'dir=%s\n' "${root}/ferry/${version}/${target}"
        printf 'cache=%s\n' "${cache}"
    } >>"${GITHUB_OUTPUT}"
    say "ferry ${version} for ${target}"
}

# --github-action path: ferry on PATH for the job's next steps, its version out.
action_path() {
    if [ -z "${GITHUB_OUTPUT:-}" ] || [ -z "${GITHUB_PATH:-}" ]; then
        usage_error "--github-action needs GITHUB_OUTPUT and GITHUB_PATH (it runs inside a GitHub Actions step)"
    fi
    dir=${FERRY_INSTALL_DIR:-}
    if [ -z "${dir}" ] || [ ! -x "${dir}/ferry" ]; then
        die "no ferry in FERRY_INSTALL_DIR (${dir:-unset})"
    fi
    reported=$("${dir}/ferry" --version) || die "${dir}/ferry --version failed: is it a binary for this machine?"
    printf '%s\n' "${dir}" >>"${GITHUB_PATH}"
    # "ferry 1.2.3 (commit ..., built ...)": the second word.
    printf 'version=%s\n' "$(printf '%s\n' "${reported}" | awk 'NR == 1 { print $2 }')" >>"${GITHUB_OUTPUT}"
    say "${reported}"
}

main() {
    version=latest
    action=''
    while [ $# -gt 0 ]; do
        case $1 in
        -h | --help)
            usage
            exit 0
            ;;
        --version)
            [ $# -ge 2 ] || usage_error "--version needs a value, e.g. --version v1.2.3"
            version=$2
            shift 2
            ;;
        --version=*)
            version=${1#--version=}
            shift
            ;;
        --github-action)
            [ $# -ge 2 ] || usage_error "--github-action needs resolve or path"
            action=$2
            shift 2
            ;;
        *) usage_error "unknown argument '$1'" ;;
        esac
    done
    case ${action} in
    '')
        version=$(normalise_version "${version}")
        install_release "${version}"
        ;;
    resolve) action_resolve ;;
    path) action_path ;;
    *) usage_error "--github-action wants resolve or path (got '${action}')" ;;
    esac
}

main "$@"
