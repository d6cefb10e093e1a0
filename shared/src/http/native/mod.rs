//! The native API under `/v1`, the one new users program against: JSON in and out ([`views`]),
//! errors as `{"error":{"code","message"}}`.

pub mod views;

use std::sync::Arc;

use futures_util::{stream, StreamExt, TryStreamExt};
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::{empty, json as json_response, limit_param, multipart, new_file, new_files, param};
use super::{presented_key, query_values, redirect, Answer, Request, Response};
use crate::domain::Principal;
use crate::domain::{Attachment, AttachmentId, FileName, ParentId, ParentKind, ParentRef};
use crate::service::{parse_sha256, App, AttachmentFields, Completion, DirectUploadRequest};
use crate::service::{ParentDeletion, ServiceError, UploadTarget};
use crate::store::PutOutcome;
use views::{parent_json, upload_json};

pub use views::{attachment_view, AttachmentView};

/// The native API's envelope.
#[derive(Debug)]
pub struct Native;

pub type Error = super::DialectError<Native>;

impl super::Dialect for Native {
    const INTERNAL: &'static str = "internal server error";

    /// A refusal's code is its status's reason in snake case (`payload_too_large`); anything
    /// else's is `internal`.
    fn envelope(status: StatusCode, message: &str) -> serde_json::Value {
        let code = match status.canonical_reason() {
            Some(reason) if status.is_client_error() => reason.to_lowercase().replace(' ', "_"),
            _ => "internal".into(),
        };
        json!({"error": {"code": code, "message": message}})
    }
}

/// The native error envelope with a code of its own (the local server's blob store's).
pub fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let json = json!({"error": {"code": code, "message": message}});
    json_response(status, &json)
}

/// Authenticates and parses the parent of a `/v1/parents/{kind}/{id}…` path.
async fn caller_and_parent(app: &App, req: &Request) -> Result<(Principal, ParentRef), Error> {
    let who = app.authenticate(presented_key(req).as_deref()).await?;
    let kind = ParentKind::parse(param(req, "kind"))?;
    let id = ParentId::parse(param(req, "id"))?;
    Ok((who, ParentRef::new(kind, id)))
}

/// Authenticates and parses the attachment of a `/v1/attachments/{id}…` path; a malformed id
/// cannot name anything, so it is answered as an unknown one.
async fn caller_and_attachment(
    app: &App,
    req: &Request,
) -> Result<(Principal, AttachmentId), Error> {
    let who = app.authenticate(presented_key(req).as_deref()).await?;
    Ok((who, attachment_id(param(req, "id"))?))
}

/// A malformed id names no attachment.
fn attachment_id(raw: &str) -> Result<AttachmentId, ServiceError> {
    AttachmentId::parse(raw).map_err(|_| ServiceError::NotFound("attachment"))
}

/// `PUT /v1/parents/{kind}/{id}`: 201 when created, 200 when updated, 409 on a taken look-up.
pub async fn put_parent(app: Arc<App>, req: Request) -> Answer<Native> {
    let (who, key) = caller_and_parent(&app, &req).await?;
    // The optional fields; an empty body sets none.
    let blank = req.body().iter().all(u8::is_ascii_whitespace);
    let body: &[u8] = if blank { b"{}" } else { req.body() };
    let expected = "a JSON object with optional string fields source, reference, email";
    let invalid = |e| Error::bad_request(format!("the body must be {expected}: {e}"));
    let fields = serde_json::from_slice(body).map_err(invalid)?;
    let (parent, outcome) = app.put_parent(&who, key, fields).await?;
    let status = match outcome {
        PutOutcome::Created => StatusCode::CREATED,
        PutOutcome::Updated => StatusCode::OK,
    };
    Ok(json_response(status, &parent_json(&parent)))
}

/// `GET /v1/parents/{kind}/{id}`.
pub async fn get_parent(app: Arc<App>, req: Request) -> Answer<Native> {
    let (who, key) = caller_and_parent(&app, &req).await?;
    let parent = app.get_parent(&who, &key).await?;
    Ok(json_response(StatusCode::OK, &parent_json(&parent)))
}

