#!/usr/bin/env bash
# Deploy to production: print `ferry plan`, and only with
# --i-have-reviewed-the-plan (or --confirm) run `ferry deploy --yes`.
# Without that flag it stops after the plan with exit 2, having changed
# nothing. Exits with ferry's exit code.
#
#   scripts/deploy-prod.sh [--i-have-reviewed-the-plan] [--env NAME] [--config PATH] [ferry deploy flags...]
#
#   --i-have-reviewed-the-plan, --confirm
#                  deploy after printing the plan (passes --yes to ferry: the
#                  environment's confirm = true prompt is answered by this flag)
#   --env NAME     the environment (default: production)
#   --config PATH  the ferry.toml (default: FERRY_CONFIG, then ./ferry.toml or a parent's)
#   anything else goes to `ferry deploy` (e.g. --output json, --no-restore);
#   --profile, --region and -v go to both commands; --image IMAGE (or FERRY_IMAGE)
#   too, so the plan names the image the deploy runs.
#
# ferry is $FERRY_BIN (or $FERRY), else `ferry` on PATH, else built from
# ferry's repository when this script is in it. To run it from an
# application's repository, copy it with scripts/lib/wrappers.sh.
#
# Review the plan first: scripts/deploy-prod.sh prints it and stops. Then run
# it again with --i-have-reviewed-the-plan. See docs/runbooks/release.md.
set -euo pipefail
# shellcheck source=scripts/lib/wrappers.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/wrappers.sh"

env_name=production
confirmed=false
args=()
while [[ $# -gt 0 ]]; do
    case $1 in
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
        exit 0
        ;;
    --i-have-reviewed-the-plan | --confirm)
        confirmed=true
        shift
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
    -y | --yes)
        usage_error "$1 is not accepted here: review the plan, then pass --i-have-reviewed-the-plan"
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
if [[ ${confirmed} != true ]]; then
    say "not deploying ${env_name}: nothing was changed."
    say "review the plan above, then run: $0 --i-have-reviewed-the-plan${args[*]:+ ${args[*]}}"
    exit 2
fi
code=0
run_ferry deploy "${env_name}" --yes "${PASS_ARGS[@]+"${PASS_ARGS[@]}"}" || code=$?
exit "${code}"
