//! The use cases every API calls: API keys, parents, uploads, listings, links and deletions.
//! Dialects parse their requests into these calls and render what comes back; no dialect talks
//! to storage, and nothing here knows which API is calling.

mod cursor;
pub mod dialects;
mod direct;
mod keys;
mod records;
mod staging;
mod thumbnails;
mod uploads;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::domain::{
    Attachment, AttachmentId, AttachmentStatus, IdError, Parent, ParentKind, ParentRef,
    PendingUpload, Principal, VersionId,
};
use crate::signing::Signer;
use crate::store::{
    BlobStore, Expected, LinkOptions, LinkWindow, ManyListing, MetadataStore, Page, ParentLookup,
    PutOutcome, StoreError, StoreResult,
};

/// The most attachments an answer that is not paged holds (past it, 409; the native API pages).
/// At about 3 KB an item with its two links (signed with a Lambda role's session token), 1,000
/// items stay within the 6 MB a Lambda answer may be.
pub const MAX_UNPAGED_ATTACHMENTS: usize = 1000;

/// The most attachments one `DELETE` of a parent removes, and for how long it goes on (a parent
/// with more is removed by repeating it). Removing one attachment takes about a dozen calls to
/// DynamoDB and S3, so this stays well inside a function's 15 s.
pub const PARENT_DELETION_BATCH: usize = 100;
const PARENT_DELETION_TIME: Duration = Duration::from_secs(5);

/// What a parent deletion did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParentDeletion {
    /// The parent and everything it had are gone.
    Deleted,
    /// This many attachments were removed and more remain: repeat the deletion.
    Continuing { removed: usize },
}

pub use direct::{
    parse_sha256, part_size_for, Completion, DirectUploadRequest, Receipt, UploadInstructions,
};
pub use keys::NewKey;
pub use records::{VersionScope, MAX_RECORDS_PER_CALL};
pub use uploads::{AttachmentFields, NewFile, UploadTarget};

/// What a use case can answer besides success. Each dialect maps these to its own envelope.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("missing or invalid API key")]
    Unauthorized,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    UnsupportedMedia(String),
    /// An unpaged answer would pass [`MAX_UNPAGED_ATTACHMENTS`]: the caller pages, or asks less.
    #[error("{0}")]
    TooMany(String),
    /// A failure of storage; the cause is logged, the caller sees a generic 500.
    #[error("internal error: {0}")]
    Internal(#[from] StoreError),
}

impl From<IdError> for ServiceError {
    fn from(e: IdError) -> Self {
        ServiceError::Invalid(e.to_string())
    }
}

pub type ServiceResult<T> = Result<T, ServiceError>;

/// A conditional write the store refused, as the caller's 409 saying `why`, or else the store's
/// own reason (a storage limit such as the AWS backend's attachments per parent).
pub(crate) fn refused(why: Option<&'static str>) -> impl Fn(StoreError) -> ServiceError {
    move |e| match e {
        StoreError::Conflict(msg) => ServiceError::Conflict(why.map_or(msg, str::to_owned)),
        other => other.into(),
    }
}

/// Payload limits of API Gateway and Lambda: a synchronous Lambda request carries at most 6 MB,
/// and API Gateway base64-encodes binary bodies (4 bytes for every 3). 4 MiB + 64 KiB of body
/// becomes about 5.7 MB of event, which leaves room for headers: a 4 MiB file fits.
pub const DEFAULT_MAX_UPLOAD_BYTES: usize = 4 * 1024 * 1024 + 64 * 1024;

