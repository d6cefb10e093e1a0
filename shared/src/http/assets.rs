//! The media bank's API v2 attachments of assets and projects: an attachment is created as a
//! placeholder with a title, and gets its file later through the native API. Key in `X-API-KEY`,
//! JSON in the documentation's field order, errors as `{"error":"…"}`; `openapi.yaml` says what
//! we chose where the documentation is silent (`project_id` always null, 415 and 422 for bodies).

use std::sync::Arc;

use http::{header, StatusCode};
use serde_json::{json, Value};
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

use super::{json as json_response, param, presented_key, Answer, Dialect, DialectError};
use super::{Request, Response};
use crate::domain::{Attachment, ParentId, ParentKind, ParentRef, Principal};
use crate::service::{App, AttachmentFields, ServiceError};

/// The longest title, in characters.
const MAX_TITLE_CHARS: usize = 255;

/// Which parents a route serves: assets and projects are each a dialect of their own, since this
/// API's "not found" names which.
#[derive(Debug)]
pub struct Kind<const PROJECT: bool>;
/// `/api/v2/assets/{asset_id}/…`.
pub type Assets = Kind<false>;
/// `/api/v2/projects/{project_id}/…`.
pub type Projects = Kind<true>;

impl<const PROJECT: bool> Kind<PROJECT> {
    /// The parent kind, the word of "… not found", and (with `_id`) the path parameter.
    const NAME: &'static str = if PROJECT { "project" } else { "asset" };
}

/// This API's envelope: `{"error":"…"}`.
impl<const PROJECT: bool> Dialect for Kind<PROJECT> {
    const INTERNAL: &'static str = "Internal Server Error";

    fn envelope(_status: StatusCode, message: &str) -> Value {
        json!({ "error": message })
    }

    fn refusal(e: &ServiceError) -> Option<Response> {
        // The statuses are every dialect's; the messages are this API's.
        let message = match e {
            ServiceError::Unauthorized => "Unauthorized".into(),
            ServiceError::NotFound(_) => format!("{} not found", Self::NAME),
            _ => return None,
        };
        Some(Self::error(super::error::status(e), &message))
    }
}

/// `2023-11-27T09:42:52.099Z`: UTC, milliseconds.
pub fn iso_millis(t: OffsetDateTime) -> String {
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    let t = t.to_offset(UtcOffset::UTC);
    t.format(format).unwrap_or_default()
}

/// An attachment as the documentation shows it, every field in its order, unset ones null.
pub fn attachment_json(a: &Attachment) -> Value {
    let c = a.content.as_ref();
    json!({
        "id": a.id.to_string(),
        "external_id": a.external_id,
        "parent_id": a.parent.id.as_str(),
        "project_id": null,
        "owner": a.owner,
        "title": a.title,
        "description": a.description,
        "category": a.category,
        "tags": a.tags,
        "ai_tags": [],
        "status": "open",
        "media_type": c.map_or("placeholder", |c| c.content_type.as_str()),
        "original_filename": c.map(|c| c.file_name.as_str()),
        "drop_folder_id": null,
        "md5_sum": c.map(|c| c.md5.as_str()),
        "created_date": iso_millis(a.created_at),
        "modification_date": iso_millis(a.updated_at),
        "deleted": null,
    })
}

/// Authenticates, then checks the asset or project is registered (a malformed id names none).
async fn caller_and_parent<const PROJECT: bool>(
    app: &App,
    req: &Request,
) -> Result<(Principal, ParentRef), DialectError<Kind<PROJECT>>> {
    let who = app.authenticate(presented_key(req).as_deref()).await?;
    let id = param(req, &format!("{}_id", Kind::<PROJECT>::NAME));
    let id = ParentId::parse(id).map_err(|_| ServiceError::NotFound("parent"))?;
    let parent = ParentRef::new(ParentKind::parse(Kind::<PROJECT>::NAME)?, id);
    app.get_parent(&who, &parent).await?;
    Ok((who, parent))
}

/// The title of a create request, or why it is refused.
fn parse_title<D: Dialect>(req: &Request) -> Result<String, DialectError<D>> {
    let body = req.body();
    let blank = body.iter().all(u8::is_ascii_whitespace);
    let declared = req.headers().get(header::CONTENT_TYPE);
    let declared = declared.map(|v| v.to_str().unwrap_or_default());
    let essence = declared.map(|ct| ct.split(';').next().unwrap_or_default().trim());
    let is_json = essence.is_some_and(|ct| ct.eq_ignore_ascii_case("application/json"));
    if !is_json && (declared.is_some() || !blank) {
        let status = StatusCode::UNSUPPORTED_MEDIA_TYPE;
        let refused = DialectError::refused(status, "Content-Type must be application/json");
        return Err(refused);
    }
    // A blank body is an empty object (it lacks the title).
    let body: &[u8] = if blank { b"{}" } else { body };
    let invalid = |e| DialectError::bad_request(format!("The body is not valid JSON: {e}"));
    let Value::Object(obj) = serde_json::from_slice(body).map_err(invalid)? else {
        return Err(DialectError::bad_request("The body must be a JSON object"));
    };
    let missing = StatusCode::UNPROCESSABLE_ENTITY;
    let missing = || DialectError::refused(missing, "Missing parameter title");
    match obj.get("title") {
        None | Some(Value::Null) => Err(missing()),
        Some(Value::String(s)) if s.trim().is_empty() => Err(missing()),
        Some(Value::String(s)) if s.trim().chars().count() > MAX_TITLE_CHARS => {
            let too_long = format!("Title is too long (maximum is {MAX_TITLE_CHARS} characters)");
            Err(DialectError::bad_request(too_long))
        }
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(DialectError::bad_request("Title must be a String")),
    }
}

