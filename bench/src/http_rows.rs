//! The HTTP rows: the local server (`bench-local-server`: `functions::local::serve` on one
//! tokio worker) against a hyper hello world on one worker, both loaded at 32 connections, in
//! interleaved rounds. "metadata GET" is `GET /v1/attachments/{id}` (one attachment with its
//! presigned links); "list with links" lists a parent's 20 attachments, each with its links,
//! rendered for every request (nothing is kept between requests). Beside it, the same listing
//! asked with the `If-None-Match` of its answer: the `304` a polling client gets.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::init::Backend;
use crate::load::{self, Stats};
use crate::table::{ratio, verdict, Row};
use crate::util::{median, ms, quantile, rps, Error, Server, TempDir};

/// The tenant key the benchmark registers.
const KEY: &str = "bench-key-0123456789abcdef";
const PARENT: &str = "/v1/parents/bench/parent-1";
const LISTED: usize = 20;
const GET_TARGET: &str = ">= 0.3x hello, p99 <= 2 ms";
const LIST_TARGET: &str = ">= 0.05x hello";

/// Load settings.
#[derive(Debug, Clone, Copy)]
pub struct Opts {
    pub rounds: usize,
    pub connections: usize,
    pub warmup: Duration,
    pub measure: Duration,
}

/// Rows and the notes that explain them.
pub struct Outcome {
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
}

pub async fn run(bin_dir: &Path, backend: &Backend, opts: Opts) -> Outcome {
    match run_inner(bin_dir, backend, opts).await {
        Ok(o) => o,
        Err(e) => Outcome {
            rows: vec![
                Row::failed("metadata GET", GET_TARGET, &e),
                Row::failed("list with links (20)", LIST_TARGET, &e),
            ],
            notes: vec![],
        },
    }
}

async fn run_inner(bin_dir: &Path, backend: &Backend, opts: Opts) -> Result<Outcome, Error> {
    let data = TempDir::new("http")?;
    let hello = Server::spawn(Command::new(bin_dir.join("bench-hello-hyper")))?;
    // The local server over the run's store, with `vars` on top.
    let local_server = |vars: &[(&str, &str)]| {
        let mut cmd = Command::new(bin_dir.join("bench-local-server"));
        cmd.env("ATTACHMENTS_BACKEND", backend.name())
            .envs(vars.iter().copied())
            .env_remove("AWS_LAMBDA_FUNCTION_NAME");
        if let Backend::Embedded = backend {
            cmd.env("ATTACHMENTS_DATA_DIR", data.path());
        }
        Server::spawn(cmd)
    };
    // Links signed for a day: their window (half of it) does not turn during the run, so the
    // listing's tag holds for the 304 measurement. They are signed for every answer all the same.
    let ours = local_server(&[
        ("ATTACHMENTS_API_KEYS", &format!("bench:{KEY}")),
        ("ATTACHMENTS_LINK_TTL_SECONDS", "86400"),
    ])?;
    let (id, list_body) = seed(&ours).await?;
    let etag = attachments::http::conditional::etag_of(&list_body);
    // The list row's floor: its very answer, served as constant bytes by the baseline.
    let answer = data.path().join("list-answer.json");
    std::fs::write(&answer, &list_body).map_err(|e| format!("{}: {e}", answer.display()))?;
    let mut floor_cmd = Command::new(bin_dir.join("bench-hello-hyper"));
    floor_cmd.arg(&answer);
    let floor = Server::spawn(floor_cmd)?;

    let auth = [("x-api-key", KEY)];
    let hello_req = Arc::new(load::get("/", &[]));
    let get_req = Arc::new(load::get(&format!("/v1/attachments/{id}"), &auth));
    let list_req = Arc::new(load::get(&format!("{PARENT}/attachments"), &auth));
    let unchanged_req = Arc::new(load::get(
        &format!("{PARENT}/attachments"),
        &[("x-api-key", KEY), ("if-none-match", &etag)],
    ));

    let (mut h, mut g, mut l, mut f, mut r) = (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..opts.rounds {
        h.push(measure(&hello, &hello_req, 200, opts).await);
        g.push(measure(&ours, &get_req, 200, opts).await);
        l.push(measure(&ours, &list_req, 200, opts).await);
        f.push(measure(&floor, &hello_req, 200, opts).await);
        r.push(measure(&ours, &unchanged_req, 304, opts).await);
    }
    let failed = |runs: &[Stats]| runs.iter().map(|s| s.errors).sum::<u64>();
    let errors = [
        ("hello", failed(&h)),
        ("metadata GET", failed(&g)),
        ("list", failed(&l)),
        ("floor", failed(&f)),
        ("list with its ETag (304)", failed(&r)),
    ];
    if errors.iter().any(|(_, n)| *n > 0) {
        let which: Vec<String> = errors
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(name, n)| format!("{name}: {n}"))
            .collect();
        return Err(format!("failed requests under load ({})", which.join(", ")));
    }

    let rps_of = |v: &[Stats]| median(&v.iter().map(Stats::rps).collect::<Vec<_>>());
    let p99_of = |v: &[Stats]| {
        median(
            &v.iter()
                .map(|s| quantile(&s.latencies_us, 0.99).map_or(f64::NAN, |u| u as f64 / 1e6))
                .collect::<Vec<_>>(),
        )
    };
    // Each round's ratio compares runs a few seconds apart; the median of those holds best.
    let ratio_of = |v: &[Stats]| {
        median(
            &v.iter()
                .zip(&h)
                .map(|(s, b)| s.rps() / b.rps())
                .collect::<Vec<_>>(),
        )
    };
    let cpu_us = |v: &[Stats]| {
        median(
            &v.iter()
                .map(|s| s.per_cpu_second().map_or(f64::NAN, |r| 1e6 / r))
                .collect::<Vec<_>>(),
        )
    };
    let (get_ratio, get_p99) = (ratio_of(&g), p99_of(&g));
    let list_ratio = ratio_of(&l);
    let rows = vec![
        Row {
            figure: "metadata GET".into(),
            value: format!("{}, p99 {}", rps(rps_of(&g)), ms(get_p99)),
            baseline: format!("{}, p99 {}", rps(rps_of(&h)), ms(p99_of(&h))),
            ratio: ratio(get_ratio),
            target: GET_TARGET.into(),
            verdict: verdict(get_ratio >= 0.3 && get_p99 <= 0.002),
        },
        Row {
            figure: format!("list with links ({LISTED})"),
            value: format!("{}, p99 {}", rps(rps_of(&l)), ms(p99_of(&l))),
            baseline: rps(rps_of(&h)),
            ratio: ratio(list_ratio),
            target: LIST_TARGET.into(),
            verdict: verdict(list_ratio >= 0.05),
        },
    ];
    let (ch, cg, cl, cf, cr) = (cpu_us(&h), cpu_us(&g), cpu_us(&l), cpu_us(&f), cpu_us(&r));
    let notes = vec![
        format!(
            "HTTP rows: {} rounds of {:.1} s (after {:.1} s warm-up) per server at {} connections. \
             Server CPU per request: hello {ch:.1} us, metadata GET {cg:.1} us ({:.2}x hello's \
             efficiency), list {cl:.1} us ({:.2}x).",
            opts.rounds,
            opts.measure.as_secs_f64(),
            opts.warmup.as_secs_f64(),
            opts.connections,
            ch / cg,
            ch / cl,
        ),
        format!(
            "List floor: the same {:.1} KB answer served as constant bytes by the hyper \
             baseline: {} ({:.2}x hello), {cf:.1} us of CPU per request. The same listing asked \
             with its ETag (If-None-Match, answered 304 without a body, still rendered to be \
             compared): {} ({:.2}x hello), p99 {}, {cr:.1} us of CPU per request.",
            list_body.len() as f64 / 1e3,
            rps(rps_of(&f)),
            ratio_of(&f),
            rps(rps_of(&r)),
            ratio_of(&r),
            ms(p99_of(&r)),
        ),
    ];
    let mut notes = notes;
    match crate::breakdown::s3_links(LISTED, 15).await {
        Ok(note) => notes.push(note),
        Err(e) => notes.push(format!("S3 download links: not measured: {e}")),
    }
    Ok(Outcome { rows, notes })
}

