//! The records API: attachments of records under `/v2/{object}/…`, where `{object}` is the
//! object's full identifier (`io_showcase`) and a record is a parent of that kind whose id is a
//! UUID. Attachments are shown as the documentation shows them, with fresh links; placeholders,
//! which have no file, are not. `openapi.yaml` documents each route and the choices we made.

use std::sync::Arc;

use http::{header::LINK, StatusCode};
use serde_json::{json, Map, Value};

use super::{empty, json as json_response, limit_param, multipart, new_files, param};
use super::{presented_key, query_list, query_values, with_header, Answer, Request, Response};
use crate::domain::{Attachment, AttachmentId, ParentId, ParentKind, ParentRef, Principal};
use crate::service::{App, AttachmentFields, ServiceError, UploadTarget};
use crate::service::{VersionScope, MAX_RECORDS_PER_CALL};

/// The most names one deletion takes.
const MAX_NAMES: usize = 100;

/// This API's envelope: `{"error":{"status","message"}}`, the documentation's messages where it
/// has them; another tenant's record answers exactly as a missing one.
#[derive(Debug)]
pub struct Records;

pub type Error = super::DialectError<Records>;

impl super::Dialect for Records {
    const INTERNAL: &'static str = "Internal Server error";

    fn envelope(status: StatusCode, message: &str) -> Value {
        json!({"error": {"status": status.as_u16(), "message": message}})
    }

    fn refusal(e: &ServiceError) -> Option<Response> {
        use ServiceError::NotFound;
        let message = match e {
            NotFound("records") => "Any of the records specified on the uuids parameters, to get attachments from, was not found (or user has no permission to access it)",
            NotFound("parent") => "The record was not found (or user has no permission to access it)",
            NotFound("attachment") => "The document was not found (or user has no permission to access it)",
            NotFound("file") => "No attachment of the record has one of the given names",
            NotFound(_) => "Not found",
            _ => return None,
        };
        Some(Self::error(StatusCode::NOT_FOUND, message))
    }
}

/// A record id: a UUID in its hyphenated form (either case), kept as written, since that is the
/// parent id it was registered under.
fn record_id(raw: &str) -> Option<ParentId> {
    let uuid = raw.len() == 36 && uuid::Uuid::try_parse(raw).is_ok();
    uuid.then(|| ParentId::parse(raw).ok())?
}

async fn caller_and_object(app: &App, req: &Request) -> Result<(Principal, ParentKind), Error> {
    let who = app.authenticate(presented_key(req).as_deref()).await?;
    let kind = ParentKind::parse(param(req, "object"))
        .map_err(|_| Error::bad_request("The object identifier is not specified or is invalid"))?;
    Ok((who, kind))
}

async fn caller_and_record(app: &App, req: &Request) -> Result<(Principal, ParentRef), Error> {
    let (who, kind) = caller_and_object(app, req).await?;
    let id = record_id(param(req, "uuid"))
        .ok_or_else(|| Error::bad_request("The record UUID is invalid"))?;
    Ok((who, ParentRef::new(kind, id)))
}

/// The attachments with files, in the documentation's shape, with fresh links.
async fn items_json(app: &App, atts: &[Attachment]) -> Result<Vec<Value>, ServiceError> {
    let mut out = Vec::with_capacity(atts.len());
    for a in atts {
        let links = (app.download_link(a).await?, app.thumbnail_link(a).await?);
        let (Some(c), (Some(url), Some(thumb))) = (a.ready_content(), links) else {
            continue;
        };
        out.push(json!({
            "updated_on": (c.created_at.unix_timestamp_nanos() / 1_000_000).to_string(),
            "size": c.size.to_string(),
            "media_type": c.content_type,
            "version_uuid": c.id.to_string(),
            "name": c.file_name.as_str(),
            "links": [{"rel": "url", "href": url}, {"rel": "thumbnail_url", "href": thumb}],
            "type": "file",
            "uuid": a.id.to_string(),
        }));
    }
    Ok(out)
}

