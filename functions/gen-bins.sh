#!/usr/bin/env bash
# Writes one Lambda binary per route of the route table (shared/src/http/routes.rs).
# Run after adding a route; the `template` test fails while a route has no binary or a binary
# no route.
set -euo pipefail
cd "$(dirname "$0")"
python3 - <<'PY'
import pathlib, re
rs = pathlib.Path("../shared/src/http/routes.rs").read_text()
rows = re.findall(r'^\s+[A-Z0-9_]+ = "([a-z0-9-]+)",\s*([A-Z]+),\s*"([^"]+)"', rs, re.M)
for name, method, path in rows:
    konst = name.upper().replace("-", "_")
    pathlib.Path(f"src/bin/{name}.rs").write_text(f"""//! Lambda function for `{method} {path}` (route `{name}` of the route table in `shared`).

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), attachments::lambda::Error> {{
    attachments::lambda::run(&attachments::http::routes::{konst}).await
}}
""")
print(f"{len(rows)} binaries")
PY
