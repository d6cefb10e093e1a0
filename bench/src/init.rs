//! The init row: process start to the first `GET /2018-06-01/runtime/invocation/next` that the
//! function sends to a fake Lambda Runtime API served here on loopback. That poll is the moment a
//! real Lambda would hand over the first event, so everything before it (configuration, logging,
//! storage clients, the route table) is counted. Runs of all binaries are interleaved.
//!
//! Two baselines, each with its ratio: `bench-hello-lambda` (lambda_http alone) and
//! `bench-hello-sdk` (the AWS SDK's hello world: `aws_config::load_from_env()` and a DynamoDB
//! and an S3 client, with the SDK's default features). A function passes at most 2x the first
//! and faster than the second.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

use crate::table::{ratio, verdict, Row, Verdict};
use crate::util::{median, ms, Error, Guard};

/// The runtime API path a function polls for its next event.
const NEXT: &str = "/2018-06-01/runtime/invocation/next";
/// How long one start may take before it counts as failed.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Which storage backend the functions start with.
#[derive(Debug, Clone)]
pub enum Backend {
    /// SQLite and files in a temporary folder.
    Embedded,
    /// DynamoDB and S3, as deployed: `ATTACHMENTS_TABLE`, `ATTACHMENTS_BUCKET`,
    /// `ATTACHMENTS_SECRET` and the AWS credentials, region and endpoints come from the
    /// benchmark's own environment (for the HTTP rows); for init, whatever is unset is made up,
    /// as a function's start makes no network call.
    Aws,
}

/// What Lambda and the template give a deployed function, for whatever the environment lacks.
const DEPLOYED: &[(&str, &str)] = &[
    ("ATTACHMENTS_TABLE", "attachments-Table-EXAMPLE"),
    ("ATTACHMENTS_BUCKET", "attachments-bucket-example"),
    (
        "ATTACHMENTS_SECRET",
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
    ),
    ("ATTACHMENTS_LOG_FORMAT", "json"),
    ("AWS_ACCESS_KEY_ID", "ASIAEXAMPLEEXAMPLE00"),
    (
        "AWS_SECRET_ACCESS_KEY",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    ),
    ("AWS_SESSION_TOKEN", "IQoJb3JpZ2luX2VjEXAMPLE-session-token"),
    ("AWS_REGION", "us-east-1"),
];

impl Backend {
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Embedded => "embedded",
            Backend::Aws => "aws",
        }
    }
}

/// One binary to start.
struct Subject {
    name: String,
    path: PathBuf,
    times: Vec<f64>,
    error: Option<String>,
}

/// The plain hello world, then the SDK's.
const BASELINES: [&str; 2] = ["bench-hello-lambda", "bench-hello-sdk"];
/// At most this many times the plain hello world's init.
const MAX_RATIO: f64 = 2.0;

