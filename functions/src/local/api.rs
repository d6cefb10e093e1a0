//! The API side of the local server: a request for a route of the table has its key checked
//! from its headers before its body is read, its body read whole (within the request limit, and
//! cut if it stalls), and then goes to the route table as a Lambda event would.

use bytes::Bytes;
use http::{header, StatusCode};
use hyper::body::Incoming;

use super::body::{self, BodyError};
use attachments::http::{query_param, routes, Response};
use attachments::service::App;

/// Serves one API request.
pub async fn serve(
    app: &std::sync::Arc<App>,
    req: http::Request<Incoming>,
    idle: std::time::Duration,
) -> Response {
    let (parts, body) = req.into_parts();
    let errors = routes::errors_for_path(parts.uri.path());
    let limit = app.limits.max_upload_bytes as u64;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return too_large(errors, limit);
    }
    // Most requests (every GET) have no body, and one without a known key never has its body
    // read: its route refuses it with its own envelope, and nobody without a key can make the
    // server hold a body.
    let bytes = if hyper::body::Body::is_end_stream(&body) || !has_known_key(app, &parts).await {
        Bytes::new()
    } else {
        match body::collect(body, limit, idle).await {
            Ok(b) => b,
            Err(BodyError::TooLarge) => return too_large(errors, limit),
            Err(e @ BodyError::Idle(_)) => {
                return errors(StatusCode::REQUEST_TIMEOUT, &e.to_string())
            }
            Err(e @ BodyError::Broken(_)) => {
                return errors(StatusCode::BAD_REQUEST, &e.to_string())
            }
        }
    };
    routes::dispatch(app, http::Request::from_parts(parts, bytes)).await
}

/// Whether the request presents a key the service knows, wherever a route may take it (Crafter's
/// routes also read `accessTokenId` from the URL; the route itself applies its own rule).
async fn has_known_key(app: &App, parts: &http::request::Parts) -> bool {
    let head = http::Request::from_parts(parts.clone(), Bytes::new());
    let key =
        attachments::http::presented_key(&head).or_else(|| query_param(&head, "accessTokenId"));
    app.knows_key(key.as_deref()).await
}

fn too_large(errors: routes::ErrorRenderer, limit: u64) -> Response {
    errors(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("the request body is larger than the limit of {limit} bytes"),
    )
}
