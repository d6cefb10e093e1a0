//! The native API under `/v1`: JSON in and out, errors as `{"error":{"code","message"}}`.
//! This is the API new users program against; the compatible dialects sit beside it.

use std::sync::Arc;

use http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;

use super::multipart::{self, MultipartError};
use super::routes::Params;
use super::{
    empty, json as json_response, kept_or_rendered, presented_key, query_pairs, redirect, Request,
    Response,
};
use crate::domain::{
    Attachment, AttachmentId, FileName, Parent, ParentId, ParentKind, ParentRef, Principal,
    VersionId,
};
use crate::service::answers::AnswerKey;
use crate::service::{
    App, AttachmentFields, NewFile, ParentFields, ServiceError, UploadRules, UploadTarget,
};
use crate::store::PutOutcome;

/// The native error envelope.
pub fn error(status: StatusCode, code: &str, message: &str) -> Response {
    json_response(
        status,
        &json!({"error": {"code": code, "message": message}}),
    )
}

fn code_of(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::CONFLICT => "conflict",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable_entity",
        _ => "internal",
    }
}

/// Errors the router produces before a handler runs, in this envelope.
pub fn router_error(status: StatusCode, message: &str) -> Response {
    error(status, code_of(status), message)
}

/// Renders a use case's error in this API's envelope.
pub fn service_error(e: ServiceError) -> Response {
    match super::status_of(&e) {
        Some(status) => error(status, code_of(status), &e.to_string()),
        None => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal server error",
        ),
    }
}

fn multipart_error(e: MultipartError) -> Response {
    error(StatusCode::BAD_REQUEST, "bad_request", &e.to_string())
}

/// A timestamp as the native API writes it: UTC, milliseconds.
fn utc_millis(t: time::OffsetDateTime) -> time::OffsetDateTime {
    let t = t.to_offset(time::UtcOffset::UTC);
    t.replace_nanosecond(t.nanosecond() / 1_000_000 * 1_000_000)
        .unwrap_or(t)
}

/// RFC 3339 in UTC with milliseconds, the one spelling every answer uses.
fn rfc3339(t: time::OffsetDateTime) -> String {
    utc_millis(t).format(&Rfc3339).unwrap_or_default()
}

/// [`rfc3339`] for the views, formatted on the stack rather than into a `String` of its own.
struct Timestamp(time::OffsetDateTime);

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // "2026-12-02T05:25:54.966Z" and any year up to 9999 fit.
        let mut buf = [0u8; 40];
        let mut w = &mut buf[..];
        utc_millis(self.0)
            .format_into(&mut w, &Rfc3339)
            .map_err(serde::ser::Error::custom)?;
        // What was written is what the cursor moved past: the count `format_into` returns
        // fell three bytes short of it for a timestamp with milliseconds (see the test).
        let n = 40 - w.len();
        let text = std::str::from_utf8(&buf[..n]).map_err(serde::ser::Error::custom)?;
        s.serialize_str(text)
    }
}

/// The native JSON of an attachment, as a value (for answers that nest it).
pub fn attachment_json(a: &Attachment, download_url: Option<String>) -> Value {
    serde_json::to_value(attachment_view(a, download_url)).unwrap_or(Value::Null)
}

#[derive(serde::Serialize)]
struct ParentView<'a> {
    kind: &'a str,
    id: &'a str,
}

/// The fields of the native attachment JSON, in their documented order.
#[derive(serde::Serialize)]
pub struct AttachmentView<'a> {
    id: AttachmentId,
    parent: ParentView<'a>,
    file_name: Option<&'a str>,
    original_file_name: Option<&'a str>,
    extension: Option<std::borrow::Cow<'a, str>>,
    content_type: Option<&'a str>,
    size: Option<u64>,
    md5: Option<&'a str>,
    sha256: Option<&'a str>,
    #[serde(rename = "type")]
    label: &'a str,
    title: &'a Option<String>,
    description: &'a Option<String>,
    category: &'a Option<String>,
    tags: &'a [String],
    status: &'a str,
    owner: &'a str,
    external_id: &'a Option<String>,
    version_id: Option<VersionId>,
    created_at: Timestamp,
    updated_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    download_url: Option<String>,
    /// A PNG of at most 256 px (the image itself, or an icon of the file's family), when ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    thumbnail_url: Option<String>,
    /// Why the last direct upload was refused (absent when nothing was).
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<&'a str>,
}

