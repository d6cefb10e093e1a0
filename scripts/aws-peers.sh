#!/usr/bin/env bash
# The AWS test peers. DynamoDB is moto's server (from PyPI, installed into .tools/venv, which git
# ignores), on a free loopback port. S3 needs nothing here: the tests run s3s-fs inside their own
# process, with SigV4 verification.
#
#   scripts/aws-peers.sh run -- CMD...   install if needed, start moto, export its endpoint as
#                                        ATTACHMENTS_TEST_DYNAMODB_ENDPOINT, run CMD, stop moto
#   scripts/aws-peers.sh install         create .tools/venv with moto[server]
#   scripts/aws-peers.sh start           start moto in the background; prints the export line
#   scripts/aws-peers.sh stop            stop the moto that `start` started
#
# The AWS suite, from a fresh clone:
#   scripts/aws-peers.sh run -- cargo test -p attachments-shared --features aws-tests \
#       --test aws --test aws_faults
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/.tools"
venv="$tools/venv"
pidfile="$tools/moto.pid"
logfile="$tools/moto.log"
# Pinned to a tested major version; moto's DynamoDB emulation changes between releases.
moto_req='moto[server]>=5.1,<6'

log() { echo "aws-peers: $*" >&2; }

install() {
  if [[ -x "$venv/bin/moto_server" ]]; then
    return 0
  fi
  log "installing $moto_req into .tools/venv"
  mkdir -p "$tools"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "$moto_req"
}

free_port() {
  "$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Waits until moto answers on the port (it takes a second or two to import).
wait_ready() {
  local port="$1" pid="$2"
  for _ in $(seq 1 150); do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "moto exited during start; its log:"
      cat "$logfile" >&2 || true
      return 1
    fi
    if "$venv/bin/python" - "$port" <<'EOF' 2>/dev/null; then
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/moto-api/", timeout=1).read()
EOF
      return 0
    fi
    sleep 0.2
  done
  log "moto did not answer on port $port within 30 s; its log:"
  cat "$logfile" >&2 || true
  return 1
}

start() {
  install
  local port pid
  port="$(free_port)"
  "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$logfile" 2>&1 &
  pid=$!
  echo "$pid" >"$pidfile"
  wait_ready "$port" "$pid" || { stop; return 1; }
  export ATTACHMENTS_TEST_DYNAMODB_ENDPOINT="http://127.0.0.1:$port"
  log "moto (pid $pid) on $ATTACHMENTS_TEST_DYNAMODB_ENDPOINT"
}

stop() {
  if [[ -f "$pidfile" ]]; then
    local pid
    pid="$(cat "$pidfile")"
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
  fi
}

case "${1:-}" in
  install)
    install
    ;;
  start)
    start
    echo "export ATTACHMENTS_TEST_DYNAMODB_ENDPOINT=$ATTACHMENTS_TEST_DYNAMODB_ENDPOINT"
    ;;
  stop)
    stop
    ;;
  run)
    # A pid file of its own, so concurrent runs (a developer's and CI's) do not stop each other.
    pidfile="$tools/moto.$$.pid"
    shift
    [[ "${1:-}" == "--" ]] && shift
    if [[ $# -eq 0 ]]; then
      log "usage: $0 run -- CMD..."
      exit 2
    fi
    trap stop EXIT
    trap 'exit 130' INT TERM
    start
    status=0
    "$@" || status=$?
    exit "$status"
    ;;
  *)
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
