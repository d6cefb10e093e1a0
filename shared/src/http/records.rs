//! The records API (seed 003): attachments of records under `/v2/{object}/…`, where `{object}`
//! is the object's full identifier (`io_showcase`) and a record is a parent of that kind whose id
//! is a UUID. Records are registered with the native API (`PUT /v1/parents/{object}/{uuid}`)
//! before files are attached to them.
//!
//! Routes:
//! - `GET /v2/{object}/attachments?uuids=a,b,…`: `200` with a JSON map from each requested UUID
//!   (in the order asked, duplicates once) to its array of attachments (`[]` for none). At most
//!   100 UUIDs. Every record must exist and be the caller's, else `404` for the whole call.
//!   Without `uuids`: every record of the object that has at least one file (`{}` when none).
//! - `GET /v2/{object}/{uuid}/attachments`: `200` with the record's array.
//! - `POST /v2/{object}/{uuid}/attachments`: `multipart/form-data`, one or more parts named
//!   `file` (or `files`), each with a filename. A file whose name is already on the record
//!   becomes a new version of that attachment (same `uuid`, new `version_uuid`); a text field
//!   `document_id` names the attachment to version explicitly (with exactly one file; unknown,
//!   or another record's: `404`). `201` with the array of the stored attachments, in the order
//!   of the parts. Every file is checked before any is stored: a refused request stores nothing.
//! - `DELETE /v2/{object}/{uuid}/attachments?names=a,b&version=all|latest`: `names` (required,
//!   comma-separated, may repeat) are current file names on the record; every name must match
//!   (else `404`, nothing removed). `version=all` (the default) removes the attachments;
//!   `latest` removes only each one's newest version (the attachment then shows the previous
//!   one; it goes with its last). `204`.
//!
//! An attachment: `{"updated_on","size","media_type","version_uuid","name","links","type",
//! "uuid"}` as the seed shows: `uuid` is the attachment id, `version_uuid` its current version,
//! `size` and `updated_on` (epoch milliseconds of the current version) are strings, `type` is
//! always `"file"`, and `links` are `url` (a presigned download of the current version) and
//! `thumbnail_url` (a presigned PNG: the image at most 256 px on its longest side, or an icon
//! of the file's family). Links expire (the link TTL). Placeholders, which have no file, are
//! not shown, and a record left with only those does not appear in the call without `uuids`.
//!
//! Thumbnails are made when a file is stored, through any API (see `service/thumbnails.rs`).
//! An image that cannot be decoded within the limits (a decompression bomb: a few bytes that
//! claim 100000x100000 pixels) is refused by the decoder from its header, before any pixel
//! memory exists; the upload itself is still stored (the file is the caller's, and a thumbnail
//! must never cost an upload) and its `thumbnail_url` is the image icon.
//!
//! Every error has one envelope: `{"error":{"status":<code>,"message":"…"}}`, the seed's
//! messages where it has them. A `5xx` says only `Internal Server error`; the cause is logged.
//! Another tenant's record answers exactly as a missing one.

use std::sync::Arc;

use http::StatusCode;
use serde_json::{json, Map, Value};

use super::multipart::{self, MultipartError};
use super::routes::Params;
use super::{empty, json as json_response, presented_key, query_pairs, Request, Response};
use crate::domain::{
    Attachment, AttachmentId, FileName, ParentId, ParentKind, ParentRef, Principal,
};
use crate::service::answers::AnswerKey;
use crate::service::{
    App, AttachmentFields, NewFile, ServiceError, UploadRules, UploadTarget, VersionScope,
    MAX_RECORDS_PER_CALL,
};

const OBJECT_INVALID: &str = "The object identifier is not specified or is invalid";
const UUIDS_INVALID: &str = "The uuids parameter contains an invalid UUID";
const RECORD_UUID_INVALID: &str = "The record UUID is invalid";
const RECORDS_NOT_FOUND: &str = "Any of the records specified on the uuids parameters, to get attachments from, was not found (or user has no permission to access it)";
const RECORD_NOT_FOUND: &str = "The record was not found (or user has no permission to access it)";
const INTERNAL: &str = "Internal Server error";
/// The most names one deletion takes.
const MAX_NAMES: usize = 100;

/// This API's error envelope.
pub fn error(status: StatusCode, message: &str) -> Response {
    json_response(
        status,
        &json!({"error": {"status": status.as_u16(), "message": message}}),
    )
}

/// Errors the router produces before a handler runs (405, 413, 404), in this envelope.
pub fn router_error(status: StatusCode, message: &str) -> Response {
    error(status, message)
}

