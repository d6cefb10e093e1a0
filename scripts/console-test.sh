#!/usr/bin/env bash
# The local server's browser pages in headless Chromium (Debian's chromium and chromium-driver,
# installed here if missing) driven by selenium (in .tools/venv, from scripts/tools.sh), each
# against a fresh local server: the console (console-test.py) and the API browser at /api-docs
# (api-docs-test.py); both share scripts/browser.py. Screenshots and the servers' logs go to
# $ATTACHMENTS_TEST_LOGS (.ci/logs by default), which CI keeps. `--readme-screenshot
# docs/console.png` also refreshes the README's console screenshot.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/debian-package.sh chromium chromium "the browser tests"
scripts/debian-package.sh chromedriver chromium-driver "the browser tests"
scripts/tools.sh
cargo build --quiet --locked --bin attachments-local
logs="${ATTACHMENTS_TEST_LOGS:-.ci/logs}"
mkdir -p "$logs"
.tools/venv/bin/python scripts/console-test.py target/debug/attachments-local "$logs" "$@"
.tools/venv/bin/python scripts/api-docs-test.py target/debug/attachments-local "$logs"
