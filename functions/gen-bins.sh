#!/usr/bin/env bash
# Writes one Lambda binary per route of the route table (shared/src/http/routes.rs).
# Run after adding a route; a test fails while a route has no binary or a binary no route.
set -euo pipefail
cd "$(dirname "$0")"
grep -oE 'route!\("[a-z0-9-]+", [A-Z]+, "[^"]+"' ../shared/src/http/routes.rs |
while IFS= read -r line; do
  name=$(sed -E 's/route!\("([^"]+)".*/\1/' <<<"$line")
  method=$(sed -E 's/route!\("[^"]+", ([A-Z]+).*/\1/' <<<"$line")
  path=$(sed -E 's/.*, "([^"]+)"$/\1/' <<<"$line")
  cat > "src/bin/$name.rs" <<RS
//! Lambda function for \`$method $path\` (route \`$name\` of the route table in \`shared\`).

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), attachments::lambda::Error> {
    attachments::lambda::run("$name").await
}
RS
done
