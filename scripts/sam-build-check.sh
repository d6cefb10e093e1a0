#!/usr/bin/env bash
# `sam build` compiles the workspace once for all functions. This runs the real `sam build` (SAM
# CLI from .tools/venv, samconfig.toml's settings) into a scratch folder, with the Makefile's
# build step pointed at the debug build of the functions (which test.sh has made by then, so
# cargo finds it fresh), and checks from its log that it ran one cargo invocation and copied one
# binary per function. The build it stands in for, `cargo lambda build --release --arm64`, takes
# most of half an hour on 2 cores (README: Deploy to AWS with SAM), too long for every CI run.
set -euo pipefail
cd "$(dirname "$0")/.."
export SAM_CLI_TELEMETRY=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

CARGO_BUILD='cargo build --locked -p functions' BINARY='target/debug/%' \
  .tools/venv/bin/sam build --build-dir "$work/build" >"$work/log" 2>&1 ||
  { cat "$work/log"; echo "sam build failed"; exit 1; }

functions=$(grep -c '^    Type: AWS::Serverless::Function$' template.yaml)
cargo_runs=$(grep -c '^cargo ' "$work/log" || true)
copies=$(grep -cE '^cp target/debug/[a-z-]+ .*/bootstrap$' "$work/log" || true)
built=$(find "$work/build" -mindepth 2 -maxdepth 2 -name bootstrap -type f | wc -l)
if [ "$cargo_runs" != 1 ] || [ "$copies" != "$functions" ] || [ "$built" != "$functions" ]; then
  cat "$work/log"
  echo "sam build: $cargo_runs cargo invocations (want 1), $copies binaries copied and $built built (want $functions)"
  exit 1
fi
echo "sam build: one cargo invocation, then one binary copied for each of the $functions functions"
