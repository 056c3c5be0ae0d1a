# shellcheck shell=bash
# Finding (or starting) a PostgreSQL server for the tests and the benchmark.
# Source scripts/lib/common.sh first, then this file, then call setup_pg: it
# exports FERRY_TEST_PG_URL, using (in order) the URL already in the
# environment, a local server at ${PGHOST:-127.0.0.1}:${PGPORT:-5432} as
# ${PGUSER:-postgres} when that role can create databases, or a throwaway
# cluster that is stopped and removed when the calling script exits (an EXIT
# trap). PG_DESC says which.

PG_TMPDIR=""
PG_BINDIR=""
PG_RUN_AS=""
PG_DESC=""

# Prints a URL with any password replaced by '***'.
redact_url() {
    sed -E 's#^([a-zA-Z][a-zA-Z0-9+.-]*://[^:@/]*):[^@/]*@#\1:***@#' <<<"$1"
}

# True if something answers as a PostgreSQL server at host $1, port $2.
pg_answers() {
    local host=$1 port=$2 user=$3
    if have pg_isready; then
        pg_isready -q -t 3 -h "${host}" -p "${port}"
    elif have psql; then
        PGCONNECT_TIMEOUT=3 psql -w -X -q -h "${host}" -p "${port}" -U "${user}" \
            -d postgres -c 'select 1' >/dev/null 2>&1
    else
        return 1
    fi
}

# True if user $3 can log in at $1:$2 and create databases.
pg_can_createdb() {
    local host=$1 port=$2 user=$3 answer
    have psql || return 1
    answer=$(PGCONNECT_TIMEOUT=5 psql -w -X -q -At -h "${host}" -p "${port}" \
        -U "${user}" -d postgres \
        -c 'select rolcreatedb or rolsuper from pg_roles where rolname = current_user' \
        2>/dev/null) || return 1
    [[ ${answer} == t ]]
}

