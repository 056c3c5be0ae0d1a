#!/bin/sh
# The 60-second tour of ferry on the local provider (SQLite, bundled):
#   1. seed a fresh database
#   2. deploy a good migration             -> exit 0
#   3. deploy one that fails halfway       -> exit 4: restored, every row intact,
#                                             the failed database kept aside
# Needs only the Rust toolchain and a POSIX shell. Set FERRY to use a built binary.
set -u
here=$(cd "$(dirname "$0")" && pwd)
cd "$here" || exit 1
if [ -z "${FERRY:-}" ]; then
    cargo build --quiet --manifest-path "$here/../../Cargo.toml" || exit 1
    FERRY="$here/../../target/debug/ferry"
fi

step() { printf '\n\033[1m## %s\033[0m\n' "$*"; }
fail() { printf '\ntour: %s\n' "$*" >&2; exit 1; }
counts() { "$FERRY" db exec local --sql "SELECT (SELECT count(*) FROM customers) AS customers, (SELECT count(*) FROM orders) AS orders, (SELECT group_concat(version, ' ') FROM schema_migrations) AS versions"; }

step "reset: a fresh app.db with 4 customers and 7 orders"
rm -rf .ferry app.db app.db-wal app.db-shm app-failed-*.db*
"$FERRY" db exec local --create --file seed.sql || fail "seeding failed"
counts

step "ferry deploy local: snapshot, migrate (0002_add_email), exit 0"
"$FERRY" deploy local
code=$?
[ "$code" -eq 0 ] || fail "expected exit 0, got $code"
counts

step "ferry deploy broken: 0003_split_name deletes orders, then fails halfway"
"$FERRY" deploy broken
code=$?
[ "$code" -eq 4 ] || fail "expected exit 4 (restored), got $code"

step "after the restore: the schema and every row from before the deploy"
counts
after=$(counts | tail -n 1)
[ "$after" = "$(printf '4\t7\t0001_init 0002_add_email')" ] || fail "data not as before the deploy: $after"

step "the failed database is kept, not deleted"
ls -1 app-failed-*.db || fail "no failed copy kept"

step "the journal"
"$FERRY" runs list
printf '\ntour: ok (good deploy exit 0, failed deploy exit 4 with every row restored)\n'
