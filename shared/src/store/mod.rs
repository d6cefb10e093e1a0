//! Storage ports: the small set of operations the use cases need from a metadata store and a blob
//! store, shaped after what DynamoDB and S3 do well (key access, conditional writes, presigned
//! links). Adapters: SQLite and a local file store (embedded mode), DynamoDB and S3 (AWS).

pub mod call_spans;
pub mod dynamo;
pub mod fs_blob;
pub mod s3;
pub mod sdk;
pub mod sqlite;

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::domain::{
    ApiKey, Attachment, AttachmentId, AttachmentStatus, Parent, ParentId, ParentKind, ParentRef,
    TenantId, Version, VersionId,
};

/// What can go wrong in a store. Only `Conflict` and `NotFound` are expected outcomes; the rest
/// are failures whose cause goes to the log, never to the caller.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A conditional write found the item not in the expected state, or a unique field taken.
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("not found")]
    NotFound,
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A request the SDK refused to build (a required field left out): our bug, not the peer's.
impl From<aws_smithy_types::error::operation::BuildError> for StoreError {
    fn from(e: aws_smithy_types::error::operation::BuildError) -> Self {
        Self::Unavailable(format!("dynamodb request: {e}"))
    }
}

/// The most keys one batched read takes (DynamoDB's BatchGetItem limit).
pub const MAX_BATCH_KEYS: usize = 100;

/// Whether a put created or replaced an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    Created,
    Updated,
}

/// A look-up field of a parent, unique per tenant, kind and source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParentLookup<'a> {
    Reference(&'a str),
    Email(&'a str),
}

/// The state an update expects to find, so concurrent writers cannot overwrite each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    pub status: AttachmentStatus,
    /// The current content's version (`None`: no content yet).
    pub version: Option<VersionId>,
    /// The version an upload under way will become (`None`: none). Without it, of two new
    /// versions started at once, the second would overwrite the first one's intent.
    pub upload: Option<VersionId>,
}

impl Expected {
    pub fn of(att: &Attachment) -> Self {
        Self {
            status: att.status,
            version: att.content.as_ref().map(|v| v.id),
            upload: att.upload.as_ref().map(|u| u.version.id),
        }
    }
}

/// One page of a listing, in key order (attachments oldest first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T, After = String> {
    pub items: Vec<T>,
    /// Where the next page starts when more may follow: this page's last key, the last hidden
    /// attachment stepped over (at [`MAX_HIDDEN_SKIPPED`]) or a staging listing's own position.
    pub next: Option<After>,
}

/// The most hidden attachments (pending, refused, being deleted) one listing call steps over
/// before it answers a short page, so a million abandoned uploads are not read by every listing.
pub const MAX_HIDDEN_SKIPPED: usize = 1000;

/// How many hidden attachments a listing of `parents` parents at once steps over in each: an
/// equal share of [`MAX_HIDDEN_SKIPPED`], at least 10.
pub fn hidden_share(parents: usize) -> usize {
    (MAX_HIDDEN_SKIPPED / parents.max(1)).max(10)
}

/// The listed attachments of several parents, read within a bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManyListing {
    /// For each parent asked, in the order asked: its listed attachments, oldest first, or
    /// `None` when it does not exist.
    Parents(Vec<Option<Vec<Attachment>>>),
    /// Together they have more listed attachments than the limit, or one of them has more than
    /// its [`hidden_share`] of hidden ones before its last listed one: nothing is answered.
    TooMany,
}

/// Metadata: API keys, parents, attachments and their versions. Every read and write names the
/// tenant, so no call can reach another tenant's items.
#[async_trait]
pub trait MetadataStore: Send + Sync {
    async fn put_api_key(&self, key: &ApiKey) -> StoreResult<()>;
    async fn get_api_key(&self, hash: &str) -> StoreResult<Option<ApiKey>>;
    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKey>>;
    /// Marks a key revoked; false when no key has that id.
    async fn revoke_api_key(&self, id: &str) -> StoreResult<bool>;

    /// Creates or replaces a parent. `Conflict` when its reference or e-mail belongs to another
    /// parent of the same tenant, kind and source.
    async fn put_parent(&self, parent: &Parent) -> StoreResult<PutOutcome>;
    async fn get_parent(&self, tenant: &TenantId, key: &ParentRef) -> StoreResult<Option<Parent>>;
    /// The parents among `keys` that exist, in any order, in one batched read: at most
    /// [`MAX_BATCH_KEYS`] distinct keys (callers dedupe: BatchGetItem refuses duplicates).
    async fn get_parents(&self, tenant: &TenantId, keys: &[ParentRef]) -> StoreResult<Vec<Parent>>;
    async fn find_parent(
        &self,
        tenant: &TenantId,
        kind: &ParentKind,
        source: Option<&str>,
        lookup: ParentLookup<'_>,
    ) -> StoreResult<Option<Parent>>;
    /// Deletes the parent item only (its attachments are removed by the use case first).
    async fn delete_parent(&self, tenant: &TenantId, key: &ParentRef) -> StoreResult<bool>;
    /// Parents of a kind that have at least one listed attachment, in id order after `after`:
    /// at most `limit`.
    async fn parents_with_attachments(
        &self,
        tenant: &TenantId,
        kind: &ParentKind,
        after: Option<&ParentId>,
        limit: usize,
    ) -> StoreResult<Page<ParentRef, ParentId>>;

