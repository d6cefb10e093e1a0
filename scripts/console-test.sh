#!/usr/bin/env bash
# The browser console in headless Chromium (Debian's chromium and chromium-driver, installed
# here if missing) driven by selenium (in .tools/venv, from scripts/tools.sh), against a fresh
# local server. Screenshots and the server's log go to $ATTACHMENTS_TEST_LOGS (.ci/logs by
# default), which CI keeps. `--readme-screenshot docs/console.png` also refreshes the README's.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/debian-package.sh chromium chromium "the console's browser test"
scripts/debian-package.sh chromedriver chromium-driver "the console's browser test"
scripts/tools.sh
cargo build --quiet --locked --bin attachments-local
logs="${ATTACHMENTS_TEST_LOGS:-.ci/logs}"
mkdir -p "$logs"
exec .tools/venv/bin/python scripts/console-test.py target/debug/attachments-local "$logs" "$@"
