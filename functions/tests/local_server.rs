//! The local server as a user runs it (the real `attachments-local` binary, in its own process),
//! under input meant to take it down: it must stay up, answer everyone else, and keep its memory
//! flat. And what it logs: one line per request, never a key.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const KEY: &str = "local-test-key-0123456789";

/// A running server and its data folder; stopped when dropped.
struct Server {
    child: Child,
    addr: String,
    /// What it printed after it started listening.
    output: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(vars: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_attachments-local"));
        cmd.env("ATTACHMENTS_DATA_DIR", dir.path())
            .env("ATTACHMENTS_ADDR", "127.0.0.1:0")
            .env("ATTACHMENTS_API_KEYS", format!("t:{KEY}"))
            .env_remove("ATTACHMENTS_BACKEND")
            .env_remove("AWS_LAMBDA_FUNCTION_NAME")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let mut addr = None;
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(a) = line.strip_prefix("Attachments API listening on http://") {
                addr = Some(a.trim().to_owned());
                break;
            }
        }
        // Whatever the server prints later must not find its pipe closed; it is kept.
        let output = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = output.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                kept.lock().unwrap().push(line);
            }
        });
        Self {
            child,
            addr: addr.expect("the server did not start"),
            output,
            _dir: dir,
        }
    }

    /// The most memory the server has held so far.
    fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap();
        kb * 1024
    }

    /// One request on a new connection; the status code, or `None` if the connection failed.
    async fn status_of(&self, request: &str) -> Option<u16> {
        let mut s = TcpStream::connect(&self.addr).await.ok()?;
        s.write_all(request.as_bytes()).await.ok()?;
        let mut buf = vec![0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .ok()?
            .ok()?;
        let head = String::from_utf8_lossy(&buf[..n]);
        head.split_whitespace().nth(1)?.parse().ok()
    }

    async fn get_parent(&self) -> Option<u16> {
        self.status_of(&format!(
            "GET /v1/parents/profile/p1 HTTP/1.1\r\nHost: x\r\nX-API-KEY: {KEY}\r\nConnection: close\r\n\r\n"
        ))
        .await
    }
}

/// Streams `total` bytes of `chunk` after `head`, until done or the server closes; then reads
/// whatever the server answered. Returns the bytes the server took and the status it answered.
async fn flood(addr: &str, head: &str, chunk: &[u8], total: u64) -> (u64, Option<u16>) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let mut sent = 0u64;
    while sent < total {
        let frame = format!("{:x}\r\n", chunk.len());
        let ok = s.write_all(frame.as_bytes()).await.is_ok()
            && s.write_all(chunk).await.is_ok()
            && s.write_all(b"\r\n").await.is_ok();
        if !ok {
            break;
        }
        sent += chunk.len() as u64;
    }
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(0);
    let head = String::from_utf8_lossy(&buf[..n]);
    (
        sent,
        head.split_whitespace().nth(1).and_then(|s| s.parse().ok()),
    )
}

#[tokio::test]
async fn a_gigabyte_without_a_boundary_or_a_key_cannot_grow_the_server() {
    let server = Server::start(&[]);
    let chunk = vec![b'x'; 1 << 20];
    let gib = 1u64 << 30;
    // A body that never has its boundary, then one whose first part's headers never end.
    for (what, first) in [
        ("no boundary", None),
        ("endless part headers", Some("--XYZ\r\nX-A: ")),
    ] {
        let head = "POST /_blobs/upload HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=XYZ\r\nTransfer-Encoding: chunked\r\n\r\n";
        let mut head = head.to_owned();
        if let Some(first) = first {
            head.push_str(&format!("{:x}\r\n{first}\r\n", first.len()));
        }
        let (sent, status) = flood(&server.addr, &head, &chunk, gib).await;
        assert!(sent < gib, "{what}: the server read a whole GiB");
        assert_eq!(status, Some(400), "{what}: refused as malformed");
        let peak = server.peak_rss();
        assert!(peak < 64 << 20, "{what}: peak RSS {} MiB", peak >> 20);
    }
    assert_eq!(server.get_parent().await, Some(404), "still serving");
}

