#!/usr/bin/env bash
# Deploy to staging: print `ferry plan`, then run `ferry deploy` (snapshot,
# migration, verify, restore on failure). Exits with ferry's exit code.
#
#   scripts/deploy-stage.sh [--env NAME] [--config PATH] [ferry deploy flags...]
#
#   --env NAME     the environment (default: staging)
#   --config PATH  the ferry.toml (default: FERRY_CONFIG, then ./ferry.toml or a parent's)
#   anything else goes to `ferry deploy` (e.g. --yes, --output json, --no-restore);
#   --profile, --region and -v go to both commands; --image IMAGE (or FERRY_IMAGE)
#   too, so the plan names the image the deploy runs.
#
# ferry is $FERRY_BIN (or $FERRY), else `ferry` on PATH, else built from
# ferry's repository when this script is in it. To run it from an
# application's repository, copy it with scripts/lib/wrappers.sh.
# See docs/runbooks/release.md.
set -euo pipefail
# shellcheck source=scripts/lib/wrappers.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/wrappers.sh"

env_name=staging
args=()
while [[ $# -gt 0 ]]; do
    case $1 in
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
        exit 0
        ;;
    --env)
        [[ $# -ge 2 ]] || usage_error "--env needs a value"
        env_name=$2
        shift 2
        ;;
    --env=*)
        env_name=${1#--env=}
        shift
        ;;
    *)
        args+=("$1")
        shift
        ;;
    esac
done
split_args "${args[@]+"${args[@]}"}"
find_ferry

plan_or_exit "${env_name}"
code=0
run_ferry deploy "${env_name}" "${PASS_ARGS[@]+"${PASS_ARGS[@]}"}" || code=$?
exit "${code}"