async fn measure(server: &Server, req: &Arc<Vec<u8>>, expect: u16, opts: Opts) -> Stats {
    let pid = server.child.0.id();
    load::run(
        server.addr,
        req.clone(),
        expect,
        opts.connections,
        (opts.warmup, opts.measure),
        move || crate::util::cpu_seconds(pid),
    )
    .await
}

/// Creates the parent and its attachments; returns the id of one of them and the list's answer.
async fn seed(server: &Server) -> Result<(String, Vec<u8>), Error> {
    let auth = [("x-api-key", KEY)];
    let r = load::once(server.addr, &load::request("PUT", PARENT, &auth, b"")).await?;
    if !(r.status == 201 || r.status == 200) {
        return Err(format!(
            "PUT parent: {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        ));
    }
    let mut first = None;
    for i in 0..LISTED {
        let boundary = "bench-boundary-7MA4YWxkTrZu0gW";
        let content = format!("attachment {i} of the benchmark\n").repeat(8);
        let body = format!(
            "--{boundary}\r\ncontent-disposition: form-data; name=\"file\"; \
             filename=\"note-{i}.txt\"\r\ncontent-type: text/plain\r\n\r\n{content}\r\n\
             --{boundary}\r\ncontent-disposition: form-data; name=\"type\"\r\n\r\nnote\r\n\
             --{boundary}--\r\n"
        );
        let ct = format!("multipart/form-data; boundary={boundary}");
        let req = load::request(
            "POST",
            &format!("{PARENT}/attachments"),
            &[("x-api-key", KEY), ("content-type", &ct)],
            body.as_bytes(),
        );
        let r = load::once(server.addr, &req).await?;
        let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        if r.status != 201 {
            return Err(format!("upload: {} {v}", r.status));
        }
        if first.is_none() {
            first = v["items"][0]["id"].as_str().map(str::to_owned);
        }
    }
    let id = first.ok_or("the upload answer has no id")?;
    // Both answers must carry links, or the rows would measure something cheaper.
    let r = load::once(
        server.addr,
        &load::get(&format!("/v1/attachments/{id}"), &auth),
    )
    .await?;
    let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    if r.status != 200 || !v["download_url"].is_string() {
        return Err(format!("GET attachment: {} {v}", r.status));
    }
    let r = load::once(
        server.addr,
        &load::get(&format!("{PARENT}/attachments"), &auth),
    )
    .await?;
    let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    let items = v["items"].as_array().map_or(0, |a| {
        a.iter().filter(|i| i["download_url"].is_string()).count()
    });
    if r.status != 200 || items != LISTED {
        return Err(format!(
            "list: {} with {items} linked items, expected {LISTED}",
            r.status
        ));
    }
    Ok((id, r.body))
}