/// Maps a use case's error to this API's envelope: the one place where that happens.
fn service_error(e: ServiceError) -> Response {
    let status = match &e {
        ServiceError::Unauthorized => StatusCode::UNAUTHORIZED,
        ServiceError::NotFound(what) => {
            let message = match *what {
                "records" => RECORDS_NOT_FOUND,
                "parent" => RECORD_NOT_FOUND,
                "attachment" => {
                    "The document was not found (or user has no permission to access it)"
                }
                "file" => "No attachment of the record has one of the given names",
                _ => "Not found",
            };
            return error(StatusCode::NOT_FOUND, message);
        }
        _ => match super::status_of(&e) {
            Some(status) => status,
            None => return error(StatusCode::INTERNAL_SERVER_ERROR, INTERNAL),
        },
    };
    error(status, &e.to_string())
}

fn bad_request(message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, message)
}

fn multipart_error(e: MultipartError) -> Response {
    bad_request(&e.to_string())
}

/// A record id: a UUID in its hyphenated form (either case), kept as written, since that is the
/// parent id it was registered under.
fn record_id(raw: &str) -> Option<ParentId> {
    if raw.len() != 36 || uuid::Uuid::try_parse(raw).is_err() {
        return None;
    }
    ParentId::parse(raw).ok()
}

async fn caller_and_object(
    app: &App,
    req: &Request,
    params: &Params,
) -> Result<(Principal, ParentKind), Response> {
    let who = app
        .authenticate(presented_key(req).as_deref())
        .await
        .map_err(service_error)?;
    let kind = ParentKind::parse(params.get("object")).map_err(|_| bad_request(OBJECT_INVALID))?;
    Ok((who, kind))
}

async fn caller_and_record(
    app: &App,
    req: &Request,
    params: &Params,
) -> Result<(Principal, ParentRef), Response> {
    let (who, kind) = caller_and_object(app, req, params).await?;
    let id = record_id(params.get("uuid")).ok_or_else(|| bad_request(RECORD_UUID_INVALID))?;
    Ok((who, ParentRef::new(kind, id)))
}

/// One attachment in the seed's shape, with fresh links.
async fn item_json(app: &App, a: &Attachment) -> Result<Option<Value>, ServiceError> {
    let Some(c) = &a.content else {
        return Ok(None);
    };
    let (Some(url), Some(thumb)) = (app.download_link(a).await?, app.thumbnail_link(a).await?)
    else {
        return Ok(None);
    };
    let updated_on = c.created_at.unix_timestamp_nanos() / 1_000_000;
    Ok(Some(json!({
        "updated_on": updated_on.to_string(),
        "size": c.size.to_string(),
        "media_type": c.content_type,
        "version_uuid": c.id.to_string(),
        "name": c.file_name.as_str(),
        "links": [
            {"rel": "url", "href": url},
            {"rel": "thumbnail_url", "href": thumb},
        ],
        "type": "file",
        "uuid": a.id.to_string(),
    })))
}

async fn items_json(app: &App, atts: &[Attachment]) -> Result<Vec<Value>, ServiceError> {
    let mut out = Vec::with_capacity(atts.len());
    for a in atts {
        if let Some(v) = item_json(app, a).await? {
            out.push(v);
        }
    }
    Ok(out)
}

/// `GET /v2/{object}/attachments[?uuids=a,b,…]`.
pub async fn list_many(app: Arc<App>, req: Request, params: Params) -> Response {
    let (who, kind) = match caller_and_object(&app, &req, &params).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    // `uuids=a,b` or `uuids=a&uuids=b`: the same list.
    let uuids: Vec<String> = query_pairs(&req)
        .into_iter()
        .filter(|(k, _)| k == "uuids")
        .map(|(_, v)| v)
        .collect();
    let all_asked = !uuids.is_empty();
    let mut ids = Vec::new();
    if all_asked {
        let raw: Vec<&str> = uuids
            .iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        if raw.len() > MAX_RECORDS_PER_CALL {
            return bad_request(&format!(
                "The uuids parameter contains more than {MAX_RECORDS_PER_CALL} UUIDs"
            ));
        }
        ids.reserve(raw.len());
        for r in raw {
            match record_id(r) {
                Some(id) => ids.push(id),
                None => return bad_request(UUIDS_INVALID),
            }
        }
    }
    // No ids: every record with files (`uuids` given always names at least one).
    let asked: Vec<&str> = ids.iter().map(ParentId::as_str).collect();
    let key = AnswerKey::new(
        super::routes::RECORDS_LIST_MANY.name,
        &who,
        format!("{:?} {asked:?}", kind.as_str()),
    );
    let render = async {
        let result = if all_asked {
            app.attachments_of_records(&who, &kind, &ids).await
        } else {
            app.records_with_attachments(&who, &kind).await
        };
        let records = match result {
            Ok(r) => r,
            Err(e) => return service_error(e),
        };
        let mut map = Map::new();
        for (id, atts) in &records {
            let items = match items_json(&app, atts).await {
                Ok(i) => i,
                Err(e) => return service_error(e),
            };
            // Without `uuids`, only records that have files; asked-for records always appear.
            if all_asked || !items.is_empty() {
                map.insert(id.to_string(), Value::Array(items));
            }
        }
        json_response(StatusCode::OK, &Value::Object(map))
    };
    super::kept_or_rendered(&app, key, render).await
}