/// Limits the use cases enforce, from configuration.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_upload_bytes: usize,
    pub link_ttl: Duration,
    /// How long a pending upload may stay pending before the sweep removes it.
    pub pending_ttl: Duration,
    /// Direct uploads up to this size use one form POST; larger ones are multipart.
    pub direct_post_max_bytes: u64,
    /// The largest direct upload.
    pub direct_max_bytes: u64,
    /// Lifetime of upload links (form POST and parts); the status call hands out fresh ones.
    pub upload_link_ttl: Duration,
    /// Direct uploads up to this size are verified within the `complete` request; larger ones
    /// in the background.
    pub inline_verify_max_bytes: u64,
    /// Whether this process runs background verifications itself (the embedded backend); on
    /// AWS storage's events run them in the finalize function.
    pub verify_in_process: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            link_ttl: Duration::from_secs(900),
            pending_ttl: Duration::from_secs(24 * 3600),
            direct_post_max_bytes: 100 * 1024 * 1024,
            // What the finalize function verifies in half its 900 s: S3 streams an object to it at
            // about 100 MB/s (450 s: 45 GB); hashing, at about 440 MB/s on its whole vCPU (the
            // benchmark's hashing row), is not the bound.
            direct_max_bytes: 40 * 1024 * 1024 * 1024,
            upload_link_ttl: Duration::from_secs(3600),
            // An API function has 15 s and a share of a core; 64 MiB is read and hashed in about
            // a second there, a wide margin.
            inline_verify_max_bytes: 64 * 1024 * 1024,
            verify_in_process: true,
        }
    }
}

/// The application: storage ports plus the few things every use case needs. Built once per
/// process (or Lambda container) and shared by all requests.
pub struct App {
    pub(crate) meta: Arc<dyn MetadataStore>,
    pub(crate) blobs: Arc<dyn BlobStore>,
    signer: Signer,
    pub limits: Limits,
    /// Crafter Profile's settings (see [`dialects`]); defaults until wiring sets them.
    pub crafter: dialects::CrafterSettings,
    key_cache: keys::KeyCache,
    /// Direct-upload verifications under way.
    verifying: direct::InFlight,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("limits", &self.limits).finish()
    }
}

/// The optional look-up fields of a parent (the native API's `PUT` body).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParentFields {
    pub source: Option<String>,
    pub reference: Option<String>,
    pub email: Option<String>,
}

pub(crate) fn now() -> OffsetDateTime {
    // Milliseconds are what every API shows; storing more would make round trips differ.
    OffsetDateTime::now_utc().truncate_to_millisecond()
}

/// What an upload or a placeholder starts from, with `fields` applied: `current` (refused while
/// an upload to it is under way) or a new pending attachment of the caller's under `parent`.
fn labelled(
    who: &Principal,
    parent: &ParentRef,
    current: Option<&Attachment>,
    fields: AttachmentFields,
    t: OffsetDateTime,
) -> ServiceResult<Attachment> {
    if current.is_some_and(|c| c.upload.is_some()) {
        let why = "an upload to this attachment is already under way";
        return Err(ServiceError::Conflict(why.into()));
    }
    let (tenant, owner, pending) = (&who.tenant, &who.owner, AttachmentStatus::Pending);
    let mut att = current.cloned().unwrap_or_else(|| {
        Attachment::new(tenant.clone(), parent.clone(), owner.clone(), pending, t)
    });
    fields.apply(&mut att);
    Ok(att)
}

fn bounded(field: &str, value: Option<String>, max_chars: usize) -> ServiceResult<Option<String>> {
    match value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) {
        Some(v) if v.chars().count() > max_chars => Err(ServiceError::Invalid(format!(
            "{field} is too long (maximum is {max_chars} characters)"
        ))),
        Some(v) if v.chars().any(char::is_control) => Err(ServiceError::Invalid(format!(
            "{field} contains control characters"
        ))),
        other => Ok(other),
    }
}

impl App {
    pub fn new(
        meta: Arc<dyn MetadataStore>,
        blobs: Arc<dyn BlobStore>,
        signer: Signer,
        limits: Limits,
    ) -> Self {
        Self {
            meta,
            blobs,
            signer,
            limits,
            crafter: Default::default(),
            key_cache: Default::default(),
            verifying: Default::default(),
        }
    }

