//! The native API's JSON: the attachment (serialised straight from the model, in its
//! documented field order), the parent and a direct upload's instructions. Timestamps are
//! RFC 3339 in UTC with milliseconds, the one spelling every answer uses.

use std::borrow::Cow;

use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;

use crate::domain::{Attachment, AttachmentId, Parent, ParentRef, VersionId};
use crate::service::UploadInstructions;
use crate::store::PresignedPost;

/// RFC 3339 in UTC with milliseconds.
pub fn rfc3339(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC).truncate_to_millisecond();
    t.format(&Rfc3339).unwrap_or_default()
}

/// [`rfc3339`], as the views' fields serialise it.
fn timestamp<S: serde::Serializer>(t: &time::OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*t))
}

/// The fields of the native attachment JSON, in their documented order.
#[derive(serde::Serialize)]
pub struct AttachmentView<'a> {
    id: AttachmentId,
    parent: &'a ParentRef,
    file_name: Option<&'a str>,
    original_file_name: Option<&'a str>,
    extension: Option<Cow<'a, str>>,
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
    #[serde(serialize_with = "timestamp")]
    created_at: time::OffsetDateTime,
    #[serde(serialize_with = "timestamp")]
    updated_at: time::OffsetDateTime,
    #[serde(skip_serializing_if = "Option::is_none")]
    download_url: Option<String>,
    /// A PNG of at most 256 px (the image itself, or an icon of the file's family), when ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) thumbnail_url: Option<String>,
    /// Why the last direct upload was refused (absent when nothing was).
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<&'a str>,
}

/// Most extensions are lowercase already: those are borrowed, not copied.
fn lowercase(s: &str) -> Cow<'_, str> {
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
        parent: &a.parent,
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
        status: a.shown_status(),
        owner: &a.owner,
        external_id: &a.external_id,
        version_id: c.map(|c| c.id),
        created_at: a.created_at,
        updated_at: a.updated_at,
        download_url,
        thumbnail_url: None,
        problem: a.problem.as_deref(),
    }
}

pub fn parent_json(p: &Parent) -> Value {
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

/// A direct upload: its attachment, and how to send its bytes (a form POST or the links of a
/// multipart upload).
pub fn upload_json(att: &Attachment, i: &UploadInstructions) -> Value {
    let expires = att.upload.as_ref().map(|u| u.expires_at);
    let expires = expires.map(time::OffsetDateTime::from_unix_timestamp);
    let expires = expires.and_then(Result::ok).map(rfc3339);
    let upload = match i {
        UploadInstructions::Post(PresignedPost { url, fields }) => {
            let fields: Map<_, _> = fields.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
            json!({"method": "POST", "url": url, "fields": fields, "file_field": "file", "expires_at": expires})
        }
        UploadInstructions::Multipart {
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
    };
    json!({"attachment": attachment_view(att, None), "upload": upload})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_views_are_written_as_rfc3339_with_milliseconds() {
        let t = time::macros::datetime!(2026-12-02 07:25:54.966_789_123 +02:00);
        let json = timestamp(&t, serde_json::value::Serializer).unwrap();
        assert_eq!(json, "2026-12-02T05:25:54.966Z");
        assert_eq!(json, rfc3339(t));
    }

    #[test]
    fn extensions_are_lowercased_and_borrowed_when_they_already_are() {
        assert_eq!(lowercase("JPG"), "jpg");
        assert!(matches!(lowercase("png"), Cow::Borrowed("png")));
    }
}
