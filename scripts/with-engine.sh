#!/usr/bin/env bash
# Runs a benchmark that needs the whole local stack: starts the AWS emulator if it is down and a
# face engine of its own (throw-away collections), runs the command with
# AWS_ENDPOINT_URL_REKOGNITION pointing at that engine, then stops what it started.
#
#   scripts/with-engine.sh ./target/release/facegate bench pipeline
#
# Settings: FACEGATE_BIN, the binary the engine runs from (./target/release/facegate);
# FACEGATE_BENCH_ENGINE_LISTEN (127.0.0.1:4598, beside `make dev`'s 4599).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[ $# -gt 0 ] || { echo "usage: $0 COMMAND [ARGS...]" >&2; exit 2; }
bin=${FACEGATE_BIN:-$root/target/release/facegate}
listen=${FACEGATE_BENCH_ENGINE_LISTEN:-127.0.0.1:4598}
log() { printf '[with-engine] %s\n' "$*" >&2; }

started_stack=0
if ! "$root/scripts/stack.sh" status >/dev/null 2>&1; then
  "$root/scripts/stack.sh" start
  started_stack=1
fi
data=$(mktemp -d)
FACEGATE_LOG_FORMAT=json "$bin" engine --listen "$listen" --data-dir "$data" \
  >"$data/engine.log" 2>&1 &
engine=$!
cleanup() {
  kill "$engine" 2>/dev/null && wait "$engine" 2>/dev/null || true
  rm -rf "$data"
  if [ $started_stack = 1 ]; then "$root/scripts/stack.sh" stop; fi
}
trap cleanup EXIT
for _ in $(seq 1 120); do
  if "$bin" health --url "http://$listen/healthz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$engine" 2>/dev/null; then
    log "the engine exited; its log:"; tail -n 20 "$data/engine.log" >&2; exit 1
  fi
  sleep 0.5
done
log "face engine at http://$listen (models loaded)"
AWS_ENDPOINT_URL_REKOGNITION="http://$listen" "$@"
