//! A small closed-loop HTTP/1.1 load generator (keep-alive, one request in flight per
//! connection, like wrk) and a one-shot client for seeding. It writes prepared request bytes and
//! parses only the status line and `content-length`, so it costs the server's neighbour core as
//! little as possible.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::util::Error;

/// A parsed response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// What one load run measured, after its warm-up.
#[derive(Debug, Default)]
pub struct Stats {
    /// Successful responses (the expected status).
    pub ok: u64,
    /// Responses with another status, and broken connections.
    pub errors: u64,
    pub seconds: f64,
    /// Latency of every successful response, in microseconds, sorted.
    pub latencies_us: Vec<u32>,
    /// CPU seconds the server used during the counted window, when it could be read.
    pub server_cpu: Option<f64>,
}

impl Stats {
    pub fn rps(&self) -> f64 {
        self.ok as f64 / self.seconds
    }

    /// Requests per second of server CPU: the server's own efficiency, whoever was the
    /// bottleneck (the load generator shares the machine with it).
    pub fn per_cpu_second(&self) -> Option<f64> {
        self.server_cpu
            .filter(|c| *c > 0.0)
            .map(|c| self.ok as f64 / c)
    }
}

/// Builds a GET request's bytes.
pub fn get(path: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    request("GET", path, headers, &[])
}

/// Builds a request's bytes.
pub fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n");
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method != "GET" {
        r.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    r.push_str("\r\n");
    let mut bytes = r.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Reads one response from the connection into `buf` (cleared first).
async fn read_response(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Response, Error> {
    buf.clear();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(head) = resp.parse(buf).map_err(|e| e.to_string())? {
            let status = resp.code.unwrap_or(0);
            // 204 and 304 have no body and need no length (RFC 9110, 6.4.1).
            let bodiless = status == 204 || status == 304;
            let len = resp
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok())
                .and_then(|v| v.trim().parse::<usize>().ok())
                .or(bodiless.then_some(0))
                .ok_or("the load generator needs content-length responses")?;
            while buf.len() < head + len {
                let n = conn.read(&mut chunk).await.map_err(|e| e.to_string())?;
                if n == 0 {
                    return Err("connection closed mid-body".into());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Ok(Response {
                status,
                body: buf[head..head + len].to_vec(),
            });
        }
        let n = conn.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed before a response".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Sends one request on a new connection and reads the response.
pub async fn once(addr: SocketAddr, req: &[u8]) -> Result<Response, Error> {
    let mut conn = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    conn.write_all(req).await.map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), read_response(&mut conn, &mut buf))
        .await
        .map_err(|_| "no response within 10 s".to_owned())?
}

/// Runs `connections` closed loops against `addr` for `warmup` then `measure`; only the second
/// part is counted. `server_cpu` is sampled at both ends of the counted window.
pub async fn run(
    addr: SocketAddr,
    req: Arc<Vec<u8>>,
    expect: u16,
    connections: usize,
    (warmup, measure): (Duration, Duration),
    server_cpu: impl Fn() -> Option<f64> + Send + 'static,
) -> Stats {
    let begin = Instant::now() + Duration::from_millis(20);
    let start = begin + warmup;
    let end = start + measure;
    let sampler = tokio::spawn(async move {
        tokio::time::sleep_until(start.into()).await;
        let a = server_cpu();
        tokio::time::sleep_until(end.into()).await;
        let b = server_cpu();
        Some(b? - a?)
    });
    let mut tasks = Vec::with_capacity(connections);
    for _ in 0..connections {
        let req = req.clone();
        tasks.push(tokio::spawn(async move {
            let mut s = Stats::default();
            let mut buf = Vec::with_capacity(64 * 1024);
            tokio::time::sleep_until(begin.into()).await;
            'connect: while Instant::now() < end {
                let Ok(mut conn) = TcpStream::connect(addr).await else {
                    s.errors += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let _ = conn.set_nodelay(true);
                loop {
                    let t = Instant::now();
                    if t >= end {
                        break 'connect;
                    }
                    let sent = conn.write_all(&req).await;
                    let resp = match sent {
                        Ok(()) => read_response(&mut conn, &mut buf).await,
                        Err(e) => Err(e.to_string()),
                    };
                    let done = Instant::now();
                    // A response is counted when it completes inside the window.
                    let counted = done >= start && done < end;
                    match resp {
                        Ok(r) if r.status == expect => {
                            if counted {
                                s.ok += 1;
                                let us = (done - t).as_micros().min(u32::MAX as u128) as u32;
                                s.latencies_us.push(us);
                            }
                        }
                        Ok(_) => {
                            if counted {
                                s.errors += 1;
                            }
                        }
                        Err(_) => {
                            if counted {
                                s.errors += 1;
                            }
                            continue 'connect;
                        }
                    }
                }
            }
            s
        }));
    }
    let mut total = Stats {
        seconds: measure.as_secs_f64(),
        ..Stats::default()
    };
    for t in tasks {
        if let Ok(s) = t.await {
            total.ok += s.ok;
            total.errors += s.errors;
            total.latencies_us.extend(s.latencies_us);
        }
    }
    total.latencies_us.sort_unstable();
    total.server_cpu = sampler.await.ok().flatten();
    total
}
