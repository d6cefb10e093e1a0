#!/usr/bin/env bash
# The whole test suite, as CI runs it: unit and behaviour tests on the embedded backend, the
# event fixtures, the same behaviour suite on the AWS backend against real protocol peers
# (DynamoDB served by moto, S3 by s3s-fs with SigV4), and the SAM template checks.
# Everything it needs is installed by it, into .tools/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}" SAM_CLI_TELEMETRY=0

step() { printf '\n==> %s\n' "$*"; }

step "Python tools (cfn-lint, aws-sam-cli, moto, selenium) into .tools/venv"
scripts/tools.sh

step "cargo fmt --check and clippy (warnings are errors)"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked --features attachments-shared/aws-tests -- -D warnings

step "cargo test (embedded backend, fixtures, template, unit tests)"
cargo test --workspace --locked

step "the same behaviour suite on the AWS backend (DynamoDB: moto; S3: s3s-fs with SigV4, in-process)"
scripts/aws-peers.sh run -- cargo test --locked -p attachments-shared --features aws-tests --test aws --test aws_faults

step "SAM template checks"
.tools/venv/bin/cfn-lint template.yaml
.tools/venv/bin/sam validate --lint
.tools/venv/bin/sam validate

step "README walk-through against a fresh local server"
scripts/readme-walkthrough.sh

step "the browser console in headless Chromium against a fresh local server"
scripts/console-test.sh
