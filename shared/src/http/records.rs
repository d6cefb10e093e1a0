//! The records API: attachments of records under `/v2/{object}/…`, where `{object}`
//! is the object's full identifier (`io_showcase`) and a record is a parent of that kind whose id
//! is a UUID. Records are registered with the native API (`PUT /v1/parents/{object}/{uuid}`)
//! before files are attached to them.
//!
//! Routes:
//! - `GET /v2/{object}/attachments?uuids=a,b,…`: `200` with a JSON map from each requested UUID
//!   (in the order asked, duplicates once) to its array of attachments (`[]` for none). At most
//!   100 UUIDs. Every record must exist and be the caller's, else `404` for the whole call.
//!   Without `uuids`: every record of the object that has at least one file (`{}` when none),
//!   in UUID order, when there are at most 100 of them; with more, `409` (ask by `uuids`, or
//!   page). Pages, our addition: `limit` (1 to 100 records) and `cursor`; a page after which
//!   more records follow has a `Link: <?limit=…&cursor=…>; rel="next"` header. Parents of that
//!   kind whose ids are not UUIDs are not records, and are left out.
//! - `GET /v2/{object}/{uuid}/attachments`: `200` with the record's array.
//! - Every listing answers at most 1,000 attachments (`MAX_UNPAGED_ATTACHMENTS`): records that
//!   have more together (or one record alone) are a `409` that says so.
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
//! "uuid"}` as the documentation shows: `uuid` is the attachment id, `version_uuid` its current version,
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
//! Every error has one envelope: `{"error":{"status":<code>,"message":"…"}}`, the documentation's
//! messages where it has them. A `5xx` says only `Internal Server error`; the cause is logged.
//! Another tenant's record answers exactly as a missing one.

use std::sync::Arc;

use http::StatusCode;
use serde_json::{json, Map, Value};

use super::multipart;
use super::params::Params;
use super::{empty, json as json_response, presented_key, query_pairs, Request, Response};
use crate::domain::{Attachment, AttachmentId, ParentId, ParentKind, ParentRef, Principal};
use crate::service::{
    App, AttachmentFields, NewFile, ServiceError, UploadRules, UploadTarget, VersionScope,
    MAX_RECORDS_PER_CALL,
};

const OBJECT_INVALID: &str = "The object identifier is not specified or is invalid";
const UUIDS_INVALID: &str = "The uuids parameter contains an invalid UUID";
const RECORD_UUID_INVALID: &str = "The record UUID is invalid";
const RECORDS_NOT_FOUND: &str = "Any of the records specified on the uuids parameters, to get attachments from, was not found (or user has no permission to access it)";
const RECORD_NOT_FOUND: &str = "The record was not found (or user has no permission to access it)";
/// The most names one deletion takes.
const MAX_NAMES: usize = 100;

/// This API's envelope: `{"error":{"status","message"}}`.
#[derive(Debug)]
pub struct Records;

/// Why a records request was not served.
pub type Error = super::DialectError<Records>;

type Answer = Result<Response, Error>;

impl super::Dialect for Records {
    const INTERNAL: &'static str = "Internal Server error";

    fn envelope(status: StatusCode, message: &str) -> Value {
        json!({"error": {"status": status.as_u16(), "message": message}})
    }

    fn refusal(e: &ServiceError) -> Option<Response> {
        let ServiceError::NotFound(what) = e else {
            return None;
        };
        let message = match *what {
            "records" => RECORDS_NOT_FOUND,
            "parent" => RECORD_NOT_FOUND,
            "attachment" => "The document was not found (or user has no permission to access it)",
            "file" => "No attachment of the record has one of the given names",
            _ => "Not found",
        };
        Some(Self::error(StatusCode::NOT_FOUND, message))
    }
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
) -> Result<(Principal, ParentKind), Error> {
    let who = app.authenticate(presented_key(req).as_deref()).await?;
    let kind =
        ParentKind::parse(params.get("object")).map_err(|_| Error::bad_request(OBJECT_INVALID))?;
    Ok((who, kind))
}

