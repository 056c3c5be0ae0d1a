#!/usr/bin/env bash
# The manual path: run only the migration of one environment with
# `ferry migrate` (a snapshot first, then the migration task, its logs
# streamed; no verify, no automatic restore). Exits with ferry's exit code.
#
#   scripts/run-migration-task.sh <env> [--config PATH] [ferry migrate flags...]
#
#   --config PATH  the ferry.toml (default: FERRY_CONFIG, then ./ferry.toml or a parent's)
#   anything else goes to `ferry migrate` (e.g. --yes for a confirm = true
#   environment without a terminal, --output json).
#
# When it fails, the snapshot it took is the way back:
#   ferry restore <env> --snapshot latest
# See docs/commands/migrate.md and docs/runbooks/incident-restore.md.
set -euo pipefail
# shellcheck source=scripts/lib/wrappers.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/wrappers.sh"

case ${1:-} in
-h | --help)
    sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
    exit 0
    ;;
"" | -*)
    usage_error "the first argument must be the environment, e.g. $0 staging"
    ;;
esac
env_name=$1
shift
split_args "$@"
find_ferry

code=0
run_ferry migrate "${env_name}" "${PASS_ARGS[@]+"${PASS_ARGS[@]}"}" || code=$?
exit "${code}"
