//! The Crafter Profile attachments API (`/api/1/profile/{id}/…`) as Crafter's clients expect it:
//! the key in `accessTokenId`, attachments named by their file name without extension, errors as
//! `{"errorCode":"…","message":"…"}`. README and `openapi.yaml` list where we differ on purpose
//! (a bad upload is a 4xx with code `OTHER`, where Crafter answers 500). Like Crafter, an
//! attachment the profile does not have is a 200 with an empty record, which its clients test for.

use std::sync::Arc;

use http::StatusCode;
use serde_json::{json, Value};

use super::multipart::{self, MultipartError};
use super::{empty, json as json_response, param, presented_key, query_param, redirect};
use super::{Answer, Request, Response};
use crate::domain::content::type_for_extension;
use crate::domain::{Attachment, AttachmentId, AttachmentStatus, FileName, ParentId, ParentKind};
use crate::domain::{ParentRef, Principal};
use crate::service::{App, AttachmentFields, NewFile, ServiceError, UploadTarget};

/// Crafter Profile's envelope.
#[derive(Debug)]
pub struct Crafter;

pub type Error = super::DialectError<Crafter>;

impl super::Dialect for Crafter {
    const INTERNAL: &'static str = "Internal server error";

    fn envelope(status: StatusCode, message: &str) -> Value {
        if status.is_server_error() {
            return json!({ "message": message });
        }
        json!({"errorCode": "OTHER", "message": message})
    }

    fn refusal(e: &ServiceError) -> Option<Response> {
        let message = "Access denied: the accessTokenId is missing, unknown or revoked";
        matches!(e, ServiceError::Unauthorized)
            .then(|| error(StatusCode::FORBIDDEN, "ACCESS_DENIED", message))
    }
}

/// Crafter's error envelope with a code of its own.
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    json_response(status, &json!({"errorCode": code, "message": message}))
}

fn no_such_profile(profile_id: &str) -> Error {
    let message = format!("No profile with ID \"{profile_id}\" found");
    Error::answer(error(StatusCode::NOT_FOUND, "NO_SUCH_PROFILE", &message))
}

/// A size as Crafter shows it (`FileUtils.readableFileSize`): base 1024, units B to TB, `0` for
/// nothing, and Java's `DecimalFormat("#,##0.#")`: thousands separated by commas, at most one
/// decimal rounded half-even on the exact value (1280 is `1.2 KB`), no trailing `.0`. The unit
/// is chosen before rounding, so 1048575 is `1,024 KB`, as in Java; past 1,024 TB it stays TB.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    if bytes == 0 {
        return "0".into();
    }
    let bytes = u128::from(bytes);
    let unit = (1..5).take_while(|&u| bytes >= 1024u128.pow(u)).count();
    let divisor = 1024u128.pow(unit as u32);
    // Tenths of the unit, rounded half-even with integers, so no float error can creep in.
    let mut tenths = bytes * 10 / divisor;
    let twice_rest = bytes * 10 % divisor * 2;
    if twice_rest > divisor || (twice_rest == divisor && tenths % 2 == 1) {
        tenths += 1;
    }
    let whole = group_thousands(tenths / 10);
    match tenths % 10 {
        0 => format!("{whole} {}", UNITS[unit]),
        d => format!("{whole}.{d} {}", UNITS[unit]),
    }
}

fn group_thousands(n: u128) -> String {
    let digits = n.to_string();
    let groups = digits.as_bytes().rchunks(3).rev();
    let groups: Vec<_> = groups.map(|g| String::from_utf8_lossy(g)).collect();
    groups.join(",")
}

/// Crafter's `ProfileAttachment` JSON, in the documentation's field order; what Crafter answers
/// for an attachment the profile does not have (every field null, the size 0) when `None`.
pub fn attachment_json(a: Option<&Attachment>) -> Value {
    let c = a.and_then(|a| a.content.as_ref());
    json!({
        "md5": c.map(|c| c.md5.as_str()),
        "contentType": c.map(|c| c.content_type.as_str()),
        "fileSize": c.map(|c| human_size(c.size)),
        "fileName": c.map(|c| c.file_name.stem()),
        "fileSizeBytes": c.map_or(0, |c| c.size),
        "id": a.map(|a| a.id.to_string()),
    })
}

