#!/usr/bin/env bash
# The project's test command: `npm test [-- VITEST_ARGS...]`.
#
# Provisions everything it needs (npm ci, Debian postgresql, redis-server and,
# for the browser tests, chromium packages when absent), starts a throwaway
# PostgreSQL and Redis on free loopback ports in a private temp dir, exports
#   DATABASE_URL=postgres://postgres@127.0.0.1:PORT/postgres
#   REDIS_URL=redis://127.0.0.1:PORT/0
#   SIYU_TEST=1
# then runs, in order: typecheck (tsc --noEmit), lint (eslint ., only when an
# eslint flat config exists) and `vitest run "$@"`. All steps run; the exit
# code is that of the first failing step. Servers and the temp dir are removed
# on exit, including on Ctrl-C / SIGTERM. Safe to run twice in a row and
# concurrently (separate temp dirs, free ports).
#
# Environment switches:
#   SIYU_TEST_SKIP_STATIC=1   skip typecheck and lint (only run vitest), e.g.
#                             while other parts of the tree are mid-edit.
#   SIYU_TEST_KEEP_TMP=1      keep the temp dir (data dirs and server logs).

# Cleanup functions are reached via traps, which shellcheck cannot see:
# shellcheck disable=SC2317
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PROVISION_LOG_PREFIX="[test]"
# shellcheck source=scripts/lib/provision.sh
. scripts/lib/provision.sh

log() { printf '[test] %s\n' "$*"; }

TMP_DIR=""
PG_DATA=""
PG_STARTED=0
REDIS_PID=""
STEP_PID=""
WATCHDOG_PID=""
# Server log tails are printed on failure unless the tests themselves passed
# (a typecheck/lint failure is not about the servers).
SHOW_SERVER_LOGS=1
HAVE_SETSID=0
command -v setsid >/dev/null 2>&1 && HAVE_SETSID=1

IS_ROOT=0
[ "$(id -u)" -eq 0 ] && IS_ROOT=1

