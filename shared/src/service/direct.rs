//! Large files: uploads that go straight to storage, never through the API. The client asks for
//! an upload, storage receives the bytes (one form POST, or a resumable multipart upload), and a
//! verification — on `complete`, or on storage's own "object created" event — checks size,
//! checksum and type before the attachment turns ready. Repeated or concurrent verification
//! gives one ready attachment.

use super::{now, uploads::AttachmentFields, App, ServiceError, ServiceResult};
use crate::domain::content::{sniff, type_for_extension};
use crate::domain::hashing::Hasher;
use crate::domain::{
    Attachment, AttachmentId, AttachmentStatus, FileName, MultipartUpload, ParentRef,
    PendingUpload, Principal, TenantId, Version, VersionId,
};
use crate::store::{Expected, PartInfo, PostPolicy, StoreError};

/// The smallest part the server cuts (S3 wants at least 5 MiB but for the last part).
const MIN_PART: u64 = 8 * 1024 * 1024;
/// Part links handed out in one answer; the status call hands out the rest.
pub const PART_LINKS_PER_ANSWER: usize = 1000;
/// How much of the object the verification reads at a time.
const READ_CHUNK: u64 = 8 * 1024 * 1024;
/// The largest image file the verification keeps in memory to make its thumbnail.
const THUMBNAIL_SOURCE_MAX: u64 = 64 * 1024 * 1024;

/// What the client asks to upload.
#[derive(Debug, Clone)]
pub struct DirectUploadRequest {
    pub file_name: FileName,
    pub content_type: String,
    pub size: u64,
    pub sha256: Option<[u8; 32]>,
    pub fields: AttachmentFields,
    /// A new version of this attachment of the parent (a placeholder's first file).
    pub attachment_id: Option<AttachmentId>,
}

/// How the client uploads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadInstructions {
    /// One multipart/form-data POST: `fields` first, then the file in a part named `file`.
    Post {
        url: String,
        fields: Vec<(String, String)>,
    },
    /// Parts PUT to their links; `received` lists the parts storage already has.
    Multipart {
        upload_id: String,
        part_size: u64,
        part_count: u32,
        links: Vec<(u32, String)>,
        received: Vec<PartInfo>,
    },
}

/// An upload the client was told how to make.
#[derive(Debug, Clone)]
pub struct DirectUpload {
    pub attachment: Attachment,
    pub instructions: UploadInstructions,
    pub expires_at: i64,
}

/// Verifications under way in this process, one gate per attachment.
#[derive(Default)]
pub(crate) struct InFlight(
    std::sync::Mutex<
        std::collections::HashMap<AttachmentId, std::sync::Arc<tokio::sync::Mutex<()>>>,
    >,
);

impl InFlight {
    fn gate(&self, id: AttachmentId) -> std::sync::Arc<tokio::sync::Mutex<()>> {
        match self.0.lock() {
            Ok(mut m) => m.entry(id).or_default().clone(),
            // A poisoned map only loses the de-duplication, never correctness.
            Err(_) => std::sync::Arc::default(),
        }
    }

    /// Forgets the gate once nobody else holds or waits on it.
    fn done(&self, id: AttachmentId, gate: &std::sync::Arc<tokio::sync::Mutex<()>>) {
        if let Ok(mut m) = self.0.lock() {
            if std::sync::Arc::strong_count(gate) <= 2 {
                m.remove(&id);
            }
        }
    }
}

/// The part size for a file: at least 8 MiB, whole MiB, and few enough parts for S3 (10,000).
pub fn part_size_for(size: u64) -> u64 {
    let mib = 1024 * 1024;
    let needed = size.div_ceil(u64::from(crate::store::fs_blob::MAX_PARTS));
    needed
        .div_ceil(mib)
        .max(1)
        .saturating_mul(mib)
        .max(MIN_PART)
}

