#!/usr/bin/env bash
# Installs the Python tools the tests use into .tools/venv, once; later runs only check them.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.tools/venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
need=()
[ -x "$venv/bin/cfn-lint" ] || need+=(cfn-lint)
[ -x "$venv/bin/sam" ] || need+=(aws-sam-cli)
[ -x "$venv/bin/moto_server" ] || need+=("moto[server]")
if [ ${#need[@]} -gt 0 ]; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${need[@]}"
fi