/// `DELETE /v1/parents/{kind}/{id}`: the parent, its attachments and their files; `204` when
/// all are gone. A parent with more attachments than one request removes answers `202` with
/// how many it removed: repeating the request goes on from there.
pub async fn delete_parent(app: Arc<App>, req: Request) -> Answer<Native> {
    let (who, key) = caller_and_parent(&app, &req).await?;
    Ok(match app.delete_parent(&who, &key).await? {
        ParentDeletion::Deleted => empty(StatusCode::NO_CONTENT),
        ParentDeletion::Continuing { removed } => json_response(
            StatusCode::ACCEPTED,
            &json!({
                "status": "deleting",
                "removed": removed,
                "message": "the parent still has attachments: repeat the DELETE until it answers 204",
            }),
        ),
    })
}

/// The largest page of a listing, and the default one.
const MAX_LIMIT: usize = 1000;
const DEFAULT_LIMIT: usize = 100;

/// A listing, with its `next_cursor` (null on the last page).
#[derive(serde::Serialize)]
struct Items<'a> {
    items: Vec<AttachmentView<'a>>,
    next_cursor: &'a Option<String>,
}

/// The view with both links of a ready attachment: its download and its thumbnail.
async fn linked_view<'a>(app: &App, a: &'a Attachment) -> Result<AttachmentView<'a>, ServiceError> {
    let mut view = attachment_view(a, app.download_link(a).await?);
    view.thumbnail_url = app.thumbnail_link(a).await?;
    Ok(view)
}

/// 200 with one attachment and its links (when it has content).
async fn one_attachment(app: &App, att: &Attachment) -> Answer<Native> {
    Ok(json_response(StatusCode::OK, &linked_view(app, att).await?))
}

/// `POST /v1/parents/{kind}/{id}/attachments`: one or more `file` parts, optional labels.
pub async fn upload(app: Arc<App>, req: Request) -> Answer<Native> {
    let (who, parent) = caller_and_parent(&app, &req).await?;
    let form = multipart::parse(req, &["file"]).await?;
    // The files, and labels every file of the request gets.
    form.only("file type title description category tags external_id")?;
    let files = new_files(&form, "no part named file")?;
    let text = |name: &str| form.text(name).map(str::to_owned);
    let fields = AttachmentFields {
        label: text("type"),
        title: text("title"),
        description: text("description"),
        category: text("category"),
        tags: text("tags").map(|t| t.split(',').map(Into::into).collect()),
        external_id: text("external_id"),
    };
    let stored = app.upload_many(&who, &parent, files, fields, UploadTarget::New, None);
    let stored = stored.await?;
    let mut items = Vec::with_capacity(stored.len());
    for a in &stored {
        // The files are stored: a link that cannot be signed now must not hide that.
        items.push(linked_view(&app, a).await.unwrap_or_else(|e| {
            crate::http::log_internal(&e);
            attachment_view(a, None)
        }));
    }
    let json = json!({ "items": items });
    Ok(json_response(StatusCode::CREATED, &json))
}

/// `GET /v1/parents/{kind}/{id}/attachments?limit=&cursor=`.
pub async fn list(app: Arc<App>, req: Request) -> Answer<Native> {
    let (who, parent) = caller_and_parent(&app, &req).await?;
    let limit = limit_param(&req, MAX_LIMIT, "limit must be a number")?.unwrap_or(DEFAULT_LIMIT);
    let cursor = query_values(&req, "cursor").pop();
    let page = app.list(&who, &parent, cursor.as_deref(), limit).await?;
    let items = stream::iter(&page.items).then(|a| linked_view(&app, a));
    let items = items.try_collect().await?;
    let next_cursor = &page.next;
    Ok(json_response(StatusCode::OK, &Items { items, next_cursor }))
}

/// `GET /v1/attachments/{id}`: metadata with a download link when ready.
pub async fn get_attachment(app: Arc<App>, req: Request) -> Answer<Native> {
    let (who, id) = caller_and_attachment(&app, &req).await?;
    one_attachment(&app, &app.get(&who, id).await?).await
}

/// `GET /v1/attachments/{id}/content`: a redirect to the download link.
pub async fn get_content(app: Arc<App>, req: Request) -> Answer<Native> {
    let (who, id) = caller_and_attachment(&app, &req).await?;
    let link = app.download_link(&app.get(&who, id).await?).await?;
    let none = || Error::refused(StatusCode::CONFLICT, "the attachment has no content yet");
    Ok(redirect(&link.ok_or_else(none)?))
}

