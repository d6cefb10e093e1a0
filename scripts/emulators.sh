#!/usr/bin/env bash
# Local AWS emulators for developing against the AWS backend without an AWS account:
# DynamoDB served by moto, S3 served by s3s-fs (with SigV4 checks), both on loopback.
#
#   scripts/emulators.sh start   install what is missing into .tools/, start both, create the
#                                table and bucket, write .tools/emulators.env
#   scripts/emulators.sh stop    stop both
#
# Then, in any shell:  source .tools/emulators.env
#   cargo run --release                      # the local server, on the AWS backend
#   cargo lambda watch                       # the Lambda functions, on the AWS backend
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/.tools"
env_file="$tools/emulators.env"
s3_pid="$tools/s3s-fs.pid"
cd "$root"

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start() {
  mkdir -p "$tools/s3-data"
  if [[ ! -x "$tools/bin/s3s-fs" ]]; then
    echo "emulators: building s3s-fs 0.14.1 into .tools/bin (once)" >&2
    cargo install --quiet --locked s3s-fs --version 0.14.1 --features binary --root "$tools"
  fi
  # moto, through the test peers' script; it prints the export line of its endpoint.
  eval "$(scripts/aws-peers.sh start)"
  local port
  port=$(free_port)
  "$tools/bin/s3s-fs" --host 127.0.0.1 --port "$port" \
    --access-key emulator --secret-key emulator-secret "$tools/s3-data" >"$tools/s3s-fs.log" 2>&1 &
  echo $! >"$s3_pid"
  for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
  local secret
  secret=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
  cat >"$env_file" <<ENV
export ATTACHMENTS_BACKEND=aws
export ATTACHMENTS_TABLE=attachments
export ATTACHMENTS_BUCKET=attachments
export ATTACHMENTS_SECRET=$secret
export ATTACHMENTS_S3_PATH_STYLE=true
export AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=emulator
export AWS_SECRET_ACCESS_KEY=emulator-secret
export AWS_ENDPOINT_URL_DYNAMODB=$ATTACHMENTS_TEST_DYNAMODB_ENDPOINT
export AWS_ENDPOINT_URL_S3=http://127.0.0.1:$port
ENV
  # shellcheck disable=SC1090
  source "$env_file"
  cargo run --quiet --release --bin attachments-admin -- init
  echo "emulators: running; now: source .tools/emulators.env" >&2
}

stop() {
  scripts/aws-peers.sh stop || true
  if [[ -f "$s3_pid" ]]; then
    kill "$(cat "$s3_pid")" 2>/dev/null || true
    rm -f "$s3_pid"
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: scripts/emulators.sh start|stop" >&2; exit 2 ;;
esac