/// Authenticates (403 first, as Crafter checks the token before anything else) and checks that
/// the profile is registered; a malformed id names no profile.
async fn caller_and_profile(app: &App, req: &Request) -> Result<(Principal, ParentRef), Error> {
    let profile_id = param(req, "id");
    // Crafter's clients send the key as `accessTokenId`; the headers work too.
    let key = presented_key(req).or_else(|| query_param(req, "accessTokenId"));
    let who = app.authenticate(key.as_deref()).await?;
    let id = ParentId::parse(profile_id).map_err(|_| no_such_profile(profile_id))?;
    let parent = ParentRef::new(ParentKind::parse("profile")?, id);
    match app.get_parent(&who, &parent).await {
        Ok(_) => Ok((who, parent)),
        Err(ServiceError::NotFound(_)) => Err(no_such_profile(profile_id)),
        Err(e) => Err(e.into()),
    }
}

/// The attachment named in the path of the caller's profile: by our id, or by its name
/// without extension as Crafter's clients name them (`avatar`).
async fn named_attachment(app: &App, req: &Request) -> Result<Option<Attachment>, Error> {
    let (who, parent) = caller_and_profile(app, req).await?;
    let name = param(req, "attachmentId");
    if let Ok(id) = AttachmentId::parse(name) {
        match app.get_of_parent(&who, &parent, id).await {
            Ok(a) if a.status == AttachmentStatus::Ready => return Ok(Some(a)),
            Ok(_) | Err(ServiceError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(app.find_named(&who, &parent, |n| n.stem() == name).await?)
}

/// `POST /api/1/profile/{id}/uploadAttachment`: the file in the `attachment` part, named by the
/// `filename` field, else the `filename` query parameter, else the part's own file name. Same
/// name without extension: a new version of that attachment, same id.
pub async fn upload(app: Arc<App>, req: Request) -> Answer<Crafter> {
    let (who, parent) = caller_and_profile(&app, &req).await?;
    let name_param = query_param(&req, "filename");
    let form = multipart::parse(req, &["attachment"]).await;
    // Binary bytes in another field are most likely the file sent under the wrong name.
    let form = form.map_err(|e| match e {
        MultipartError::NotText(field) => Error::bad_request(format!(
            "the field {field} is not text; the file must be sent in the part named attachment"
        )),
        e => e.into(),
    })?;
    let none = "no file part named attachment";
    let part = form.one_file(none, "more than one part named attachment");
    let part = part.map_err(Error::bad_request)?;
    let given = |n: &&str| !n.trim().is_empty();
    let unnamed = "the attachment part has no filename, and no filename field names it";
    let raw_name = form
        .text("filename")
        .filter(given)
        .or(name_param.as_deref().filter(given))
        .or(part.file_name.as_deref())
        .ok_or_else(|| Error::bad_request(unnamed))?;
    let file_name = FileName::parse(raw_name)?;
    let settings = &app.crafter;
    // Crafter takes the type from the extension alone; a name whose extension names no type
    // cannot be on the allow-list, whatever its bytes look like.
    if type_for_extension(file_name.extension()).is_none() {
        let allowed = settings.allowed_types.join(", ");
        let message = format!("the type of {file_name} cannot be told from its extension");
        let message = format!("{message} (allowed: {allowed})");
        return Err(Error::refused(StatusCode::UNSUPPORTED_MEDIA_TYPE, message));
    }
    let bytes = part.bytes.clone();
    let file = NewFile { file_name, bytes };
    let (fields, target) = (AttachmentFields::default(), UploadTarget::SameStem);
    let att = app.upload(&who, &parent, file, fields, target, Some(settings));
    let att = att.await?;
    Ok(json_response(StatusCode::OK, &attachment_json(Some(&att))))
}

/// `GET /api/1/profile/{id}/attachments`: every attachment with content, oldest first.
pub async fn list(app: Arc<App>, req: Request) -> Answer<Crafter> {
    let (who, parent) = caller_and_profile(&app, &req).await?;
    let atts = app.list_all(&who, &parent).await?;
    let ready = atts.iter().filter(|a| a.ready_content().is_some());
    let items: Vec<Value> = ready.map(|a| attachment_json(Some(a))).collect();
    Ok(json_response(StatusCode::OK, &items))
}

/// `GET /api/1/profile/{id}/attachment/{attachmentId}/details`.
pub async fn details(app: Arc<App>, req: Request) -> Answer<Crafter> {
    let att = named_attachment(&app, &req).await?;
    let json = attachment_json(att.as_ref());
    Ok(json_response(StatusCode::OK, &json))
}

/// `GET /api/1/profile/{id}/attachment/{attachmentId}`: a redirect to a link that downloads it.
pub async fn content(app: Arc<App>, req: Request) -> Answer<Crafter> {
    let link = match named_attachment(&app, &req).await? {
        Some(att) => app.download_link(&att).await?,
        None => None,
    };
    Ok(link.map_or_else(|| empty(StatusCode::OK), |link| redirect(&link)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_crafter_shows_them() {
        for (bytes, shown) in [
            (0u64, "0"),
            (1, "1 B"),
            (999, "999 B"),
            (1000, "1,000 B"),
            (1023, "1,023 B"),
            (1024, "1 KB"),
            (1025, "1 KB"),
            (1075, "1 KB"),     // 1.0498 KB
            (1076, "1.1 KB"),   // 1.0508 KB
            (1126, "1.1 KB"),   // 1.0996 KB
            (1280, "1.2 KB"),   // 1.25 exactly: half-even, as DecimalFormat
            (1331, "1.3 KB"),   // 1.2998 KB
            (1382, "1.3 KB"),   // 1.3496 KB
            (1383, "1.4 KB"),   // 1.3506 KB
            (1536, "1.5 KB"),   // 1.5 exactly
            (1792, "1.8 KB"),   // 1.75 exactly: half-even rounds up to the even 8
            (10188, "9.9 KB"),  // 9.9492 KB
            (10189, "10 KB"),   // 9.9502 KB
            (23193, "22.6 KB"), // the documentation
            (1_023_898, "999.9 KB"),
            (1_023_949, "1,000 KB"),
            (1_048_575, "1,024 KB"), // the unit is chosen before rounding, as in Java
            (1_048_576, "1 MB"),
            (1_572_864, "1.5 MB"),
            (5 * 1024 * 1024, "5 MB"),
            (1_073_741_823, "1,024 MB"),
            (1_073_741_824, "1 GB"),
            (1_099_511_627_776, "1 TB"),
            (1_649_267_441_664, "1.5 TB"),
            (1_125_899_906_842_624, "1,024 TB"), // 1 PB stays in TB
            (u64::MAX, "16,777,216 TB"),
        ] {
            assert_eq!(human_size(bytes), shown, "{bytes}");
        }
    }

    #[test]
    fn thousands() {
        assert_eq!(group_thousands(0), "0");
        assert_eq!(group_thousands(999), "999");
        assert_eq!(group_thousands(1000), "1,000");
        assert_eq!(group_thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn errors_in_crafter_envelope() {
        let r = <Crafter as super::super::Dialect>::error(StatusCode::METHOD_NOT_ALLOWED, "nope");
        let v: Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(v, json!({"errorCode": "OTHER", "message": "nope"}));
        let r =
            <Crafter as super::super::Dialect>::error(StatusCode::INTERNAL_SERVER_ERROR, "cause");
        let v: Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(v, json!({"message": "Internal server error"}));
    }
}