    /// Registers or updates a parent. Reference and e-mail are unique per tenant, kind and source.
    pub async fn put_parent(
        &self,
        who: &Principal,
        key: ParentRef,
        fields: ParentFields,
    ) -> ServiceResult<(Parent, PutOutcome)> {
        let source = bounded("source", fields.source, 128)?;
        let reference = bounded("reference", fields.reference, 256)?;
        let email = bounded("email", fields.email, 254)?.map(|e| e.to_lowercase());
        let valid = |e: &String| match e.split_once('@') {
            Some((l, d)) => !l.is_empty() && !d.is_empty() && !e.contains(char::is_whitespace),
            None => false,
        };
        if email.as_ref().is_some_and(|e| !valid(e)) {
            let why = "email is not an e-mail address";
            return Err(ServiceError::Invalid(why.into()));
        }
        let existing = self.meta.get_parent(&who.tenant, &key).await?;
        let t = now();
        let parent = Parent {
            tenant: who.tenant.clone(),
            key,
            source,
            reference,
            email,
            created_at: existing.as_ref().map_or(t, |p| p.created_at),
            updated_at: t,
        };
        let outcome = self.meta.put_parent(&parent).await.map_err(refused(None))?;
        Ok((parent, outcome))
    }

    pub async fn get_parent(&self, who: &Principal, key: &ParentRef) -> ServiceResult<Parent> {
        let parent = self.meta.get_parent(&who.tenant, key).await?;
        parent.ok_or(ServiceError::NotFound("parent"))
    }

    /// Finds a parent by its reference or e-mail within a kind and source.
    pub async fn find_parent(
        &self,
        who: &Principal,
        kind: &ParentKind,
        source: Option<&str>,
        lookup: ParentLookup<'_>,
    ) -> ServiceResult<Option<Parent>> {
        let lower = match lookup {
            ParentLookup::Email(e) => Some(e.trim().to_lowercase()),
            _ => None,
        };
        let lookup = lower.as_deref().map_or(lookup, ParentLookup::Email);
        let found = self.meta.find_parent(&who.tenant, kind, source, lookup);
        Ok(found.await?)
    }

    /// Removes a parent with its attachments and their files, at most [`PARENT_DELETION_BATCH`]
    /// (or a few seconds' worth) a call, so a parent of any size is removed in pages, none
    /// needing more than one attachment's transaction. The parent itself goes last.
    pub async fn delete_parent(
        &self,
        who: &Principal,
        key: &ParentRef,
    ) -> ServiceResult<ParentDeletion> {
        self.get_parent(who, key).await?;
        let (started, batch) = (std::time::Instant::now(), PARENT_DELETION_BATCH);
        let mut removed = 0;
        loop {
            let page = self
                .meta
                .list_attachments(&who.tenant, key, None, batch, true)
                .await?;
            if page.items.is_empty() {
                break;
            }
            for att in page.items {
                if removed == batch || started.elapsed() > PARENT_DELETION_TIME {
                    return Ok(ParentDeletion::Continuing { removed });
                }
                self.remove_attachment(att).await?;
                removed += 1;
            }
        }
        self.meta.delete_parent(&who.tenant, key).await?;
        Ok(ParentDeletion::Deleted)
    }

    /// One page of a parent's attachments, oldest first, with the cursor of the next one.
    pub async fn list(
        &self,
        who: &Principal,
        parent: &ParentRef,
        cursor: Option<&str>,
        limit: usize,
    ) -> ServiceResult<Page<Attachment>> {
        let scope = cursor::of_parent(&who.tenant, parent);
        let after = cursor::decode(&self.signer, cursor, &scope, AttachmentId::parse)?;
        self.get_parent(who, parent).await?;
        let page = self
            .meta
            .list_attachments(&who.tenant, parent, after, limit, false)
            .await?;
        let (items, next) = (page.items, cursor::encode(&self.signer, &scope, page.next));
        Ok(Page { items, next })
    }

