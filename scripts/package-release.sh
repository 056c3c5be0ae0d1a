#!/bin/sh
# Packages ferry for a release; .github/workflows/release.yml runs it, and
# tests/integration/release.rs runs it for the host target. POSIX sh (macOS runners
# have bash 3 only).
#
#   scripts/package-release.sh archive [--target TRIPLE] [--bin PATH] [--out DIR]
#       Builds ferry for TRIPLE (default: the host's) with
#       `cargo build --release --locked`, or takes the binary at PATH, and
#       writes DIR/ferry-TRIPLE.tar.gz (DIR default: dist) holding
#       ferry-TRIPLE/ with ferry, completions/ (bash, zsh, fish, powershell,
#       elvish), man/man1/*.1, LICENSE and README.md. The completions and
#       man pages come from the binary itself, so it must run here: package
#       on a machine of the target's OS and CPU. Prints the archive's path.
#   scripts/package-release.sh finish DIR
#       Adds install.sh to DIR with the releases URL of Cargo.toml's
#       `repository` filled in, then writes DIR/SHA256SUMS over every file.
#   scripts/package-release.sh check-tag TAG
#       Fails unless TAG is v<Cargo.toml's version> and the setup action's
#       default (.github/action-version) is TAG.
set -eu

repo=$(CDPATH='' cd -- "$(dirname -- "$0")/.." && pwd)

say() { printf 'package-release.sh: %s\n' "$*" >&2; }

die() {
    say "error: $*"
    exit 1
}

usage_error() {
    say "error: $*"
    say "usage: see the comment at the top of scripts/package-release.sh"
    exit 2
}

# A key of Cargo.toml's [package] (the first `key = "value"` line).
cargo_key() {
    sed -n "s/^$1 = \"\\(.*\\)\"\$/\\1/p" "${repo}/Cargo.toml" | head -n 1
}

sha256_line() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1"
    else
        shasum -a 256 "$1"
    fi
}

archive() {
    target='' bin='' out=dist
    while [ $# -gt 0 ]; do
        [ $# -ge 2 ] || usage_error "$1 needs a value"
        case $1 in
        --target) target=$2 ;;
        --bin) bin=$2 ;;
        --out) out=$2 ;;
        *) usage_error "unknown argument '$1'" ;;
        esac
        shift 2
    done
    if [ -z "${target}" ]; then
        target=$(rustc -vV | sed -n 's/^host: //p')
        [ -n "${target}" ] || die "cannot tell the host target from rustc -vV: pass --target"
    fi
    if [ -z "${bin}" ]; then
        say "building ferry for ${target}"
        (cd "${repo}" && cargo build --release --locked --target "${target}") >&2
        bin="${CARGO_TARGET_DIR:-${repo}/target}/${target}/release/ferry"
    fi
    [ -x "${bin}" ] || die "${bin} is not an executable ferry"
    "${bin}" --version >/dev/null 2>&1 ||
        die "${bin} does not run here: package on a machine of ${target}'s OS and CPU"

    stage=$(mktemp -d 2>/dev/null || mktemp -d -t ferry-package)
    trap 'rm -rf "${stage}"' EXIT
    dir="${stage}/ferry-${target}"
    mkdir -p "${dir}/completions" "${dir}/man/man1"
    cp "${bin}" "${dir}/ferry"
    chmod 755 "${dir}/ferry"
    "${bin}" completions bash >"${dir}/completions/ferry.bash"
    "${bin}" completions zsh >"${dir}/completions/_ferry"
    "${bin}" completions fish >"${dir}/completions/ferry.fish"
    "${bin}" completions powershell >"${dir}/completions/_ferry.ps1"
    "${bin}" completions elvish >"${dir}/completions/ferry.elv"
    "${bin}" man --dir "${dir}/man/man1" >/dev/null
    cp "${repo}/LICENSE" "${repo}/README.md" "${dir}/"

    mkdir -p "${out}"
    out=$(CDPATH='' cd -- "${out}" && pwd)
    # Files in a fixed order, no macOS resource forks, and gzip -n leaves out
    # the name and time: the same inputs give closer to the same archive.
    COPYFILE_DISABLE=1
    export COPYFILE_DISABLE
    (cd "${stage}" && find "ferry-${target}" -type f | LC_ALL=C sort | tar -cf - -T -) |
        gzip -n >"${out}/ferry-${target}.tar.gz"
    say "$("${bin}" --version)"
    printf '%s\n' "${out}/ferry-${target}.tar.gz"
}

finish() {
    [ $# -eq 1 ] || usage_error "finish takes the directory of the archives"
    dir=$1
    [ -d "${dir}" ] || die "${dir} is not a directory"
    repository=$(cargo_key repository)
    [ -n "${repository}" ] || die "Cargo.toml has no repository = \"...\""
    url="${repository%/}/releases"
    sed "s|^stamped_download_url=''\$|stamped_download_url='${url}'|" "${repo}/scripts/install.sh" >"${dir}/install.sh"
    grep -q "^stamped_download_url='${url}'\$" "${dir}/install.sh" ||
        die "could not fill in the releases URL in install.sh (its stamped_download_url line changed?)"
    chmod 755 "${dir}/install.sh"
    (
        cd "${dir}"
        rm -f SHA256SUMS
        sums=$(for f in *; do
            if [ -f "${f}" ]; then sha256_line "${f}"; fi
        done)
        printf '%s\n' "${sums}" >SHA256SUMS
    )
    say "wrote ${dir}/install.sh and ${dir}/SHA256SUMS"
    cat "${dir}/SHA256SUMS"
}

check_tag() {
    [ $# -eq 1 ] || usage_error "check-tag takes the tag, e.g. v1.2.3"
    tag=$1
    version=$(cargo_key version)
    [ "${tag}" = "v${version}" ] ||
        die "the tag ${tag} is not v<Cargo.toml's version> (v${version}): bump the version, or tag v${version}"
    action=$(tr -d ' \t\r\n' <"${repo}/.github/action-version")
    [ "${action}" = "${tag}" ] ||
        die ".github/action-version says ${action}, not ${tag}: the setup action would install another release by default"
    say "${tag} matches Cargo.toml and .github/action-version"
}

[ $# -ge 1 ] || usage_error "archive, finish or check-tag?"
command=$1
shift
case ${command} in
archive) archive "$@" ;;
finish) finish "$@" ;;
check-tag) check_tag "$@" ;;
-h | --help) sed -n '2,/^set -eu/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' ;;
*) usage_error "unknown command '${command}' (archive, finish or check-tag)" ;;
esac
