//! The AWS calls as X-Ray subsegments. Every call of the AWS SDK's clients runs in an
//! [`aws_span`] (opened and closed around it by an interceptor, `store::call_spans`); with
//! active tracing, Lambda hands each sampled invocation a trace header
//! (`Root=…;Parent=…;Sampled=1`, which the Lambda runtime's own span records as
//! `xrayTraceId`) and runs the X-Ray daemon beside the function. This layer turns each closed
//! call span under a sampled invocation into a subsegment document of the function's segment
//! and sends it to the daemon over UDP (`AWS_XRAY_DAEMON_ADDRESS`), as the X-Ray SDKs of other
//! languages do: no API call, no extension, a datagram per call.
//!
//! The X-Ray crates for Rust are young (xray-lite is at 0.0.x: its SDK interceptor is attached
//! to each request by hand, and it reads the trace from `_X_AMZN_TRACE_ID`, which the runtime
//! leaves unset in its concurrent mode), and the OpenTelemetry path needs a collector layer in
//! every function (a second process, and seconds of cold start); the daemon's protocol is a
//! header line and a JSON document, which is all this writes.

use std::net::{SocketAddr, UdpSocket};
use std::time::SystemTime;

use serde_json::{json, Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::Subscriber;
use tracing_subscriber::filter::{filter_fn, FilterFn};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// The target of the AWS call spans.
pub const AWS_TARGET: &str = "attachments::aws";
/// The span the Lambda runtime opens around each invocation, with the trace header.
const INVOKE_SPAN: &str = "Lambda runtime invoke";
const INVOKE_TRACE_FIELD: &str = "xrayTraceId";
/// What precedes every document sent to the daemon.
const DAEMON_HEADER: &str = "{\"format\": \"json\", \"version\": 1}\n";

/// The span of one AWS call (retries included): `service` is X-Ray's name for it (`DynamoDB`,
/// `S3`), `resource` the bucket where there is one. The interceptor records `status`,
/// `request_id`, `attempts`, `error_code` (and `resource`) as it learns them.
pub fn aws_span(
    service: &str,
    operation: &str,
    region: &str,
    resource: Option<&str>,
) -> tracing::Span {
    tracing::info_span!(
        target: AWS_TARGET,
        "aws",
        service = service,
        operation = operation,
        region = region,
        resource = resource,
        status = tracing::field::Empty,
        request_id = tracing::field::Empty,
        attempts = tracing::field::Empty,
        error_code = tracing::field::Empty,
    )
}

/// The spans this layer reads: the invocation's and the AWS calls', whatever `RUST_LOG` says.
pub fn interest() -> FilterFn<fn(&tracing::Metadata<'_>) -> bool> {
    filter_fn(read_by_this_layer)
}

fn read_by_this_layer(meta: &tracing::Metadata<'_>) -> bool {
    meta.is_span() && (meta.name() == INVOKE_SPAN || meta.target() == AWS_TARGET)
}

/// An invocation's trace, when X-Ray sampled it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceHeader {
    pub root: String,
    pub parent: String,
}

impl TraceHeader {
    /// Parses `Root=…;Parent=…;Sampled=1`; `None` when not sampled or incomplete.
    pub fn sampled(header: &str) -> Option<Self> {
        let (mut root, mut parent, mut sampled) = (None, None, false);
        for part in header.split(';') {
            match part.trim().split_once('=') {
                Some(("Root", v)) => root = Some(v.to_owned()),
                Some(("Parent", v)) => parent = Some(v.to_owned()),
                Some(("Sampled", v)) => sampled = v == "1",
                _ => {}
            }
        }
        match (root, parent, sampled) {
            (Some(root), Some(parent), true) => Some(Self { root, parent }),
            _ => None,
        }
    }
}

/// Where the daemon listens: `host:port`, or the UDP one of `tcp:host:port udp:host:port`.
pub fn daemon_address(value: &str) -> Option<SocketAddr> {
    let udp = value
        .split_whitespace()
        .find_map(|p| p.strip_prefix("udp:"))
        .unwrap_or(value.trim());
    udp.parse().ok()
}

