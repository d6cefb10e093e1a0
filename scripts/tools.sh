#!/usr/bin/env bash
# Installs the Python tools the tests use into .tools/venv, once; later runs only check them:
# cfn-lint, aws-sam-cli, moto, selenium, cargo-lambda (pinned: the `cargo lambda watch` router in
# Cargo.toml is in the form this version reads; its package brings zig, which `sam build`'s
# cross-compilation to arm64 uses), and for openapi.yaml openapi-spec-validator and schemathesis
# (pinned: scripts/schemathesis.toml is in the form this version reads, and a fixed seed makes
# the same run only with the same version).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.tools/venv
# A venv copied from another checkout keeps that checkout's paths in its scripts: its pip would
# install there.
if [ -x "$venv/bin/pip" ] && [ "$(head -n1 "$venv/bin/pip")" != "#!$PWD/$venv/bin/python3" ]; then
  echo "tools: $venv was made for another folder; making it anew" >&2
  rm -rf "$venv"
fi
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
need=()
[ -x "$venv/bin/cfn-lint" ] || need+=(cfn-lint)
[ -x "$venv/bin/sam" ] || need+=(aws-sam-cli)
[ -x "$venv/bin/moto_server" ] || need+=("moto[server]")
"$venv/bin/python" -c 'import selenium' 2>/dev/null || need+=(selenium)
[ -x "$venv/bin/cargo-lambda" ] || need+=("cargo-lambda==1.9.2")
[ -x "$venv/bin/openapi-spec-validator" ] || need+=("openapi-spec-validator==0.9.0")
st_version="4.32.5"
"$venv/bin/schemathesis" --version 2>/dev/null | grep -qF "version $st_version" || need+=("schemathesis==$st_version")
if [ ${#need[@]} -gt 0 ]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${need[@]}"
fi
