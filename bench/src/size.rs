//! The size row: each function's bootstrap as Lambda receives it: stripped, named `bootstrap`,
//! zipped (deflate, as `sam build` and `cargo lambda` do). The zips are kept in
//! `target/release/bench-zips/` for inspection.

use std::path::Path;
use std::process::Command;

use crate::table::{ratio, verdict, Row, Verdict};
use crate::util::{mb, Error, TempDir};

/// 6 MB, in the decimal megabytes AWS states its limits in (the stricter reading).
const LIMIT: u64 = 6_000_000;
const TARGET: &str = "<= 6 MB zipped";

pub fn run(bin_dir: &Path, functions: &[String]) -> Vec<Row> {
    let out_dir = bin_dir.join("bench-zips");
    if let Err(e) = std::fs::create_dir_all(&out_dir) {
        return vec![Row::failed("size", TARGET, &e.to_string())];
    }
    let hello = zipped(bin_dir, "bench-hello-lambda", &out_dir);
    let baseline = match &hello {
        Ok((z, _)) => mb(*z),
        Err(_) => "-".into(),
    };
    // The SDK's hello world, for scale (its own row; no target).
    let sdk = match zipped(bin_dir, "bench-hello-sdk", &out_dir) {
        Ok((zip, raw)) => Row {
            figure: "size: bench-hello-sdk (baseline)".into(),
            value: format!("{} ({} unzipped)", mb(zip), mb(raw)),
            baseline: baseline.clone(),
            ratio: match &hello {
                Ok((h, _)) => ratio(zip as f64 / *h as f64),
                Err(_) => "-".into(),
            },
            target: "-".into(),
            verdict: Verdict::NotApplicable,
        },
        Err(e) => Row::failed("size: bench-hello-sdk (baseline)", TARGET, &e),
    };
    std::iter::once(sdk)
        .chain(functions.iter().map(|name| {
            let figure = format!("size: {name}");
            match zipped(bin_dir, name, &out_dir) {
                Ok((zip, raw)) => Row {
                    figure,
                    value: format!("{} ({} unzipped)", mb(zip), mb(raw)),
                    baseline: baseline.clone(),
                    ratio: match &hello {
                        Ok((h, _)) => ratio(zip as f64 / *h as f64),
                        Err(_) => "-".into(),
                    },
                    target: TARGET.into(),
                    verdict: verdict(zip <= LIMIT),
                },
                Err(e) => Row::failed(figure, TARGET, &e),
            }
        }))
        .collect()
}

/// Returns (zipped, unzipped) sizes of the binary packaged as a Lambda bootstrap.
fn zipped(bin_dir: &Path, name: &str, out_dir: &Path) -> Result<(u64, u64), Error> {
    let tmp = TempDir::new("zip")?;
    let bootstrap = tmp.path().join("bootstrap");
    std::fs::copy(bin_dir.join(name), &bootstrap).map_err(|e| format!("{name}: {e}"))?;
    // The release profile strips already; `strip` is a no-op then, and a safety net otherwise.
    let _ = Command::new("strip").arg(&bootstrap).status();
    let raw = std::fs::metadata(&bootstrap)
        .map_err(|e| e.to_string())?
        .len();
    let zip = out_dir.join(format!("{name}.zip"));
    let _ = std::fs::remove_file(&zip);
    let status = Command::new("zip")
        .args(["-q", "-X", "-j"])
        .arg(&zip)
        .arg(&bootstrap)
        .status()
        .map_err(|e| format!("zip: {e} (install it: apt-get install -y zip)"))?;
    if !status.success() {
        return Err(format!("zip failed: {status}"));
    }
    let z = std::fs::metadata(&zip).map_err(|e| e.to_string())?.len();
    Ok((z, raw))
}
