#!/usr/bin/env bash
# Installs the Python tools the tests use (cfn-lint, aws-sam-cli, moto, selenium) into
# .tools/venv, once; later runs only check them.
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
"$venv/bin/python" -c 'import selenium' 2>/dev/null || need+=(selenium)
if [ ${#need[@]} -gt 0 ]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${need[@]}"
fi
