//! The AWS calls as X-Ray subsegments. With active tracing, Lambda hands each sampled
//! invocation a trace header (`Root=…;Parent=…;Sampled=1`) and runs the X-Ray daemon beside the
//! function (`AWS_XRAY_DAEMON_ADDRESS`). An invocation runs [`traced`]; every call the AWS SDK's
//! clients make under it (seen by the interceptor of `store::call_spans`) becomes a subsegment
//! of the function's segment, sent to the daemon over UDP as the X-Ray SDKs of other languages
//! do: no API call, no extension, a datagram per call.
//!
//! The X-Ray crates for Rust are young (xray-lite is at 0.0.x, and reads the trace from
//! `_X_AMZN_TRACE_ID`, which the runtime leaves unset in its concurrent mode), and the
//! OpenTelemetry path needs a collector layer in every function (a second process, and seconds
//! of cold start); the daemon's protocol is a header line and a JSON document.

use std::future::Future;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, OnceLock};

use serde_json::{json, Value};

/// What precedes every document sent to the daemon.
const DAEMON_HEADER: &str = "{\"format\": \"json\", \"version\": 1}\n";

/// The value of `name` in a trace header (`Root=…;Parent=…;Sampled=…`).
pub fn field<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header
        .split(';')
        .find_map(|part| part.trim().strip_prefix(name)?.strip_prefix('='))
}

/// Where the daemon listens: `host:port`, or the UDP one of `tcp:host:port udp:host:port`.
pub fn daemon_address(value: &str) -> Option<SocketAddr> {
    let udp = value
        .split_whitespace()
        .find_map(|p| p.strip_prefix("udp:"))
        .unwrap_or(value.trim());
    udp.parse().ok()
}

/// The X-Ray daemon: the socket subsegments leave from, connected to it.
#[derive(Debug)]
pub struct Daemon(UdpSocket);

impl Daemon {
    /// Sends to `address`; `None` when no socket can be had.
    pub fn new(address: SocketAddr) -> Option<Arc<Self>> {
        let local = if address.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        };
        let socket = UdpSocket::bind(local).ok()?;
        socket.connect(address).ok()?;
        // A send must never hold up a request.
        socket.set_nonblocking(true).ok()?;
        Some(Arc::new(Self(socket)))
    }

    /// The daemon of `AWS_XRAY_DAEMON_ADDRESS`, which Lambda sets; `None` without it.
    pub fn from_env() -> Option<Arc<Self>> {
        Self::new(daemon_address(
            &std::env::var("AWS_XRAY_DAEMON_ADDRESS").ok()?,
        )?)
    }
}

static DAEMON: OnceLock<Option<Arc<Daemon>>> = OnceLock::new();

/// Sets where the invocations' subsegments go (once per process; `None`: nowhere).
pub fn configure(daemon: Option<Arc<Daemon>>) {
    let _ = DAEMON.set(daemon);
}

/// The daemon [`configure`] set.
pub fn daemon() -> Option<Arc<Daemon>> {
    DAEMON.get().cloned().flatten()
}

/// A sampled invocation: the trace its calls join (the `Root` and `Parent` of its header), and
/// the daemon they go to.
#[derive(Debug, Clone)]
pub struct Trace {
    root: String,
    parent: String,
    daemon: Arc<Daemon>,
}

impl Trace {
    /// The trace of `header` (`Root=…;Parent=…;Sampled=1`); `None` when not sampled or
    /// incomplete.
    pub fn sampled(header: &str, daemon: Arc<Daemon>) -> Option<Self> {
        field(header, "Sampled").filter(|s| *s == "1")?;
        Some(Self {
            root: field(header, "Root")?.to_owned(),
            parent: field(header, "Parent")?.to_owned(),
            daemon,
        })
    }

    /// Sends `call`, ended now, as a subsegment. A lost datagram loses a subsegment, never a
    /// request: errors are ignored.
    pub fn send(&self, call: &Call) {
        let doc = subsegment(call, self, epoch_seconds());
        let _ = self
            .daemon
            .0
            .send(format!("{DAEMON_HEADER}{doc}").as_bytes());
    }
}