#[tokio::test]
async fn a_body_without_a_key_is_never_read() {
    let server = Server::start(&[]);
    // 4 MiB announced, none sent: the answer comes without waiting for it.
    let started = Instant::now();
    let status = server
        .status_of("POST /v1/parents/profile/p1/attachments HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 4000000\r\n\r\n")
        .await;
    assert_eq!(status, Some(401));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_stalled_body_is_cut() {
    let server = Server::start(&[("ATTACHMENTS_BODY_IDLE_SECONDS", "1")]);
    let started = Instant::now();
    let status = server
        .status_of(&format!("POST /v1/parents/profile/p1/attachments HTTP/1.1\r\nHost: x\r\nX-API-KEY: {KEY}\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 1000\r\n\r\n--b"))
        .await;
    assert_eq!(status, Some(408));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn idle_connections_do_not_starve_other_clients() {
    let server = Server::start(&[]);
    let mut idle = Vec::with_capacity(500);
    for _ in 0..500 {
        idle.push(TcpStream::connect(&server.addr).await.unwrap());
    }
    for _ in 0..20 {
        let started = Instant::now();
        assert_eq!(server.get_parent().await, Some(404));
        assert!(started.elapsed() < Duration::from_secs(2), "answered late");
    }
    drop(idle);
}

/// Every request gets one JSON line (with `ATTACHMENTS_LOG_FORMAT=json`), as on Lambda: route,
/// method, path without the query string, status, latency, bytes and the tenant once a route
/// authenticated it; the key, in whichever of its three places it came, never appears.
#[tokio::test]
async fn each_request_logs_one_line_without_its_key() {
    let server = Server::start(&[("ATTACHMENTS_LOG_FORMAT", "json")]);
    let requests = [
        // (request, route, status, tenant)
        ("GET /healthz HTTP/1.1\r\n".to_owned(), "healthz", 200, None),
        (
            format!("GET /v1/parents/profile/p1 HTTP/1.1\r\nX-API-KEY: {KEY}\r\n"),
            "native-get-parent",
            404,
            Some("t"),
        ),
        (
            format!("GET /v1/parents/profile/p2 HTTP/1.1\r\nAuthorization: Bearer {KEY}\r\n"),
            "native-get-parent",
            404,
            Some("t"),
        ),
        (
            format!("GET /api/1/profile/p3/attachments?accessTokenId={KEY} HTTP/1.1\r\n"),
            "crafter-list",
            404,
            Some("t"),
        ),
        // Only Crafter's routes take a key from the URL: refused, and no tenant.
        (
            format!("GET /v1/parents/profile/p4?accessTokenId={KEY} HTTP/1.1\r\n"),
            "native-get-parent",
            401,
            None,
        ),
        (
            "GET /nowhere HTTP/1.1\r\n".to_owned(),
            "unmatched",
            404,
            None,
        ),
    ];
    for (head, _, status, _) in &requests {
        let got = server
            .status_of(&format!("{head}Host: x\r\nConnection: close\r\n\r\n"))
            .await;
        assert_eq!(got, Some(*status), "{head}");
    }
    // The line is written as the answer is sent: give the reader thread a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    let lines: Vec<serde_json::Value> = loop {
        let out = server.output.lock().unwrap().clone();
        let lines: Vec<serde_json::Value> = out
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["message"] == "request")
            .collect();
        if lines.len() >= requests.len() || Instant::now() > deadline {
            for l in &out {
                assert!(!l.contains(KEY), "a key in the log: {l}");
            }
            break lines;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(lines.len(), requests.len(), "{lines:#?}");
    for (line, (head, route, status, tenant)) in lines.iter().zip(&requests) {
        assert_eq!(line["route"], *route, "{head}: {line}");
        assert_eq!(line["status"], *status, "{head}: {line}");
        assert_eq!(line["method"], "GET", "{line}");
        assert!(!line["path"].as_str().unwrap().contains('?'), "{line}");
        assert!(line["latency_ms"].as_f64().unwrap() >= 0.0, "{line}");
        assert!(line["bytes_out"].as_u64().is_some(), "{line}");
        assert!(
            line["timestamp"].is_string(),
            "local lines carry their time: {line}"
        );
        assert_eq!(line["tenant"].as_str(), *tenant, "{head}: {line}");
    }
}
