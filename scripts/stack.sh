#!/usr/bin/env bash
# The local AWS stack without Docker: ministack (S3, SQS, SNS, DynamoDB, CloudWatch, Cognito user
# pools and Lambda, which runs facegate's trigger function as a host process) from the
# project virtualenv, on 127.0.0.1 only.
#
#   scripts/stack.sh start    start it in the background (no-op if ours is already up)
#   scripts/stack.sh stop     stop it by its PID
#   scripts/stack.sh status   exit 0 if it answers its health check
#   scripts/stack.sh reset    clear every resource (POST /_ministack/reset)
#
# Settings: FACEGATE_STACK_PORT (4566), FACEGATE_STACK_PERSIST=1 keeps state across restarts
# (the default for `make dev`; tests run without it), FACEGATE_STACK_DIR (.facegate/ministack)
# holds its pid file, log and state (`facegate bench soak` gives its own emulator a folder of its
# own, which it stops and starts again with the state kept).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
port=${FACEGATE_STACK_PORT:-4566}
state="${FACEGATE_STACK_DIR:-$root/.facegate/ministack}"
pidfile="$state/ministack-$port.pid"
logfile="$state/ministack-$port.log"
url="http://127.0.0.1:$port"

log() { printf '[stack] %s\n' "$*" >&2; }
healthy() { curl -fsS -m 2 "$url/_ministack/health" >/dev/null 2>&1; }
running_pid() {
  local pid
  pid=$(cat "$pidfile" 2>/dev/null) || return 1
  kill -0 "$pid" 2>/dev/null && echo "$pid"
}

start() {
  if running_pid >/dev/null && healthy; then log "already running at $url"; return 0; fi
  if healthy; then log "something else already answers at $url: stop it or set FACEGATE_STACK_PORT"; exit 1; fi
  [ -x "$root/.venv/bin/python" ] || "$root/scripts/setup.sh"
  mkdir -p "$state"
  # ministack writes Cognito signing keys and unpacked Lambda code under STATE_DIR and TMPDIR:
  # keep both inside the checkout. Without persistence they are thrown away at each start.
  local persist=(STATE_DIR="$state/scratch" TMPDIR="$state/scratch/tmp")
  if [ "${FACEGATE_STACK_PERSIST:-0}" = 1 ]; then
    persist=(PERSIST_STATE=1 STATE_DIR="$state/state" TMPDIR="$state/state/tmp" S3_PERSIST=1 S3_DATA_DIR="$state/s3")
  else
    rm -rf "$state/scratch"
  fi
  mkdir -p "$state/scratch/tmp" "$state/state/tmp"
  log "starting ministack on $url (log: $logfile)"
  # hypercorn directly, so the PID we record is the server's own.
  env BIND_HOST=127.0.0.1 GATEWAY_PORT="$port" LOG_LEVEL=WARNING "${persist[@]}" \
    setsid "$root/.venv/bin/python" -m hypercorn ministack.app:app \
      --bind "127.0.0.1:$port" --log-level WARNING --keep-alive 75 \
      >"$logfile" 2>&1 < /dev/null &
  echo $! > "$pidfile"
  for _ in $(seq 1 120); do
    if healthy; then log "ready"; return 0; fi
    if ! running_pid >/dev/null; then log "ministack exited; last log lines:"; tail -n 20 "$logfile" >&2; exit 1; fi
    sleep 0.5
  done
  log "ministack did not become healthy within 60 s"; exit 1
}

stop() {
  local pid
  if pid=$(running_pid); then
    kill "$pid"
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    log "stopped (pid $pid)"
  else
    log "not running"
  fi
  rm -f "$pidfile"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) healthy && log "up at $url" || { log "down"; exit 1; } ;;
  reset) curl -fsS -m 30 -X POST "$url/_ministack/reset" >/dev/null && log "reset" ;;
  *) echo "usage: $0 start|stop|status|reset" >&2; exit 2 ;;
esac