/// `DELETE /v1/attachments/{id}`.
pub async fn delete_attachment(app: Arc<App>, req: Request) -> Answer<Native> {
    let (who, id) = caller_and_attachment(&app, &req).await?;
    app.delete(&who, id).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `POST /v1/attachments/{id}/content`: one `file` part, the attachment's new content; a
/// placeholder (the asset API's) gets its first file this way, a ready attachment a new version.
pub async fn put_content(app: Arc<App>, req: Request) -> Answer<Native> {
    let (who, id) = caller_and_attachment(&app, &req).await?;
    let att = app.get(&who, id).await?;
    let form = multipart::parse(req, &["file"]).await?;
    form.only("file")?;
    let (none, many) = ("no part named file", "more than one part named file");
    let part = form.one_file(none, many).map_err(Error::bad_request)?;
    let (file, fields) = (new_file(part)?, AttachmentFields::default());
    let target = UploadTarget::Existing(id);
    let stored = app.upload(&who, &att.parent, file, fields, target, None);
    one_attachment(&app, &stored.await?).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadBody {
    file_name: String,
    content_type: String,
    size: u64,
    sha256: Option<String>,
    #[serde(rename = "type")]
    label: Option<String>,
    title: Option<String>,
    description: Option<String>,
    category: Option<String>,
    tags: Option<Vec<String>>,
    external_id: Option<String>,
    attachment_id: Option<String>,
}

/// A begin request's body, as the use case takes it.
fn upload_request(body: &[u8]) -> Result<DirectUploadRequest, Error> {
    let expected = "a JSON object with file_name, content_type and size";
    let invalid = |e| Error::bad_request(format!("the body must be {expected}: {e}"));
    let body: UploadBody = serde_json::from_slice(body).map_err(invalid)?;
    let bad = || Error::bad_request("sha256 must be 64 hex characters or base64 of 32 bytes");
    let sha256 = body.sha256.as_deref().map(parse_sha256);
    let sha256 = sha256.map(|s| s.ok_or_else(bad)).transpose()?;
    let id = body.attachment_id.as_deref();
    let attachment_id = id.map(attachment_id).transpose()?;
    Ok(DirectUploadRequest {
        file_name: FileName::parse(&body.file_name)?,
        content_type: body.content_type,
        size: body.size,
        sha256,
        fields: AttachmentFields {
            label: body.label,
            title: body.title,
            description: body.description,
            category: body.category,
            tags: body.tags,
            external_id: body.external_id,
        },
        attachment_id,
    })
}

/// `POST /v1/parents/{kind}/{id}/uploads`: a direct-to-storage upload, for files of any size.
pub async fn begin_upload(app: Arc<App>, req: Request) -> Answer<Native> {
    let (who, parent) = caller_and_parent(&app, &req).await?;
    let request = upload_request(req.body())?;
    let (att, instructions) = app.begin_upload(&who, &parent, request).await?;
    let json = upload_json(&att, &instructions);
    Ok(json_response(StatusCode::CREATED, &json))
}

/// `GET /v1/attachments/{id}/upload`: where a direct upload stands, with fresh links for the
/// parts still missing (to resume an interrupted upload).
pub async fn upload_status(app: Arc<App>, req: Request) -> Answer<Native> {
    let (who, id) = caller_and_attachment(&app, &req).await?;
    let (att, instructions) = app.upload_status(&who, id).await?;
    let json = upload_json(&att, &instructions);
    Ok(json_response(StatusCode::OK, &json))
}

/// `POST /v1/attachments/{id}/complete`: verifies the uploaded file and makes it ready (200),
/// or, too large to verify within the request, verifies it in the background (202, status
/// `verifying`).
pub async fn complete_upload(app: Arc<App>, req: Request) -> Answer<Native> {
    let (who, id) = caller_and_attachment(&app, &req).await?;
    match app.complete_upload(&who, id).await? {
        Completion::Ready(att) => one_attachment(&app, &att).await,
        Completion::Verifying(att) => Ok(json_response(
            StatusCode::ACCEPTED,
            &attachment_view(&att, None),
        )),
    }
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
        // Every code the API documents (openapi.yaml's NativeError).
        for (status, expected) in [
            (StatusCode::BAD_REQUEST, "bad_request"),
            (StatusCode::UNAUTHORIZED, "unauthorized"),
            (StatusCode::NOT_FOUND, "not_found"),
            (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            (StatusCode::CONFLICT, "conflict"),
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            (StatusCode::UNPROCESSABLE_ENTITY, "unprocessable_entity"),
            (StatusCode::SERVICE_UNAVAILABLE, "internal"),
        ] {
            assert_eq!(code(status), expected);
        }
    }
}