impl App {
    /// Records a pending upload and says how to make it.
    pub async fn begin_upload(
        &self,
        who: &Principal,
        parent: &ParentRef,
        req: DirectUploadRequest,
    ) -> ServiceResult<DirectUpload> {
        self.get_parent(who, parent).await?;
        if req.size == 0 {
            return Err(ServiceError::Unprocessable(
                "size must be at least 1 byte".into(),
            ));
        }
        if req.size > self.limits.direct_max_bytes {
            return Err(ServiceError::TooLarge(format!(
                "size is larger than the limit of {} bytes",
                self.limits.direct_max_bytes
            )));
        }
        let declared = req.content_type.trim().to_ascii_lowercase();
        let well_formed = declared.split_once('/').is_some_and(|(t, s)| {
            !t.is_empty()
                && !s.is_empty()
                && declared
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/.+-_".contains(c))
        });
        if !well_formed || declared.len() > 127 {
            return Err(ServiceError::Invalid(
                "content_type is not a media type".into(),
            ));
        }
        if let Some(by_ext) = type_for_extension(req.file_name.extension()) {
            if by_ext != declared {
                return Err(ServiceError::UnsupportedMedia(format!(
                    "content_type {declared} does not match the extension of {} ({by_ext})",
                    req.file_name
                )));
            }
        }
        let fields = super::uploads::clean_fields(req.fields)?;
        let t = now();
        let expires_at = t.unix_timestamp() + self.limits.pending_ttl.as_secs() as i64;
        let version = Version {
            id: VersionId::new(),
            file_name: req.file_name.clone(),
            content_type: declared.clone(),
            size: req.size,
            md5: String::new(),
            sha256: String::new(),
            created_at: t,
        };
        let (mut att, expected) = match req.attachment_id {
            Some(id) => {
                let current = self.get_of_parent(who, parent, id).await?;
                if current.upload.is_some() {
                    return Err(ServiceError::Conflict(
                        "an upload to this attachment is already under way".into(),
                    ));
                }
                let expected = Expected::of(&current);
                (current, Some(expected))
            }
            None => (
                Attachment::new(
                    who.tenant.clone(),
                    parent.clone(),
                    who.owner.clone(),
                    AttachmentStatus::Pending,
                    t,
                ),
                None,
            ),
        };
        fields.apply(&mut att);
        let key = att.blob_key(version.id);
        let (instructions, multipart) = if req.size <= self.limits.direct_post_max_bytes {
            let post = self
                .blobs
                .presign_post(
                    &key,
                    &PostPolicy {
                        content_type: &declared,
                        size: req.size,
                        sha256: req.sha256.as_ref(),
                        ttl: self.limits.upload_link_ttl,
                    },
                )
                .await?;
            (
                UploadInstructions::Post {
                    url: post.url,
                    fields: post.fields,
                },
                None,
            )
        } else {
            let part_size = part_size_for(req.size);
            let part_count = req.size.div_ceil(part_size) as u32;
            let upload_id = self.blobs.create_multipart(&key, &declared).await?;
            let links = self
                .part_links(&key, &upload_id, (1..=part_count).collect())
                .await?;
            let mp = MultipartUpload {
                upload_id: upload_id.clone(),
                part_size,
                parts: part_count,
            };
            (
                UploadInstructions::Multipart {
                    upload_id,
                    part_size,
                    part_count,
                    links,
                    received: Vec::new(),
                },
                Some(mp),
            )
        };
        att.upload = Some(PendingUpload {
            version,
            declared_sha256: req.sha256.map(hex::encode),
            multipart,
            expires_at,
        });
        att.expires_at = Some(expires_at);
        att.problem = None;
        let written = match expected {
            None => self.meta.create_attachment(&att).await,
            Some(e) => {
                att.updated_at = t;
                self.meta.update_attachment(&att, e).await
            }
        };
        if let Err(e) = written {
            if let Some(UploadInstructions::Multipart { upload_id, .. }) = Some(&instructions) {
                let _ = self.blobs.abort_multipart(&key, upload_id).await;
            }
            return Err(match e {
                StoreError::Conflict(_) => {
                    ServiceError::Conflict("the attachment changed meanwhile; retry".into())
                }
                other => other.into(),
            });
        }
        Ok(DirectUpload {
            attachment: att,
            instructions,
            expires_at,
        })
    }

