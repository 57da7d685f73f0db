# shellcheck shell=bash
# Provisioning helpers shared by scripts/test.sh and scripts/start.sh.
#
# Source it (do not execute it); it is safe under `set -euo pipefail` and sets
# no shell options itself. Every function expects the repository root as the
# current directory. Messages go to stderr, prefixed with $PROVISION_LOG_PREFIX
# (default "[provision]"), so functions that print a value (free_port) keep
# stdout clean.
#
# Functions:
#   ensure_node_modules        npm ci when node_modules is missing or stale
#   apt_install PKG...         apt-get install (apt-get update once per run)
#   ensure_redis               install redis-server when the binary is absent
#   ensure_postgres            install postgresql when absent; export PG_BIN
#   ensure_chromium            install chromium and a CJK font (browser tests) when absent
#   free_port                  print a free TCP port on 127.0.0.1
#   wait_for_port HOST PORT TIMEOUT_S
#                              wait until HOST:PORT accepts TCP connections

_prov_log() {
  printf '%s %s\n' "${PROVISION_LOG_PREFIX:-[provision]}" "$*" >&2
}

_prov_die() {
  _prov_log "error: $*"
  return 1
}

# npm ci when node_modules is missing or older than package-lock.json.
# Concurrent runs from the same checkout serialise on a lock (when flock is
# available) so two `npm test` started together do not both rewrite
# node_modules.
ensure_node_modules() {
  [ -f package-lock.json ] || { _prov_die "package-lock.json not found in $PWD"; return 1; }

  local reason
  reason=$(_prov_node_modules_reason)
  [ -n "$reason" ] || return 0

  if command -v flock >/dev/null 2>&1; then
    local lock
    lock="${TMPDIR:-/tmp}/siyu-npm-ci.$(printf '%s' "$PWD" | cksum | cut -d' ' -f1).lock"
    (
      flock -w 600 9 || { _prov_die "timed out waiting for another npm ci ($lock)"; exit 1; }
      # Another run may have finished the install while we waited.
      local still
      still=$(_prov_node_modules_reason)
      [ -n "$still" ] || exit 0
      _prov_run_npm_ci "$still"
    ) 9>"$lock"
  else
    _prov_run_npm_ci "$reason"
  fi
}

_prov_node_modules_reason() {
  if [ ! -d node_modules ]; then
    echo "node_modules is missing"
  elif [ ! -f node_modules/.package-lock.json ]; then
    echo "node_modules/.package-lock.json is missing (incomplete install)"
  elif [ package-lock.json -nt node_modules/.package-lock.json ]; then
    echo "package-lock.json is newer than node_modules"
  fi
}

_prov_run_npm_ci() {
  command -v npm >/dev/null 2>&1 || { _prov_die "npm not found (Node 20 is required)"; return 1; }
  _prov_log "npm ci: $1"
  local out rc=0
  out=$(mktemp)
  npm ci --no-audit --no-fund </dev/null >"$out" 2>&1 || rc=$?
  if [ "$rc" -eq 0 ]; then
    cat "$out" >&2
    rm -f "$out"
    _prov_mark_installed
    return 0
  fi
  # Print the error, not npm's usage text that follows it.
  sed '/Clean install a project/,$d' "$out" >&2
  rm -f "$out"
  # npm ci refuses a lock file that lacks optional platform packages (e.g.
  # darwin/win32 builds of msgpackr-extract) when the registry in use does not
  # carry them, so a lock made against such a registry never passes `npm ci`.
  # `npm install` honours the same lock and accepts that.
  _prov_log "npm ci failed (exit $rc); falling back to npm install"
  local before after
  before=$(cksum <package-lock.json)
  npm install --no-audit --no-fund </dev/null >&2 \
    || { _prov_die "npm install failed"; return 1; }
  after=$(cksum <package-lock.json)
  [ "$before" = "$after" ] || _prov_log "note: npm install changed package-lock.json"
  _prov_mark_installed
}

