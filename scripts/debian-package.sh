#!/usr/bin/env bash
# Installs a Debian package when the command it provides is missing (with sudo unless root).
# Usage: scripts/debian-package.sh COMMAND PACKAGE WHY
set -euo pipefail
command -v "$1" >/dev/null && exit 0
echo "==> installing $2 ($3)" >&2
sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
$sudo apt-get install -y "$2" >&2
