#!/bin/sh
# Create (or reuse) the AWS emulator's virtualenv and print its python.
#
#   tests/emulator/setup.sh            -> last line of stdout: /path/to/venv/bin/python
#
# The venv is ${FERRY_EMULATOR_VENV:-<repo>/target/emulator-venv}. requirements.txt
# pins every package exactly (no hashes: several are platform wheels), so it is
# installed with a plain `pip install -r`. A stamp file in the venv holds the
# sha256 of the requirements.txt last installed; when it matches, nothing is
# installed. Progress goes to stderr; stdout carries only the python path.
# PYTHON picks the interpreter that creates the venv (default python3).
set -eu

here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
repo=$(CDPATH='' cd -- "$here/../.." && pwd)
venv=${FERRY_EMULATOR_VENV:-$repo/target/emulator-venv}
requirements=$here/requirements.txt
python=${PYTHON:-python3}
stamp=$venv/.requirements.sha256
lock=$venv.lock

want=$("$python" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$requirements")

up_to_date() {
    [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]
}

if ! up_to_date; then
    # Parallel test processes may all get here: one installs, the others wait.
    mkdir -p "$(dirname -- "$venv")"
    waited=0
    until mkdir "$lock" 2>/dev/null; do
        if [ "$waited" -ge 900 ]; then
            echo "setup.sh: $lock has been held for 15 minutes; remove it if no install is running" >&2
            exit 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
    trap 'rmdir "$lock" 2>/dev/null || true' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    if ! up_to_date; then
        if [ ! -x "$venv/bin/python" ]; then
            echo "setup.sh: creating $venv" >&2
            "$python" -m venv "$venv" >&2
        fi
        echo "setup.sh: installing $requirements" >&2
        rm -f "$stamp"
        "$venv/bin/python" -m pip install --disable-pip-version-check --quiet -r "$requirements" >&2
        printf '%s\n' "$want" >"$stamp"
    fi
fi

printf '%s\n' "$venv/bin/python"
