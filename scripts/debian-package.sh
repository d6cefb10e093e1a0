#!/usr/bin/env bash
# Installs a Debian package when the command it provides is missing (with sudo unless root).
# Usage: scripts/debian-package.sh COMMAND PACKAGE WHY
set -euo pipefail
command -v "$1" >/dev/null && exit 0
echo "==> installing $2 ($3)" >&2
sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
# A machine whose package lists are stale or missing gets them once, then tries again.
$sudo apt-get install -y "$2" >&2 || { $sudo apt-get update >&2 && $sudo apt-get install -y "$2" >&2; }