/// Most extensions are lowercase already: those are borrowed, not copied.
fn lowercase(s: &str) -> std::borrow::Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        s.to_ascii_lowercase().into()
    } else {
        s.into()
    }
}

/// The native JSON of an attachment, serialised straight from the model (no intermediate map):
/// the hot path of every listing.
pub fn attachment_view(a: &Attachment, download_url: Option<String>) -> AttachmentView<'_> {
    let c = a.content.as_ref();
    AttachmentView {
        id: a.id,
        parent: ParentView {
            kind: a.parent.kind.as_str(),
            id: a.parent.id.as_str(),
        },
        file_name: c.map(|c| c.file_name.as_str()),
        original_file_name: c.map(|c| c.file_name.stem()),
        extension: c.map(|c| lowercase(c.file_name.extension())),
        content_type: c.map(|c| c.content_type.as_str()),
        size: c.map(|c| c.size),
        md5: c.map(|c| c.md5.as_str()),
        sha256: c.map(|c| c.sha256.as_str()),
        label: &a.label,
        title: &a.title,
        description: &a.description,
        category: &a.category,
        tags: &a.tags,
        status: a.status.as_str(),
        owner: &a.owner,
        external_id: &a.external_id,
        version_id: c.map(|c| c.id),
        created_at: Timestamp(a.created_at),
        updated_at: Timestamp(a.updated_at),
        download_url,
        thumbnail_url: None,
        problem: a.problem.as_deref(),
    }
}

/// The view with both links of a ready attachment: its download and its thumbnail.
async fn linked_view<'a>(app: &App, a: &'a Attachment) -> Result<AttachmentView<'a>, ServiceError> {
    let mut view = attachment_view(a, app.download_link(a).await?);
    view.thumbnail_url = app.thumbnail_link(a).await?;
    Ok(view)
}

/// 200 with one attachment and its download link (when it has content).
async fn one_attachment(app: &App, att: &Attachment) -> Response {
    match linked_view(app, att).await {
        Ok(view) => json_response(StatusCode::OK, &view),
        Err(e) => service_error(e),
    }
}

fn parent_json(p: &Parent) -> Value {
    json!({
        "kind": p.key.kind.as_str(),
        "id": p.key.id.as_str(),
        "source": p.source,
        "reference": p.reference,
        "email": p.email,
        "created_at": rfc3339(p.created_at),
        "updated_at": rfc3339(p.updated_at),
    })
}

/// Authenticates and parses the parent of a `/v1/parents/{kind}/{id}…` path.
async fn caller_and_parent(
    app: &App,
    req: &Request,
    params: &Params,
) -> Result<(Principal, ParentRef), Response> {
    let who = app
        .authenticate(presented_key(req).as_deref())
        .await
        .map_err(service_error)?;
    let kind = ParentKind::parse(params.get("kind")).map_err(|e| service_error(e.into()))?;
    let id = ParentId::parse(params.get("id")).map_err(|e| service_error(e.into()))?;
    Ok((who, ParentRef::new(kind, id)))
}