/// `GET /v2/{object}/attachments`: the records `uuids=a,b` (or `uuids=a&uuids=b`) names, at most
/// [`MAX_RECORDS_PER_CALL`], each even without files; without `uuids`, the records with files,
/// all at once or (our addition) paged by `limit` and `cursor`, a `Link` header naming the next.
pub async fn list_many(app: Arc<App>, req: Request) -> Answer<Records> {
    let (who, kind) = caller_and_object(&app, &req).await?;
    let uuids = query_list(&req, "uuids");
    if uuids.len() > MAX_RECORDS_PER_CALL {
        return Err(Error::bad_request(format!(
            "The uuids parameter contains more than {MAX_RECORDS_PER_CALL} UUIDs"
        )));
    }
    let invalid = || Error::bad_request("The uuids parameter contains an invalid UUID");
    let ids = uuids.iter().map(|r| record_id(r).ok_or_else(invalid));
    let ids = ids.collect::<Result<Vec<_>, _>>()?;
    let message = "The limit parameter must be a number of records";
    let limit = limit_param(&req, MAX_RECORDS_PER_CALL, message)?;
    let cursor = query_values(&req, "cursor").pop();
    let asked = !uuids.is_empty();
    let (records, next) = if asked {
        let paged = "limit and cursor page the listing without uuids; with uuids, ask for at most 100 records";
        if limit.is_some() || cursor.is_some() {
            return Err(Error::bad_request(paged));
        }
        (app.attachments_of_records(&who, &kind, &ids).await?, None)
    } else {
        // A parent of this kind registered under an id that is not a UUID (through the native
        // API) is no record of this API: it cannot be asked for by its UUID, and a map keyed by
        // record UUIDs has no place for it.
        let size = limit.unwrap_or(MAX_RECORDS_PER_CALL);
        let is_record = |id: &ParentId| record_id(id.as_str()).is_some();
        let page = app.records_with_attachments(&who, &kind, cursor.as_deref(), size, is_record);
        let page = page.await?;
        // Asked for all at once: answer all, or say that they do not fit.
        if limit.is_none() && page.next.is_some() {
            let too_many = format!(
                "More than {MAX_RECORDS_PER_CALL} records of this object have attachments: ask for them by uuids, or page through them with limit and cursor (each page's Link header names the next)"
            );
            return Err(ServiceError::TooMany(too_many).into());
        }
        (page.items, page.next.map(|c| (size, c)))
    };
    let mut map = Map::new();
    for (id, atts) in &records {
        let items = items_json(&app, atts).await?;
        // Without `uuids`, only records that have files; asked-for records always appear.
        if asked || !items.is_empty() {
            map.insert(id.to_string(), Value::Array(items));
        }
    }
    let resp = json_response(StatusCode::OK, &map);
    let Some((limit, cursor)) = next else {
        return Ok(resp);
    };
    // A reference relative to this very URL, wherever the API is mounted; the cursor is
    // URL-safe base64.
    let link = format!("<?limit={limit}&cursor={cursor}>; rel=\"next\"");
    Ok(with_header(resp, LINK, &link))
}

/// `GET /v2/{object}/{uuid}/attachments`.
pub async fn list(app: Arc<App>, req: Request) -> Answer<Records> {
    let (who, record) = caller_and_record(&app, &req).await?;
    let records = app.attachments_of_records(&who, &record.kind, std::slice::from_ref(&record.id));
    let mut records = records.await.map_err(|e| match e {
        ServiceError::NotFound(_) => ServiceError::NotFound("parent"),
        e => e,
    })?;
    let atts = records.pop().map(|(_, a)| a).unwrap_or_default();
    let items = items_json(&app, &atts).await?;
    Ok(json_response(StatusCode::OK, &items))
}

/// `POST /v2/{object}/{uuid}/attachments`: one or more parts named `file` (or `files`). Each
/// goes to the attachment the text field `document_id` names (with exactly one file), else to
/// the record's attachment of the same name, else to a new one.
pub async fn upload(app: Arc<App>, req: Request) -> Answer<Records> {
    let (who, record) = caller_and_record(&app, &req).await?;
    // Unknown record first: no point reading a form for nothing.
    app.get_parent(&who, &record).await?;
    let form = multipart::parse(req, &["file", "files"]).await?;
    let files = new_files(&form, "no file part (name it file)")?;
    let target = match form.text("document_id").map(str::trim) {
        None | Some("") => UploadTarget::SameName,
        Some(raw) => {
            let id = AttachmentId::parse(raw)
                .map_err(|_| Error::bad_request("document_id is not a valid UUID"))?;
            let one = "document_id names one attachment: send exactly one file";
            if files.len() != 1 {
                return Err(Error::bad_request(one));
            }
            UploadTarget::Existing(id)
        }
    };
    let fields = AttachmentFields::default();
    let stored = app.upload_many(&who, &record, files, fields, target, None);
    let items = items_json(&app, &stored.await?).await?;
    Ok(json_response(StatusCode::CREATED, &items))
}

/// `DELETE /v2/{object}/{uuid}/attachments?names=a,b&version=all|latest`: `names` (required,
/// comma-separated, may repeat) are current file names on the record; `latest` removes only
/// each one's newest version.
pub async fn delete(app: Arc<App>, req: Request) -> Answer<Records> {
    let (who, record) = caller_and_record(&app, &req).await?;
    let bad = || Error::bad_request("The version parameter must be all or latest");
    let mut scope = VersionScope::All;
    for v in query_values(&req, "version") {
        scope = match v.as_str() {
            "all" => VersionScope::All,
            "latest" => VersionScope::Latest,
            _ => return Err(bad()),
        }
    }
    let mut names = query_list(&req, "names");
    names.retain(|n| !n.is_empty());
    if names.is_empty() {
        return Err(Error::bad_request("The names parameter is required"));
    }
    if names.len() > MAX_NAMES {
        let message = format!("The names parameter contains more than {MAX_NAMES} names");
        return Err(Error::bad_request(message));
    }
    app.delete_by_names(&who, &record, &names, scope).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}