    /// Every listed attachment of a parent, for the APIs that do not paginate.
    pub async fn list_all(
        &self,
        who: &Principal,
        parent: &ParentRef,
    ) -> ServiceResult<Vec<Attachment>> {
        let lists = self.listings(who, std::slice::from_ref(parent), || {
            format!("the parent has more attachments than this API answers at once ({MAX_UNPAGED_ATTACHMENTS}, or uploads under way in numbers); the native API pages through any number")
        });
        let list = lists.await?.pop().flatten();
        list.ok_or(ServiceError::NotFound("parent"))
    }

    /// The listed attachments of each of `parents` (`None` for one that does not exist), in one
    /// read: [`ServiceError::TooMany`] saying `too_many` past [`MAX_UNPAGED_ATTACHMENTS`] in all.
    pub(crate) async fn listings(
        &self,
        who: &Principal,
        parents: &[ParentRef],
        too_many: impl FnOnce() -> String,
    ) -> ServiceResult<Vec<Option<Vec<Attachment>>>> {
        if parents.is_empty() {
            return Ok(Vec::new());
        }
        let (tenant, max) = (&who.tenant, MAX_UNPAGED_ATTACHMENTS);
        let listing = self.meta.list_attachments_of_many(tenant, parents, max);
        match listing.await? {
            ManyListing::Parents(lists) => Ok(lists),
            ManyListing::TooMany => Err(ServiceError::TooMany(too_many())),
        }
    }

    /// An attachment of the caller's tenant (pending ones included, deleted ones not).
    pub async fn get(&self, who: &Principal, id: AttachmentId) -> ServiceResult<Attachment> {
        match self.meta.get_attachment(&who.tenant, id).await? {
            Some(a) if a.status != AttachmentStatus::Deleted => Ok(a),
            _ => Err(ServiceError::NotFound("attachment")),
        }
    }

    /// The attachment as it is stored now.
    pub(crate) async fn reload(&self, att: &Attachment) -> ServiceResult<Attachment> {
        let fresh = self.meta.get_attachment(&att.tenant, att.id).await?;
        fresh.ok_or(ServiceError::NotFound("attachment"))
    }

    /// An attachment that belongs to the given parent (the APIs that nest ids under parents).
    pub async fn get_of_parent(
        &self,
        who: &Principal,
        parent: &ParentRef,
        id: AttachmentId,
    ) -> ServiceResult<Attachment> {
        let att = self.get(who, id).await?;
        let ours = &att.parent == parent && att.status.is_listed();
        ours.then_some(att)
            .ok_or(ServiceError::NotFound("attachment"))
    }

    /// A presigned download link of the attachment's current content, when it has one.
    pub async fn download_link(&self, att: &Attachment) -> ServiceResult<Option<String>> {
        let Some(v) = att.ready_content() else {
            return Ok(None);
        };
        let link = self.presign_get(att.blob_key(v.id), &v.content_type, v.file_name.as_str());
        Ok(Some(link.await?))
    }

    async fn presign_get(
        &self,
        key: String,
        content_type: &str,
        file_name: &str,
    ) -> ServiceResult<String> {
        let valid = LinkWindow::aligned(now().unix_timestamp(), self.limits.link_ttl);
        let options = LinkOptions {
            content_type,
            file_name,
            valid,
        };
        Ok(self.blobs.presign_get(&key, &options).await?)
    }

    /// Records `att`: new, or `current` changed (unless someone changed it meanwhile).
    async fn record(&self, att: &Attachment, current: Option<&Attachment>) -> StoreResult<()> {
        match current {
            None => self.meta.create_attachment(att).await,
            Some(c) => self.meta.update_attachment(att, Expected::of(c)).await,
        }
    }

    /// When an upload begun now is abandoned: the sweep removes it after.
    pub(crate) fn pending_until(&self) -> i64 {
        now().unix_timestamp() + self.limits.pending_ttl.as_secs() as i64
    }

    pub async fn delete(&self, who: &Principal, id: AttachmentId) -> ServiceResult<()> {
        let att = self.get(who, id).await?;
        self.remove_attachment(att).await
    }

