//! `GET /healthz`: whether the server can reach its storage, for a load balancer or a process
//! supervisor. It takes no key and says nothing about any tenant: `200 {"status":"ok"}`, or
//! `503 {"status":"unavailable"}` when a store does not answer (the cause goes to the log).

use http::{Method, StatusCode};

use attachments::http::Response;
use attachments::service::App;

/// Answers the health check.
pub async fn check(app: &App, method: &Method) -> Response {
    if method != Method::GET && method != Method::HEAD {
        let mut r = attachments::http::json(
            StatusCode::METHOD_NOT_ALLOWED,
            &serde_json::json!({ "error": "method not allowed" }),
        );
        r.headers_mut().insert(
            http::header::ALLOW,
            http::HeaderValue::from_static("GET, HEAD"),
        );
        return r;
    }
    let mut resp = match app.storage_reachable().await {
        Ok(()) => attachments::http::json(StatusCode::OK, &serde_json::json!({ "status": "ok" })),
        Err(e) => {
            tracing::error!(error = %e, "health check: storage unreachable");
            attachments::http::json(
                StatusCode::SERVICE_UNAVAILABLE,
                &serde_json::json!({ "status": "unavailable" }),
            )
        }
    };
    // A stale health answer is worse than none.
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    if method == Method::HEAD {
        *resp.body_mut() = bytes::Bytes::new();
    }
    resp
}