    async fn part_links(
        &self,
        key: &str,
        upload_id: &str,
        numbers: Vec<u32>,
    ) -> ServiceResult<Vec<(u32, String)>> {
        let mut links = Vec::with_capacity(numbers.len().min(PART_LINKS_PER_ANSWER));
        for n in numbers.into_iter().take(PART_LINKS_PER_ANSWER) {
            links.push((
                n,
                self.blobs
                    .presign_part(key, upload_id, n, self.limits.upload_link_ttl)
                    .await?,
            ));
        }
        Ok(links)
    }

    /// Where an upload stands, with fresh links for what is still missing (to resume).
    pub async fn upload_status(
        &self,
        who: &Principal,
        id: AttachmentId,
    ) -> ServiceResult<(Attachment, UploadInstructions)> {
        let att = self.get(who, id).await?;
        let Some(upload) = att.upload.clone() else {
            return Err(ServiceError::Conflict(
                "no upload is under way for this attachment".into(),
            ));
        };
        let key = att.blob_key(upload.version.id);
        let instructions = match &upload.multipart {
            None => {
                let post = self
                    .blobs
                    .presign_post(
                        &key,
                        &PostPolicy {
                            content_type: &upload.version.content_type,
                            size: upload.version.size,
                            sha256: decode_sha(upload.declared_sha256.as_deref()).as_ref(),
                            ttl: self.limits.upload_link_ttl,
                        },
                    )
                    .await?;
                UploadInstructions::Post {
                    url: post.url,
                    fields: post.fields,
                }
            }
            Some(mp) => {
                let received = self
                    .blobs
                    .list_parts(&key, &mp.upload_id)
                    .await
                    .unwrap_or_default();
                let missing: Vec<u32> = (1..=mp.parts)
                    .filter(|n| {
                        !received.iter().any(|p| {
                            p.number == *n
                                && p.size == expected_part_size(mp, upload.version.size, *n)
                        })
                    })
                    .collect();
                let links = self.part_links(&key, &mp.upload_id, missing).await?;
                UploadInstructions::Multipart {
                    upload_id: mp.upload_id.clone(),
                    part_size: mp.part_size,
                    part_count: mp.parts,
                    links,
                    received,
                }
            }
        };
        Ok((att, instructions))
    }

    /// Verifies an upload and makes it ready. Repeating it is harmless.
    pub async fn complete_upload(
        &self,
        who: &Principal,
        id: AttachmentId,
    ) -> ServiceResult<Attachment> {
        let att = self.get(who, id).await?;
        match (&att.upload, att.status) {
            (Some(_), _) => self.verify_upload(att).await,
            (None, AttachmentStatus::Rejected) => Err(ServiceError::Unprocessable(
                att.problem
                    .clone()
                    .unwrap_or_else(|| "the upload was rejected".into()),
            )),
            (None, AttachmentStatus::Ready) => Ok(att),
            (None, _) => Err(ServiceError::Conflict(
                "no upload is under way for this attachment".into(),
            )),
        }
    }

    /// What storage's "object created" event triggers: the same verification, found by key.
    /// Unknown keys and objects already verified are ignored, so a repeated event changes nothing.
    pub async fn finalize_key(&self, key: &str) -> ServiceResult<Option<Attachment>> {
        let mut parts = key.split('/');
        let (Some(t), Some(a), Some(v), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Ok(None);
        };
        let (Ok(tenant), Ok(att_id), Ok(version)) = (
            TenantId::parse(t),
            AttachmentId::parse(a),
            VersionId::parse(v),
        ) else {
            return Ok(None);
        };
        let Some(att) = self.meta.get_attachment(&tenant, att_id).await? else {
            return Ok(None);
        };
        match &att.upload {
            Some(u) if u.version.id == version && u.multipart.is_none() => {
                match self.verify_upload(att).await {
                    Ok(a) => Ok(Some(a)),
                    // A refused file is recorded on the attachment; the event itself went fine.
                    Err(ServiceError::Unprocessable(_)) => Ok(None),
                    Err(e) => Err(e),
                }
            }
            // A multipart upload is finished by `complete` (storage has no object before).
            Some(u) if u.version.id == version => match self.verify_upload(att).await {
                Ok(a) => Ok(Some(a)),
                Err(ServiceError::Unprocessable(_)) | Err(ServiceError::Conflict(_)) => Ok(None),
                Err(e) => Err(e),
            },
            _ => Ok(None),
        }
    }