# Make sure the staleness check passes next time even if npm left the
# timestamps alone (e.g. "up to date").
_prov_mark_installed() {
  if [ -f node_modules/.package-lock.json ] \
    && [ package-lock.json -nt node_modules/.package-lock.json ]; then
    touch node_modules/.package-lock.json
  fi
}

# apt-get install PKG... non-interactively; `apt-get update` runs once per
# script run, before the first install. Uses sudo -n when not root.
_PROVISION_APT_UPDATED=${_PROVISION_APT_UPDATED:-0}
apt_install() {
  [ "$#" -gt 0 ] || return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    _prov_die "apt-get not found; install these packages manually: $*"
    return 1
  fi

  local -a as_root=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
      # -n: never prompt for a password (no stdin in CI); fail instead.
      as_root=(sudo -n)
    else
      _prov_die "need root to apt-get install $* (not root and sudo is not installed); install them manually or rerun as root"
      return 1
    fi
  fi

  # Wait for the dpkg lock instead of failing if another apt runs concurrently.
  local -a apt=(env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=300)

  if [ "$_PROVISION_APT_UPDATED" != 1 ]; then
    _prov_log "apt-get update"
    "${as_root[@]}" "${apt[@]}" update </dev/null >&2 \
      || { _prov_die "apt-get update failed"; return 1; }
    _PROVISION_APT_UPDATED=1
  fi

  _prov_log "apt-get install $*"
  "${as_root[@]}" "${apt[@]}" install -y --no-install-recommends "$@" </dev/null >&2 \
    || { _prov_die "apt-get install $* failed"; return 1; }
}

ensure_redis() {
  command -v redis-server >/dev/null 2>&1 && return 0
  _prov_log "redis-server not found; installing Debian package redis-server"
  apt_install redis-server || return 1
  hash -r
  command -v redis-server >/dev/null 2>&1 \
    || { _prov_die "redis-server still not on PATH after installing redis-server"; return 1; }
}

# The browser tests drive Debian's Chromium at /usr/bin/chromium (never a browser
# that a test tool downloads), with a small CJK font so the console's Chinese
# text renders in screenshots instead of empty boxes.
ensure_chromium() {
  local -a pkgs=()
  [ -x /usr/bin/chromium ] || pkgs+=(chromium)
  [ -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || pkgs+=(fonts-wqy-microhei)
  [ "${#pkgs[@]}" -gt 0 ] || return 0
  _prov_log "browser tests: installing Debian packages ${pkgs[*]}"
  apt_install "${pkgs[@]}" || return 1
  [ -x /usr/bin/chromium ] \
    || { _prov_die "/usr/bin/chromium still missing after installing chromium"; return 1; }
}

# Prints the newest /usr/lib/postgresql/<version>/bin that has initdb.
_prov_find_pg_bin() {
  local initdb
  for initdb in /usr/lib/postgresql/*/bin/initdb; do
    if [ -x "$initdb" ]; then dirname "$initdb"; fi
  done | sort -V | tail -n 1
}

ensure_postgres() {
  local bin
  bin=$(_prov_find_pg_bin)
  if [ -z "$bin" ]; then
    _prov_log "no /usr/lib/postgresql/*/bin/initdb; installing Debian package postgresql"
    apt_install postgresql || return 1
    bin=$(_prov_find_pg_bin)
    [ -n "$bin" ] || { _prov_die "initdb still missing after installing postgresql"; return 1; }
  fi
  PG_BIN=$bin
  export PG_BIN
}

free_port() {
  node -e '
    const s = require("net").createServer();
    s.on("error", (e) => { console.error(e.message); process.exit(1); });
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => console.log(port));
    });
  '
}

# wait_for_port HOST PORT TIMEOUT_S -> 0 once a TCP connect succeeds, 1 on timeout.
wait_for_port() {
  local host=$1 port=$2 timeout_s=${3:-30}
  local deadline=$((SECONDS + timeout_s))
  while :; do
    if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
      return 0
    fi
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}
