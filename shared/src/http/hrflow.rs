//! HrFlow's profile attachments API (`GET /v1/profile/attachments` and its newer spelling
//! `GET /v1/profile/indexing/attachments`) as HrFlow's SDKs expect it: the key in `X-API-KEY`,
//! a profile (a `profile` parent whose `source` is HrFlow's source id) named by source and id,
//! reference or e-mail; answers and errors as `{"code":…,"message":"…"}`.

use std::sync::Arc;

use http::StatusCode;
use serde_json::{json, Value};

use super::{json as json_response, presented_key, query_pairs, Answer, Request, Response};
use crate::domain::{Attachment, ParentId, ParentKind, ParentRef};
use crate::service::{App, ServiceError};
use crate::store::ParentLookup;

/// HrFlow's envelope: the status repeated as `code`.
#[derive(Debug)]
pub struct HrFlow;

pub type Error = super::DialectError<HrFlow>;

impl super::Dialect for HrFlow {
    const INTERNAL: &'static str = "Internal server error";

    fn envelope(status: StatusCode, message: &str) -> Value {
        json!({"code": status.as_u16(), "message": message})
    }

    fn refusal(e: &ServiceError) -> Option<Response> {
        // A profile that is not found, in another source or tenant too, is HrFlow's answer for
        // a profile it cannot find.
        matches!(e, ServiceError::NotFound(_))
            .then(|| Self::error(StatusCode::BAD_REQUEST, INVALID_PROFILE))
    }
}

const INVALID_PROFILE: &str = "Invalid profile array";

fn invalid_profile() -> Error {
    Error::bad_request(INVALID_PROFILE)
}

/// Enough of a presented key to recognise it, never enough to use it: the first four characters
/// of a long key, nothing of a short one.
pub fn mask_key(key: Option<&str>) -> String {
    let Some(key) = key.map(str::trim).filter(|k| !k.is_empty()) else {
        return "none given".into();
    };
    let head: String = key.chars().take(4).collect();
    let plain = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if key.chars().count() >= 16 && head.chars().all(plain) {
        format!("{head}…")
    } else {
        "…".into()
    }
}

/// One attachment as the documentation shows it, with a presigned link.
pub fn attachment_json(a: &Attachment, public_url: &str) -> Value {
    let c = a.content.as_ref();
    json!({
        "type": a.label,
        "alt": c.map(|c| c.sha256.as_str()),
        "file_name": c.map(|c| c.file_name.as_str()),
        "original_file_name": c.map(|c| c.file_name.stem()),
        "file_size": c.map(|c| c.size),
        "extension": c.map(|c| c.file_name.extension().to_ascii_lowercase()),
        "public_url": public_url,
        "timestamp": c.map(|c| c.created_at.unix_timestamp()),
    })
}

/// `GET /v1/profile/attachments` and `GET /v1/profile/indexing/attachments`: the profile is named
/// by source and any of id, reference and e-mail, which must all name the same one. Each
/// parameter has the legacy spelling and the indexing API's; the first non-empty value counts.
pub async fn list(app: Arc<App>, req: Request) -> Answer<HrFlow> {
    let key = presented_key(&req);
    let who = match app.authenticate(key.as_deref()).await {
        // HrFlow's 401 shows the key, masked.
        Err(ServiceError::Unauthorized) => {
            let masked = mask_key(key.as_deref());
            let message = format!("Unauthorized. Invalid secret key: {masked}");
            return Err(Error::refused(StatusCode::UNAUTHORIZED, message));
        }
        who => who?,
    };
    // The parameter names of the spelling the caller used, for messages.
    let indexing = req.uri().path().contains("/indexing/");
    let source_name = if indexing { "source_key" } else { "source_id" };
    let lookups = match indexing {
        true => "key, reference or email",
        false => "profile_id, profile_reference or profile_email",
    };
    let pairs = query_pairs(&req);
    let param = |names: [&str; 2]| {
        let named =
            |(k, v): &&(String, String)| names.contains(&k.as_str()) && !v.trim().is_empty();
        pairs.iter().find(named).map(|(_, v)| v.as_str())
    };
    let missing = || Error::bad_request(format!("Missing parameter {source_name}"));
    let source = param(["source_id", "source_key"]).ok_or_else(missing)?;
    let reference = param(["profile_reference", "reference"]).map(ParentLookup::Reference);
    let email = param(["profile_email", "email"]).map(ParentLookup::Email);
    let kind = ParentKind::parse("profile")?;
    let mut found: Vec<ParentRef> = Vec::new();
    if let Some(id) = param(["profile_id", "key"]) {
        // A malformed id, or a profile of another source, names no profile.
        let id = ParentId::parse(id).map_err(|_| invalid_profile())?;
        let named = ParentRef::new(kind.clone(), id);
        let p = app.get_parent(&who, &named).await?;
        let same_source = p.source.as_deref() == Some(source);
        found.push(same_source.then_some(p.key).ok_or_else(invalid_profile)?);
    }
    for lookup in [reference, email].into_iter().flatten() {
        let p = app.find_parent(&who, &kind, Some(source), lookup).await?;
        found.push(p.ok_or_else(invalid_profile)?.key);
    }
    // What was given names one profile, or none was given, or they differ.
    let not_same = "The profile id, reference and email given do not designate the same profile";
    found.dedup();
    let profile = match found.as_slice() {
        [profile] => profile,
        [] => {
            let message = format!("Missing parameter: one of {lookups} is required");
            return Err(Error::bad_request(message));
        }
        _ => return Err(Error::bad_request(not_same)),
    };
    let mut data = Vec::new();
    // Only a ready attachment with content has a link.
    for a in app.list_all(&who, profile).await? {
        if let Some(link) = app.download_link(&a).await? {
            data.push(attachment_json(&a, &link));
        }
    }
    let json = json!({"code": 200, "message": "Profile attachment list", "data": data});
    Ok(json_response(StatusCode::OK, &json))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_masked() {
        assert_eq!(mask_key(Some("key-a-0123456789abcdef")), "key-…");
        assert_eq!(mask_key(Some("short-key")), "…");
        assert_eq!(mask_key(Some("<scr-0123456789abcdef")), "…");
        assert_eq!(mask_key(Some("   ")), "none given");
        assert_eq!(mask_key(None), "none given");
        assert_eq!(mask_key(Some("ééééé-0123456789abcdef")), "…");
    }

    #[test]
    fn errors_in_hrflow_envelope() {
        let r = <HrFlow as super::super::Dialect>::error(StatusCode::METHOD_NOT_ALLOWED, "nope");
        let v: Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(v, json!({"code": 405, "message": "nope"}));
        let r =
            <HrFlow as super::super::Dialect>::error(StatusCode::INTERNAL_SERVER_ERROR, "cause");
        let v: Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(v, json!({"code": 500, "message": "Internal server error"}));
    }
}