/// `GET /v2/{object}/{uuid}/attachments`.
pub async fn list(app: Arc<App>, req: Request, params: Params) -> Response {
    let (who, record) = match caller_and_record(&app, &req, &params).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let key = AnswerKey::new(
        super::routes::RECORDS_LIST.name,
        &who,
        format!("{:?} {:?}", record.kind.as_str(), record.id.as_str()),
    );
    let render = async {
        let mut records = match app
            .attachments_of_records(&who, &record.kind, std::slice::from_ref(&record.id))
            .await
        {
            Ok(r) => r,
            Err(ServiceError::NotFound(_)) => {
                return service_error(ServiceError::NotFound("parent"))
            }
            Err(e) => return service_error(e),
        };
        let atts = records.pop().map(|(_, a)| a).unwrap_or_default();
        match items_json(&app, &atts).await {
            Ok(items) => json_response(StatusCode::OK, &Value::Array(items)),
            Err(e) => service_error(e),
        }
    };
    super::kept_or_rendered(&app, key, render).await
}

/// `POST /v2/{object}/{uuid}/attachments`.
pub async fn upload(app: Arc<App>, req: Request, params: Params) -> Response {
    let (who, record) = match caller_and_record(&app, &req, &params).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    // Unknown record first: no point reading a form for nothing.
    if let Err(e) = app.get_parent(&who, &record).await {
        return service_error(e);
    }
    let (parts, body) = req.into_parts();
    let form = match multipart::parse(&parts.headers, body, &["file", "files"]).await {
        Ok(f) => f,
        Err(e) => return multipart_error(e),
    };
    if form.files.is_empty() {
        return bad_request("the form has no file part (name it file)");
    }
    let mut files = Vec::with_capacity(form.files.len());
    for part in &form.files {
        let name = match part.file_name.as_deref().map(FileName::parse) {
            Some(Ok(n)) => n,
            Some(Err(e)) => return service_error(e.into()),
            None => return bad_request("every file part needs a filename"),
        };
        files.push(NewFile {
            file_name: name,
            bytes: part.bytes.clone(),
        });
    }
    let target = match form.text("document_id").map(str::trim) {
        None | Some("") => UploadTarget::SameName,
        Some(raw) => {
            let Ok(id) = AttachmentId::parse(raw) else {
                return bad_request("document_id is not a valid UUID");
            };
            if files.len() != 1 {
                return bad_request("document_id names one attachment: send exactly one file");
            }
            UploadTarget::Existing(id)
        }
    };
    let stored = match app
        .upload_many(
            &who,
            &record,
            files,
            AttachmentFields::default(),
            target,
            UploadRules::default(),
        )
        .await
    {
        Ok(s) => s,
        Err(e) => return service_error(e),
    };
    match items_json(&app, &stored).await {
        Ok(items) => json_response(StatusCode::CREATED, &Value::Array(items)),
        Err(e) => service_error(e),
    }
}

/// `DELETE /v2/{object}/{uuid}/attachments?names=a,b&version=all|latest`.
pub async fn delete(app: Arc<App>, req: Request, params: Params) -> Response {
    let (who, record) = match caller_and_record(&app, &req, &params).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let mut names: Vec<String> = Vec::new();
    let mut scope = VersionScope::All;
    for (k, v) in query_pairs(&req) {
        match k.as_str() {
            "names" => names.extend(
                v.split(',')
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(str::to_owned),
            ),
            "version" => {
                scope = match v.as_str() {
                    "all" => VersionScope::All,
                    "latest" => VersionScope::Latest,
                    _ => return bad_request("The version parameter must be all or latest"),
                }
            }
            _ => {}
        }
    }
    if names.is_empty() {
        return bad_request("The names parameter is required");
    }
    if names.len() > MAX_NAMES {
        return bad_request(&format!(
            "The names parameter contains more than {MAX_NAMES} names"
        ));
    }
    match app.delete_by_names(&who, &record, &names, scope).await {
        Ok(()) => empty(StatusCode::NO_CONTENT),
        Err(e) => service_error(e),
    }
}
