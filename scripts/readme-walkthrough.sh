#!/usr/bin/env bash
# Runs the README's curl walk-throughs, exactly as written, against a fresh local server:
#
#   scripts/readme-walkthrough.sh            the API served by the local server
#   scripts/readme-walkthrough.sh --lambda   the API served by the Lambda functions under
#                                            `cargo lambda watch`, on the real paths (the router
#                                            in Cargo.toml), beside the local server on the same
#                                            data folder, which serves the file store's links
#
# Both use the key the server prints on its first start. The function binaries are built first
# (debug), so `cargo lambda watch` finds them fresh rather than compiling each on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
lambda=false
case "${1:-}" in
  --lambda) lambda=true ;;
  "") ;;
  *) echo "usage: scripts/readme-walkthrough.sh [--lambda]" >&2; exit 2 ;;
esac

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Waits until `pattern` shows in `log` (and `pid` still runs), at most `seconds`.
wait_for() {
  local log=$1 pattern=$2 pid=$3 seconds=$4
  for _ in $(seq $((seconds * 10))); do
    grep -q "$pattern" "$log" && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$log"; echo "exited before: $pattern"; return 1; }
    sleep 0.1
  done
  cat "$log"
  echo "not within ${seconds}s: $pattern"
  return 1
}

if $lambda; then
  cargo build --quiet --locked -p functions --bins
else
  cargo build --quiet --locked --bin attachments-local
fi
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait; rm -rf "$work"' EXIT
port=$(free_port)
export ATTACHMENTS_DATA_DIR="$work/data" ATTACHMENTS_ADDR="127.0.0.1:$port"
target/debug/attachments-local >"$work/server.log" 2>&1 &
pids+=($!)
wait_for "$work/server.log" "listening on" "${pids[0]}" 10
key=$(grep -oE 'ak_[0-9a-f]+' "$work/server.log" | head -n1)
[ -n "$key" ] || { cat "$work/server.log"; echo "the server printed no key"; exit 1; }
api="http://127.0.0.1:$port"

if $lambda; then
  # The functions share the data folder, and their links (ATTACHMENTS_ADDR) point at the server.
  lambda_port=$(free_port)
  PATH="$PWD/.tools/venv/bin:$PATH" cargo lambda watch --ignore-changes \
    --invoke-address 127.0.0.1 --invoke-port "$lambda_port" >"$work/watch.log" 2>&1 &
  pids+=($!)
  wait_for "$work/watch.log" "starting Runtime server" "${pids[1]}" 30
  api="http://127.0.0.1:$lambda_port"
fi

run_block() {
  awk "/<!-- $1:start -->/{on=1;next} /<!-- $1:end -->/{on=0} on" README.md |
    grep -v '^```' | grep -vE '^export (API|KEY)=' >"$work/$1.sh"
  (cd "$work" && API="$api" KEY="$key" bash -euo pipefail "$work/$1.sh")
}

started=$(date +%s)
# The block between the walkthrough markers, minus the two lines that set API and KEY by hand.
out=$(run_block walkthrough) || { $lambda && tail -n 40 "$work/watch.log"; exit 1; }
echo "$out"
grep -q '"status":"ready"' <<<"$out"
grep -q '^same bytes$' <<<"$out"
[ "$(tail -n2 <<<"$out" | tr '\n' ' ')" = "204 404 " ] || { echo "delete did not answer 204 then 404"; exit 1; }
# The large-file flow: a direct upload straight to storage, then complete.
out=$(run_block direct-walkthrough) || { $lambda && tail -n 40 "$work/watch.log"; exit 1; }
echo "$out"
grep -q '"status":"ready"' <<<"$out"
grep -q '"size":3000000' <<<"$out"
if $lambda; then
  served=$(grep -oE 'spawning function instance function="[a-z-]+"' "$work/watch.log" | sort -u | wc -l)
  echo "README walk-through: every step did what the README says, through $served functions under cargo lambda watch ($(($(date +%s) - started)) s)"
else
  echo "README walk-through: every step did what the README says"
fi
