//! The finalize function: storage's "object created" events (S3 notifications or EventBridge)
//! run the verification of `POST /v1/attachments/{id}/complete`, so a direct upload whose client
//! never calls `complete` still ends verified; a repeated event changes nothing. On a schedule,
//! it sweeps expired uploads.

use lambda_http::{service_fn, LambdaEvent};
use serde_json::Value;

use crate::config::Config;
use crate::http::decode;
use crate::service::App;
use crate::setup;

/// What an event asks of the finalize function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageEvent {
    /// Objects created: verify the uploads they finish.
    Created(Vec<String>),
    /// The hourly schedule: sweep, and report the oldest upload under way.
    Sweep,
}

/// What an event is: S3 notifications (`Records`, whose created objects it verifies; other
/// records are not for it), an EventBridge "Object Created" event, or the schedule. S3
/// URL-encodes keys (`+` for a space): ours never need it, but any key shown is decoded.
pub fn parse(event: &Value) -> Result<StorageEvent, EventError> {
    let unknown = |why: &str| EventError::Unknown(why.to_owned());
    let key = |v: &Value, at: &str| v.pointer(at).and_then(Value::as_str).map(decode);
    if let Some(records) = event.get("Records").and_then(Value::as_array) {
        let created = records.iter().filter(|r| {
            let name = r["eventName"].as_str();
            name.is_some_and(|n| n.starts_with("ObjectCreated"))
        });
        let missing = || unknown("an ObjectCreated record without s3.object.key");
        let keys = created.map(|r| key(r, "/s3/object/key").ok_or_else(missing));
        return keys.collect::<Result<_, _>>().map(StorageEvent::Created);
    }
    match event["detail-type"].as_str() {
        Some("Scheduled Event") => Ok(StorageEvent::Sweep),
        Some("Object Created") => match key(event, "/detail/object/key") {
            Some(k) => Ok(StorageEvent::Created(vec![k])),
            None => Err(unknown("an Object Created event without detail.object.key")),
        },
        Some(other) => Err(EventError::Unknown(format!("detail-type {other:?}"))),
        None => Err(unknown("neither S3 Records nor an EventBridge event")),
    }
}

/// Why handling an event failed: Lambda retries it, then hands it to the on-failure destination
/// (a dead-letter queue that `attachments-admin dlq` reads and redrives), where an operator sees
/// it. An event it cannot act on fails too, rather than being acknowledged and forgotten.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("not a storage event this function handles: {0}")]
    Unknown(String),
    #[error(transparent)]
    Service(#[from] crate::service::ServiceError),
}

/// Handles one event: verifies every object it names (ignoring keys not ours), or sweeps expired
/// uploads and unfinished deletions; answers how many uploads it verified or leftovers it swept.
pub async fn handle(app: &App, event: &Value) -> Result<usize, EventError> {
    match parse(event)? {
        StorageEvent::Sweep => {
            let now = time::OffsetDateTime::now_utc();
            let swept = app.sweep(now.unix_timestamp()).await?;
            report_oldest_unverified(app, now).await;
            Ok(swept)
        }
        StorageEvent::Created(keys) => {
            let mut verified = 0;
            for key in keys {
                verified += usize::from(app.finalize_received(&key, None).await?.is_some());
            }
            Ok(verified)
        }
    }
}

/// The age of the oldest upload under way, as a metric (zero when there is none). A failed read
/// reports nothing: the alarm treats missing data as a problem.
async fn report_oldest_unverified(app: &App, now: time::OffsetDateTime) {
    match app.oldest_unverified_upload().await {
        Ok(started) => {
            let age = started.and_then(|s| (now - s).try_into().ok());
            crate::telemetry::metrics::oldest_unverified_upload(age.unwrap_or_default());
        }
        Err(e) => tracing::warn!(error = %e, "could not find the oldest unverified upload"),
    }
}

/// Handles one invocation and logs its line, as the API functions log theirs (the event's kind
/// stands for the path).
pub async fn invoke(
    app: &App,
    event: &Value,
    lambda_request_id: Option<&str>,
    trace_header: Option<&str>,
) -> Result<usize, EventError> {
    use crate::telemetry::{request, xray};
    let started = std::time::Instant::now();
    let kind = match parse(event) {
        Ok(StorageEvent::Sweep) => "sweep",
        Ok(StorageEvent::Created(_)) => "object-created",
        Err(_) => "unknown",
    };
    let traced = xray::traced(xray::daemon(), trace_header, handle(app, event));
    let (result, record) = request::scope(traced).await;
    request::finish(
        &request::Outcome {
            route: "finalize",
            method: "EVENT",
            path: kind,
            status: if result.is_ok() { 200 } else { 500 },
            latency: started.elapsed(),
            lambda_request_id,
            trace_id: trace_header.and_then(|h| xray::field(h, "Root")),
            ..Default::default()
        },
        record,
    );
    if let Err(e) = &result {
        tracing::error!(error = %e, event = kind, "storage event failed");
    }
    result
}

/// The finalize function's `main`.
pub async fn run() -> Result<(), lambda_http::Error> {
    let cfg = Config::from_env()?;
    crate::telemetry::init(&cfg);
    let app = setup::build(&cfg).await?.app;
    setup::load_fixtures_if_asked(&app, &cfg).await?;
    lambda_http::lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let app = app.clone();
        async move {
            let (ctx, event) = (event.context, event.payload);
            let trace_header = ctx.xray_trace_id.as_deref();
            let n = invoke(&app, &event, Some(&ctx.request_id), trace_header).await?;
            Ok::<_, lambda_http::Error>(serde_json::json!({ "verified": n }))
        }
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_from_both_event_shapes() {
        let s3 = serde_json::json!({"Records": [
            {"eventName": "ObjectCreated:Post", "s3": {"object": {"key": "t/a/v"}}},
            {"eventName": "ObjectRemoved:Delete", "s3": {"object": {"key": "t/a/w"}}},
            {"eventName": "ObjectCreated:CompleteMultipartUpload", "s3": {"object": {"key": "t/b/x%2Dy"}}}
        ]});
        let created = |keys: &[&str]| {
            Some(StorageEvent::Created(
                keys.iter().map(|k| k.to_string()).collect(),
            ))
        };
        assert_eq!(parse(&s3).ok(), created(&["t/a/v", "t/b/x-y"]));
        let eb = serde_json::json!({"detail-type": "Object Created", "detail": {"object": {"key": "t/a/v"}}});
        assert_eq!(parse(&eb).ok(), created(&["t/a/v"]));
        assert!(parse(&serde_json::json!({"detail-type": "Object Deleted"})).is_err());
    }

    #[test]
    fn events_it_cannot_act_on_are_errors_not_silence() {
        use serde_json::json;
        assert_eq!(
            parse(&json!({"detail-type": "Scheduled Event", "source": "aws.events"})).ok(),
            Some(StorageEvent::Sweep)
        );
        // S3 notifications of other kinds are not for it, and say so by naming no key.
        assert_eq!(
            parse(&json!({"Records": [{"eventName": "ObjectRemoved:Delete"}]})).ok(),
            Some(StorageEvent::Created(vec![]))
        );
        for bad in [
            json!({"detail-type": "Object Created", "detail": {}}),
            json!({"detail-type": "Object Deleted"}),
            json!({"Records": [{"eventName": "ObjectCreated:Put", "s3": {}}]}),
            json!({"hello": "world"}),
            json!([1, 2]),
        ] {
            assert!(parse(&bad).is_err(), "{bad}");
        }
    }
}
