//! The finalize function: storage's "object created" events run the same verification as
//! `POST /v1/attachments/{id}/complete`, so a client that uploads directly to S3 and never
//! calls `complete` still ends up with a verified attachment. Both S3 notification events
//! (`Records`) and EventBridge "Object Created" events are understood; a repeated event
//! changes nothing. The same function, on a schedule, sweeps expired uploads.

use std::sync::Arc;

use lambda_http::{service_fn, LambdaEvent};
use serde_json::Value;

use crate::config::Config;
use crate::service::App;
use crate::setup;

/// The object keys an event names as created.
pub fn created_keys(event: &Value) -> Vec<String> {
    let mut keys = Vec::new();
    if let Some(records) = event.get("Records").and_then(Value::as_array) {
        for r in records {
            let created = r
                .get("eventName")
                .and_then(Value::as_str)
                .is_some_and(|n| n.starts_with("ObjectCreated"));
            if let (true, Some(k)) = (created, r.pointer("/s3/object/key").and_then(Value::as_str))
            {
                keys.push(decode_key(k));
            }
        }
    } else if event.get("detail-type").and_then(Value::as_str) == Some("Object Created") {
        if let Some(k) = event.pointer("/detail/object/key").and_then(Value::as_str) {
            keys.push(decode_key(k));
        }
    }
    keys
}

/// S3 notifications URL-encode keys (`+` for a space). Ours never need it, but decoding keeps
/// the function correct for any key it is shown.
fn decode_key(k: &str) -> String {
    let plus = k.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8()
        .map(|c| c.into_owned())
        .unwrap_or(plus)
}

/// Verifies every object an event names. Keys that name nothing of ours are ignored; a
/// storage failure is returned, so Lambda retries the event. A scheduled event runs the sweep
/// of expired uploads and unfinished deletions instead.
pub async fn handle(app: &App, event: &Value) -> Result<usize, crate::service::ServiceError> {
    if event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event") {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        return app.sweep(now).await;
    }
    let mut verified = 0;
    for key in created_keys(event) {
        if app.finalize_key(&key).await?.is_some() {
            verified += 1;
        }
    }
    Ok(verified)
}

/// The finalize function's `main`.
pub async fn run() -> Result<(), lambda_http::Error> {
    let cfg = Config::from_env()?;
    crate::telemetry::init(cfg.json_logs);
    let app: Arc<App> = setup::build(&cfg).await?.app;
    setup::load_fixtures_if_asked(&app, &cfg).await?;
    lambda_http::lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let app = app.clone();
        async move {
            let n = handle(&app, &event.payload).await?;
            tracing::info!(verified = n, "storage event handled");
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
        assert_eq!(created_keys(&s3), vec!["t/a/v", "t/b/x-y"]);
        let eb = serde_json::json!({"detail-type": "Object Created", "detail": {"object": {"key": "t/a/v"}}});
        assert_eq!(created_keys(&eb), vec!["t/a/v"]);
        assert!(created_keys(&serde_json::json!({"detail-type": "Object Deleted"})).is_empty());
    }
}
