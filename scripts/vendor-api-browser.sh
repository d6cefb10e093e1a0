#!/usr/bin/env bash
# Refreshes the API browser that the local server serves at /api-docs: the two files of npm's
# swagger-ui-dist it needs (the self-contained bundle and its stylesheet) and its licences, into
# docs/api/swagger-ui/. Nothing else of the package is kept (no source maps, no ES builds, no
# standalone preset), and the page loads nothing from anywhere but the server.
# Usage: scripts/vendor-api-browser.sh [VERSION]   (then commit docs/api/swagger-ui/)
set -euo pipefail
cd "$(dirname "$0")/.."
version="${1:-5.35.0}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "swagger-ui-dist@$version" >/dev/null && tar xzf swagger-ui-dist-*.tgz)
out=docs/api/swagger-ui
rm -rf "$out"
mkdir -p "$out"
for f in swagger-ui-bundle.js swagger-ui.css LICENSE NOTICE swagger-ui-bundle.js.LICENSE.txt; do
  cp "$work/package/$f" "$out/$f"
done
# The bundle ends with a pointer to its source map, which is not kept: the browser would ask for it.
sed -i '/^\/\/# sourceMappingURL=/d' "$out/swagger-ui-bundle.js"
sed -i 's#/\*\# sourceMappingURL=[^*]*\*/##' "$out/swagger-ui.css"
echo "swagger-ui-dist $version (npm)" >"$out/VERSION"
ls -l "$out"