async fn caller_and_attachment(
    app: &App,
    req: &Request,
    params: &Params,
) -> Result<(Principal, AttachmentId), Response> {
    let who = app
        .authenticate(presented_key(req).as_deref())
        .await
        .map_err(service_error)?;
    // A malformed id cannot name anything: answer as for an unknown id.
    let id = AttachmentId::parse(params.get("id"))
        .map_err(|_| service_error(ServiceError::NotFound("attachment")))?;
    Ok((who, id))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ParentBody {
    source: Option<String>,
    reference: Option<String>,
    email: Option<String>,
}

/// `PUT /v1/parents/{kind}/{id}`: 201 when created, 200 when updated, 409 on a taken look-up.
pub async fn put_parent(app: Arc<App>, req: Request, params: Params) -> Response {
    let (who, key) = match caller_and_parent(&app, &req, &params).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let body = req.body();
    let fields = if body.iter().all(u8::is_ascii_whitespace) {
        ParentFields::default()
    } else {
        match serde_json::from_slice::<ParentBody>(body) {
            Ok(b) => ParentFields {
                source: b.source,
                reference: b.reference,
                email: b.email,
            },
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    &format!("the body must be a JSON object with optional string fields source, reference, email: {e}"),
                )
            }
        }
    };
    match app.put_parent(&who, key, fields).await {
        Ok((parent, outcome)) => {
            let status = match outcome {
                PutOutcome::Created => StatusCode::CREATED,
                PutOutcome::Updated => StatusCode::OK,
            };
            json_response(status, &parent_json(&parent))
        }
        Err(e) => service_error(e),
    }
}

/// `GET /v1/parents/{kind}/{id}`.
pub async fn get_parent(app: Arc<App>, req: Request, params: Params) -> Response {
    let (who, key) = match caller_and_parent(&app, &req, &params).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    match app.get_parent(&who, &key).await {
        Ok(p) => json_response(StatusCode::OK, &parent_json(&p)),
        Err(e) => service_error(e),
    }
}

/// `DELETE /v1/parents/{kind}/{id}`: the parent, its attachments and their files.
pub async fn delete_parent(app: Arc<App>, req: Request, params: Params) -> Response {
    let (who, key) = match caller_and_parent(&app, &req, &params).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    match app.delete_parent(&who, &key).await {
        Ok(()) => empty(StatusCode::NO_CONTENT),
        Err(e) => service_error(e),
    }
}

/// `POST /v1/parents/{kind}/{id}/attachments`: one or more `file` parts, optional labels.
pub async fn upload(app: Arc<App>, req: Request, params: Params) -> Response {
    let (who, parent) = match caller_and_parent(&app, &req, &params).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let (parts, body) = req.into_parts();
    let form = match multipart::parse(&parts.headers, body, &["file"]).await {
        Ok(f) => f,
        Err(e) => return multipart_error(e),
    };
    if form.files.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the form has no part named file",
        );
    }
    let mut files = Vec::with_capacity(form.files.len());
    for part in &form.files {
        let name = match part.file_name.as_deref().map(FileName::parse) {
            Some(Ok(n)) => n,
            Some(Err(e)) => return service_error(e.into()),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "every file part needs a filename",
                )
            }
        };
        files.push(NewFile {
            file_name: name,
            bytes: part.bytes.clone(),
        });
    }
    let fields = AttachmentFields {
        label: form.text("type").map(str::to_owned),
        title: form.text("title").map(str::to_owned),
        description: form.text("description").map(str::to_owned),
        category: form.text("category").map(str::to_owned),
        tags: form
            .text("tags")
            .map(|t| t.split(',').map(str::to_owned).collect()),
        external_id: form.text("external_id").map(str::to_owned),
    };
    let stored = match app
        .upload_many(
            &who,
            &parent,
            files,
            fields,
            UploadTarget::New,
            UploadRules::default(),
        )
        .await
    {
        Ok(s) => s,
        Err(e) => return service_error(e),
    };
    let mut items = Vec::with_capacity(stored.len());
    for a in &stored {
        let view = linked_view(&app, a).await.unwrap_or_else(|e| {
            super::log_internal(&e);
            attachment_view(a, None)
        });
        items.push(serde_json::to_value(view).unwrap_or(Value::Null));
    }
    json_response(StatusCode::CREATED, &json!({ "items": items }))
}

/// `GET /v1/parents/{kind}/{id}/attachments?limit=&cursor=`.
pub async fn list(app: Arc<App>, req: Request, params: Params) -> Response {
    let (who, parent) = match caller_and_parent(&app, &req, &params).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let mut limit = 100usize;
    let mut cursor = None;
    for (k, v) in query_pairs(&req) {
        match k.as_str() {
            "limit" => match v.parse::<usize>() {
                Ok(n) if (1..=1000).contains(&n) => limit = n,
                _ => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "bad_request",
                        "limit must be a number from 1 to 1000",
                    )
                }
            },
            "cursor" => cursor = Some(v),
            _ => {}
        }
    }
    let key = AnswerKey::new(
        super::routes::NATIVE_LIST.name,
        &who,
        format!(
            "{:?} {:?} {limit} {cursor:?}",
            parent.kind.as_str(),
            parent.id.as_str()
        ),
    );
    kept_or_rendered(&app, key, list_page(&app, &who, &parent, cursor, limit)).await
}