    /// Creates an attachment; `Conflict` if the id exists.
    async fn create_attachment(&self, att: &Attachment) -> StoreResult<()>;
    /// Replaces an attachment if it is still as `expected`; `Conflict` otherwise.
    async fn update_attachment(&self, att: &Attachment, expected: Expected) -> StoreResult<()>;
    async fn get_attachment(
        &self,
        tenant: &TenantId,
        id: AttachmentId,
    ) -> StoreResult<Option<Attachment>>;
    /// Attachments of a parent, oldest first, after `after`. Only listed ones unless
    /// `include_hidden` (for clean-up and deletion); a call steps over at most
    /// [`MAX_HIDDEN_SKIPPED`] hidden ones (see [`Page::next`]).
    async fn list_attachments(
        &self,
        tenant: &TenantId,
        parent: &ParentRef,
        after: Option<AttachmentId>,
        limit: usize,
        include_hidden: bool,
    ) -> StoreResult<Page<Attachment, AttachmentId>>;
    /// The listed attachments of each of `parents` (at most [`MAX_BATCH_KEYS`], distinct), at
    /// most `limit` in all, read together; [`ManyListing::TooMany`] beyond the limit.
    async fn list_attachments_of_many(
        &self,
        tenant: &TenantId,
        parents: &[ParentRef],
        limit: usize,
    ) -> StoreResult<ManyListing>;
    /// Deletes an attachment and its version records.
    async fn delete_attachment(&self, tenant: &TenantId, id: AttachmentId) -> StoreResult<bool>;

    async fn put_version(
        &self,
        tenant: &TenantId,
        att: AttachmentId,
        v: &Version,
    ) -> StoreResult<()>;
    /// An attachment's versions, oldest first.
    async fn list_versions(
        &self,
        tenant: &TenantId,
        att: AttachmentId,
    ) -> StoreResult<Vec<Version>>;
    async fn delete_version(
        &self,
        tenant: &TenantId,
        att: AttachmentId,
        version: VersionId,
    ) -> StoreResult<()>;

    /// Leftovers to clean up, any tenant: attachments whose `expires_at` (unix seconds) is before
    /// `before` (pending uploads past their window, refused uploads, deletions stopped half-way).
    async fn expired_pending(&self, before: i64, limit: usize) -> StoreResult<Vec<Attachment>>;

    /// The leftover with an upload under way that expires first, any tenant: for the hourly
    /// metric of the oldest unverified upload.
    async fn oldest_upload_under_way(&self) -> StoreResult<Option<Attachment>>;
}

/// How a download link presents the content, and when it is valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkOptions<'a> {
    pub content_type: &'a str,
    pub file_name: &'a str,
    pub valid: LinkWindow,
}

/// When a download link is signed and expires (unix seconds): at the start of the current window
/// of half its lifetime, so every answer within a window carries the same links (an unchanged
/// answer keeps its ETag) and a link handed out lives between half and all of its lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkWindow {
    pub signed_at: i64,
    pub expires_at: i64,
}

impl LinkWindow {
    /// The window of `now` for links that live `ttl`.
    pub fn aligned(now: i64, ttl: Duration) -> Self {
        let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX).max(1);
        let half = (ttl / 2).max(1);
        let signed_at = now - now.rem_euclid(half);
        Self {
            signed_at,
            expires_at: signed_at.saturating_add(ttl),
        }
    }
}

/// What a store knows of a stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    pub size: u64,
    /// Names this very object: any new object under the key has another (S3's ETag; the file
    /// store's identity of the file). Reads and copies pinned to it fail once it is replaced.
    pub etag: String,
}

/// A multipart upload under the staging prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedUpload {
    pub key: String,
    pub upload_id: String,
    /// When it was started (unix seconds).
    pub initiated: i64,
}

/// The conditions a direct form upload must meet: the exact key (given separately), size and
/// type, and the checksum when the client declared one. Storage enforces them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostPolicy<'a> {
    pub content_type: &'a str,
    pub size: u64,
    pub sha256: Option<&'a [u8; 32]>,
    pub ttl: Duration,
}

/// A form upload the client makes itself: POST `url` as multipart/form-data with `fields`
/// first and the file last, in a part named `file`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignedPost {
    pub url: String,
    pub fields: Vec<(String, String)>,
}

/// A part storage has received of a multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartInfo {
    pub number: u32,
    pub size: u64,
    pub etag: String,
}

