#!/usr/bin/env bash
# History store's PostgreSQL backend in CI: install Debian's postgresql, start a throwaway cluster on a
# local port as the postgres user (password authentication over TCP, so the tests also check that the
# password never reaches an error), create a database and export TORCHPERF_TEST_POSTGRES_URL and
# TORCHPERF_REQUIRE_POSTGRES=1 for `cargo test`.
#
#   source .ci/history.sh          # start (idempotent), before `cargo test --workspace`
#   history_postgres_stop          # or: bash .ci/history.sh stop
#   history_recipe_check           # after the tests: docs/ci-recipe.md's commands on a scratch store
#
# Without this script the PostgreSQL tests print a note and are skipped.

HISTORY_PG_STATE=/tmp/torchperf-history-postgres.env
HISTORY_PG_PORT="${HISTORY_PG_PORT:-55432}"

history_postgres_bin() {
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

history_postgres_start() {
    if [ -f "$HISTORY_PG_STATE" ]; then
        # shellcheck disable=SC1090
        . "$HISTORY_PG_STATE"
        if su postgres -c "$HISTORY_PG_BIN/pg_ctl -D $HISTORY_PG_DIR/data status" >/dev/null 2>&1; then
            export TORCHPERF_TEST_POSTGRES_URL TORCHPERF_REQUIRE_POSTGRES=1
            echo "history.sh: PostgreSQL already running on port $HISTORY_PG_PORT"
            return 0
        fi
    fi
    if [ -z "$(history_postgres_bin)" ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null || {
            echo "history.sh: could not install postgresql" >&2
            return 1
        }
    fi
    HISTORY_PG_BIN="$(history_postgres_bin)"
    HISTORY_PG_DIR="$(mktemp -d /tmp/torchperf-history-pg.XXXXXX)"
    chown postgres:postgres "$HISTORY_PG_DIR"
    local password
    password="$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 20)"
    printf '%s\n' "$password" >"$HISTORY_PG_DIR/pwfile"
    chown postgres:postgres "$HISTORY_PG_DIR/pwfile"
    chmod 600 "$HISTORY_PG_DIR/pwfile"
    su postgres -c "$HISTORY_PG_BIN/initdb -D $HISTORY_PG_DIR/data -U postgres --pwfile=$HISTORY_PG_DIR/pwfile \
        --auth-local=trust --auth-host=scram-sha-256" >"$HISTORY_PG_DIR/initdb.log" 2>&1 || {
        echo "history.sh: initdb failed:" >&2
        cat "$HISTORY_PG_DIR/initdb.log" >&2
        return 1
    }
    rm -f "$HISTORY_PG_DIR/pwfile"
    su postgres -c "$HISTORY_PG_BIN/pg_ctl -D $HISTORY_PG_DIR/data -l $HISTORY_PG_DIR/server.log -w \
        -o '-p $HISTORY_PG_PORT -k $HISTORY_PG_DIR -c listen_addresses=127.0.0.1' start" >/dev/null || {
        echo "history.sh: PostgreSQL did not start:" >&2
        cat "$HISTORY_PG_DIR/server.log" >&2
        return 1
    }
    su postgres -c "$HISTORY_PG_BIN/createdb -h $HISTORY_PG_DIR -p $HISTORY_PG_PORT torchperf_history_test" || return 1
    TORCHPERF_TEST_POSTGRES_URL="postgres://postgres:${password}@127.0.0.1:${HISTORY_PG_PORT}/torchperf_history_test"
    {
        echo "HISTORY_PG_BIN='$HISTORY_PG_BIN'"
        echo "HISTORY_PG_DIR='$HISTORY_PG_DIR'"
        echo "HISTORY_PG_PORT='$HISTORY_PG_PORT'"
        echo "TORCHPERF_TEST_POSTGRES_URL='$TORCHPERF_TEST_POSTGRES_URL'"
    } >"$HISTORY_PG_STATE"
    chmod 600 "$HISTORY_PG_STATE"
    export TORCHPERF_TEST_POSTGRES_URL TORCHPERF_REQUIRE_POSTGRES=1
    echo "history.sh: PostgreSQL $(basename "$(dirname "$HISTORY_PG_BIN")") running on 127.0.0.1:$HISTORY_PG_PORT (store tests will use it)"
}

history_postgres_stop() {
    [ -f "$HISTORY_PG_STATE" ] || return 0
    # shellcheck disable=SC1090
    . "$HISTORY_PG_STATE"
    su postgres -c "$HISTORY_PG_BIN/pg_ctl -D $HISTORY_PG_DIR/data -m fast -w stop" >/dev/null 2>&1
    rm -rf "$HISTORY_PG_DIR" "$HISTORY_PG_STATE"
    unset TORCHPERF_TEST_POSTGRES_URL TORCHPERF_REQUIRE_POSTGRES
    echo "history.sh: PostgreSQL stopped"
}

# The commands of docs/ci-recipe.md that need no GitHub, on a scratch store. Needs the history
# commands wired into xtask. Returns non-zero on the first unexpected result.
history_recipe_check() {
    # Written to hold under `set -euo pipefail` in the caller. The debug build of xtask (already built by
    # `cargo test --workspace`) runs the commands: nothing here is timed, and a release build would cost
    # CI minutes.
    local scratch code output
    scratch="$(mktemp -d /tmp/torchperf-history-recipe.XXXXXX)"
    local store="$scratch/history.sqlite"
    cargo run -q -p xtask -- import validation_results/reference --store "$store" || return 1
    output="$(cargo run -q -p xtask -- import validation_results/reference --store "$store")" || return 1
    case "$output" in *"1 already recorded"*) ;; *) echo "second import: $output" >&2; return 1 ;; esac
    cargo run -q -p xtask -- history --matrix --store "$store" >/dev/null || return 1
    cargo run -q -p xtask -- history perf_core.timer_overhead --svg "$scratch/trend.svg" --store "$store" >/dev/null || return 1
    grep -q "<svg" "$scratch/trend.svg" || return 1
    code=0
    cargo run -q -p xtask -- gate --baseline previous --run validation_results/reference --report "$scratch/gate.md" \
        --store "$store" || code=$?
    if [ "$code" -ne 2 ] || ! grep -q "cannot decide" "$scratch/gate.md"; then
        echo "gate without history: exit $code, expected 2" >&2
        return 1
    fi
    code=0
    cargo run -q -p xtask -- gate --baseline 0000000 --run validation_results/reference --store "$store" \
        2>"$scratch/err" || code=$?
    if [ "$code" -ne 2 ] || ! grep -q "not found in the history" "$scratch/err"; then
        echo "gate on an unknown commit: exit $code, expected 2" >&2
        return 1
    fi
    rm -rf "$scratch"
    echo "history.sh: CI recipe commands behave as documented"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    # Executed, not sourced.
    case "${1:-start}" in
        stop) history_postgres_stop ;;
        start) history_postgres_start ;;
        *) echo "usage: source .ci/history.sh | bash .ci/history.sh stop" >&2; exit 2 ;;
    esac
else
    history_postgres_start
fi