/// Measures `runs` starts of the hello worlds and of each function, interleaved.
pub async fn run(
    bin_dir: &Path,
    functions: &[String],
    backend: &Backend,
    data_dir: &Path,
    runs: usize,
) -> Vec<Row> {
    const TARGET: &str = "<= 2x hello, < SDK hello";
    let listener = match TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => return vec![Row::failed("init", TARGET, &e.to_string())],
    };
    let api = match listener.local_addr() {
        Ok(a) => a.to_string(),
        Err(e) => return vec![Row::failed("init", TARGET, &e.to_string())],
    };
    let mut subjects: Vec<Subject> = BASELINES
        .iter()
        .map(|b| (*b).to_owned())
        .chain(functions.iter().cloned())
        .map(|name| Subject {
            path: bin_dir.join(&name),
            name,
            times: Vec::with_capacity(runs),
            error: None,
        })
        .collect();
    // One unmeasured start each: warms the page cache and creates the embedded store's files.
    for round in 0..=runs {
        for s in subjects.iter_mut().filter(|s| s.error.is_none()) {
            let cmd = command(&s.path, &s.name, &api, backend, data_dir);
            match start_once(cmd, &listener).await {
                Ok(t) if round > 0 => s.times.push(t),
                Ok(_) => {}
                Err(e) => s.error = Some(e),
            }
        }
    }
    let hello = median(&subjects[0].times);
    let sdk = median(&subjects[1].times);
    let mut rows = Vec::new();
    for s in &subjects[..BASELINES.len()] {
        let figure = format!("init: {} (baseline)", s.name);
        rows.push(match &s.error {
            Some(e) => Row::failed(figure, TARGET, e),
            None => Row {
                figure,
                value: ms(median(&s.times)),
                baseline: ms(hello),
                ratio: ratio(median(&s.times) / hello),
                target: "-".into(),
                verdict: Verdict::NotApplicable,
            },
        });
    }
    for s in &subjects[BASELINES.len()..] {
        let figure = format!("init: {}", s.name);
        match &s.error {
            Some(e) => rows.push(Row::failed(figure, TARGET, e)),
            None => {
                let t = median(&s.times);
                let (r, r_sdk) = (t / hello, t / sdk);
                rows.push(Row {
                    figure,
                    value: ms(t),
                    baseline: format!("hello {} / SDK hello {}", ms(hello), ms(sdk)),
                    ratio: format!("{} / {}", ratio(r), ratio(r_sdk)),
                    target: TARGET.into(),
                    verdict: verdict(r <= MAX_RATIO && r_sdk < 1.0),
                });
            }
        }
    }
    rows
}

fn command(path: &Path, name: &str, api: &str, backend: &Backend, data_dir: &Path) -> Command {
    let mut cmd = Command::new(path);
    cmd.env("AWS_LAMBDA_RUNTIME_API", api)
        .env("AWS_LAMBDA_FUNCTION_NAME", name)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("ATTACHMENTS_BACKEND", backend.name())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    match backend {
        Backend::Embedded => {
            cmd.env("ATTACHMENTS_DATA_DIR", data_dir);
        }
        Backend::Aws => {
            for (k, v) in DEPLOYED {
                if std::env::var_os(k).is_none() {
                    cmd.env(k, v);
                }
            }
            // Lambda sets no extra CA bundle; a shell that does (some sandboxes and proxies)
            // would have every start read and parse it.
            cmd.env_remove("AWS_CA_BUNDLE");
        }
    }
    cmd
}

/// Starts the binary and returns the seconds until its first `/next` poll arrives.
async fn start_once(mut cmd: Command, listener: &TcpListener) -> Result<f64, Error> {
    let t0 = Instant::now();
    let child = cmd.spawn().map_err(|e| format!("cannot start: {e}"))?;
    let mut child = Guard(child);
    let deadline = tokio::time::sleep(START_TIMEOUT);
    tokio::pin!(deadline);
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (mut conn, _) = accepted.map_err(|e| e.to_string())?;
                // Read the request head; the time is taken when it is complete.
                let mut head = Vec::with_capacity(1024);
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = tokio::time::timeout(START_TIMEOUT, conn.read(&mut buf))
                        .await
                        .map_err(|_| "the runtime API request never finished".to_owned())?
                        .map_err(|e| e.to_string())?;
                    if n == 0 {
                        break;
                    }
                    head.extend_from_slice(&buf[..n]);
                }
                let elapsed = t0.elapsed().as_secs_f64();
                let line = String::from_utf8_lossy(&head);
                if line.starts_with(&format!("GET {NEXT}")) {
                    return Ok(elapsed);
                }
                let first = line.lines().next().unwrap_or("").to_owned();
                return Err(format!("unexpected first call to the runtime API: {first}"));
            }
            _ = tick.tick() => {
                if let Ok(Some(status)) = child.0.try_wait() {
                    return Err(format!("exited ({status}) before polling: {}", stderr_tail(&mut child)));
                }
            }
            _ = &mut deadline => return Err("no /next poll within 20 s".into()),
        }
    }
}

fn stderr_tail(child: &mut Guard) -> String {
    let mut text = String::new();
    if let Some(mut e) = child.0.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut text);
    }
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    last.chars().take(200).collect()
}