# Tries the server named by PGHOST/PGPORT/PGUSER; exports the URL on success.
use_local_pg() {
    local host=${PGHOST:-127.0.0.1} port=${PGPORT:-5432} user=${PGUSER:-postgres}
    # A socket directory in PGHOST is no use in a URL; stick to TCP.
    [[ ${host} == /* ]] && host=127.0.0.1
    pg_answers "${host}" "${port}" "${user}" || return 1
    if ! pg_can_createdb "${host}" "${port}" "${user}"; then
        info "PostgreSQL at ${host}:${port} answers, but ${user} cannot log in or create databases"
        return 1
    fi
    export FERRY_TEST_PG_URL="postgres://${user}@${host}:${port}/postgres"
    PG_DESC="local server at ${host}:${port} as ${user}"
}

# Sets PG_BINDIR to a directory holding initdb and pg_ctl: the highest
# version under /usr/lib/postgresql, else PATH.
find_pg_bindir() {
    local best="" dir
    best=$(printf '%s\n' /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)
    if [[ -x ${best} && -x ${best%/initdb}/pg_ctl ]]; then
        PG_BINDIR=${best%/initdb}
        return 0
    fi
    if have initdb && have pg_ctl; then
        dir=$(dirname "$(command -v initdb)")
        PG_BINDIR=${dir}
        return 0
    fi
    return 1
}

# PostgreSQL refuses to run as root: pick an unprivileged user when we are.
pick_pg_user() {
    if [[ ${EUID} -ne 0 ]]; then
        PG_RUN_AS=""
    elif id -u nobody >/dev/null 2>&1; then
        PG_RUN_AS=nobody
    else
        if ! id -u ferrytest >/dev/null 2>&1; then
            useradd -r -M -d /nonexistent -s /usr/sbin/nologin ferrytest
        fi
        PG_RUN_AS=ferrytest
    fi
}

# Runs a command as PG_RUN_AS (or as ourselves when that is empty).
pg_run() {
    if [[ -z ${PG_RUN_AS} ]]; then
        "$@"
    elif have runuser; then
        runuser -u "${PG_RUN_AS}" -- "$@"
    else
        su -s /bin/sh "${PG_RUN_AS}" -c "$(printf '%q ' "$@")"
    fi
}

# True if nothing listens on 127.0.0.1:$1 and the port can be bound.
port_is_free() {
    local port=$1
    if have python3; then
        python3 - "${port}" <<'EOF'
import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
finally:
    s.close()
EOF
    else
        # A refused connection means nobody listens there.
        if (exec 3<>"/dev/tcp/127.0.0.1/${port}") 2>/dev/null; then
            return 1
        fi
    fi
}

free_port() {
    local port
    for ((port = 55432; port < 55532; port++)); do
        if port_is_free "${port}"; then
            echo "${port}"
            return 0
        fi
    done
    return 1
}

stop_throwaway_pg() {
    [[ -n ${PG_TMPDIR} && -d ${PG_TMPDIR} ]] || return 0
    if [[ -f ${PG_TMPDIR}/data/postmaster.pid ]]; then
        pg_run "${PG_BINDIR}/pg_ctl" stop -D "${PG_TMPDIR}/data" -m immediate -s \
            >/dev/null 2>&1 || true
    fi
    rm -rf "${PG_TMPDIR}"
}

# Starts a throwaway cluster on 127.0.0.1 and exports its URL.
start_throwaway_pg() {
    if ! find_pg_bindir; then
        info "initdb/pg_ctl not found; installing postgresql with apt-get"
        apt_install postgresql
        find_pg_bindir || die "initdb/pg_ctl still not found after installing postgresql"
    fi
    pick_pg_user

    local port
    port=$(free_port) || die "no free port in 55432-55531 for a throwaway PostgreSQL"

    # Under /tmp: the unprivileged user must reach it, and the socket path
    # must stay short.
    PG_TMPDIR=$(mktemp -d /tmp/ferry-pg.XXXXXX)
    trap stop_throwaway_pg EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    if [[ -n ${PG_RUN_AS} ]]; then
        chown "${PG_RUN_AS}" "${PG_TMPDIR}"
    fi

    local data=${PG_TMPDIR}/data log=${PG_TMPDIR}/postgres.log
    info "starting a throwaway PostgreSQL on 127.0.0.1:${port}"
    if ! (cd "${PG_TMPDIR}" && pg_run "${PG_BINDIR}/initdb" -D "${data}" -A trust \
        -U postgres --no-sync -E UTF8 --locale=C >"${PG_TMPDIR}/initdb.log" 2>&1); then
        cat "${PG_TMPDIR}/initdb.log" >&2
        die "initdb failed"
    fi
    if ! (cd "${PG_TMPDIR}" && pg_run "${PG_BINDIR}/pg_ctl" start -D "${data}" -w -t 60 \
        -l "${log}" -o "-k ${PG_TMPDIR} -p ${port} -c listen_addresses=127.0.0.1 -c fsync=off" \
        >/dev/null); then
        cat "${log}" >&2 || true
        die "pg_ctl start failed"
    fi
    wait_pg_ready "${port}" || {
        cat "${log}" >&2 || true
        die "throwaway PostgreSQL did not become ready"
    }
    export FERRY_TEST_PG_URL="postgres://postgres@127.0.0.1:${port}/postgres"
    PG_DESC="throwaway cluster (${PG_BINDIR}${PG_RUN_AS:+, run as ${PG_RUN_AS}}) at 127.0.0.1:${port}"
}

wait_pg_ready() {
    local port=$1 i
    for ((i = 0; i < 60; i++)); do
        if have pg_isready; then
            pg_isready -q -t 2 -h 127.0.0.1 -p "${port}" && return 0
        elif [[ -f ${PG_TMPDIR}/data/postmaster.pid ]] &&
            grep -q ready "${PG_TMPDIR}/data/postmaster.pid"; then
            return 0
        fi
        sleep 0.5
    done
    return 1
}

setup_pg() {
    header "postgres"
    if [[ ${CI:-} == true ]]; then
        export FERRY_TEST_REQUIRE_PG=1
    fi
    if [[ -n ${FERRY_TEST_PG_URL:-} ]]; then
        PG_DESC="given by the environment"
    elif ! use_local_pg; then
        start_throwaway_pg
    fi
    info "PostgreSQL: ${PG_DESC}; FERRY_TEST_PG_URL=$(redact_url "${FERRY_TEST_PG_URL}")"
}
