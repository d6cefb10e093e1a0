//! Attachments: multipart uploads to a parent, listings, metadata, content and deletion.

use std::sync::Arc;

use http::StatusCode;

use super::views::{attachment_view, AttachmentView};
use super::{caller_and_attachment, caller_and_parent, Answer, Error};
use crate::domain::Attachment;
use crate::http::multipart;
use crate::http::Params;
use crate::http::Request;
use crate::http::{empty, json as json_response, limit_param, new_file, query_values, redirect};
use crate::service::{App, AttachmentFields, UploadRules, UploadTarget};

/// The fields of an upload form: the files, and labels every file of the request gets.
const UPLOAD_FIELDS: &[&str] = &[
    "file",
    "type",
    "title",
    "description",
    "category",
    "tags",
    "external_id",
];

/// The largest page of a listing, and the default one.
const MAX_LIMIT: usize = 1000;
const DEFAULT_LIMIT: usize = 100;

/// A listing (with its `next_cursor`, null on the last page) or an upload's attachments.
#[derive(serde::Serialize)]
struct Items<'a> {
    items: Vec<AttachmentView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<&'a Option<String>>,
}

/// The view with both links of a ready attachment: its download and its thumbnail.
async fn linked_view<'a>(
    app: &App,
    a: &'a Attachment,
) -> Result<AttachmentView<'a>, crate::service::ServiceError> {
    let mut view = attachment_view(a, app.download_link(a).await?);
    view.thumbnail_url = app.thumbnail_link(a).await?;
    Ok(view)
}

/// 200 with one attachment and its links (when it has content).
pub(super) async fn one_attachment(app: &App, att: &Attachment) -> Answer {
    Ok(json_response(StatusCode::OK, &linked_view(app, att).await?))
}

/// `POST /v1/parents/{kind}/{id}/attachments`: one or more `file` parts, optional labels.
pub async fn upload(app: Arc<App>, req: Request, params: Params) -> Answer {
    let (who, parent) = caller_and_parent(&app, &req, &params).await?;
    let (parts, body) = req.into_parts();
    let form = multipart::parse(&parts.headers, body, &["file"]).await?;
    form.only(UPLOAD_FIELDS)?;
    if form.files.is_empty() {
        return Err(Error::bad_request("the form has no part named file"));
    }
    let files = form.files.iter().map(new_file).collect::<Result<_, _>>()?;
    let text = |name: &str| form.text(name).map(str::to_owned);
    let fields = AttachmentFields {
        label: text("type"),
        title: text("title"),
        description: text("description"),
        category: text("category"),
        tags: form
            .text("tags")
            .map(|t| t.split(',').map(str::to_owned).collect()),
        external_id: text("external_id"),
    };
    let (target, rules) = (UploadTarget::New, UploadRules::default());
    let stored = app
        .upload_many(&who, &parent, files, fields, target, rules)
        .await?;
    let mut items = Vec::with_capacity(stored.len());
    for a in &stored {
        // The files are stored: a link that cannot be signed now must not hide that.
        items.push(linked_view(&app, a).await.unwrap_or_else(|e| {
            crate::http::log_internal(&e);
            attachment_view(a, None)
        }));
    }
    let next_cursor = None;
    Ok(json_response(
        StatusCode::CREATED,
        &Items { items, next_cursor },
    ))
}

/// `GET /v1/parents/{kind}/{id}/attachments?limit=&cursor=`.
pub async fn list(app: Arc<App>, req: Request, params: Params) -> Answer {
    let (who, parent) = caller_and_parent(&app, &req, &params).await?;
    let message = format!("limit must be a number from 1 to {MAX_LIMIT}");
    let limit = limit_param(&req, MAX_LIMIT, &message)?.unwrap_or(DEFAULT_LIMIT);
    let cursor = query_values(&req, "cursor").pop();
    let page = app.list(&who, &parent, cursor.as_deref(), limit).await?;
    let mut items = Vec::with_capacity(page.items.len());
    for a in &page.items {
        items.push(linked_view(&app, a).await?);
    }
    Ok(json_response(
        StatusCode::OK,
        &Items {
            items,
            next_cursor: Some(&page.next_cursor),
        },
    ))
}

/// `GET /v1/attachments/{id}`: metadata with a download link when ready.
pub async fn get_attachment(app: Arc<App>, req: Request, params: Params) -> Answer {
    let (who, id) = caller_and_attachment(&app, &req, &params).await?;
    let att = app.get(&who, id).await?;
    one_attachment(&app, &att).await
}

/// `GET /v1/attachments/{id}/content`: a redirect to the download link.
pub async fn get_content(app: Arc<App>, req: Request, params: Params) -> Answer {
    let (who, id) = caller_and_attachment(&app, &req, &params).await?;
    let att = app.get(&who, id).await?;
    match app.download_link(&att).await? {
        Some(link) => Ok(redirect(&link)),
        None => Err(Error::refused(
            StatusCode::CONFLICT,
            "the attachment has no content yet",
        )),
    }
}

/// `DELETE /v1/attachments/{id}`.
pub async fn delete_attachment(app: Arc<App>, req: Request, params: Params) -> Answer {
    let (who, id) = caller_and_attachment(&app, &req, &params).await?;
    app.delete(&who, id).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `POST /v1/attachments/{id}/content`: one `file` part, the attachment's new content; a
/// placeholder (the asset API's) gets its first file this way, a ready attachment a new version.
pub async fn put_content(app: Arc<App>, req: Request, params: Params) -> Answer {
    let (who, id) = caller_and_attachment(&app, &req, &params).await?;
    let att = app.get(&who, id).await?;
    let (parts, body) = req.into_parts();
    let form = multipart::parse(&parts.headers, body, &["file"]).await?;
    form.only(&["file"])?;
    let part = form
        .one_file(
            "the form has no part named file",
            "the form has more than one part named file",
        )
        .map_err(Error::bad_request)?;
    let (file, fields) = (new_file(part)?, AttachmentFields::default());
    let (target, rules) = (UploadTarget::Existing(id), UploadRules::default());
    let stored = app
        .upload(&who, &att.parent, file, fields, target, rules)
        .await?;
    one_attachment(&app, &stored).await
}
