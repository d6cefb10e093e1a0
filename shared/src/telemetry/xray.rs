//! The AWS calls as X-Ray subsegments. With active tracing, Lambda hands each sampled
//! invocation a trace header (`Root=…;Parent=…;Sampled=1`) and runs the X-Ray daemon beside the
//! function (`AWS_XRAY_DAEMON_ADDRESS`). An invocation runs [`traced`]; every call the AWS SDK's
//! clients make under it becomes a subsegment (`store::call_spans`), a datagram to the daemon as
//! the X-Ray SDKs of other languages send. The Rust X-Ray crates are young (xray-lite reads
//! `_X_AMZN_TRACE_ID`, unset in the runtime's concurrent mode) and OpenTelemetry needs a
//! collector layer per function (seconds of cold start); the protocol is a header and a JSON line.

use std::future::Future;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, OnceLock};

use serde_json::Value;

/// What precedes every document sent to the daemon.
const DAEMON_HEADER: &str = "{\"format\": \"json\", \"version\": 1}\n";

/// The value of `name` in a trace header (`Root=…;Parent=…;Sampled=…`).
pub fn field<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    let value = |part: &'a str| part.trim().strip_prefix(name)?.strip_prefix('=');
    header.split(';').find_map(value)
}

/// Where the daemon listens: `host:port`, or the UDP one of `tcp:host:port udp:host:port`.
pub fn daemon_address(value: &str) -> Option<SocketAddr> {
    let udp = value
        .split_whitespace()
        .find_map(|p| p.strip_prefix("udp:"))
        .unwrap_or(value.trim());
    udp.parse().ok()
}

/// A socket connected to the X-Ray daemon at `address`; `None` when none can be had.
pub fn connect(address: SocketAddr) -> Option<Arc<UdpSocket>> {
    let local = match address {
        SocketAddr::V4(_) => "0.0.0.0:0",
        SocketAddr::V6(_) => "[::]:0",
    };
    let socket = UdpSocket::bind(local).ok()?;
    socket.connect(address).ok()?;
    // A send must never hold up a request.
    socket.set_nonblocking(true).ok()?;
    Some(Arc::new(socket))
}

/// Where the invocations' subsegments go: the daemon of `AWS_XRAY_DAEMON_ADDRESS` (which Lambda
/// sets), found once; `None` without it.
pub fn daemon() -> Option<Arc<UdpSocket>> {
    static DAEMON: OnceLock<Option<Arc<UdpSocket>>> = OnceLock::new();
    let address = || std::env::var("AWS_XRAY_DAEMON_ADDRESS").ok();
    let connected = || connect(daemon_address(&address()?)?);
    DAEMON.get_or_init(connected).clone()
}

/// A sampled invocation: the trace its calls join (the `Root` and `Parent` of its header), and
/// the daemon they go to.
#[derive(Debug, Clone)]
pub struct Trace {
    pub root: String,
    pub parent: String,
    daemon: Arc<UdpSocket>,
}

impl Trace {
    /// The trace of `header`; `None` when it is not sampled or incomplete.
    pub fn sampled(header: &str, daemon: Arc<UdpSocket>) -> Option<Self> {
        field(header, "Sampled").filter(|s| *s == "1")?;
        Some(Self {
            root: field(header, "Root")?.to_owned(),
            parent: field(header, "Parent")?.to_owned(),
            daemon,
        })
    }

    /// Sends a subsegment of this trace; a lost datagram loses a subsegment, never a request.
    pub fn send(&self, subsegment: &Value) {
        let datagram = format!("{DAEMON_HEADER}{subsegment}");
        let _ = self.daemon.send(datagram.as_bytes());
    }
}

tokio::task_local! {
    static TRACE: Option<Trace>;
}

/// Runs `f` as the invocation of trace `header`: when it is sampled and there is a `daemon`, the
/// AWS calls `f` makes are sent to it as subsegments.
pub async fn traced<F: Future>(
    daemon: Option<Arc<UdpSocket>>,
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

/// Now, as X-Ray's times are written.
pub fn epoch_seconds() -> f64 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos() as f64 / 1e9
}

/// A new subsegment (or exception) id.
pub fn segment_id() -> String {
    // Without randomness (never on Lambda), the clock's nanoseconds still tell calls apart.
    let nanos = || time::OffsetDateTime::now_utc().unix_timestamp_nanos() as u64;
    format!("{:016x}", getrandom::u64().unwrap_or_else(|_| nanos()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLED: &str =
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

    fn daemon() -> (UdpSocket, Option<Arc<UdpSocket>>) {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let addr = s.local_addr().unwrap();
        (s, connect(addr))
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

    /// Sends a subsegment as the invocation of `header` would.
    async fn traced_send(daemon: Option<Arc<UdpSocket>>, header: &str) {
        traced(daemon, Some(header), async {
            if let Some(trace) = current() {
                trace.send(&serde_json::json!({ "name": "S3" }));
            }
        })
        .await;
    }

    #[tokio::test]
    async fn only_sampled_invocations_send_to_the_daemon() {
        let (socket, daemon) = daemon();
        traced_send(daemon.clone(), SAMPLED).await;
        assert_eq!(received(&socket).expect("a subsegment")["name"], "S3");

        let unsampled = SAMPLED.replace("Sampled=1", "Sampled=0");
        traced_send(daemon.clone(), &unsampled).await;
        // Without a daemon, or outside any invocation, there is nowhere to send it either.
        traced_send(None, SAMPLED).await;
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