    /// Tombstone first, so a failure half-way leaves nothing listed and the sweep can finish the
    /// job; then files; then metadata.
    pub(crate) async fn remove_attachment(&self, att: Attachment) -> ServiceResult<()> {
        if att.status != AttachmentStatus::Deleted {
            let mut tomb = att.clone();
            tomb.status = AttachmentStatus::Deleted;
            tomb.expires_at = Some(now().unix_timestamp());
            tomb.updated_at = now();
            match self.meta.update_attachment(&tomb, Expected::of(&att)).await {
                // Someone else changed it meanwhile: start over from what is stored now.
                Err(StoreError::Conflict(_)) => {
                    return match self.meta.get_attachment(&att.tenant, att.id).await? {
                        Some(fresh) => Box::pin(self.remove_attachment(fresh)).await,
                        None => Ok(()),
                    };
                }
                written => written?,
            }
        }
        // Every version's files, the current one's and an upload's under way too (a verification
        // that did not live to record it may have promoted it), then what is staged.
        let stored = self.meta.list_versions(&att.tenant, att.id).await?;
        let versions: BTreeSet<VersionId> = stored
            .iter()
            .map(|v| v.id)
            .chain(att.content.as_ref().map(|v| v.id))
            .chain(att.upload.as_ref().map(|u| u.version.id))
            .collect();
        for v in versions {
            self.delete_files(&att, v).await?;
        }
        if let Some(u) = &att.upload {
            self.discard_staged(&att, u).await?;
        }
        self.meta.delete_attachment(&att.tenant, att.id).await?;
        Ok(())
    }

    /// Removes a version's thumbnail, then its file: a thumbnail never outlives its file.
    pub(crate) async fn delete_files(
        &self,
        att: &Attachment,
        version: VersionId,
    ) -> StoreResult<()> {
        self.blobs.delete(&att.thumbnail_key(version)).await?;
        self.blobs.delete(&att.blob_key(version)).await
    }

    /// Removes an upload's staged object, and its parts when it is a multipart upload.
    pub(crate) async fn discard_staged(
        &self,
        att: &Attachment,
        upload: &PendingUpload,
    ) -> StoreResult<()> {
        let staged = att.staging_key(upload.version.id);
        if let Some(mp) = &upload.multipart {
            self.blobs.abort_multipart(&staged, &mp.upload_id).await?;
        }
        self.blobs.delete(&staged).await
    }

    /// Whether both stores answer a read of something that never exists (a health check).
    pub async fn storage_reachable(&self) -> ServiceResult<()> {
        self.meta.get_api_key("health-check").await?;
        self.blobs.head("health/check/probe").await?;
        Ok(())
    }

    /// When the oldest upload still under way (begun, neither verified, refused nor expired)
    /// started: the hourly sweep's metric, whose alarm says uploads stay unverified.
    pub async fn oldest_unverified_upload(&self) -> ServiceResult<Option<OffsetDateTime>> {
        let oldest = self.meta.oldest_upload_under_way().await?;
        Ok(oldest.and_then(|a| a.upload.map(|u| u.version.created_at)))
    }

    /// Removes what a failure or an abandoned upload left behind: pending uploads past their
    /// window, refused uploads once they have said why, deletions that did not finish, and
    /// whatever lies under the staging prefix that no upload waits for; answers how many.
    pub async fn sweep(&self, now_unix: i64) -> ServiceResult<usize> {
        let mut removed = 0;
        loop {
            let batch = self.meta.expired_pending(now_unix, 100).await?;
            if batch.is_empty() {
                let total = removed + self.sweep_staging().await?;
                crate::telemetry::metrics::swept(total);
                return Ok(total);
            }
            for att in batch {
                match att.status {
                    AttachmentStatus::Pending
                    | AttachmentStatus::Deleted
                    | AttachmentStatus::Rejected => self.remove_attachment(att).await?,
                    // An existing attachment whose new upload never came: it stays as it was.
                    _ => self.cancel_upload(&att, Some("the upload expired")).await?,
                }
                removed += 1;
            }
        }
    }
}