tokio::task_local! {
    static TRACE: Option<Trace>;
}

/// Runs `f` as the invocation of trace `header`: when it is sampled and there is a `daemon`, the
/// AWS calls `f` makes are sent to it as subsegments.
pub async fn traced<F: Future>(
    daemon: Option<Arc<Daemon>>,
    header: Option<&str>,
    f: F,
) -> F::Output {
    let trace = header.zip(daemon).and_then(|(h, d)| Trace::sampled(h, d));
    TRACE.scope(trace, f).await
}

/// The trace of the invocation under way, when it is sampled.
pub fn current() -> Option<Trace> {
    TRACE.try_with(Option::clone).ok().flatten()
}

/// What X-Ray shows of one AWS call, retries included.
#[derive(Debug, Clone, Default)]
pub struct Call {
    /// X-Ray's name of the service (`DynamoDB`, `S3`).
    pub service: String,
    pub operation: String,
    pub region: String,
    pub bucket: Option<String>,
    /// The last attempt's answer.
    pub status: Option<u16>,
    pub request_id: Option<String>,
    pub attempts: u64,
    /// Why it failed: the service's error code, or the kind of failure.
    pub error_code: Option<String>,
    start: f64,
}

impl Call {
    /// A call starting now.
    pub fn new(service: &str, operation: &str, region: &str) -> Self {
        Self {
            service: service.to_owned(),
            operation: operation.to_owned(),
            region: region.to_owned(),
            start: epoch_seconds(),
            ..Self::default()
        }
    }
}

fn epoch_seconds() -> f64 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos() as f64 / 1e9
}

fn segment_id() -> String {
    let mut raw = [0u8; 8];
    // Without randomness (never on Lambda), the clock's nanoseconds still tell calls apart.
    if getrandom::fill(&mut raw).is_err() {
        raw = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() as u64).to_be_bytes();
    }
    hex::encode(raw)
}

/// The subsegment document of a call that ended at `end`.
fn subsegment(call: &Call, trace: &Trace, end: f64) -> Value {
    let code = call.error_code.as_deref();
    let throttled = call.status == Some(429)
        || code.is_some_and(|c| {
            c.contains("Throttl")
                || c == "SlowDown"
                || c == "ProvisionedThroughputExceededException"
        });
    let error = throttled || matches!(call.status, Some(400..=499));
    // No answer at all (a broken connection, a timeout) is a fault.
    let fault = !throttled && matches!((call.status, code), (Some(500..), _) | (None, Some(_)));
    present(json!({
        "name": call.service,
        "id": segment_id(),
        "trace_id": trace.root,
        "parent_id": trace.parent,
        "type": "subsegment",
        "namespace": "aws",
        "start_time": call.start,
        "end_time": end,
        "aws": present(json!({
            "operation": call.operation,
            "region": call.region,
            "request_id": call.request_id,
            "retries": call.attempts.saturating_sub(1),
            "bucket_name": call.bucket,
        })),
        "http": call.status.map(|s| json!({ "response": { "status": s } })),
        "throttle": throttled.then_some(true),
        "error": error.then_some(true),
        "fault": fault.then_some(true),
        "cause": code.map(|c| json!({ "exceptions": [{ "id": segment_id(), "type": c, "message": c }] })),
    }))
}