    async fn verify_upload(&self, att: Attachment) -> ServiceResult<Attachment> {
        let (tenant, id) = (att.tenant.clone(), att.id);
        // One verification per attachment at a time in this process: `complete` and the
        // after-upload check often arrive together, and reading a large file twice is waste.
        // (Across processes the store's conditional writes keep the outcome single.)
        let gate = self.verifying.gate(id);
        let _turn = gate.lock().await;
        let att = self
            .meta
            .get_attachment(&tenant, id)
            .await?
            .ok_or(ServiceError::NotFound("attachment"))?;
        if att.upload.is_none() {
            self.verifying.done(id, &gate);
            return match (att.status, &att.problem) {
                (AttachmentStatus::Ready, _) => Ok(att),
                (_, Some(p)) => Err(ServiceError::Unprocessable(p.clone())),
                _ => Err(ServiceError::Conflict(
                    "no upload is under way for this attachment".into(),
                )),
            };
        }
        let outcome = self.verify_settled(att).await;
        self.verifying.done(id, &gate);
        outcome
    }

    async fn verify_settled(&self, att: Attachment) -> ServiceResult<Attachment> {
        let (tenant, id) = (att.tenant.clone(), att.id);
        match self.verify_once(att).await {
            // The file vanished under us: a concurrent verification finished (or refused) it.
            Err(ServiceError::Internal(StoreError::NotFound)) => {
                // The other one may still be writing its outcome: give it a moment.
                for _ in 0..20 {
                    let now = self
                        .meta
                        .get_attachment(&tenant, id)
                        .await?
                        .ok_or(ServiceError::NotFound("attachment"))?;
                    match (now.upload.is_some(), now.status) {
                        (false, AttachmentStatus::Ready) => return Ok(now),
                        (false, _) => {
                            return Err(ServiceError::Unprocessable(
                                now.problem
                                    .clone()
                                    .unwrap_or_else(|| "the upload was rejected".into()),
                            ))
                        }
                        _ => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
                    }
                }
                Err(ServiceError::Conflict(
                    "the file has not been uploaded yet".into(),
                ))
            }
            other => other,
        }
    }

