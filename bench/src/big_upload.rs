//! The big-upload row: 1 GiB streamed through the local server's direct upload path (a form
//! POST under a signed policy, written to disk as it arrives), until the attachment is verified
//! and ready (the server verifies after the upload, as S3's event does on AWS). Compared with
//! the raw hashing speed of the same bytes (md5 and sha256, in this process), and the server's
//! peak resident memory, which must stay flat however large the file.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::load;
use crate::table::{ratio, verdict, Row};
use crate::util::{mb, rate, Error, Server, TempDir};

const KEY: &str = "bench-key-0123456789abcdef";
const TARGET: &str = ">= 0.8x hashing, peak RSS <= 64 MiB";
const CHUNK: usize = 1024 * 1024;

pub async fn row(bin_dir: &Path, size: u64) -> (Row, String) {
    match measure(bin_dir, size).await {
        Ok(r) => r,
        Err(e) => (Row::failed("big upload (1 GiB)", TARGET, &e), String::new()),
    }
}

fn peak_rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

async fn json_call(
    server: &Server,
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<(u16, Value), Error> {
    let req = load::request(
        method,
        path,
        &[("x-api-key", KEY), ("content-type", "application/json")],
        body,
    );
    let r = load::once(server.addr, &req).await?;
    Ok((
        r.status,
        serde_json::from_slice(&r.body).unwrap_or(Value::Null),
    ))
}

async fn measure(bin_dir: &Path, size: u64) -> Result<(Row, String), Error> {
    let data = TempDir::new("big")?;
    let mut cmd = Command::new(bin_dir.join("bench-local-server"));
    cmd.env("ATTACHMENTS_BACKEND", "embedded")
        .env("ATTACHMENTS_DATA_DIR", data.path())
        .env("ATTACHMENTS_API_KEYS", format!("bench:{KEY}"))
        // One form POST for the whole file: the path a browser or curl takes.
        .env("ATTACHMENTS_DIRECT_POST_MAX_BYTES", (size + 1).to_string())
        .env_remove("AWS_LAMBDA_FUNCTION_NAME");
    let server = Server::spawn(cmd)?;
    let pid = server.child.0.id();
    let (s, _) = json_call(&server, "PUT", "/v1/parents/bench/big", b"").await?;
    if s != 201 && s != 200 {
        return Err(format!("PUT parent: {s}"));
    }
    let chunk = crate::util::noise(CHUNK, 7);
    let rss_before = peak_rss_bytes(pid).unwrap_or(0);

    let begin = serde_json::json!({"file_name": "big.bin", "content_type": "application/octet-stream", "size": size});
    let started = Instant::now();
    let (s, up) = json_call(
        &server,
        "POST",
        "/v1/parents/bench/big/uploads",
        begin.to_string().as_bytes(),
    )
    .await?;
    if s != 201 {
        return Err(format!("begin upload: {s} {up}"));
    }
    let id = up["attachment"]["id"]
        .as_str()
        .ok_or("no attachment id")?
        .to_owned();
    let fields = up["upload"]["fields"].as_object().ok_or("no form fields")?;
    let boundary = "bench-big-boundary-7MA4YWxkTrZu0gW";
    let mut head = String::new();
    for (k, v) in fields {
        head.push_str(&format!(
            "--{boundary}\r\ncontent-disposition: form-data; name=\"{k}\"\r\n\r\n{}\r\n",
            v.as_str().unwrap_or_default()
        ));
    }
    head.push_str(&format!(
        "--{boundary}\r\ncontent-disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n\
         content-type: application/octet-stream\r\n\r\n"
    ));
    let tail = format!("\r\n--{boundary}--\r\n");
    let length = head.len() as u64 + size + tail.len() as u64;
    let mut conn = TcpStream::connect(server.addr)
        .await
        .map_err(|e| e.to_string())?;
    let request_head = format!(
        "POST /_blobs/upload HTTP/1.1\r\nhost: {}\r\ncontent-type: multipart/form-data; boundary={boundary}\r\n\
         content-length: {length}\r\nconnection: close\r\n\r\n{head}",
        server.addr
    );
    conn.write_all(request_head.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut left = size;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        conn.write_all(&chunk[..n])
            .await
            .map_err(|e| e.to_string())?;
        left -= n as u64;
    }
    conn.write_all(tail.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(600), conn.read_to_end(&mut answer))
        .await
        .map_err(|_| "no answer to the upload".to_owned())?
        .map_err(|e| e.to_string())?;
    if !answer.starts_with(b"HTTP/1.1 204") {
        return Err(format!(
            "upload: {}",
            String::from_utf8_lossy(&answer[..answer.len().min(300)])
        ));
    }
    let uploaded = started.elapsed();
    // The server verifies on its own after the upload; wait for ready without calling complete.
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let (s, att) = json_call(&server, "GET", &format!("/v1/attachments/{id}"), b"").await?;
        if s == 200 && att["status"] == "ready" {
            if att["size"].as_u64() != Some(size) {
                return Err(format!("ready with the wrong size: {att}"));
            }
            break;
        }
        if s != 200 || att["status"] == "rejected" || Instant::now() > deadline {
            return Err(format!("verification: {s} {att}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let total = started.elapsed();
    let peak = peak_rss_bytes(pid).unwrap_or(0).max(rss_before);

    // The baseline: md5 then sha256 of the same bytes, run back to back, in this process.
    let t = Instant::now();
    {
        use md5::Digest;
        let mut m = md5::Md5::new();
        let mut left = size;
        while left > 0 {
            let n = left.min(CHUNK as u64) as usize;
            m.update(&chunk[..n]);
            left -= n as u64;
        }
        let mut s2 = sha2::Sha256::new();
        let mut left = size;
        while left > 0 {
            let n = left.min(CHUNK as u64) as usize;
            s2.update(&chunk[..n]);
            left -= n as u64;
        }
        std::hint::black_box((m.finalize(), s2.finalize()));
    }
    let hashing = t.elapsed();
    let ours = size as f64 / total.as_secs_f64();
    let base = size as f64 / hashing.as_secs_f64();
    let r = ours / base;
    let row = Row {
        figure: "big upload (1 GiB)".into(),
        value: format!("{}, peak RSS {}", rate(ours), mb(peak)),
        baseline: format!("hashing {}", rate(base)),
        ratio: ratio(r),
        target: TARGET.into(),
        verdict: verdict(r >= 0.8 && peak <= 64 * 1024 * 1024),
    };
    let note = format!(
        "big upload: {} through POST /_blobs/upload in {:.2} s, verified and ready {:.2} s after the start \
         (the file store hashes while it receives; the verification reads back only the first chunk); \
         server peak RSS {}.",
        mb(size),
        uploaded.as_secs_f64(),
        total.as_secs_f64(),
        mb(peak)
    );
    Ok((row, note))
}
