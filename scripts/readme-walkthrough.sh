#!/usr/bin/env bash
# Runs the README's curl walk-through, exactly as written, against a fresh local server.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --locked --bin attachments-local
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ATTACHMENTS_DATA_DIR="$work/data" ATTACHMENTS_ADDR="127.0.0.1:$port" target/debug/attachments-local >"$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do grep -q "listening on" "$work/server.log" && break; sleep 0.1; done
key=$(grep -oE 'ak_[0-9a-f]+' "$work/server.log" | head -n1)
[ -n "$key" ] || { cat "$work/server.log"; echo "the server printed no key"; exit 1; }
# The block between the walkthrough markers, minus the two lines that set API and KEY by hand.
awk '/<!-- walkthrough:start -->/{on=1;next} /<!-- walkthrough:end -->/{on=0} on' README.md |
  grep -v '^```' | grep -vE '^export (API|KEY)=' >"$work/walkthrough.sh"
out=$(cd "$work" && API="http://127.0.0.1:$port" KEY="$key" bash -euo pipefail "$work/walkthrough.sh")
echo "$out"
grep -q '"status":"ready"' <<<"$out"
grep -q '^same bytes$' <<<"$out"
[ "$(tail -n2 <<<"$out" | tr '\n' ' ')" = "204 404 " ] || { echo "delete did not answer 204 then 404"; exit 1; }
# The large-file flow: a direct upload straight to storage, then complete.
awk '/<!-- direct-walkthrough:start -->/{on=1;next} /<!-- direct-walkthrough:end -->/{on=0} on' README.md |
  grep -v '^```' >"$work/direct.sh"
out=$(cd "$work" && API="http://127.0.0.1:$port" KEY="$key" bash -euo pipefail "$work/direct.sh")
echo "$out"
grep -q '"status":"ready"' <<<"$out"
grep -q '"size":3000000' <<<"$out"
echo "README walk-through: every step did what the README says"