async fn list_page(
    app: &App,
    who: &Principal,
    parent: &ParentRef,
    cursor: Option<String>,
    limit: usize,
) -> Response {
    match app.list(who, parent, cursor.as_deref(), limit).await {
        Ok(page) => {
            #[derive(serde::Serialize)]
            struct ListView<'a> {
                items: Vec<AttachmentView<'a>>,
                next_cursor: &'a Option<String>,
            }
            let mut items = Vec::with_capacity(page.items.len());
            for a in &page.items {
                match linked_view(app, a).await {
                    Ok(view) => items.push(view),
                    Err(e) => return service_error(e),
                }
            }
            json_response(
                StatusCode::OK,
                &ListView {
                    items,
                    next_cursor: &page.next_cursor,
                },
            )
        }
        Err(e) => service_error(e),
    }
}

/// `GET /v1/attachments/{id}`: metadata with a download link when ready.
pub async fn get_attachment(app: Arc<App>, req: Request, params: Params) -> Response {
    let (who, id) = match caller_and_attachment(&app, &req, &params).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let att = match app.get_shared(&who, id).await {
        Ok(a) => a,
        Err(e) => return service_error(e),
    };
    one_attachment(&app, &att).await
}

/// `GET /v1/attachments/{id}/content`: a redirect to the download link.
pub async fn get_content(app: Arc<App>, req: Request, params: Params) -> Response {
    let (who, id) = match caller_and_attachment(&app, &req, &params).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let att = match app.get_shared(&who, id).await {
        Ok(a) => a,
        Err(e) => return service_error(e),
    };
    match app.download_link(&att).await {
        Ok(Some(link)) => redirect(&link),
        Ok(None) => error(
            StatusCode::CONFLICT,
            "conflict",
            "the attachment has no content yet",
        ),
        Err(e) => service_error(e),
    }
}

/// `DELETE /v1/attachments/{id}`.
pub async fn delete_attachment(app: Arc<App>, req: Request, params: Params) -> Response {
    let (who, id) = match caller_and_attachment(&app, &req, &params).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    match app.delete(&who, id).await {
        Ok(()) => empty(StatusCode::NO_CONTENT),
        Err(e) => service_error(e),
    }
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

fn instructions_json(i: &crate::service::UploadInstructions, expires_at: Option<i64>) -> Value {
    use crate::service::UploadInstructions as I;
    let expires = expires_at
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .map(rfc3339);
    match i {
        I::Post { url, fields } => {
            let fields: serde_json::Map<String, Value> = fields
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            json!({"method": "POST", "url": url, "fields": fields, "file_field": "file", "expires_at": expires})
        }
        I::Multipart {
            upload_id,
            part_size,
            part_count,
            links,
            received,
        } => json!({
            "method": "multipart",
            "upload_id": upload_id,
            "part_size": part_size,
            "part_count": part_count,
            "parts": links.iter().map(|(n, url)| json!({"part_number": n, "url": url})).collect::<Vec<_>>(),
            "parts_received": received.iter().map(|p| json!({"part_number": p.number, "size": p.size, "etag": p.etag})).collect::<Vec<_>>(),
            "expires_at": expires,
        }),
    }
}

/// `POST /v1/parents/{kind}/{id}/uploads`: a direct-to-storage upload, for files of any size.
pub async fn begin_upload(app: Arc<App>, req: Request, params: Params) -> Response {
    let (who, parent) = match caller_and_parent(&app, &req, &params).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let body: UploadBody = match serde_json::from_slice(req.body()) {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                &format!(
                    "the body must be a JSON object with file_name, content_type and size: {e}"
                ),
            )
        }
    };
    let file_name = match FileName::parse(&body.file_name) {
        Ok(n) => n,
        Err(e) => return service_error(e.into()),
    };
    let sha256 = match body.sha256.as_deref().map(crate::service::parse_sha256) {
        None => None,
        Some(Some(s)) => Some(s),
        Some(None) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "sha256 must be 64 hex characters or base64 of 32 bytes",
            )
        }
    };
    let attachment_id = match body.attachment_id.as_deref().map(AttachmentId::parse) {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(_)) => return service_error(ServiceError::NotFound("attachment")),
    };
    let request = crate::service::DirectUploadRequest {
        file_name,
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
    };
    match app.begin_upload(&who, &parent, request).await {
        Ok(up) => json_response(
            StatusCode::CREATED,
            &json!({
                "attachment": attachment_json(&up.attachment, None),
                "upload": instructions_json(&up.instructions, Some(up.expires_at)),
            }),
        ),
        Err(e) => service_error(e),
    }
}

