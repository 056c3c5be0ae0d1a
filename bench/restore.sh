#!/usr/bin/env bash
# The manual restore after a failed migration, the way the teams in
# shared/reference/ would run it with the aws CLI: restore the pre-deploy
# snapshot beside the database, give it an instance like the original's
# writer, then swap the names (the failed database renamed aside and kept,
# the restored one renamed to the original name), waiting after each step.
#
#   bench/restore.sh DB_CLUSTER SNAPSHOT_ID
#     e.g. bench/restore.sh app-db app-db-pre-deploy-20261121-215500
#
# scripts/bench runs it right after bench/runbook.sh exits 1 naming the
# snapshot (no human reaction time), against the emulator, and compares it
# with ferry's automatic restore. Like bench/runbook.sh it is neither a
# strawman nor tuned: every wait is the CLI's own waiter (`aws rds wait
# db-cluster-available` and `db-instance-available` poll every 30 s).
set -euo pipefail

DB_CLUSTER=${1:?usage: restore.sh DB_CLUSTER SNAPSHOT_ID}
SNAPSHOT_ID=${2:?usage: restore.sh DB_CLUSTER SNAPSHOT_ID}
RESTORED="$DB_CLUSTER-restored"
FAILED="$DB_CLUSTER-failed-$(date +%Y%m%d-%H%M%S)"

echo "==> Reading the writer of $DB_CLUSTER"
# shellcheck disable=SC2016 # the backticks are JMESPath's literal, not a command
WRITER=$(aws rds describe-db-clusters \
    --db-cluster-identifier "$DB_CLUSTER" \
    --query 'DBClusters[0].DBClusterMembers[?IsClusterWriter==`true`].DBInstanceIdentifier | [0]' \
    --output text)
INSTANCE_CLASS=$(aws rds describe-db-instances \
    --db-instance-identifier "$WRITER" \
    --query 'DBInstances[0].DBInstanceClass' \
    --output text)
echo "Writer: $WRITER ($INSTANCE_CLASS)"

echo "==> Restoring $SNAPSHOT_ID to $RESTORED"
aws rds restore-db-cluster-from-snapshot \
    --db-cluster-identifier "$RESTORED" \
    --snapshot-identifier "$SNAPSHOT_ID" \
    --engine aurora-postgresql >/dev/null
aws rds wait db-cluster-available --db-cluster-identifier "$RESTORED"
echo "==> Cluster $RESTORED is available"

echo "==> Creating instance $RESTORED-1"
aws rds create-db-instance \
    --db-instance-identifier "$RESTORED-1" \
    --db-cluster-identifier "$RESTORED" \
    --db-instance-class "$INSTANCE_CLASS" \
    --engine aurora-postgresql >/dev/null
aws rds wait db-instance-available --db-instance-identifier "$RESTORED-1"
echo "==> Instance $RESTORED-1 is available"

echo "==> Renaming $DB_CLUSTER to $FAILED (kept)"
aws rds modify-db-cluster \
    --db-cluster-identifier "$DB_CLUSTER" \
    --new-db-cluster-identifier "$FAILED" \
    --apply-immediately >/dev/null
aws rds wait db-cluster-available --db-cluster-identifier "$FAILED"
echo "==> Cluster $FAILED is available"

echo "==> Renaming $RESTORED to $DB_CLUSTER"
aws rds modify-db-cluster \
    --db-cluster-identifier "$RESTORED" \
    --new-db-cluster-identifier "$DB_CLUSTER" \
    --apply-immediately >/dev/null
aws rds wait db-cluster-available --db-cluster-identifier "$DB_CLUSTER"
echo "==> Cluster $DB_CLUSTER is available"
echo "==> Restored $DB_CLUSTER from $SNAPSHOT_ID; the failed database is kept as $FAILED"
