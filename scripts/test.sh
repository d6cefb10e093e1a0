#!/usr/bin/env bash
# The whole test suite, as CI runs it: unit and behaviour tests on the embedded backend, the
# event fixtures, the same behaviour suite on the AWS backend against real protocol peers
# (DynamoDB served by moto, S3 by s3s-fs with SigV4), the SAM template checks, the event
# fixtures through the built functions behind a Lambda Runtime API, `sam build`'s single cargo
# invocation, the README's walk-through against the local server and `cargo lambda watch`,
# openapi.yaml checked by schemathesis against a fresh local server, and the browser pages.
# Everything it needs is installed by it, into .tools/ (git-ignored). Each step's time is
# printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}" SAM_CLI_TELEMETRY=0

steps=()
step() {
  steps+=("$SECONDS $*")
  printf '\n==> %s\n' "$*"
}
times() {
  local prev name t i
  printf '\n==> time per step (s)\n'
  for i in "${!steps[@]}"; do
    t=${steps[$i]%% *}
    name=${steps[$i]#* }
    prev=$SECONDS
    [ $((i + 1)) -lt ${#steps[@]} ] && prev=${steps[$((i + 1))]%% *}
    printf '%6d  %s\n' $((prev - t)) "$name"
  done
  printf '%6d  total\n' "$SECONDS"
}
trap times EXIT

if [ "$(uname -s)" = Linux ]; then
  scripts/debian-package.sh make make "sam build runs the Makefile"
fi

step "Python tools (cfn-lint, aws-sam-cli, moto, cargo-lambda, selenium, openapi-spec-validator, schemathesis) into .tools/venv"
scripts/tools.sh

step "cargo fmt --check, clippy (warnings are errors), no import cycle between modules, one HTTP and TLS stack"
cargo fmt --all -- --check
scripts/module-cycles.py
# The AWS backend is the SDK's, over one HTTP and TLS stack (hyper 1, rustls 0.23 with ring).
tree=$(cargo tree -e normal -p attachments-shared --locked --prefix none)
for crate in aws-config aws-sdk-dynamodb aws-sdk-s3; do
  grep -q "^$crate v" <<<"$tree" || { echo "cargo tree: $crate is not a dependency" >&2; exit 1; }
done
if grep -E '^(hyper v0\.|rustls v0\.(1|2[0-2])\.|aws-lc-(rs|sys) v)' <<<"$tree"; then
  echo "cargo tree: a second HTTP or TLS stack (above)" >&2
  exit 1
fi
cargo clippy --workspace --all-targets --locked --features attachments-shared/aws-tests -- -D warnings

step "cargo test (embedded backend, fixtures, template, unit tests)"
cargo test --workspace --locked

step "the same behaviour suite on the AWS backend (DynamoDB: moto; S3: s3s-fs with SigV4, in-process)"
scripts/aws-peers.sh run -- cargo test --locked -p attachments-shared --features aws-tests --test aws --test aws_faults

step "SAM template checks"
.tools/venv/bin/cfn-lint template.yaml
.tools/venv/bin/sam validate --lint
.tools/venv/bin/sam validate

step "the function binaries (debug, one cargo invocation), for the Lambda checks below"
cargo build --locked -p functions --bins

step "every event fixture through the function binaries behind a Lambda Runtime API, with events/env.json"
.tools/venv/bin/python scripts/lambda-fixtures.py

step "sam build: one cargo invocation for every function"
scripts/sam-build-check.sh

step "README walk-through against a fresh local server"
scripts/readme-walkthrough.sh

step "README walk-through against the functions under cargo lambda watch, on the real paths"
scripts/readme-walkthrough.sh --lambda

step "openapi.yaml: openapi-spec-validator, then schemathesis against a fresh local server with two tenants"
scripts/schemathesis.sh

step "the browser console and the API browser (/api-docs) in headless Chromium against a fresh local server"
scripts/console-test.sh