/// `GET /api/v2/{assets|projects}/{id}/attachments`.
pub async fn list<const PROJECT: bool>(app: Arc<App>, req: Request) -> Answer<Kind<PROJECT>> {
    let (who, parent) = caller_and_parent(&app, &req).await?;
    let atts = app.list_all(&who, &parent).await?;
    let items: Vec<Value> = atts.iter().map(attachment_json).collect();
    let json = json!({ "attachments": items });
    Ok(json_response(StatusCode::OK, &json))
}

/// `POST /api/v2/{assets|projects}/{id}/attachments` with `{"title":"…"}`.
pub async fn create<const PROJECT: bool>(app: Arc<App>, req: Request) -> Answer<Kind<PROJECT>> {
    let (who, parent) = caller_and_parent(&app, &req).await?;
    let title = Some(parse_title(&req)?);
    let fields = AttachmentFields {
        title,
        ..AttachmentFields::default()
    };
    let a = app.create_placeholder(&who, &parent, fields).await?;
    // The documentation answers a creation with 200, not 201.
    let json = json!({ "asset": attachment_json(&a) });
    Ok(json_response(StatusCode::OK, &json))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_with_milliseconds() {
        let t = time::macros::datetime!(2023-11-27 10:42:52.099_999 +01:00);
        assert_eq!(iso_millis(t), "2023-11-27T09:42:52.099Z");
        let t = time::macros::datetime!(2023-01-02 03:04:05 UTC);
        assert_eq!(iso_millis(t), "2023-01-02T03:04:05.000Z");
    }

    fn req(ct: Option<&str>, body: &str) -> Request {
        let mut b = http::Request::builder();
        if let Some(ct) = ct {
            b = b.header("content-type", ct);
        }
        b.body(bytes::Bytes::from(body.to_owned())).unwrap()
    }

    fn refused(r: Result<String, DialectError<Assets>>) -> (u16, Value) {
        let r = Response::from(r.unwrap_err());
        (
            r.status().as_u16(),
            serde_json::from_slice(r.body()).unwrap(),
        )
    }

    #[test]
    fn titles() {
        let j = Some("application/json; charset=utf-8");
        assert_eq!(
            parse_title::<Assets>(&req(j, r#"{"title":"x"}"#)).unwrap(),
            "x"
        );
        assert_eq!(
            parse_title::<Assets>(&req(Some("Application/JSON"), r#"{"title":"x","other":1}"#))
                .unwrap(),
            "x"
        );
        let max = "é".repeat(255);
        assert_eq!(
            parse_title::<Assets>(&req(j, &json!({ "title": max }).to_string())).unwrap(),
            max
        );
        for (ct, body, status, message) in [
            (j, "", 422, "Missing parameter title"),
            (None, "", 422, "Missing parameter title"),
            (j, "{}", 422, "Missing parameter title"),
            (j, r#"{"title":null}"#, 422, "Missing parameter title"),
            (j, r#"{"title":"  "}"#, 422, "Missing parameter title"),
            (j, r#"{"title":5}"#, 400, "Title must be a String"),
            (j, r#"{"title":["a"]}"#, 400, "Title must be a String"),
            (j, "[1]", 400, "The body must be a JSON object"),
            (
                Some("text/plain"),
                r#"{"title":"x"}"#,
                415,
                "Content-Type must be application/json",
            ),
            (
                Some("text/plain"),
                "",
                415,
                "Content-Type must be application/json",
            ),
            (
                None,
                r#"{"title":"x"}"#,
                415,
                "Content-Type must be application/json",
            ),
        ] {
            assert_eq!(
                refused(parse_title::<Assets>(&req(ct, body))),
                (status, json!({ "error": message })),
                "{ct:?} {body}"
            );
        }
        let (status, v) = refused(parse_title::<Assets>(&req(j, "{not json")));
        assert_eq!(status, 400);
        assert!(v["error"]
            .as_str()
            .unwrap()
            .starts_with("The body is not valid JSON"));
        let long = "é".repeat(256);
        assert_eq!(
            refused(parse_title::<Assets>(&req(
                j,
                &json!({ "title": long }).to_string()
            ))),
            (
                400,
                json!({"error": "Title is too long (maximum is 255 characters)"})
            )
        );
    }
}
