//! The records the service keeps: tenants' API keys, parents, attachments and their versions.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::ids::{AttachmentId, FileName, ParentId, ParentKind, TenantId, VersionId};

/// Who is calling: resolved from an API key, carried through every use case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub tenant: TenantId,
    /// The key's owner label (an e-mail address for the asset API, a name otherwise).
    pub owner: String,
}

/// A stored API key. Only the SHA-256 of the key is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// A short public id, used to list and revoke keys without knowing them.
    pub id: String,
    pub tenant: TenantId,
    pub owner: String,
    /// Hex SHA-256 of the key.
    pub hash: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub revoked: bool,
}

/// A parent: a record of the user's application, named by kind and id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ParentRef {
    pub kind: ParentKind,
    pub id: ParentId,
}

impl ParentRef {
    pub fn new(kind: ParentKind, id: ParentId) -> Self {
        Self { kind, id }
    }
}

/// A registered parent with its optional look-up fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parent {
    pub tenant: TenantId,
    #[serde(flatten)]
    pub key: ParentRef,
    pub source: Option<String>,
    pub reference: Option<String>,
    pub email: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// Where an attachment is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachmentStatus {
    /// Created with a title only; its file comes later (the asset API).
    Placeholder,
    /// Content is being stored; never listed.
    Pending,
    /// Content stored and verified.
    Ready,
    /// Gone; kept only where a store needs a tombstone.
    Deleted,
    /// A direct upload that failed verification (size, checksum or type); `problem` says why.
    Rejected,
}

impl AttachmentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Placeholder => "placeholder",
            Self::Pending => "pending",
            Self::Ready => "ready",
            Self::Deleted => "deleted",
            Self::Rejected => "rejected",
        }
    }

    /// Whether lists show it: half-uploaded and deleted attachments are never listed.
    pub fn is_listed(self) -> bool {
        matches!(self, Self::Placeholder | Self::Ready)
    }
}

/// One stored content of an attachment. Its blob key is derived, never taken from a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    pub id: VersionId,
    pub file_name: FileName,
    pub content_type: String,
    pub size: u64,
    /// Hex MD5 of the content.
    pub md5: String,
    /// Hex SHA-256 of the content.
    pub sha256: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// An attachment: metadata, labels, and its current content (none for a placeholder).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub tenant: TenantId,
    pub id: AttachmentId,
    pub parent: ParentRef,
    /// Free label: resume, original, cover, file…
    #[serde(rename = "type")]
    pub label: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub category: Option<String>,
    pub tags: Vec<String>,
    pub status: AttachmentStatus,
    pub owner: String,
    pub external_id: Option<String>,
    /// The current content; `None` for a placeholder. While pending, the content being stored.
    pub content: Option<Version>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// While pending: when the upload window closes (unix seconds); the sweep removes it after.
    pub expires_at: Option<i64>,
    /// A direct upload under way (a new attachment's first content, or a new version).
    pub upload: Option<PendingUpload>,
    /// Why the last direct upload was refused.
    pub problem: Option<String>,
}

/// A direct-to-storage upload the client was told how to make, not yet verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingUpload {
    /// The version it will become; its digests are filled in by the verification.
    pub version: Version,
    /// The SHA-256 the client declared, hex.
    pub declared_sha256: Option<String>,
    /// Set for an S3-style multipart upload.
    pub multipart: Option<MultipartUpload>,
    /// When the upload window closes (unix seconds).
    pub expires_at: i64,
    /// When the upload was handed to a verification that runs in the background (unix
    /// seconds): too large to verify within a request, it is `verifying` until that ends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verifying_since: Option<i64>,
}

/// The storage's multipart upload and how it was cut.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultipartUpload {
    pub upload_id: String,
    pub part_size: u64,
    pub parts: u32,
}

impl Attachment {
    /// A new attachment of `owner` on `parent`, with no labels and no content yet.
    pub fn new(
        tenant: TenantId,
        parent: ParentRef,
        owner: String,
        status: AttachmentStatus,
        now: OffsetDateTime,
    ) -> Self {
        Self {
            tenant,
            id: AttachmentId::new(),
            parent,
            label: "file".into(),
            title: None,
            description: None,
            category: None,
            tags: Vec::new(),
            status,
            owner,
            external_id: None,
            content: None,
            created_at: now,
            updated_at: now,
            expires_at: None,
            upload: None,
            problem: None,
        }
    }

    /// The storage key of one content: made only from validated ids, never from a file name.
    pub fn blob_key(&self, version: VersionId) -> String {
        format!("{}/{}/{version}", self.tenant, self.id)
    }

    /// The key of a content's thumbnail: beside it, `{version}_thumb`, one segment of id
    /// characters like every key (the file store refuses anything else).
    pub fn thumbnail_key(&self, version: VersionId) -> String {
        format!("{}_thumb", self.blob_key(version))
    }

    /// Where a direct upload lands: under [`STAGING_PREFIX`], which nothing is served from. Only
    /// a verification makes it a content, by copying exactly the object it verified to the
    /// content's own key, which no upload link reaches.
    pub fn staging_key(&self, version: VersionId) -> String {
        format!("{STAGING_PREFIX}{}", self.blob_key(version))
    }

    /// The current content, when it can be served: a ready attachment's.
    pub fn ready_content(&self) -> Option<&Version> {
        (self.status == AttachmentStatus::Ready).then_some(self.content.as_ref())?
    }

    /// The status as the APIs show it: a pending upload whose verification runs in the
    /// background is `verifying`.
    pub fn shown_status(&self) -> &'static str {
        match &self.upload {
            Some(u) if self.status == AttachmentStatus::Pending && u.verifying_since.is_some() => {
                "verifying"
            }
            _ => self.status.as_str(),
        }
    }
}

/// The prefix of [`Attachment::staging_key`]s; the sweep (and, on S3, the bucket's lifecycle
/// rule) removes whatever lands there that no upload waits for.
pub const STAGING_PREFIX: &str = "staging/";

/// The ids a staging key names, if it is one.
pub fn parse_staging_key(key: &str) -> Option<(TenantId, AttachmentId, VersionId)> {
    let (t, rest) = key.strip_prefix(STAGING_PREFIX)?.split_once('/')?;
    let (a, v) = rest.split_once('/')?;
    Some((
        TenantId::parse(t).ok()?,
        AttachmentId::parse(a).ok()?,
        VersionId::parse(v).ok()?,
    ))
}
