//! Verifying a direct upload: the staged object is assembled (multipart), inspected (size, real
//! type, digests, the declared checksum), and only then promoted — exactly the inspected object,
//! pinned by its ETag — to the content's own key, which no upload link reaches. Small uploads
//! are verified within `complete`; larger ones in the background (storage's event on AWS, a task
//! of the local server), the attachment showing `verifying` meanwhile.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;

use super::{missing_parts, App, ServiceError, ServiceResult, NO_UPLOAD};
use crate::domain::content::{sniff, type_for_extension};
use crate::domain::hashing::{Digests, Hasher};
use crate::domain::{
    decide_content_type, Attachment, AttachmentId, AttachmentStatus, PendingUpload, Principal,
    Version,
};
use crate::service::{now, refused};
use crate::store::{BlobInfo, Expected, StoreError, StoreResult};

/// How much of the object the verification reads at a time.
const READ_CHUNK: u64 = 8 * 1024 * 1024;
/// The largest image file the verification keeps in memory to make its thumbnail.
const THUMBNAIL_SOURCE_MAX: u64 = 64 * 1024 * 1024;
/// A verification handed to the background that has not ended after this long has most
/// likely died with its process: `complete` hands it over again.
const STALE_VERIFICATION_SECS: i64 = 15 * 60;

/// What `complete` answers.
#[derive(Debug, Clone)]
pub enum Completion {
    /// Verified: the attachment is ready.
    Ready(Attachment),
    /// Too large to verify within the request: verifying in the background.
    Verifying(Attachment),
}

/// What a store that received an upload itself knows of it (the local server's file store):
/// the object it wrote and its digests, computed as it was written. A verification of that
/// very object then reads only its first bytes back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub etag: String,
    pub digests: Digests,
}

type Gate = Arc<tokio::sync::Mutex<()>>;

/// Verifications under way in this process, one gate per attachment: a gate goes once no turn
/// holds it.
#[derive(Default)]
pub(crate) struct InFlight(std::sync::Mutex<HashMap<AttachmentId, Gate>>);

impl InFlight {
    fn gate(&self, id: AttachmentId) -> Gate {
        // A poisoned map only loses the de-duplication, never correctness.
        let Ok(mut gates) = self.0.lock() else {
            return Gate::default();
        };
        gates.retain(|_, g| Arc::strong_count(g) > 1);
        gates.entry(id).or_default().clone()
    }
}

impl App {
    /// Verifies an upload and makes it ready, or hands a large one to the background.
    /// Repeating it is harmless.
    pub async fn complete_upload(
        self: &Arc<Self>,
        who: &Principal,
        id: AttachmentId,
    ) -> ServiceResult<Completion> {
        let att = self.get(who, id).await?;
        let Some(mut upload) = att.upload.clone() else {
            return match att.status {
                AttachmentStatus::Ready => Ok(Completion::Ready(att)),
                AttachmentStatus::Rejected => Err(ServiceError::Unprocessable(
                    att.problem
                        .unwrap_or_else(|| "the upload was rejected".into()),
                )),
                _ => Err(ServiceError::Conflict(NO_UPLOAD.into())),
            };
        };
        if upload.version.size <= self.limits.inline_verify_max_bytes {
            return self.verify_upload(att, None).await.map(Completion::Ready);
        }
        // Too large for this request: the object is assembled (so that storage reports it), the
        // attachment marked `verifying`, and a task started here (embedded backend) or, on AWS,
        // storage's event runs the finalize function.
        let started = upload.verifying_since;
        if started.is_some_and(|t| now().unix_timestamp() - t < STALE_VERIFICATION_SECS) {
            return Ok(Completion::Verifying(att));
        }
        if self.uploaded(&att, &upload).await?.is_none() {
            return Err(ServiceError::Conflict(NOT_UPLOADED.into()));
        }
        let mut marked = att.clone();
        upload.verifying_since = Some(now().unix_timestamp());
        marked.upload = Some(upload);
        let marking = self.meta.update_attachment(&marked, Expected::of(&att));
        match marking.await {
            // Verified (or refused) meanwhile: say how it ended.
            Err(StoreError::Conflict(_)) => {
                let fresh = self.reload(&att).await?;
                return match fresh.upload {
                    Some(_) => Ok(Completion::Verifying(fresh)),
                    None => self.settled(fresh).map(Completion::Ready),
                };
            }
            marked => marked?,
        }
        if self.limits.verify_in_process {
            let (app, att) = (Arc::clone(self), marked.clone());
            tokio::spawn(async move {
                if let Err(e) = app.verify_upload(att, None).await {
                    tracing::warn!(error = %e, "a background verification failed; complete hands it over again");
                }
            });
        }
        Ok(Completion::Verifying(marked))
    }