async fn caller_and_record(
    app: &App,
    req: &Request,
    params: &Params,
) -> Result<(Principal, ParentRef), Error> {
    let (who, kind) = caller_and_object(app, req, params).await?;
    let id =
        record_id(params.get("uuid")).ok_or_else(|| Error::bad_request(RECORD_UUID_INVALID))?;
    Ok((who, ParentRef::new(kind, id)))
}

/// One attachment in the documentation's shape, with fresh links.
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

/// The records a many-records listing names: `uuids=a,b` or `uuids=a&uuids=b`, at most
/// [`MAX_RECORDS_PER_CALL`]; `None` when `uuids` is not given.
fn asked_records(req: &Request) -> Result<Option<Vec<ParentId>>, Error> {
    let uuids: Vec<String> = query_pairs(req)
        .into_iter()
        .filter(|(k, _)| k == "uuids")
        .map(|(_, v)| v)
        .collect();
    if uuids.is_empty() {
        return Ok(None);
    }
    let raw: Vec<&str> = uuids
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    if raw.len() > MAX_RECORDS_PER_CALL {
        return Err(Error::bad_request(format!(
            "The uuids parameter contains more than {MAX_RECORDS_PER_CALL} UUIDs"
        )));
    }
    raw.into_iter()
        .map(|r| record_id(r).ok_or_else(|| Error::bad_request(UUIDS_INVALID)))
        .collect::<Result<_, _>>()
        .map(Some)
}

/// How a listing without `uuids` pages: `limit` (records) and `cursor`, both optional.
struct Paging {
    limit: Option<usize>,
    cursor: Option<String>,
}

fn paging(req: &Request) -> Result<Paging, Error> {
    let mut p = Paging {
        limit: None,
        cursor: None,
    };
    for (k, v) in query_pairs(req) {
        match k.as_str() {
            "limit" => {
                let n = v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_RECORDS_PER_CALL).contains(n))
                    .ok_or_else(|| {
                        Error::bad_request(format!(
                            "The limit parameter must be a number of records from 1 to {MAX_RECORDS_PER_CALL}"
                        ))
                    })?;
                p.limit = Some(n);
            }
            "cursor" => p.cursor = Some(v),
            _ => {}
        }
    }
    Ok(p)
}

/// `GET /v2/{object}/attachments[?uuids=a,b,…]` (or `?limit=&cursor=` without `uuids`).
pub async fn list_many(app: Arc<App>, req: Request, params: Params) -> Answer {
    let (who, kind) = caller_and_object(&app, &req, &params).await?;
    let asked = asked_records(&req)?;
    let paging = paging(&req)?;
    let (records, next) = match &asked {
        Some(_) if paging.limit.is_some() || paging.cursor.is_some() => {
            return Err(Error::bad_request(
                "limit and cursor page the listing without uuids; with uuids, ask for at most 100 records",
            ))
        }
        Some(ids) => (app.attachments_of_records(&who, &kind, ids).await?, None),
        // No ids: the records with files, a page of them.
        None => {
            // A parent of this kind registered under an id that is not a UUID (through the
            // native API) is no record of this API: it cannot be asked for by its UUID, and a
            // map keyed by record UUIDs has no place for it.
            let page = app
                .records_with_attachments(
                    &who,
                    &kind,
                    paging.cursor.as_deref(),
                    paging.limit.unwrap_or(MAX_RECORDS_PER_CALL),
                    |id| record_id(id.as_str()).is_some(),
                )
                .await?;
            // Asked for all at once: answer all, or say that they do not fit.
            if paging.limit.is_none() && page.next_cursor.is_some() {
                return Err(ServiceError::TooMany(format!(
                    "More than {MAX_RECORDS_PER_CALL} records of this object have attachments: ask for them by uuids, or page through them with limit and cursor (each page's Link header names the next)"
                ))
                .into());
            }
            let limit = paging.limit.unwrap_or(MAX_RECORDS_PER_CALL);
            (page.records, page.next_cursor.map(|c| (limit, c)))
        }
    };
    let mut map = Map::new();
    for (id, atts) in &records {
        let items = items_json(&app, atts).await?;
        // Without `uuids`, only records that have files; asked-for records always appear.
        if asked.is_some() || !items.is_empty() {
            map.insert(id.to_string(), Value::Array(items));
        }
    }
    let mut resp = json_response(StatusCode::OK, &Value::Object(map));
    if let Some((limit, cursor)) = next {
        // A reference relative to this very URL, wherever the API is mounted; the cursor is
        // URL-safe base64.
        let link = format!("<?limit={limit}&cursor={cursor}>; rel=\"next\"");
        if let Ok(v) = http::HeaderValue::from_str(&link) {
            resp.headers_mut().insert(http::header::LINK, v);
        }
    }
    Ok(resp)
}

