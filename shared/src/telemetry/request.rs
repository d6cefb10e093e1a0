//! One log line per request, from the Lambda functions and the local server alike: route,
//! method, path (never the query string, where Crafter's clients put their key), status,
//! latency, bytes in and out, the tenant, and the request ids of Lambda and API Gateway.
//! A request runs in a [`scope`] whose record the use cases fill as they go (the tenant on a
//! successful authentication, the metrics they count); the server logs it with the response
//! ([`finish`]), so nothing authenticates twice for the log, and no key reaches the record.

use std::cell::RefCell;
use std::future::Future;
use std::time::Duration;

use serde_json::{json, Map};

use super::emf::{self, Metric, Sample};

/// What a request's handling recorded about itself.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Record {
    /// The tenant of the key the request authenticated with.
    pub tenant: Option<String>,
    /// The route that served it, when the server did not know it beforehand.
    pub route: Option<&'static str>,
    /// Metrics to emit with the request's line.
    pub samples: Vec<Sample>,
}

tokio::task_local! {
    static CURRENT: RefCell<Record>;
}

/// Runs `f` as one request; returns its output and what it recorded.
pub async fn scope<F: Future>(f: F) -> (F::Output, Record) {
    CURRENT
        .scope(RefCell::default(), async move {
            (f.await, CURRENT.with(RefCell::take))
        })
        .await
}

/// The request authenticated as `tenant` (outside a request, nothing happens).
pub fn set_tenant(tenant: &str) {
    let _ = CURRENT.try_with(|r| r.borrow_mut().tenant = Some(tenant.to_owned()));
}

/// The request is served by the route (or part of the local server) named `name`.
pub fn set_route(name: &'static str) {
    let _ = CURRENT.try_with(|r| r.borrow_mut().route = Some(name));
}

/// Adds a metric sample to the current request's record; outside any request (the local
/// sweeper, the admin command), emits it at once.
pub(super) fn record(sample: Sample) {
    let recorded = CURRENT.try_with(|r| r.borrow_mut().samples.push(sample));
    if recorded.is_err() {
        emf::emit(&[sample], &Map::new());
    }
}

/// How a request went, as its line says it.
#[derive(Debug, Clone, Default)]
pub struct Outcome<'a> {
    pub route: &'a str,
    pub method: &'a str,
    /// The path alone: a query string may hold a key.
    pub path: &'a str,
    pub status: u16,
    pub latency: Duration,
    /// The request body's length (what was read, or declared when it was not read).
    pub bytes_in: Option<u64>,
    /// The response body's length, when known before it is sent.
    pub bytes_out: Option<u64>,
    /// Lambda's request id of the invocation.
    pub lambda_request_id: Option<&'a str>,
    /// API Gateway's request id (also in the API's access log).
    pub api_request_id: Option<&'a str>,
    /// The X-Ray trace (`Root=…` of the trace header).
    pub trace_id: Option<&'a str>,
}

/// The longest path a line repeats: a client chooses it.
const MAX_PATH_CHARS: usize = 512;

/// Logs the request's line and emits its metrics. A 4xx whose handler counted no reason of its
/// own (a refusal before any handler ran: no such route, too large, a stalled body) is counted
/// here by its status.
pub fn finish(outcome: &Outcome<'_>, mut record: Record) {
    let counted = |s: &Sample| s.metric == Metric::RejectedRequests;
    let status = http::StatusCode::from_u16(outcome.status);
    let reason = status.ok().and_then(emf::reason_of_status);
    if let (false, Some(reason)) = (record.samples.iter().any(counted), reason) {
        record.samples.push(Sample {
            metric: Metric::RejectedRequests,
            value: 1.0,
            reason: Some(reason),
        });
    }
    let path = truncated(outcome.path, MAX_PATH_CHARS);
    tracing::info!(
        // `RUST_LOG=attachments::request=off` silences the request lines.
        target: "attachments::request",
        route = outcome.route,
        method = outcome.method,
        path = path,
        status = outcome.status,
        latency_ms = (outcome.latency.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0,
        bytes_in = outcome.bytes_in,
        bytes_out = outcome.bytes_out,
        tenant = record.tenant.as_deref(),
        lambda_request_id = outcome.lambda_request_id,
        api_request_id = outcome.api_request_id,
        trace_id = outcome.trace_id,
        "request"
    );
    // Beside the metrics' values, what finds the request they came from.
    let ids = [
        ("route", Some(outcome.route)),
        ("lambda_request_id", outcome.lambda_request_id),
        ("api_request_id", outcome.api_request_id),
    ];
    let ids = ids.map(|(name, id)| Some((name.to_owned(), json!(id?))));
    emf::emit(&record.samples, &ids.into_iter().flatten().collect());
}

fn truncated(s: &str, max_chars: usize) -> &str {
    s.char_indices().nth(max_chars).map_or(s, |(i, _)| &s[..i])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::metrics;

    #[tokio::test]
    async fn a_scope_collects_what_its_request_records_and_nothing_leaks_out() {
        let (out, rec) = scope(async {
            set_tenant("acme");
            set_route("native-upload");
            metrics::upload(42);
            tokio::task::yield_now().await;
            metrics::rejected("too_large");
            7
        })
        .await;
        assert_eq!(out, 7);
        assert_eq!(rec.tenant.as_deref(), Some("acme"));
        assert_eq!(rec.route, Some("native-upload"));
        assert_eq!(rec.samples.len(), 3);
        // Outside a scope nothing is recorded (and no scope sees another's records).
        set_tenant("other");
        metrics::upload(1);
        let (_, empty) = scope(async {}).await;
        assert_eq!(empty, Record::default());
    }

    #[test]
    fn paths_are_cut_and_trace_roots_found() {
        assert_eq!(truncated("abcdé", 4), "abcd");
        assert_eq!(truncated("ab", 4), "ab");
        assert_eq!(
            crate::telemetry::xray::field(
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
                "Root"
            ),
            Some("1-5759e988-bd862e3fe1be46a994272793")
        );
        assert_eq!(crate::telemetry::xray::field("Parent=1", "Root"), None);
    }
}
