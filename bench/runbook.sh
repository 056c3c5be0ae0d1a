#!/usr/bin/env bash
# The migration runbook the way the teams in shared/reference/ run it by hand
# with the aws CLI: read the stack's outputs, snapshot the Aurora cluster and
# wait for it, run the migration task, follow its logs in the background,
# wait for the task to stop and read its exit code.
#
#   bench/runbook.sh STACK DB_CLUSTER COMMAND_JSON [ENVIRONMENT_JSON]
#     e.g. bench/runbook.sh app-migrations app-db '["alembic","upgrade","head"]'
#   ENVIRONMENT_JSON: the container's extra variables as ECS takes them,
#     e.g. '[{"name":"LOG_LEVEL","value":"debug"}]' (default: none)
#
# When the migration fails it exits 1 naming the snapshot; bench/restore.sh is
# the manual restore that follows.
#
# scripts/bench runs it against the emulator (AWS_ENDPOINT_URL) and compares it
# with `ferry deploy`. It is deliberately neither a strawman nor tuned: the
# waits are the CLI's own waiters (`aws rds wait` polls every 30 s, `aws ecs
# wait` every 6 s), as the reference runbooks use them.
#
# Log following: the reference runbooks use `aws logs tail GROUP --follow`,
# which only the aws CLI v2 has; the pinned aws CLI from PyPI is v1. follow_logs
# below stands in for it with the same API calls at the same cadence: it asks
# FilterLogEvents for the group's new events every 5 s (tail --follow's poll
# interval), skips events it has printed, and prints "time stream message".
# Like `aws logs tail --follow &` in a script, it is killed once the task has
# stopped.
set -euo pipefail

STACK=${1:?usage: runbook.sh STACK DB_CLUSTER COMMAND_JSON}
DB_CLUSTER=${2:?usage: runbook.sh STACK DB_CLUSTER COMMAND_JSON}
COMMAND_JSON=${3:?usage: runbook.sh STACK DB_CLUSTER COMMAND_JSON}
ENVIRONMENT_JSON=${4:-[]}

stack_output() {
    aws cloudformation describe-stacks \
        --stack-name "$STACK" \
        --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue" \
        --output text
}

# `aws logs tail GROUP --follow` with aws CLI v1 (see above).
follow_logs() {
    local group=$1 since_ms=$2 id ts stream message
    declare -A seen=()
    while true; do
        while IFS=$'\t' read -r id ts stream message; do
            [[ -n ${id} && ${id} != None ]] || continue
            [[ -z ${seen[${id}]:-} ]] || continue
            seen[${id}]=1
            ((ts > since_ms)) && since_ms=${ts}
            printf '%s %s %s\n' "$(date -u -d "@$((ts / 1000))" +%Y-%m-%dT%H:%M:%S)" "${stream}" "${message}"
        done < <(aws logs filter-log-events \
            --log-group-name "${group}" \
            --start-time "${since_ms}" \
            --query 'events[].[eventId,timestamp,logStreamName,message]' \
            --output text)
        sleep 5
    done
}

echo "==> Reading outputs of stack $STACK"
CLUSTER=$(stack_output ClusterName)
TASK_DEF=$(stack_output MigrationTaskDefinitionArn)
SUBNETS=$(stack_output PrivateSubnetIds)
SECURITY_GROUP=$(stack_output MigrationSecurityGroupId)
LOG_GROUP=$(stack_output LogGroupName)
echo "Cluster: $CLUSTER  Task definition: $TASK_DEF"

SNAPSHOT_ID="$DB_CLUSTER-pre-deploy-$(date +%Y%m%d-%H%M%S)"
echo "==> Creating snapshot $SNAPSHOT_ID"
aws rds create-db-cluster-snapshot \
    --db-cluster-identifier "$DB_CLUSTER" \
    --db-cluster-snapshot-identifier "$SNAPSHOT_ID" >/dev/null
echo "Waiting for the snapshot to become available..."
aws rds wait db-cluster-snapshot-available \
    --db-cluster-snapshot-identifier "$SNAPSHOT_ID"
echo "==> Snapshot $SNAPSHOT_ID is available"

echo "==> Running the migration task"
STARTED_MS=$(($(date +%s) * 1000 - 60000))
TASK_ARN=$(aws ecs run-task \
    --cluster "$CLUSTER" \
    --task-definition "$TASK_DEF" \
    --launch-type FARGATE \
    --network-configuration "awsvpcConfiguration={subnets=[$SUBNETS],securityGroups=[$SECURITY_GROUP],assignPublicIp=DISABLED}" \
    --overrides "{\"containerOverrides\":[{\"name\":\"migrate\",\"command\":$COMMAND_JSON,\"environment\":$ENVIRONMENT_JSON}]}" \
    --query 'tasks[0].taskArn' \
    --output text)
echo "Task: $TASK_ARN"

follow_logs "$LOG_GROUP" "$STARTED_MS" &
TAIL_PID=$!
trap 'kill "$TAIL_PID" 2>/dev/null || true' EXIT

echo "Waiting for the task to stop..."
aws ecs wait tasks-stopped --cluster "$CLUSTER" --tasks "$TASK_ARN"
echo "==> Migration task stopped"
kill "$TAIL_PID" 2>/dev/null || true

EXIT_CODE=$(aws ecs describe-tasks \
    --cluster "$CLUSTER" \
    --tasks "$TASK_ARN" \
    --query 'tasks[0].containers[0].exitCode' \
    --output text)
if [[ "$EXIT_CODE" != "0" ]]; then
    echo "Migration failed (exit code $EXIT_CODE). Restore from $SNAPSHOT_ID if needed." >&2
    exit 1
fi
echo "==> Migration succeeded"
