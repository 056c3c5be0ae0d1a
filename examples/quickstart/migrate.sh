#!/bin/sh
# The quickstart's migration tool: applies each $MIGRATIONS/*.sql not yet listed
# in schema_migrations, in name order, through `ferry db exec`. ferry runs it
# with DATABASE_URL, FERRY_ENV and FERRY_BIN (the ferry executable) set. The
# deploy that runs it was already confirmed, hence --yes.
set -eu
ferry=${FERRY_BIN:-ferry}
dir=${MIGRATIONS:-migrations}

applied=$("$ferry" db exec "$FERRY_ENV" --yes --sql "SELECT version FROM schema_migrations")
echo "database at ${DATABASE_URL}"
for file in "$dir"/*.sql; do
    version=$(basename "$file" .sql)
    if printf '%s\n' "$applied" | grep -qx "$version"; then
        echo "$version: already applied"
        continue
    fi
    echo "$version: applying"
    "$ferry" db exec "$FERRY_ENV" --yes --file "$file"
    echo "$version: done"
done