    /// What storage's "object created" event triggers: the same verification, found by the
    /// staged object's key, with what the store knows of the object when it received it itself.
    /// Other keys and uploads already verified are ignored, so a repeated event changes nothing.
    pub async fn finalize_received(
        &self,
        key: &str,
        receipt: Option<Receipt>,
    ) -> ServiceResult<Option<Attachment>> {
        let Some(att) = self.waiting_for(key).await? else {
            return Ok(None);
        };
        match self.verify_upload(att, receipt).await {
            Ok(a) => Ok(Some(a)),
            // Refused (and recorded), or not all there yet: the event itself went fine.
            Err(ServiceError::Unprocessable(_) | ServiceError::Conflict(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// One verification per attachment at a time in this process: `complete` and the
    /// after-upload check often arrive together, and reading a large file twice is waste.
    /// (Across processes the store's conditional writes keep the outcome single.)
    async fn verify_upload(
        &self,
        att: Attachment,
        receipt: Option<Receipt>,
    ) -> ServiceResult<Attachment> {
        let gate = self.verifying.gate(att.id);
        let _held = gate.lock().await;
        let att = self.reload(&att).await?;
        let Some(upload) = att.upload.clone() else {
            return self.settled(att);
        };
        match self.verify_once(att.clone(), upload, receipt).await {
            // Nothing to verify: not uploaded yet, or a concurrent verification took it (then
            // it may still be writing its outcome: give it a moment).
            Err(ServiceError::Internal(StoreError::NotFound)) => {
                for _ in 0..20 {
                    let fresh = self.reload(&att).await?;
                    if fresh.upload.is_none() {
                        return self.settled(fresh);
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Err(ServiceError::Conflict(NOT_UPLOADED.into()))
            }
            other => other,
        }
    }

    /// How an attachment whose upload ended answers: ready, or why it was refused.
    fn settled(&self, att: Attachment) -> ServiceResult<Attachment> {
        match (att.status, &att.problem) {
            (AttachmentStatus::Ready, _) => Ok(att),
            (_, Some(p)) => Err(ServiceError::Unprocessable(p.clone())),
            _ => Err(ServiceError::Conflict(NO_UPLOAD.into())),
        }
    }

    async fn verify_once(
        &self,
        att: Attachment,
        upload: PendingUpload,
        receipt: Option<Receipt>,
    ) -> ServiceResult<Attachment> {
        let uploaded = self.uploaded(&att, &upload).await?;
        let (source, info) = uploaded.ok_or(StoreError::NotFound)?;
        let version = &upload.version;
        if info.size != version.size {
            let (got, declared) = (info.size, version.size);
            let why = format!("{got} bytes were uploaded, {declared} were declared");
            return self.reject(att, "size_mismatch", why).await;
        }
        let staged = att.staging_key(version.id);
        let receipt = receipt.filter(|r| r.etag == info.etag && source == staged);
        let inspected = self.inspect(&source, &info, version, receipt).await;
        let (digests, wrong_type, thumbnail_source) = inspected.map_err(refused(Some(REPLACED)))?;
        if let Some(why) = wrong_type {
            return self.reject(att, "type_mismatch", why).await;
        }
        let sha256 = digests.sha256_hex();
        if upload.declared_sha256.is_some_and(|d| d != sha256) {
            let why = "the file's SHA-256 does not match the declared checksum";
            return self.reject(att, "checksum_mismatch", why.into()).await;
        }
        if source == staged {
            let content = att.blob_key(version.id);
            let promoted = self.blobs.promote(&staged, &info.etag, info.size, &content);
            promoted.await.map_err(refused(Some(REPLACED)))?;
        }
        let mut version = version.clone();
        version.md5 = digests.md5_hex();
        version.sha256 = sha256;
        self.store_thumbnail(&att, version.id, &version.content_type, thumbnail_source)
            .await;
        self.make_ready(att, version).await
    }

    /// The object to verify and what storage says of it: the staged object (a multipart upload's
    /// assembled first), or the content itself when a verification promoted it but did not live
    /// to record it (no upload link reaches the content: it is what was verified). `None` when
    /// nothing is uploaded yet.
    async fn uploaded(
        &self,
        att: &Attachment,
        upload: &PendingUpload,
    ) -> ServiceResult<Option<(String, BlobInfo)>> {
        let staged = att.staging_key(upload.version.id);
        for key in [staged.clone(), att.blob_key(upload.version.id)] {
            if let Some(info) = self.blobs.head(&key).await? {
                return Ok(Some((key, info)));
            }
        }
        let Some(mp) = &upload.multipart else {
            return Ok(None);
        };
        // Its parts joined, once each is there at its size; more bytes than declared refuse it.
        let parts = match self.blobs.list_parts(&staged, &mp.upload_id).await {
            Err(StoreError::NotFound) => Vec::new(),
            parts => parts?,
        };
        let size = upload.version.size;
        let total: u64 = parts.iter().map(|p| p.size).sum();
        if total > size || parts.iter().any(|p| p.number > mp.parts) {
            let why = format!("more than the declared {size} bytes were uploaded");
            let rejected = self.reject(att.clone(), "too_many_bytes", why);
            return rejected.await.map(|_| None);
        }
        if !missing_parts(mp, size, &parts).is_empty() {
            let (got, all) = (parts.len(), mp.parts);
            let why = format!("the upload is incomplete: {got} of {all} parts received");
            return Err(ServiceError::Conflict(why));
        }
        self.blobs
            .complete_multipart(&staged, &mp.upload_id, &parts)
            .await?;
        Ok(self.blobs.head(&staged).await?.map(|info| (staged, info)))
    }

    /// Reads the object `info` names, and only it: its first bytes for the type, all of it for
    /// the digests (unless `receipt` has them) and, for a small image, the thumbnail's source.
    /// Answers the digests, why the real type is not the declared one, and that source.
    async fn inspect(
        &self,
        key: &str,
        info: &BlobInfo,
        version: &Version,
        receipt: Option<Receipt>,
    ) -> Result<(Digests, Option<String>, Bytes), StoreError> {
        let keep = version.content_type.starts_with("image/") && info.size <= THUMBNAIL_SOURCE_MAX;
        let mut hasher = Hasher::default();
        let mut kept = bytes::BytesMut::new();
        let mut wrong = None;
        let mut offset = 0;
        while offset < info.size {
            let chunk = self
                .blobs
                .get_range(key, Some(&info.etag), offset, READ_CHUNK)
                .await?;
            if chunk.is_empty() {
                break;
            }
            if offset == 0 {
                wrong = wrong_type(version, &chunk);
            }
            offset += chunk.len() as u64;
            if keep {
                kept.extend_from_slice(&chunk);
            }
            if receipt.is_none() {
                // Hashing is CPU work: off the async workers.
                let hashed = crate::blocking::run(move || {
                    hasher.update(&chunk);
                    hasher
                });
                hasher = hashed.await?;
            } else if !keep {
                // The digests are known: the first bytes were all it took.
                break;
            }
        }
        let digests = receipt.map_or_else(|| hasher.finish(), |r| r.digests);
        if digests.size != info.size {
            let why = "the file changed while it was verified";
            return Err(StoreError::Conflict(why.into()));
        }
        Ok((digests, wrong, kept.freeze()))
    }

    /// Records the verified version and makes the attachment ready with it. A write that finds
    /// only the `verifying` mark changed (by `complete`, meanwhile) is made again.
    async fn make_ready(&self, att: Attachment, version: Version) -> ServiceResult<Attachment> {
        self.meta.put_version(&att.tenant, att.id, &version).await?;
        let mut current = att;
        for _ in 0..3 {
            let mut ready = current.clone();
            ready.content = Some(version.clone());
            ready.status = AttachmentStatus::Ready;
            ready.upload = None;
            ready.expires_at = None;
            ready.problem = None;
            ready.updated_at = now();
            let written = self.meta.update_attachment(&ready, Expected::of(&current));
            match written.await {
                Ok(()) => {
                    crate::telemetry::metrics::upload(version.size);
                    return Ok(ready);
                }
                Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
            current = self.reload(&current).await?;
            let ours = current.ready_content().is_some_and(|c| c.id == version.id);
            match &current.upload {
                Some(u) if u.version.id == version.id => {}
                // Someone verified it first (a repeated or concurrent completion, or the event).
                None if ours => return Ok(current),
                _ => break,
            }
        }
        let why = "the attachment changed meanwhile; retry";
        Err(ServiceError::Conflict(why.into()))
    }

    /// Deletes a refused upload's staged object (never a content) and records why on the
    /// attachment; counts the refusal by its `reason` (of the `VerificationFailures` metric).
    async fn reject(
        &self,
        att: Attachment,
        reason: &'static str,
        why: String,
    ) -> ServiceResult<Attachment> {
        crate::telemetry::metrics::verification_failed(reason);
        if let Some(u) = &att.upload {
            self.discard_staged(&att, u).await?;
        }
        let mut next = att.clone();
        next.upload = None;
        next.problem = Some(why.clone());
        next.updated_at = now();
        next.expires_at = None;
        if att.status == AttachmentStatus::Pending {
            next.status = AttachmentStatus::Rejected;
            // The record stays long enough to say why, then the sweep removes it.
            next.expires_at = Some(self.pending_until());
        }
        match self.meta.update_attachment(&next, Expected::of(&att)).await {
            Ok(()) | Err(StoreError::Conflict(_)) => Err(ServiceError::Unprocessable(why)),
            Err(e) => Err(e.into()),
        }
    }

    /// Abandons the upload under way on an existing attachment: whatever of the new version got
    /// stored goes (staged object, parts, a promoted content, its thumbnail and record), and the
    /// attachment stays as it was, saying `problem` when given.
    pub(crate) async fn cancel_upload(
        &self,
        att: &Attachment,
        problem: Option<&str>,
    ) -> StoreResult<()> {
        let Some(upload) = &att.upload else {
            return Ok(());
        };
        self.discard_staged(att, upload).await?;
        self.delete_files(att, upload.version.id).await?;
        self.meta
            .delete_version(&att.tenant, att.id, upload.version.id)
            .await?;
        let mut next = att.clone();
        next.upload = None;
        next.expires_at = None;
        next.problem = problem.map(str::to_owned).or(next.problem);
        match self.meta.update_attachment(&next, Expected::of(att)).await {
            Ok(()) | Err(StoreError::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// A read or a promotion that found the object replaced: not a refusal of the upload (the new
/// object may well be good), but a verification to run again.
const REPLACED: &str = "the file was replaced while it was verified; complete it again";
const NOT_UPLOADED: &str = "the file has not been uploaded yet";

/// Why the real type of the first bytes is not the declared one, if it is not: the type the
/// extension and the bytes decide together, or for an unknown extension what the bytes say.
fn wrong_type(version: &Version, first: &[u8]) -> Option<String> {
    let (name, declared) = (&version.file_name, &version.content_type);
    let found = match type_for_extension(name.extension()) {
        Some(_) => decide_content_type(name.as_str(), name.extension(), first),
        None => Ok(sniff(first)?),
    };
    match found {
        Ok(t) if t != declared => Some(format!("the content is {t}, not the declared {declared}")),
        Ok(_) => None,
        Err(e) => Some(e.to_string()),
    }
}