/// The layer that sends the subsegments.
#[derive(Debug)]
pub struct XrayLayer {
    socket: UdpSocket,
    daemon: SocketAddr,
}

impl XrayLayer {
    /// Sends to `daemon`; `None` when no socket can be had.
    pub fn new(daemon: SocketAddr) -> Option<Self> {
        let local: SocketAddr = if daemon.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(local).ok()?;
        // A send must never hold up a request.
        socket.set_nonblocking(true).ok()?;
        Some(Self { socket, daemon })
    }

    /// The layer for `AWS_XRAY_DAEMON_ADDRESS`, which Lambda sets; `None` without it.
    pub fn from_env() -> Option<Self> {
        let addr = std::env::var("AWS_XRAY_DAEMON_ADDRESS").ok()?;
        Self::new(daemon_address(&addr)?)
    }

    fn send(&self, doc: &Value) {
        let datagram = format!("{DAEMON_HEADER}{doc}");
        // Lost datagrams lose a subsegment, never a request: errors are ignored.
        let _ = self.socket.send_to(datagram.as_bytes(), self.daemon);
    }
}

/// What a call span has recorded.
#[derive(Debug, Default)]
struct Call {
    start: f64,
    fields: Map<String, Value>,
}

impl Visit for Call {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.fields.insert(field.name().into(), json!(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.fields.insert(field.name().into(), json!(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.fields.insert(field.name().into(), json!(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.fields
            .insert(field.name().into(), json!(format!("{value:?}")));
    }
}

/// The trace header field of the invocation span.
#[derive(Default)]
struct HeaderField(Option<String>);

impl Visit for HeaderField {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == INVOKE_TRACE_FIELD {
            self.0 = Some(value.to_owned());
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == INVOKE_TRACE_FIELD {
            self.0 = Some(format!("{value:?}").trim_matches('"').to_owned());
        }
    }
}

fn epoch_seconds() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn segment_id() -> String {
    let mut raw = [0u8; 8];
    // Without randomness (never on Lambda), the clock's nanoseconds still tell calls apart.
    if getrandom::fill(&mut raw).is_err() {
        raw = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() as u64).to_be_bytes();
    }
    hex::encode(raw)
}

/// The subsegment document of a finished call.
fn subsegment(call: &Call, trace: &TraceHeader, end: f64) -> Value {
    let field = |name: &str| call.fields.get(name).cloned();
    let service = field("service")
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "AWS".into());
    let mut aws = Map::new();
    for (from, to) in [
        ("operation", "operation"),
        ("region", "region"),
        ("request_id", "request_id"),
    ] {
        if let Some(v) = field(from) {
            aws.insert(to.into(), v);
        }
    }
    if let Some(attempts) = field("attempts").and_then(|v| v.as_u64()) {
        aws.insert("retries".into(), json!(attempts.saturating_sub(1)));
    }
    if let Some(resource) = field("resource") {
        let key = if service == "S3" {
            "bucket_name"
        } else {
            "table_name"
        };
        aws.insert(key.into(), resource);
    }
    let mut doc = json!({
        "name": service,
        "id": segment_id(),
        "trace_id": trace.root,
        "parent_id": trace.parent,
        "type": "subsegment",
        "namespace": "aws",
        "start_time": call.start,
        "end_time": end,
        "aws": aws,
    });
    let status = field("status").and_then(|v| v.as_u64());
    if let Some(s) = status {
        doc["http"] = json!({ "response": { "status": s } });
    }
    let code = field("error_code").and_then(|v| v.as_str().map(str::to_owned));
    let throttled = status == Some(429)
        || code.as_deref().is_some_and(|c| {
            c.contains("Throttl")
                || c == "SlowDown"
                || c == "ProvisionedThroughputExceededException"
        });
    match status {
        _ if throttled => {
            doc["throttle"] = json!(true);
            doc["error"] = json!(true);
        }
        Some(s) if (400..500).contains(&s) => doc["error"] = json!(true),
        Some(s) if s >= 500 => doc["fault"] = json!(true),
        // No answer at all (a broken connection, a timeout): a fault.
        None if code.is_some() => doc["fault"] = json!(true),
        _ => {}
    }
    if let Some(c) = code {
        doc["cause"] = json!({ "exceptions": [{ "id": segment_id(), "type": c, "message": c }] });
    }
    doc
}

impl<S> tracing_subscriber::Layer<S> for XrayLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let meta = attrs.metadata();
        if meta.name() == INVOKE_SPAN {
            let mut header = HeaderField::default();
            attrs.record(&mut header);
            if let Some(trace) = header.0.as_deref().and_then(TraceHeader::sampled) {
                span.extensions_mut().insert(trace);
            }
        } else if meta.target() == AWS_TARGET {
            let mut call = Call {
                start: epoch_seconds(),
                ..Default::default()
            };
            attrs.record(&mut call);
            span.extensions_mut().insert(call);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            if let Some(call) = span.extensions_mut().get_mut::<Call>() {
                values.record(call);
            }
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else {
            return;
        };
        let Some(call) = span.extensions_mut().remove::<Call>() else {
            return;
        };
        let trace = span
            .scope()
            .skip(1)
            .find_map(|s| s.extensions().get::<TraceHeader>().cloned());
        if let Some(trace) = trace {
            self.send(&subsegment(&call, &trace, epoch_seconds()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::prelude::*;

    const SAMPLED: &str =
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

    fn daemon() -> (UdpSocket, SocketAddr) {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let addr = s.local_addr().unwrap();
        (s, addr)
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

    fn traced(addr: SocketAddr, header: &str, f: impl FnOnce()) {
        let layer = XrayLayer::new(addr).unwrap().with_filter(interest());
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let invoke = tracing::info_span!(
                "Lambda runtime invoke",
                requestId = "r-1",
                xrayTraceId = header
            );
            let _in = invoke.enter();
            f();
        });
    }

    #[test]
    fn a_call_under_a_sampled_invocation_is_a_subsegment_of_its_segment() {
        let (daemon, addr) = daemon();
        traced(addr, SAMPLED, || {
            let call = aws_span("DynamoDB", "GetItem", "eu-west-1", None);
            call.record("status", 200u64);
            call.record("request_id", "REQ123");
            call.record("attempts", 2u64);
        });
        let doc = received(&daemon).expect("a subsegment");
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

    #[test]
    fn failures_are_marked_and_unsampled_invocations_send_nothing() {
        let (daemon, addr) = daemon();
        traced(addr, SAMPLED, || {
            let call = aws_span("S3", "GetObject", "eu-west-1", Some("files"));
            call.record("status", 503u64);
            call.record("error_code", "SlowDown");
        });
        let doc = received(&daemon).unwrap();
        assert_eq!(doc["aws"]["bucket_name"], "files");
        assert_eq!(doc["throttle"], true);
        assert_eq!(doc["cause"]["exceptions"][0]["type"], "SlowDown");

        traced(addr, &SAMPLED.replace("Sampled=1", "Sampled=0"), || {
            drop(aws_span("S3", "HeadObject", "eu-west-1", None));
        });
        // Outside any invocation there is no trace to join either.
        let layer = XrayLayer::new(addr).unwrap().with_filter(interest());
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            drop(aws_span("S3", "HeadObject", "eu-west-1", None));
        });
        daemon
            .set_read_timeout(Some(std::time::Duration::from_millis(200)))
            .unwrap();
        assert!(received(&daemon).is_none());
    }

    #[test]
    fn headers_and_daemon_addresses_parse() {
        assert_eq!(TraceHeader::sampled("Root=1-a;Parent=b"), None);
        assert_eq!(
            TraceHeader::sampled("Root=1-a;Parent=b;Sampled=1;Lineage=x:1"),
            Some(TraceHeader {
                root: "1-a".into(),
                parent: "b".into()
            })
        );
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