/// `object` without its null fields: what a call does not have is left out.
fn present(object: Value) -> Value {
    match object {
        Value::Object(fields) => fields.into_iter().filter(|(_, v)| !v.is_null()).collect(),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLED: &str =
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

    fn daemon() -> (UdpSocket, Option<Arc<Daemon>>) {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let addr = s.local_addr().unwrap();
        (s, Daemon::new(addr))
    }

    fn received(daemon: &UdpSocket) -> Option<Value> {
        let mut buf = [0u8; 65_536];
        let n = daemon.recv(&mut buf).ok()?;
        let text = std::str::from_utf8(&buf[..n]).unwrap();
        let doc = text
            .strip_prefix(DAEMON_HEADER)
            .expect("the daemon header first");
        Some(serde_json::from_str(doc).unwrap())
    }

    /// Sends `call` as the invocation of `header` would.
    async fn traced_call(daemon: Option<Arc<Daemon>>, header: &str, call: Call) {
        traced(daemon, Some(header), async {
            if let Some(trace) = current() {
                trace.send(&call);
            }
        })
        .await;
    }

    #[tokio::test]
    async fn a_call_under_a_sampled_invocation_is_a_subsegment_of_its_segment() {
        let (socket, daemon) = daemon();
        let mut call = Call::new("DynamoDB", "GetItem", "eu-west-1");
        call.status = Some(200);
        call.request_id = Some("REQ123".into());
        call.attempts = 2;
        traced_call(daemon, SAMPLED, call).await;
        let doc = received(&socket).expect("a subsegment");
        assert_eq!(doc["type"], "subsegment");
        assert_eq!(doc["name"], "DynamoDB");
        assert_eq!(doc["namespace"], "aws");
        assert_eq!(doc["trace_id"], "1-5759e988-bd862e3fe1be46a994272793");
        assert_eq!(doc["parent_id"], "53995c3f42cd8ad8");
        assert_eq!(doc["aws"]["operation"], "GetItem");
        assert_eq!(doc["aws"]["region"], "eu-west-1");
        assert_eq!(doc["aws"]["request_id"], "REQ123");
        assert_eq!(doc["aws"]["retries"], 1);
        assert_eq!(doc["http"]["response"]["status"], 200);
        assert_eq!(doc["id"].as_str().unwrap().len(), 16);
        assert!(doc["end_time"].as_f64().unwrap() >= doc["start_time"].as_f64().unwrap());
        assert!(doc.get("error").is_none() && doc.get("fault").is_none());
    }

    #[tokio::test]
    async fn failures_are_marked_and_unsampled_invocations_send_nothing() {
        let (socket, daemon) = daemon();
        let mut call = Call::new("S3", "GetObject", "eu-west-1");
        call.bucket = Some("files".into());
        call.status = Some(503);
        call.error_code = Some("SlowDown".into());
        traced_call(daemon.clone(), SAMPLED, call).await;
        let doc = received(&socket).unwrap();
        assert_eq!(doc["aws"]["bucket_name"], "files");
        assert_eq!(doc["throttle"], true);
        assert_eq!(doc["cause"]["exceptions"][0]["type"], "SlowDown");

        let unsampled = SAMPLED.replace("Sampled=1", "Sampled=0");
        traced_call(
            daemon.clone(),
            &unsampled,
            Call::new("S3", "HeadObject", "eu-west-1"),
        )
        .await;
        // Without a daemon, or outside any invocation, there is nowhere to send it either.
        traced_call(None, SAMPLED, Call::new("S3", "HeadObject", "eu-west-1")).await;
        assert!(current().is_none());
        socket
            .set_read_timeout(Some(std::time::Duration::from_millis(200)))
            .unwrap();
        assert!(received(&socket).is_none());
    }

    #[test]
    fn headers_and_daemon_addresses_parse() {
        let (_socket, daemon) = daemon();
        let daemon = daemon.unwrap();
        assert!(Trace::sampled("Root=1-a;Parent=b", daemon.clone()).is_none());
        let trace = Trace::sampled("Root=1-a;Parent=b;Sampled=1;Lineage=x:1", daemon).unwrap();
        assert_eq!((trace.root.as_str(), trace.parent.as_str()), ("1-a", "b"));
        assert_eq!(
            daemon_address("169.254.79.129:2000"),
            Some("169.254.79.129:2000".parse().unwrap())
        );
        assert_eq!(
            daemon_address("tcp:127.0.0.1:2000 udp:127.0.0.1:2001"),
            Some("127.0.0.1:2001".parse().unwrap())
        );
        assert_eq!(daemon_address("nonsense"), None);
    }
}