    async fn verify_once(&self, att: Attachment) -> ServiceResult<Attachment> {
        let Some(upload) = att.upload.clone() else {
            return Ok(att);
        };
        let key = att.blob_key(upload.version.id);
        if let Some(mp) = &upload.multipart {
            if self.blobs.head(&key).await?.is_none() {
                let parts = match self.blobs.list_parts(&key, &mp.upload_id).await {
                    Ok(p) => p,
                    Err(StoreError::NotFound) => Vec::new(),
                    Err(e) => return Err(e.into()),
                };
                let total: u64 = parts.iter().map(|p| p.size).sum();
                if total > upload.version.size || parts.iter().any(|p| p.number > mp.parts) {
                    crate::telemetry::metrics::verification_failed("too_many_bytes");
                    return self
                        .reject(
                            att,
                            &key,
                            format!(
                                "more than the declared {} bytes were uploaded",
                                upload.version.size
                            ),
                        )
                        .await;
                }
                let complete = (1..=mp.parts).all(|n| {
                    parts.iter().any(|p| {
                        p.number == n && p.size == expected_part_size(mp, upload.version.size, n)
                    })
                });
                if !complete {
                    return Err(ServiceError::Conflict(format!(
                        "the upload is incomplete: {} of {} parts received",
                        parts.len(),
                        mp.parts
                    )));
                }
                self.blobs
                    .complete_multipart(&key, &mp.upload_id, &parts)
                    .await?;
            }
        }
        let Some(info) = self.blobs.head(&key).await? else {
            // Not uploaded yet, or a concurrent verification refused and deleted it: the caller
            // (`verify_upload`) tells the two apart from what the attachment records next.
            return Err(ServiceError::Internal(StoreError::NotFound));
        };
        if info.size != upload.version.size {
            crate::telemetry::metrics::verification_failed("size_mismatch");
            return self
                .reject(
                    att,
                    &key,
                    format!(
                        "{} bytes were uploaded, {} were declared",
                        info.size, upload.version.size
                    ),
                )
                .await;
        }
        let mut hasher = Hasher::new();
        let mut offset = 0;
        let mut sniffed = None;
        // An image small enough to thumbnail is kept from the same read.
        let keep =
            upload.version.content_type.starts_with("image/") && info.size <= THUMBNAIL_SOURCE_MAX;
        let mut kept = bytes::BytesMut::new();
        while offset < info.size {
            let chunk = self.blobs.get_range(&key, offset, READ_CHUNK).await?;
            if chunk.is_empty() {
                break;
            }
            if offset == 0 {
                sniffed = Some(check_type(&upload.version, &chunk));
            }
            hasher.update(&chunk);
            if keep {
                kept.extend_from_slice(&chunk);
            }
            offset += chunk.len() as u64;
        }
        if let Some(Err(why)) = sniffed {
            crate::telemetry::metrics::verification_failed("type_mismatch");
            return self.reject(att, &key, why).await;
        }
        let digests = hasher.finish();
        if digests.size != upload.version.size {
            crate::telemetry::metrics::verification_failed("changed_while_verified");
            return self
                .reject(att, &key, "the file changed while it was verified".into())
                .await;
        }
        if let Some(declared) = &upload.declared_sha256 {
            if *declared != digests.sha256_hex() {
                crate::telemetry::metrics::verification_failed("checksum_mismatch");
                return self
                    .reject(
                        att,
                        &key,
                        "the file's SHA-256 does not match the declared checksum".into(),
                    )
                    .await;
            }
        }
        let mut version = upload.version.clone();
        version.md5 = digests.md5_hex();
        version.sha256 = digests.sha256_hex();
        self.store_thumbnail(&att, version.id, &version.content_type, kept.freeze())
            .await;
        let mut ready = att.clone();
        ready.content = Some(version.clone());
        ready.status = AttachmentStatus::Ready;
        ready.upload = None;
        ready.expires_at = None;
        ready.problem = None;
        ready.updated_at = now();
        self.meta.put_version(&att.tenant, att.id, &version).await?;
        match self
            .meta
            .update_attachment(&ready, Expected::of(&att))
            .await
        {
            Ok(()) => {
                crate::telemetry::metrics::upload(version.size);
                Ok(ready)
            }
            Err(StoreError::Conflict(_)) => {
                // Someone verified it first (a repeated or concurrent completion, or the event).
                match self.meta.get_attachment(&att.tenant, att.id).await? {
                    Some(now)
                        if now.status == AttachmentStatus::Ready
                            && now.content.as_ref().map(|c| c.id) == Some(version.id) =>
                    {
                        Ok(now)
                    }
                    _ => Err(ServiceError::Conflict(
                        "the attachment changed meanwhile; retry".into(),
                    )),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes a refused file and records why on the attachment.
    async fn reject(&self, att: Attachment, key: &str, why: String) -> ServiceResult<Attachment> {
        if let Some(mp) = att.upload.as_ref().and_then(|u| u.multipart.as_ref()) {
            self.blobs.abort_multipart(key, &mp.upload_id).await?;
        }
        self.blobs.delete(key).await?;
        let mut next = att.clone();
        next.upload = None;
        next.problem = Some(why.clone());
        next.updated_at = now();
        if att.status == AttachmentStatus::Pending {
            next.status = AttachmentStatus::Rejected;
            // The record stays long enough to say why, then the sweep removes it.
            next.expires_at =
                Some(now().unix_timestamp() + self.limits.pending_ttl.as_secs() as i64);
        } else {
            next.expires_at = None;
        }
        match self.meta.update_attachment(&next, Expected::of(&att)).await {
            Ok(()) | Err(StoreError::Conflict(_)) => Err(ServiceError::Unprocessable(why)),
            Err(e) => Err(e.into()),
        }
    }

    /// Abandons an expired upload of an existing attachment: its file and parts go, the
    /// attachment stays as it was.
    pub(crate) async fn cancel_upload(&self, att: Attachment) -> ServiceResult<()> {
        let Some(upload) = &att.upload else {
            return Ok(());
        };
        let key = att.blob_key(upload.version.id);
        if let Some(mp) = &upload.multipart {
            self.blobs.abort_multipart(&key, &mp.upload_id).await?;
        }
        // Whatever of the new version got stored: its record, thumbnail and file.
        self.meta
            .delete_version(&att.tenant, att.id, upload.version.id)
            .await?;
        self.delete_thumbnail(&att, upload.version.id).await?;
        self.blobs.delete(&key).await?;
        let mut next = att.clone();
        next.upload = None;
        next.expires_at = None;
        next.problem = Some("the upload expired".into());
        match self.meta.update_attachment(&next, Expected::of(&att)).await {
            Ok(()) | Err(StoreError::Conflict(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

fn expected_part_size(mp: &MultipartUpload, size: u64, n: u32) -> u64 {
    if n < mp.parts {
        mp.part_size
    } else {
        size - mp.part_size * u64::from(mp.parts - 1)
    }
}

fn decode_sha(hex_str: Option<&str>) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_str?, &mut out).ok()?;
    Some(out)
}

/// The real type of the first bytes against the declared one.
fn check_type(version: &Version, first: &[u8]) -> Result<(), String> {
    let name = &version.file_name;
    match crate::domain::decide_content_type(name.as_str(), name.extension(), first) {
        Err(e) => Err(e.to_string()),
        Ok(decided) if type_for_extension(name.extension()).is_some() => {
            if decided == version.content_type {
                Ok(())
            } else {
                Err(format!(
                    "the content is {decided}, not the declared {}",
                    version.content_type
                ))
            }
        }
        Ok(_) => match sniff(first) {
            Some(s) if s != version.content_type => Err(format!(
                "the content is {s}, not the declared {}",
                version.content_type
            )),
            _ => Ok(()),
        },
    }
}

/// Parses a declared SHA-256: 64 hex characters or base64 of 32 bytes.
pub fn parse_sha256(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    let mut out = [0u8; 32];
    if s.len() == 64 && hex::decode_to_slice(s, &mut out).is_ok() {
        return Some(out);
    }
    let bytes = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, s).ok()?;
    (bytes.len() == 32).then(|| {
        out.copy_from_slice(&bytes);
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_big_enough_and_few_enough() {
        let mib = 1024 * 1024;
        assert_eq!(part_size_for(50 * mib), 8 * mib);
        assert_eq!(part_size_for(1), 8 * mib);
        let huge = 5 * 1024 * 1024 * mib; // 5 TiB
        let p = part_size_for(huge);
        assert!(huge.div_ceil(p) <= 10_000);
        assert_eq!(p % mib, 0);
    }

    #[test]
    fn checksums_parse_from_hex_or_base64() {
        let hex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let raw = parse_sha256(hex).unwrap();
        let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, raw);
        assert_eq!(parse_sha256(&b64), Some(raw));
        assert_eq!(parse_sha256("nope"), None);
        assert_eq!(parse_sha256(&hex[..62]), None);
    }
}
