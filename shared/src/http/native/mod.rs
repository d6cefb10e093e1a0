//! The native API under `/v1`: JSON in and out, errors as `{"error":{"code","message"}}`.
//! This is the API new users program against; the compatible dialects sit beside it.
//!
//! [`views`] renders the JSON; [`parents`], [`attachments`] and [`direct`] are the handlers.

mod attachments;
mod direct;
mod parents;
pub mod views;

use http::StatusCode;
use serde_json::json;

use super::Params;
use super::{json as json_response, presented_key, Request, Response};
use crate::domain::{AttachmentId, ParentId, ParentKind, ParentRef, Principal};
use crate::service::{App, ServiceError};

pub use attachments::{delete_attachment, get_attachment, get_content, list, put_content, upload};
pub use direct::{begin_upload, complete_upload, upload_status};
pub use parents::{delete_parent, get_parent, put_parent};
pub use views::{attachment_json, attachment_view, AttachmentView};

/// The native API's envelope.
#[derive(Debug)]
pub struct Native;

/// Why a native request was not served.
pub type Error = super::DialectError<Native>;

/// What a native handler returns.
type Answer = Result<Response, Error>;

impl super::Dialect for Native {
    const INTERNAL: &'static str = "internal server error";

    fn envelope(status: StatusCode, message: &str) -> serde_json::Value {
        json!({"error": {"code": code_of(status), "message": message}})
    }
}

/// The native error envelope.
pub fn error(status: StatusCode, code: &str, message: &str) -> Response {
    json_response(
        status,
        &json!({"error": {"code": code, "message": message}}),
    )
}

/// The code of a status; every 5xx is `internal`.
fn code_of(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        StatusCode::CONFLICT => "conflict",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable_entity",
        _ => "internal",
    }
}

/// Authenticates and parses the parent of a `/v1/parents/{kind}/{id}…` path.
async fn caller_and_parent(
    app: &App,
    req: &Request,
    params: &Params,
) -> Result<(Principal, ParentRef), Error> {
    let who = app.authenticate(presented_key(req).as_deref()).await?;
    let kind = ParentKind::parse(params.get("kind"))?;
    let id = ParentId::parse(params.get("id"))?;
    Ok((who, ParentRef::new(kind, id)))
}

/// Authenticates and parses the attachment of a `/v1/attachments/{id}…` path.
async fn caller_and_attachment(
    app: &App,
    req: &Request,
    params: &Params,
) -> Result<(Principal, AttachmentId), Error> {
    let who = app.authenticate(presented_key(req).as_deref()).await?;
    // A malformed id cannot name anything: answer as for an unknown id.
    let id =
        AttachmentId::parse(params.get("id")).map_err(|_| ServiceError::NotFound("attachment"))?;
    Ok((who, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(status: StatusCode) -> String {
        let r = <Native as crate::http::Dialect>::error(status, "why");
        let v: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
        v["error"]["code"].as_str().unwrap().to_owned()
    }

    #[test]
    fn each_refusal_has_its_own_code_and_only_failures_are_internal() {
        // A body that stalls is the caller's 408, not a failure of the server.
        assert_eq!(code(StatusCode::REQUEST_TIMEOUT), "request_timeout");
        assert_eq!(code(StatusCode::PAYLOAD_TOO_LARGE), "payload_too_large");
        assert_eq!(code(StatusCode::INTERNAL_SERVER_ERROR), "internal");
    }
}
