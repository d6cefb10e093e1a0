//! Direct uploads: begin one (`POST /v1/parents/{kind}/{id}/uploads`), ask where it stands
//! (`GET /v1/attachments/{id}/upload`) and complete it (`POST /v1/attachments/{id}/complete`).

use std::sync::Arc;

use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::attachments::one_attachment;
use super::views::{attachment_json, instructions_json};
use super::{caller_and_attachment, caller_and_parent, Answer, Error};
use crate::domain::{Attachment, AttachmentId, FileName};
use crate::http::Params;
use crate::http::{json as json_response, Request, Response};
use crate::service::{
    parse_sha256, App, AttachmentFields, Completion, DirectUploadRequest, ServiceError,
    UploadInstructions,
};

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
    let body: UploadBody = serde_json::from_slice(body).map_err(|e| {
        Error::bad_request(format!(
            "the body must be a JSON object with file_name, content_type and size: {e}"
        ))
    })?;
    let sha256 = match body.sha256.as_deref() {
        None => None,
        Some(s) => Some(parse_sha256(s).ok_or_else(|| {
            Error::bad_request("sha256 must be 64 hex characters or base64 of 32 bytes")
        })?),
    };
    let attachment_id = match body.attachment_id.as_deref() {
        None => None,
        // A malformed id names no attachment.
        Some(raw) => {
            Some(AttachmentId::parse(raw).map_err(|_| ServiceError::NotFound("attachment"))?)
        }
    };
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
pub async fn begin_upload(app: Arc<App>, req: Request, params: Params) -> Answer {
    let (who, parent) = caller_and_parent(&app, &req, &params).await?;
    let request = upload_request(req.body())?;
    let up = app.begin_upload(&who, &parent, request).await?;
    let expires_at = Some(up.expires_at);
    Ok(upload_json(
        StatusCode::CREATED,
        &up.attachment,
        &up.instructions,
        expires_at,
    ))
}

/// A direct upload: its attachment, and how to send its bytes.
fn upload_json(
    status: StatusCode,
    att: &Attachment,
    instructions: &UploadInstructions,
    expires_at: Option<i64>,
) -> Response {
    let json = json!({
        "attachment": attachment_json(att, None),
        "upload": instructions_json(instructions, expires_at),
    });
    json_response(status, &json)
}

/// `GET /v1/attachments/{id}/upload`: where a direct upload stands, with fresh links for the
/// parts still missing (to resume an interrupted upload).
pub async fn upload_status(app: Arc<App>, req: Request, params: Params) -> Answer {
    let (who, id) = caller_and_attachment(&app, &req, &params).await?;
    let (att, instructions) = app.upload_status(&who, id).await?;
    let expires_at = att.upload.as_ref().map(|u| u.expires_at);
    Ok(upload_json(StatusCode::OK, &att, &instructions, expires_at))
}

/// `POST /v1/attachments/{id}/complete`: verifies the uploaded file and makes it ready (200),
/// or, too large to verify within the request, verifies it in the background (202, status
/// `verifying`).
pub async fn complete_upload(app: Arc<App>, req: Request, params: Params) -> Answer {
    let (who, id) = caller_and_attachment(&app, &req, &params).await?;
    match app.complete_upload(&who, id).await? {
        Completion::Ready(att) => one_attachment(&app, &att).await,
        Completion::Verifying(att) => Ok(json_response(
            StatusCode::ACCEPTED,
            &attachment_json(&att, None),
        )),
    }
}
