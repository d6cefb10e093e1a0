//! `attachments-bench`: builds nothing itself (scripts/bench.sh does), measures every row of the
//! table (docs/performance.md) and prints it in Markdown.
//!
//! ```text
//! attachments-bench [--backend embedded|aws] [--init-backend aws|embedded] [--quick]
//!                   [--only ROWS] [--functions NAMES]
//! attachments-bench list-functions [--functions NAMES]
//! ```
//! ROWS is a comma-separated subset of `init,size,hashing,http,upload,lambda`; NAMES a
//! comma-separated subset of the route table's functions (all of them by default), for a quick
//! look at a few. Init starts the functions as deployed (backend aws, made-up settings where the
//! environment has none: a start makes no network call) unless `--init-backend embedded`; the
//! other rows use `--backend` (embedded by default: the local server).

use std::process::ExitCode;
use std::time::Duration;

use attachments::http::routes::ROUTES;
use attachments_bench::init::Backend;
use attachments_bench::table::{self, Row, Verdict};
use attachments_bench::util::{self, ms, TempDir};
use attachments_bench::{big_upload, hashing, http_rows, init, lambda_event, size};

const ROWS: &[&str] = &["init", "size", "hashing", "http", "upload", "lambda"];

struct Args {
    backend: Backend,
    init_backend: Backend,
    quick: bool,
    only: Vec<String>,
    functions: Vec<String>,
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut args = Args {
        backend: Backend::Embedded,
        init_backend: Backend::Aws,
        quick: false,
        only: ROWS.iter().map(|s| (*s).to_owned()).collect(),
        functions: functions(),
    };
    let mut list = false;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "list-functions" => list = true,
            "--functions" => {
                let names = it.next().ok_or("--functions needs a list")?;
                let all = functions();
                args.functions = names.split(',').map(str::to_owned).collect();
                if let Some(bad) = args.functions.iter().find(|f| !all.contains(f)) {
                    return Err(format!(
                        "unknown function {bad}; `list-functions` lists them"
                    ));
                }
            }
            "--backend" => {
                args.backend = match it.next().as_deref() {
                    Some("embedded") => Backend::Embedded,
                    Some("aws") => Backend::Aws,
                    other => return Err(format!("--backend embedded|aws, not {other:?}")),
                }
            }
            "--init-backend" => {
                args.init_backend = match it.next().as_deref() {
                    Some("embedded") => Backend::Embedded,
                    Some("aws") => Backend::Aws,
                    other => return Err(format!("--init-backend aws|embedded, not {other:?}")),
                }
            }
            "--quick" => args.quick = true,
            "--only" => {
                let list = it.next().ok_or("--only needs a list")?;
                args.only = list.split(',').map(str::to_owned).collect();
                if let Some(bad) = args.only.iter().find(|r| !ROWS.contains(&r.as_str())) {
                    return Err(format!("unknown row {bad}; rows are {}", ROWS.join(",")));
                }
            }
            "-h" | "--help" => {
                println!(
                    "usage: attachments-bench [--backend embedded|aws] [--init-backend aws|embedded] \
                     [--quick] [--only {}] \
                     [--functions NAMES]\n       attachments-bench list-functions [--functions NAMES]",
                    ROWS.join(",")
                );
                return Ok(None);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if list {
        for f in &args.functions {
            println!("{f}");
        }
        return Ok(None);
    }
    Ok(Some(args))
}

/// The Lambda functions: one per route of the table, read at run time so new routes are
/// measured without touching the benchmark.
fn functions() -> Vec<String> {
    ROUTES.iter().map(|r| r.name.to_owned()).collect()
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(a)) => a,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("attachments-bench: {e}");
            return ExitCode::from(2);
        }
    };
    // One thread for the driver and the load generator: the servers measured get the other core.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("attachments-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let rows = rt.block_on(run(&args));
    if rows.iter().any(|r| r.verdict == Verdict::Fail) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

async fn run(args: &Args) -> Vec<Row> {
    let want = |r: &str| args.only.iter().any(|o| o == r);
    let bin_dir = match util::bin_dir() {
        Ok(d) => d,
        Err(e) => return vec![Row::failed("setup", "-", &e)],
    };
    let functions = &args.functions;
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let step = |name: &str| eprintln!("attachments-bench: measuring {name}...");

    if want("init") {
        step("init");
        let runs = if args.quick { 5 } else { 21 };
        match TempDir::new("init") {
            Ok(data) => {
                rows.extend(
                    init::run(&bin_dir, functions, &args.init_backend, data.path(), runs).await,
                );
                notes.push(format!(
                    "init: median of {runs} starts per binary, interleaved, backend {}, against \
                     bench-hello-lambda (lambda_http hello world) and bench-hello-sdk (the same \
                     with aws_config::load_from_env() and a DynamoDB and an S3 client, the SDK's \
                     default features), both with the same profile.",
                    args.init_backend.name()
                ));
            }
            Err(e) => rows.push(Row::failed("init", "<= 2x hello, < SDK hello", &e)),
        }
    }
    if want("size") {
        step("size");
        rows.extend(size::run(&bin_dir, functions));
    }
    if want("hashing") {
        step("hashing");
        let (len, rounds) = if args.quick {
            (16 << 20, 3)
        } else {
            (64 << 20, 7)
        };
        rows.push(hashing::row(&hashing::measure(len, rounds)));
        notes.push(format!(
            "hashing: {} MiB buffer, median of {rounds} interleaved rounds.",
            len >> 20
        ));
    }
    if want("http") {
        step("metadata GET and list");
        let opts = if args.quick {
            http_rows::Opts {
                rounds: 1,
                connections: 32,
                warmup: Duration::from_millis(300),
                measure: Duration::from_secs(1),
            }
        } else {
            http_rows::Opts {
                rounds: 3,
                connections: 32,
                warmup: Duration::from_millis(500),
                measure: Duration::from_secs(2),
            }
        };
        let o = http_rows::run(&bin_dir, &args.backend, opts).await;
        rows.extend(o.rows);
        notes.extend(o.notes);
    }
    if want("upload") {
        step("big upload");
        let (row, note) =
            big_upload::row(&bin_dir, if args.quick { 256 << 20 } else { 1 << 30 }).await;
        rows.push(row);
        if !note.is_empty() {
            notes.push(note);
        }
        // The gigabyte just written is still being flushed to disk: the next row's fsyncs
        // would wait for it. Each row pays for its own writes only.
        if let Err(e) = std::process::Command::new("sync").status() {
            eprintln!("attachments-bench: sync after the big upload: {e}");
        }
    }
    if want("lambda") {
        step("Lambda event");
        let o = lambda_event::run(if args.quick { 5 } else { 15 }).await;
        rows.push(o.row);
        notes.extend(o.notes);
        if !o.warm.is_empty() {
            let list: Vec<String> = o
                .warm
                .iter()
                .map(|(n, t)| format!("{n} {}", ms(*t)))
                .collect();
            notes.push(format!(
                "Warm handler time per event (in process, embedded store, event JSON in and out): {}.",
                list.join(", ")
            ));
        }
    }

    println!("{}", table::render(&rows));
    for n in &notes {
        println!("- {n}");
    }
    rows
}