/// Blobs: the bytes of each version under a key the server made.
#[async_trait]
pub trait BlobStore: Send + Sync {
    /// Stores the bytes; `sha256` lets the store verify what it received.
    async fn put(
        &self,
        key: &str,
        data: Bytes,
        content_type: &str,
        sha256: &[u8; 32],
    ) -> StoreResult<()>;
    /// Stores bytes whose SHA-256 the caller is still computing. A store that has the checksum
    /// verified in transit (S3) waits for it, as this default does; others write at once.
    async fn put_while_hashing(
        &self,
        key: &str,
        data: Bytes,
        content_type: &str,
        sha256: tokio::sync::oneshot::Receiver<[u8; 32]>,
    ) -> StoreResult<()> {
        let sha256 = sha256
            .await
            .map_err(|_| StoreError::Unavailable("the upload's hashing stopped".into()))?;
        self.put(key, data, content_type, &sha256).await
    }
    async fn head(&self, key: &str) -> StoreResult<Option<BlobInfo>>;
    /// Reads `len` bytes from `offset` (fewer at the end of the object). With `etag`, only of
    /// that very object: `Conflict` once another object replaced it.
    async fn get_range(
        &self,
        key: &str,
        etag: Option<&str>,
        offset: u64,
        len: u64,
    ) -> StoreResult<Bytes>;
    /// Moves the object `staged`, exactly the one `etag` names and `size` long, to `key`, which
    /// is never replaced: `NotFound` when `staged` is gone, `Conflict` when it was replaced.
    async fn promote(&self, staged: &str, etag: &str, size: u64, key: &str) -> StoreResult<()>;
    /// The objects under the staging prefix, from `after` (a page's `next`).
    async fn list_staged(&self, after: Option<String>) -> StoreResult<Page<String>>;
    /// The unfinished multipart uploads under the staging prefix, from `after`.
    async fn list_staged_uploads(&self, after: Option<String>) -> StoreResult<Page<StagedUpload>>;
    /// Deletes the object; deleting a missing object is not an error.
    async fn delete(&self, key: &str) -> StoreResult<()>;
    /// A link that downloads the object as an attachment with the given type and name.
    async fn presign_get(&self, key: &str, opts: &LinkOptions<'_>) -> StoreResult<String>;

    /// A form upload of exactly one object under `key`, limited by `policy`.
    async fn presign_post(&self, key: &str, policy: &PostPolicy<'_>) -> StoreResult<PresignedPost>;
    async fn create_multipart(&self, key: &str, content_type: &str) -> StoreResult<String>;
    /// A link that uploads one part (PUT, the part's bytes as the body) of exactly `size`
    /// bytes: the link signs its length, so a part can never hold more than was declared.
    async fn presign_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        size: u64,
        ttl: Duration,
    ) -> StoreResult<String>;
    /// The parts received so far, by number; `NotFound` when the upload is gone.
    async fn list_parts(&self, key: &str, upload_id: &str) -> StoreResult<Vec<PartInfo>>;
    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[PartInfo],
    ) -> StoreResult<()>;
    /// Drops a multipart upload and its parts; an unknown upload is not an error.
    async fn abort_multipart(&self, key: &str, upload_id: &str) -> StoreResult<()>;
}

/// `Content-Disposition` for downloads: always an attachment (never rendered inline, so an SVG
/// or HTML file cannot run in the service's origin), with the name in RFC 5987 form so any
/// character survives and nothing can break out of the header.
pub fn content_disposition(file_name: &str) -> String {
    let encoded = percent_encoding::utf8_percent_encode(file_name, RFC5987);
    format!("attachment; filename*=UTF-8''{encoded}")
}

/// attr-char of RFC 5987: everything else is percent-encoded.
const RFC5987: &percent_encoding::AsciiSet = &{
    const KEEP: &[u8] = b"!#$&+-.^_`|~";
    let (mut set, mut i) = (percent_encoding::NON_ALPHANUMERIC.remove(KEEP[0]), 1);
    while i < KEEP.len() {
        set = set.remove(KEEP[i]);
        i += 1;
    }
    set
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_windows_are_half_a_lifetime_and_links_keep_half_of_theirs() {
        let ttl = Duration::from_secs(900);
        let w = LinkWindow::aligned(1_000_000, ttl);
        assert_eq!(
            w,
            LinkWindow {
                signed_at: 999_900,
                expires_at: 1_000_800
            }
        );
        // The same window until it turns, and then the links handed out before still have half
        // their lifetime left.
        assert_eq!(LinkWindow::aligned(1_000_349, ttl), w);
        let next = LinkWindow::aligned(1_000_350, ttl);
        assert_eq!(next.signed_at, 1_000_350);
        assert_eq!(w.expires_at - 1_000_350, 450);
        // A link always lives at least half, and at most all, of its lifetime.
        for now in 1_000_000..1_002_000 {
            for secs in [1, 2, 3, 900, 3601] {
                let w = LinkWindow::aligned(now, Duration::from_secs(secs));
                let left = w.expires_at - now;
                assert!(
                    left <= secs as i64 && 2 * left >= secs as i64,
                    "{now} {secs}: {left}"
                );
            }
        }
    }

    #[test]
    fn disposition_encodes_any_name() {
        assert_eq!(
            content_disposition("résumé \"x\".pdf"),
            "attachment; filename*=UTF-8''r%C3%A9sum%C3%A9%20%22x%22.pdf"
        );
    }
}
