//! Attachments: multipart uploads to a parent, listings, metadata, content and deletion.

use std::sync::Arc;

use http::StatusCode;
use serde_json::json;

use super::views::{attachment_view, AttachmentView};
use super::{caller_and_attachment, caller_and_parent, Answer, Error};
use crate::domain::Attachment;
use crate::http::multipart;
use crate::http::params::Params;
use crate::http::{empty, json as json_response, new_file, query_pairs, redirect, Request};
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
    let stored = app
        .upload_many(
            &who,
            &parent,
            files,
            fields,
            UploadTarget::New,
            UploadRules::default(),
        )
        .await?;
    let mut items = Vec::with_capacity(stored.len());
    for a in &stored {
        // The files are stored: a link that cannot be signed now must not hide that.
        let view = linked_view(&app, a).await.unwrap_or_else(|e| {
            crate::http::log_internal(&e);
            attachment_view(a, None)
        });
        items.push(serde_json::to_value(view).unwrap_or(serde_json::Value::Null));
    }
    Ok(json_response(
        StatusCode::CREATED,
        &json!({ "items": items }),
    ))
}

/// The page a listing asks for: `limit` (1 to 1000) and `cursor`.
fn page_params(req: &Request) -> Result<(usize, Option<String>), Error> {
    let mut limit = DEFAULT_LIMIT;
    let mut cursor = None;
    for (k, v) in query_pairs(req) {
        match k.as_str() {
            "limit" => {
                limit = v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        Error::bad_request(format!("limit must be a number from 1 to {MAX_LIMIT}"))
                    })?;
            }
            "cursor" => cursor = Some(v),
            _ => {}
        }
    }
    Ok((limit, cursor))
}

/// `GET /v1/parents/{kind}/{id}/attachments?limit=&cursor=`.
pub async fn list(app: Arc<App>, req: Request, params: Params) -> Answer {
    let (who, parent) = caller_and_parent(&app, &req, &params).await?;
    let (limit, cursor) = page_params(&req)?;
    let page = app.list(&who, &parent, cursor.as_deref(), limit).await?;
    #[derive(serde::Serialize)]
    struct ListView<'a> {
        items: Vec<AttachmentView<'a>>,
        next_cursor: &'a Option<String>,
    }
    let mut items = Vec::with_capacity(page.items.len());
    for a in &page.items {
        items.push(linked_view(&app, a).await?);
    }
    Ok(json_response(
        StatusCode::OK,
        &ListView {
            items,
            next_cursor: &page.next_cursor,
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
    let part = match form.files.as_slice() {
        [one] => one,
        [] => return Err(Error::bad_request("the form has no part named file")),
        _ => {
            return Err(Error::bad_request(
                "the form has more than one part named file",
            ))
        }
    };
    let stored = app
        .upload(
            &who,
            &att.parent,
            new_file(part)?,
            AttachmentFields::default(),
            UploadTarget::Existing(id),
            UploadRules::default(),
        )
        .await?;
    one_attachment(&app, &stored).await
}
