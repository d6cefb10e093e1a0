//! The `attachments` binary against a fresh local server (the real one, in this process, behind
//! a wrapper that records the part PUTs storage answers): login, ls, info, get, rm and their
//! exit codes, and a 200 MB upload killed half-way that a second run finishes by sending only
//! the missing parts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use attachments::config::Config;
use bytes::Bytes;
use functions::local;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use sha2::{Digest, Sha256};

const KEY: &str = "cli-test-key-0123456789";

/// Part PUTs as the server answered them: (part number, success, when it arrived).
type PartLog = Arc<Mutex<Vec<(u32, bool, Instant)>>>;

/// A fresh local server whose part PUTs are logged.
struct World {
    url: String,
    dir: tempfile::TempDir,
    parts: PartLog,
    /// Requests the server is still handling (a killed client's end there a little later).
    busy: Arc<std::sync::atomic::AtomicUsize>,
    _task: tokio::task::JoinHandle<()>,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let vars = [
        (
            "ATTACHMENTS_DATA_DIR",
            dir.path().join("data").display().to_string(),
        ),
        ("ATTACHMENTS_PUBLIC_URL", format!("http://{addr}")),
        ("ATTACHMENTS_API_KEYS", format!("t:{KEY}")),
    ];
    let cfg = Config::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()))
        .unwrap();
    let (_, server, listener, _) = local::start(&cfg, Some(listener)).await.unwrap();
    let parts: PartLog = Arc::default();
    let log = parts.clone();
    let busy = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let in_flight = busy.clone();
    let task = tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let server = server.clone();
            let log = log.clone();
            let in_flight = in_flight.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: http::Request<_>| {
                    let server = server.clone();
                    let log = log.clone();
                    let in_flight = in_flight.clone();
                    async move {
                        let arrived = Instant::now();
                        let part = (req.method() == http::Method::PUT)
                            .then(|| part_number(req.uri().query().unwrap_or("")))
                            .flatten();
                        // Counted down when the handler ends or is dropped (a cut connection).
                        let _busy = Busy::enter(in_flight);
                        let resp = server.handle(req).await;
                        if let Some(n) = part {
                            log.lock()
                                .unwrap()
                                .push((n, resp.status().is_success(), arrived));
                        }
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    World {
        url: format!("http://{addr}"),
        dir,
        parts,
        busy,
        _task: task,
    }
}

/// One request in the server's hands.
struct Busy(Arc<std::sync::atomic::AtomicUsize>);

impl Busy {
    fn enter(count: Arc<std::sync::atomic::AtomicUsize>) -> Self {
        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

fn part_number(query: &str) -> Option<u32> {
    query
        .split('&')
        .find_map(|p| p.strip_prefix("partNumber="))
        .and_then(|n| n.parse().ok())
}

impl World {
    /// The client, with its folders in this world and no login unless `login` made one.
    fn cli(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_attachments"));
        c.env_clear()
            .env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.dir.path().join("config"))
            .env("XDG_STATE_HOME", self.dir.path().join("state"))
            .stdin(Stdio::null());
        c
    }

    /// The client with these arguments.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self.cli();
        c.args(args);
        c
    }

    fn logged_in(&self) -> Command {
        let mut c = self.cli();
        c.env("ATTACHMENTS_URL", &self.url)
            .env("ATTACHMENTS_KEY", KEY);
        c
    }

    async fn api(&self, method: &str, path: &str) -> (u16, Value) {
        let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let req = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url))
            .header("x-api-key", KEY)
            .body(Empty::new())
            .unwrap();
        let resp = client.request(req).await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

/// Runs the client to its end (on a blocking thread: the server runs on this runtime).
async fn run(mut c: Command) -> Output {
    tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json_out(o: &Output) -> Value {
    assert!(o.status.success(), "{}", stderr(o));
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&o.stdout)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_and_their_exit_codes() {
    let w = world().await;
    let o = run(w.cmd(&["ls", "profile/1"])).await;
    assert_eq!(o.status.code(), Some(3), "not logged in: {}", stderr(&o));
    assert!(stderr(&o).contains("attachments login"), "{}", stderr(&o));
    assert_eq!(stderr(&o).lines().count(), 1, "one line: {}", stderr(&o));

    // A wrong key is refused and not stored; the right one is, readable by the user only.
    let mut bad = w.cli();
    bad.args(["login", "--url", &w.url, "--key", "nope-nope-nope-nope"]);
    assert_eq!(run(bad).await.status.code(), Some(4));
    let mut login = w.cli();
    login.args(["login", "--url", &w.url]).stdin(Stdio::piped());
    let o = tokio::task::spawn_blocking(move || {
        let mut child = login
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{KEY}").unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let saved = w.dir.path().join("config/attachments/login.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&saved).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(std::fs::read_to_string(&saved).unwrap().contains(KEY));

    // From here on the stored login is used.
    let o = run(w.cmd(&["ls", "profile/1"])).await;
    assert_eq!(o.status.code(), Some(5), "unknown parent: {}", stderr(&o));
    assert_eq!(w.api("PUT", "/v1/parents/profile/1").await.0, 201);
    let hello = w.file("hello.txt", b"Hello, attachments!\n");
    let fake = w.file("fake.png", b"<html><script>alert(1)</script></html>");
    let mut put = w.cli();
    put.arg("--json")
        .args(["put", "profile/1"])
        .arg(&hello)
        .args(["--type", "note", "--tags", "a,b"]);
    let up = json_out(&run(put).await);
    let id = up[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(up[0]["status"], "ready");
    assert_eq!(up[0]["tags"], serde_json::json!(["a", "b"]));
    assert_eq!(up[0]["content_type"], "text/plain");
    let mut refused = w.cli();
    refused.args(["put", "profile/1"]).arg(&fake);
    let o = run(refused).await;
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(stderr(&o).contains("text/html"), "says why: {}", stderr(&o));

    let list = json_out(&run(w.cmd(&["--json", "ls", "profile/1"])).await);
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "the refused file is not listed"
    );
    let o = run(w.cmd(&["ls", "profile/1"])).await;
    let table = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        table.contains("hello.txt") && table.contains("20 B"),
        "{table}"
    );
    let info = json_out(&run(w.cmd(&["--json", "info", &id])).await);
    assert_eq!(
        info["sha256"],
        hex::encode(Sha256::digest(b"Hello, attachments!\n"))
    );

    let out = w.dir.path().join("got.txt");
    let mut get = w.cli();
    get.args(["get", &id, "-o"]).arg(&out);
    assert!(run(get).await.status.success());
    assert_eq!(std::fs::read(&out).unwrap(), b"Hello, attachments!\n");
    let mut again = w.cli();
    again.args(["get", &id, "-o"]).arg(&out);
    assert_eq!(
        run(again).await.status.code(),
        Some(1),
        "no silent overwrite"
    );

    assert!(run(w.cmd(&["rm", &id])).await.status.success());
    assert_eq!(run(w.cmd(&["info", &id])).await.status.code(), Some(5));
    let mut down = w.cli();
    down.args(["--url", "http://127.0.0.1:9", "ls", "profile/1"]);
    assert_eq!(run(down).await.status.code(), Some(7), "server unreachable");
}

/// 200 MB of bytes that differ from part to part (a cheap generator: the test is about moving
/// them, not about randomness).
fn big_file(path: &Path, size: usize) -> String {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut h = Sha256::new();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for chunk in buf.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes());
        }
        let n = left.min(buf.len());
        f.write_all(&buf[..n]).unwrap();
        h.update(&buf[..n]);
        left -= n;
    }
    f.flush().unwrap();
    hex::encode(h.finalize())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_upload_resumes_with_only_the_missing_parts() {
    let w = world().await;
    assert_eq!(w.api("PUT", "/v1/parents/asset/film").await.0, 201);
    let path = w.dir.path().join("film.bin");
    let size = 200_000_000;
    let sha = big_file(&path, size);

    // The first run, killed once half of the parts are stored.
    let mut first = w.logged_in();
    first
        .args(["put", "asset/film", "--parallel", "4"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = first.spawn().unwrap();
    let started = Instant::now();
    let stored = |log: &PartLog| log.lock().unwrap().iter().filter(|(_, ok, _)| *ok).count();
    while stored(&w.parts) < 12 {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the first run ended before it was stopped: {status}");
        }
        assert!(started.elapsed() < Duration::from_secs(300), "too slow");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // The parts the kill cut off end on the server a little later: wait for them, so the
    // status call below sees what storage holds for good.
    while w.busy.load(std::sync::atomic::Ordering::SeqCst) > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "requests never ended"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // What storage holds, by the status call; the record the client keeps names the upload.
    let records: Vec<PathBuf> = std::fs::read_dir(w.dir.path().join("state/attachments/uploads"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(records.len(), 1, "one resume record");
    let record: Value = serde_json::from_slice(&std::fs::read(&records[0]).unwrap()).unwrap();
    assert!(
        !std::fs::read_to_string(&records[0]).unwrap().contains(KEY),
        "the record holds no key"
    );
    let id = record["attachment_id"].as_str().unwrap().to_owned();
    let (code, status) = w.api("GET", &format!("/v1/attachments/{id}/upload")).await;
    assert_eq!(code, 200, "{status}");
    let count = status["upload"]["part_count"].as_u64().unwrap() as u32;
    let part_size = status["upload"]["part_size"].as_u64().unwrap();
    let held: BTreeSet<u32> = status["upload"]["parts_received"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            let n = p["part_number"].as_u64().unwrap();
            let want = if n < u64::from(count) {
                part_size
            } else {
                size as u64 - part_size * (u64::from(count) - 1)
            };
            p["size"].as_u64() == Some(want)
        })
        .map(|p| p["part_number"].as_u64().unwrap() as u32)
        .collect();
    let missing: BTreeSet<u32> = (1..=count).filter(|n| !held.contains(n)).collect();
    assert!(
        held.len() >= 12 && !missing.is_empty(),
        "stopped half-way: {} of {count} parts held",
        held.len()
    );

    // The second run sends exactly the missing parts, once each, and finishes.
    let second_started = Instant::now();
    let mut second = w.logged_in();
    second.args(["--json", "put", "asset/film"]).arg(&path);
    let done = json_out(&run(second).await);
    let sent: Vec<u32> = w
        .parts
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, _, arrived)| *arrived >= second_started)
        .map(|(n, _, _)| *n)
        .collect();
    let sent_set: BTreeSet<u32> = sent.iter().copied().collect();
    assert_eq!(sent_set, missing, "only the missing parts were sent");
    assert_eq!(sent.len(), missing.len(), "each once: {sent:?}");
    assert_eq!(done[0]["id"], id.as_str(), "the same upload, resumed");
    assert_eq!(done[0]["status"], "ready");
    assert_eq!(done[0]["size"], size);
    assert_eq!(
        done[0]["sha256"],
        sha.as_str(),
        "the stored bytes are the file's"
    );
    assert!(!records[0].exists(), "the record is gone once done");
    eprintln!(
        "resume test: {} of {count} parts held after the kill, {} sent by the second run, {:.1} s in all",
        held.len(),
        sent.len(),
        started.elapsed().as_secs_f64()
    );
}