/// `GET /v2/{object}/{uuid}/attachments`.
pub async fn list(app: Arc<App>, req: Request, params: Params) -> Answer {
    let (who, record) = caller_and_record(&app, &req, &params).await?;
    let mut records = app
        .attachments_of_records(&who, &record.kind, std::slice::from_ref(&record.id))
        .await
        .map_err(|e| match e {
            ServiceError::NotFound(_) => ServiceError::NotFound("parent"),
            e => e,
        })?;
    let atts = records.pop().map(|(_, a)| a).unwrap_or_default();
    let items = items_json(&app, &atts).await?;
    Ok(json_response(StatusCode::OK, &Value::Array(items)))
}

/// The files of an upload form, each with a valid name.
fn upload_files(form: &multipart::Form) -> Result<Vec<NewFile>, Error> {
    if form.files.is_empty() {
        return Err(Error::bad_request(
            "the form has no file part (name it file)",
        ));
    }
    form.files.iter().map(super::new_file).collect()
}

/// Where an upload's files go: a new version of the attachment `document_id` names (exactly one
/// file), else of the attachment with the same name, else a new attachment.
fn upload_target(form: &multipart::Form, files: usize) -> Result<UploadTarget, Error> {
    match form.text("document_id").map(str::trim) {
        None | Some("") => Ok(UploadTarget::SameName),
        Some(raw) => {
            let id = AttachmentId::parse(raw)
                .map_err(|_| Error::bad_request("document_id is not a valid UUID"))?;
            if files != 1 {
                return Err(Error::bad_request(
                    "document_id names one attachment: send exactly one file",
                ));
            }
            Ok(UploadTarget::Existing(id))
        }
    }
}

/// `POST /v2/{object}/{uuid}/attachments`.
pub async fn upload(app: Arc<App>, req: Request, params: Params) -> Answer {
    let (who, record) = caller_and_record(&app, &req, &params).await?;
    // Unknown record first: no point reading a form for nothing.
    app.get_parent(&who, &record).await?;
    let (parts, body) = req.into_parts();
    let form = multipart::parse(&parts.headers, body, &["file", "files"]).await?;
    let files = upload_files(&form)?;
    let target = upload_target(&form, files.len())?;
    let stored = app
        .upload_many(
            &who,
            &record,
            files,
            AttachmentFields::default(),
            target,
            UploadRules::default(),
        )
        .await?;
    let items = items_json(&app, &stored).await?;
    Ok(json_response(StatusCode::CREATED, &Value::Array(items)))
}

/// A deletion's parameters: the names (required) and which versions.
fn deletion(req: &Request) -> Result<(Vec<String>, VersionScope), Error> {
    let mut names: Vec<String> = Vec::new();
    let mut scope = VersionScope::All;
    for (k, v) in query_pairs(req) {
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
                    _ => {
                        return Err(Error::bad_request(
                            "The version parameter must be all or latest",
                        ))
                    }
                }
            }
            _ => {}
        }
    }
    if names.is_empty() {
        return Err(Error::bad_request("The names parameter is required"));
    }
    if names.len() > MAX_NAMES {
        return Err(Error::bad_request(format!(
            "The names parameter contains more than {MAX_NAMES} names"
        )));
    }
    Ok((names, scope))
}

/// `DELETE /v2/{object}/{uuid}/attachments?names=a,b&version=all|latest`.
pub async fn delete(app: Arc<App>, req: Request, params: Params) -> Answer {
    let (who, record) = caller_and_record(&app, &req, &params).await?;
    let (names, scope) = deletion(&req)?;
    app.delete_by_names(&who, &record, &names, scope).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}