# Run a command as the user that owns the PostgreSQL data dir: `postgres` when
# we are root (initdb/postgres refuse to run as root), else ourselves.
as_pg() {
  if [ "$IS_ROOT" = 1 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

show_logs() {
  local f
  for f in "$TMP_DIR/postgres.log" "$TMP_DIR/redis.log"; do
    [ -s "$f" ] || continue
    log "---- last lines of ${f##*/} ----"
    tail -n 20 "$f" | sed 's/^/[test]   /'
  done
}

stop_postgres() {
  [ "$PG_STARTED" = 1 ] || return 0
  PG_STARTED=0
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" stop -m immediate -w -t 15 >/dev/null 2>&1 && return 0
  # pg_ctl failed (server already gone, or stuck): make sure it is dead.
  local pid
  pid=$(head -n 1 "$PG_DATA/postmaster.pid" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
  fi
}

# 0 when PID is running (zombies count as gone).
proc_alive() {
  local stat
  if [ -r "/proc/$1/stat" ]; then
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [ "${stat%% *}" != Z ]
  else
    kill -0 "$1" 2>/dev/null
  fi
}

# Note: no `wait` in cleanup paths. In bash 5.2, `wait PID` from an EXIT trap
# entered via a signal trap can hang forever when PID exited meanwhile.
stop_redis() {
  [ -n "$REDIS_PID" ] || return 0
  local pid=$REDIS_PID
  REDIS_PID=""
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do
    proc_alive "$pid" || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

# Stop the running step and everything it spawned (vitest worker processes
# outlive a killed vitest main process otherwise).
stop_step() {
  [ -n "$STEP_PID" ] || return 0
  local pid=$STEP_PID
  STEP_PID=""
  if [ "$HAVE_SETSID" = 1 ]; then
    kill -TERM -- "-$pid" 2>/dev/null || return 0
  else
    kill -TERM "$pid" 2>/dev/null || return 0
  fi
  for _ in $(seq 50); do
    proc_alive "$pid" || break
    sleep 0.1
  done
  # Whatever is left of the tree (e.g. vitest workers).
  [ "$HAVE_SETSID" = 1 ] && kill -KILL -- "-$pid" 2>/dev/null
  kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$1
  set +e
  trap - EXIT INT TERM
  [ -z "$WATCHDOG_PID" ] || kill "$WATCHDOG_PID" 2>/dev/null
  stop_step
  # Server logs help with failures, not with Ctrl-C / SIGTERM.
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 130 ] && [ "$rc" -ne 143 ] \
    && [ "$SHOW_SERVER_LOGS" = 1 ] && [ -n "$TMP_DIR" ]; then
    show_logs
  fi
  stop_postgres
  stop_redis
  if [ -n "$TMP_DIR" ]; then
    if [ "${SIYU_TEST_KEEP_TMP:-0}" = 1 ]; then
      log "kept $TMP_DIR"
    else
      rm -rf "$TMP_DIR"
    fi
  fi
  exit "$rc"
}
trap 'cleanup $?' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# `npm test` runs us under `sh -c`; when npm gets SIGTERM (e.g. a CI timeout
# signalling .ci/run) it signals that sh, which dies without passing the
# signal on, and we would be orphaned with servers running until the tests
# end. So watch for our parent going away and treat that as SIGTERM.
watch_parent() {
  local parent=$1 me=$2 ppid
  while sleep 1; do
    if [ -r "/proc/$me/stat" ]; then
      read -r _ _ _ ppid _ <"/proc/$me/stat" 2>/dev/null || return 0
      [ "$ppid" = "$parent" ] || break
    else
      kill -0 "$parent" 2>/dev/null || break
    fi
  done
  kill -TERM "$me" 2>/dev/null
}
if [ "$PPID" -gt 1 ]; then
  watch_parent "$PPID" "$$" </dev/null >/dev/null 2>&1 &
  WATCHDOG_PID=$!
fi

# ---------------------------------------------------------------- provision
ensure_node_modules
ensure_postgres
ensure_redis
# Browser tests (tests/browser) drive Debian's Chromium; benchmarks need none.
[ "${SIYU_MODE:-test}" = bench ] || ensure_chromium

tmp_base=${TMPDIR:-/tmp}
# The postgres user must be able to reach the temp dir (TMPDIR may be private).
if [ "$IS_ROOT" = 1 ] && ! runuser -u postgres -- test -x "$tmp_base"; then
  tmp_base=/tmp
fi
TMP_DIR=$(mktemp -d "$tmp_base/siyu-test.XXXXXX")
PG_DATA=$TMP_DIR/pgdata
mkdir "$TMP_DIR/redis"
if [ "$IS_ROOT" = 1 ]; then
  chown -R postgres: "$TMP_DIR"
fi
log "temp dir $TMP_DIR"

# ---------------------------------------------------------------- postgres
pg_locale=C
if locale -a 2>/dev/null | grep -qixE 'c\.utf-?8'; then
  pg_locale=C.UTF-8
fi
log "initdb ($("$PG_BIN/postgres" --version | awk '{print $3}'), locale $pg_locale)"
if ! as_pg "$PG_BIN/initdb" -D "$PG_DATA" -A trust -U postgres --no-sync \
  -E UTF8 --locale="$pg_locale" >"$TMP_DIR/initdb.log" 2>&1; then
  log "initdb failed:"
  tail -n 20 "$TMP_DIR/initdb.log" | sed 's/^/[test]   /'
  exit 1
fi
cat >>"$PG_DATA/postgresql.conf" <<EOF

# --- scripts/test.sh: throwaway test server ---
listen_addresses = '127.0.0.1'
unix_socket_directories = '$TMP_DIR'
max_connections = 200
EOF
# Tests need no durability; benchmarks (SIYU_MODE=bench) keep PostgreSQL's durable defaults so
# the figures mean what they would on a real server.
if [ "${SIYU_MODE:-test}" != bench ]; then
  printf 'fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n' >>"$PG_DATA/postgresql.conf"
else
  printf 'shared_buffers = 4GB\nmax_wal_size = 4GB\n' >>"$PG_DATA/postgresql.conf"
fi

pg_ready=0
for attempt in 1 2 3; do
  PG_PORT=$(free_port)
  log "starting postgres on 127.0.0.1:$PG_PORT"
  PG_STARTED=1
  # pg_ctl -w returns once the server accepts connections, or fails early if
  # the postmaster dies (e.g. the port was taken between free_port and bind).
  # The postmaster runs detached in its own session; stop_postgres stops it.
  if as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$TMP_DIR/postgres.log" \
    -o "-p $PG_PORT" -w -t 60 start >/dev/null 2>&1; then
    for _ in $(seq 100); do
      if "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -t 1; then
        pg_ready=1
        break
      fi
      sleep 0.1
    done
  fi
  [ "$pg_ready" = 1 ] && break
  log "postgres did not become ready (attempt $attempt):"
  tail -n 3 "$TMP_DIR/postgres.log" 2>/dev/null | sed 's/^/[test]   /'
  stop_postgres
done
if [ "$pg_ready" != 1 ]; then
  log "could not start postgres"
  exit 1
fi

# ------------------------------------------------------------------- redis
redis_ready=0
for attempt in 1 2 3; do
  REDIS_PORT=$(free_port)
  log "starting redis on 127.0.0.1:$REDIS_PORT"
  : >"$TMP_DIR/redis.log"
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
    --dir "$TMP_DIR/redis" --daemonize no --logfile "$TMP_DIR/redis.log" \
    </dev/null >/dev/null 2>&1 &
  REDIS_PID=$!
  # Ready = our redis says so (an open port alone could be someone else's,
  # if the port was taken between free_port and bind) and the port answers.
  for _ in $(seq 300); do
    proc_alive "$REDIS_PID" || break
    if grep -q 'Ready to accept connections' "$TMP_DIR/redis.log" 2>/dev/null \
      && wait_for_port 127.0.0.1 "$REDIS_PORT" 0; then
      redis_ready=1
      break
    fi
    sleep 0.1
  done
  [ "$redis_ready" = 1 ] && break
  log "redis did not become ready (attempt $attempt):"
  tail -n 5 "$TMP_DIR/redis.log" 2>/dev/null | sed 's/^/[test]   /'
  stop_redis
done
if [ "$redis_ready" != 1 ]; then
  log "could not start redis"
  exit 1
fi

export DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
export REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
export SIYU_TEST=1
log "DATABASE_URL=$DATABASE_URL REDIS_URL=$REDIS_URL"

# ------------------------------------------------------------------- steps
# Each step runs in the background (in its own process group) and is waited
# for, so a SIGTERM/SIGINT to this script runs the cleanup trap at once, which
# stops the step's whole process tree, instead of after the step ends.
# Local binaries are used directly (what `npx` would resolve to) so a missing
# devDependency fails loudly instead of npx fetching a same-named package.
# run_step NAME BIN ARGS... -> the step's exit code.
run_step() {
  local name=$1 bin=$2 rc=0
  shift 2
  if [ ! -x "node_modules/.bin/$bin" ]; then
    log "$name: node_modules/.bin/$bin not found (missing devDependency?)"
    return 127
  fi
  log "$name: $bin $*"
  if [ "$HAVE_SETSID" = 1 ]; then
    # Own process group, so stop_step can signal the whole tree.
    setsid -w "node_modules/.bin/$bin" "$@" &
  else
    "node_modules/.bin/$bin" "$@" &
  fi
  STEP_PID=$!
  wait "$STEP_PID" || rc=$?
  STEP_PID=""
  [ "$rc" -eq 0 ] || log "$name failed (exit $rc)"
  return "$rc"
}

FIRST_RC=0
failed() { [ "$FIRST_RC" -ne 0 ] || FIRST_RC=$1; }

has_eslint_config() {
  local f
  for f in eslint.config.js eslint.config.mjs eslint.config.cjs \
    eslint.config.ts eslint.config.mts eslint.config.cts; do
    [ -f "$f" ] && return 0
  done
  return 1
}

if [ "${SIYU_MODE:-test}" = bench ]; then
  # `npm run bench`: the same throwaway servers, then the benchmark instead of the tests.
  run_step bench tsx bench/run.ts "$@" || failed $?
elif [ "${SIYU_TEST_SKIP_STATIC:-0}" = 1 ]; then
  log "SIYU_TEST_SKIP_STATIC=1: skipping typecheck and lint"
else
  run_step typecheck tsc --noEmit || failed $?
  if has_eslint_config; then
    run_step lint eslint . || failed $?
  else
    log "lint: no eslint.config.* found; skipping"
  fi
fi
if [ "${SIYU_MODE:-test}" = bench ]; then
  :
elif run_step tests vitest run --reporter=default --reporter=json --outputFile.json="$TMP_DIR/vitest.json" "$@"; then
  SHOW_SERVER_LOGS=0
else
  failed $?
fi
# One plain closing line that any CI can read: "tests: N passed, N failed[, N skipped]".
if [ -s "$TMP_DIR/vitest.json" ]; then
  node -e 'const r=require(process.argv[1]);const s=r.numPendingTests+r.numTodoTests;console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed`+(s?`, ${s} skipped`:""))' "$TMP_DIR/vitest.json" || true
fi

if [ "$FIRST_RC" -eq 0 ]; then
  log "all passed"
else
  log "FAILED (exit $FIRST_RC)"
fi
exit "$FIRST_RC"
