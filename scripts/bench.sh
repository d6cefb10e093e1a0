#!/usr/bin/env bash
# The performance benchmark (docs/performance.md). Builds the Lambda functions and the
# benchmark's baselines with the release profile, then measures every row against its baseline,
# interleaved in the same run, and prints the table (Markdown) with targets and PASS/FAIL.
#
# usage: scripts/bench.sh [--quick] [--backend embedded|aws] [--init-backend aws|embedded]
#                         [--only init,size,hashing,http,upload,lambda]
#                         [--functions native-get-parent,native-upload]   (a few functions only)
#
# It only loads loopback addresses, and takes a few minutes once built (the first release build
# takes longer). Exit status 1 when a row fails its target.
set -euo pipefail
cd "$(dirname "$0")/.."

# The SDK hello world links aws-lc (see .cargo/config.toml): its jitter entropy costs ~35 ms of cold start.
export AWS_LC_SYS_NO_JITTER_ENTROPY=1
target="${CARGO_TARGET_DIR:-target}"

scripts/debian-package.sh zip zip "the size row zips each bootstrap as Lambda receives it"

echo "==> building the benchmark and its baselines (release profile)" >&2
cargo build --release --locked -p attachments-bench --bins
# On its own, so the SDK's default features reach only this baseline (bench/sdk-hello/Cargo.toml).
cargo build --release --locked -p bench-sdk-hello --features sdk

# The functions come from the route table, read at run time: new routes are measured as added.
# `--functions` narrows both the build and the rows to the functions it names.
# Only the init and size rows use them: `--only` without either builds none.
only_functions=()
needs_functions=true
prev=""
for a in "$@"; do
  [ "$prev" = "--functions" ] && only_functions=(--functions "$a")
  if [ "$prev" = "--only" ]; then
    case ",$a," in *,init,*|*,size,*) ;; *) needs_functions=false ;; esac
  fi
  prev="$a"
done
if $needs_functions; then
  mapfile -t functions < <("$target/release/attachments-bench" list-functions "${only_functions[@]}")
  bins=()
  for f in "${functions[@]}"; do bins+=(--bin "$f"); done
  echo "==> building ${#functions[@]} Lambda functions (release profile)" >&2
  cargo build --release --locked -p functions "${bins[@]}"
fi

echo "Benchmark of $(git rev-parse --short HEAD 2>/dev/null || echo '?') on $(date -u +%Y-%m-%dT%H:%MZ)," \
  "$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'))," \
  "release profile: $(sed -n '/^\[profile.release\]/,/^\[/p' Cargo.toml | grep -E '^[a-z-]+ *=' | tr -s ' ' | paste -sd ',' | sed 's/,/, /g')"
echo
exec "$target/release/attachments-bench" "$@"