/// `GET /v1/attachments/{id}/upload`: where a direct upload stands, with fresh links for the
/// parts still missing (to resume an interrupted upload).
pub async fn upload_status(app: Arc<App>, req: Request, params: Params) -> Response {
    let (who, id) = match caller_and_attachment(&app, &req, &params).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    match app.upload_status(&who, id).await {
        Ok((att, instructions)) => json_response(
            StatusCode::OK,
            &json!({
                "attachment": attachment_json(&att, None),
                "upload": instructions_json(&instructions, att.upload.as_ref().map(|u| u.expires_at)),
            }),
        ),
        Err(e) => service_error(e),
    }
}

/// `POST /v1/attachments/{id}/complete`: verifies the uploaded file and makes it ready.
pub async fn complete_upload(app: Arc<App>, req: Request, params: Params) -> Response {
    let (who, id) = match caller_and_attachment(&app, &req, &params).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    match app.complete_upload(&who, id).await {
        Ok(att) => one_attachment(&app, &att).await,
        Err(e) => service_error(e),
    }
}

/// `POST /v1/attachments/{id}/content`: one `file` part, the attachment's new content; a
/// placeholder (the asset API's) gets its first file this way, a ready attachment a new version.
pub async fn put_content(app: Arc<App>, req: Request, params: Params) -> Response {
    let (who, id) = match caller_and_attachment(&app, &req, &params).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let att = match app.get(&who, id).await {
        Ok(a) => a,
        Err(e) => return service_error(e),
    };
    let (parts, body) = req.into_parts();
    let form = match multipart::parse(&parts.headers, body, &["file"]).await {
        Ok(f) => f,
        Err(e) => return multipart_error(e),
    };
    let part = match form.files.as_slice() {
        [one] => one,
        [] => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "the form has no part named file",
            )
        }
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "the form has more than one part named file",
            )
        }
    };
    let file_name = match part.file_name.as_deref().map(FileName::parse) {
        Some(Ok(n)) => n,
        Some(Err(e)) => return service_error(e.into()),
        None => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "the file part needs a filename",
            )
        }
    };
    let file = NewFile {
        file_name,
        bytes: part.bytes.clone(),
    };
    let stored = match app
        .upload(
            &who,
            &att.parent,
            file,
            AttachmentFields::default(),
            UploadTarget::Existing(id),
            UploadRules::default(),
        )
        .await
    {
        Ok(a) => a,
        Err(e) => return service_error(e),
    };
    one_attachment(&app, &stored).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_views_are_written_as_rfc3339_with_milliseconds() {
        let t = time::macros::datetime!(2026-12-02 07:25:54.966_789_123 +02:00);
        let json = serde_json::to_string(&Timestamp(t)).unwrap();
        assert_eq!(json, "\"2026-12-02T05:25:54.966Z\"");
        assert_eq!(json, format!("\"{}\"", rfc3339(t)));
    }

    #[test]
    fn extensions_are_lowercased_and_borrowed_when_they_already_are() {
        assert_eq!(lowercase("JPG"), "jpg");
        assert!(matches!(
            lowercase("png"),
            std::borrow::Cow::Borrowed("png")
        ));
    }
}
