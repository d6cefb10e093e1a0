//! Large files: uploads that go straight to storage (one form POST, or a resumable multipart
//! upload) under a staging key that nothing serves; a verification ([`verify`]) then makes
//! exactly one checked object the attachment's content, however often it runs.

mod verify;

use super::{labelled, refused, uploads::AttachmentFields, App, ServiceError, ServiceResult};
use crate::domain::content::type_for_extension;
use crate::domain::{
    Attachment, AttachmentId, FileName, MultipartUpload, ParentRef, PendingUpload, Principal,
};
use crate::store::{PartInfo, PostPolicy, PresignedPost};

pub(crate) use verify::InFlight;
pub use verify::{Completion, Receipt};

/// The smallest part the server cuts (S3 wants at least 5 MiB but for the last part).
const MIN_PART: u64 = 8 * 1024 * 1024;
const NO_UPLOAD: &str = "no upload is under way for this attachment";
/// Part links handed out in one answer; the status call hands out the rest.
pub const PART_LINKS_PER_ANSWER: usize = 1000;

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
    /// One multipart/form-data POST: its fields first, then the file in a part named `file`.
    Post(PresignedPost),
    /// Parts PUT to their links, each exactly its size; `received` lists the parts storage
    /// already has.
    Multipart {
        upload_id: String,
        part_size: u64,
        part_count: u32,
        links: Vec<(u32, String)>,
        received: Vec<PartInfo>,
    },
}

/// The part size for a file: at least 8 MiB, whole MiB, and few enough parts for S3 (10,000).
pub fn part_size_for(size: u64) -> u64 {
    let mib = 1024 * 1024;
    let needed = size.div_ceil(u64::from(crate::store::fs_blob::MAX_PARTS));
    let mibs = needed.div_ceil(mib).max(1);
    mibs.saturating_mul(mib).max(MIN_PART)
}

/// The size of part `n` of an upload of `size` bytes cut as `mp` says: the last is shorter.
fn expected_part_size(mp: &MultipartUpload, size: u64, n: u32) -> u64 {
    if n < mp.parts {
        mp.part_size
    } else {
        size - mp.part_size * u64::from(mp.parts - 1)
    }
}

/// The parts storage does not have at their size.
fn missing_parts(mp: &MultipartUpload, size: u64, received: &[PartInfo]) -> Vec<u32> {
    let has = |n| {
        let expected = expected_part_size(mp, size, n);
        received.iter().any(|p| p.number == n && p.size == expected)
    };
    (1..=mp.parts).filter(|&n| !has(n)).collect()
}

/// The declared content type, if it is a media type that agrees with the file's extension.
fn declared_type(file_name: &FileName, content_type: &str) -> ServiceResult<String> {
    let declared = content_type.trim().to_ascii_lowercase();
    let allowed = |c: char| c.is_ascii_alphanumeric() || "/.+-_".contains(c);
    let halves = declared.split_once('/');
    let well_formed = halves.is_some_and(|(t, s)| !t.is_empty() && !s.is_empty())
        && declared.chars().all(allowed);
    if !well_formed || declared.len() > 127 {
        let why = "content_type is not a media type";
        return Err(ServiceError::Invalid(why.into()));
    }
    if let Some(by_ext) = type_for_extension(file_name.extension()) {
        if by_ext != declared {
            return Err(ServiceError::UnsupportedMedia(format!(
                "content_type {declared} does not match the extension of {file_name} ({by_ext})"
            )));
        }
    }
    Ok(declared)
}

impl App {
    /// Records a pending upload and says how to make it.
    pub async fn begin_upload(
        &self,
        who: &Principal,
        parent: &ParentRef,
        req: DirectUploadRequest,
    ) -> ServiceResult<(Attachment, UploadInstructions)> {
        self.get_parent(who, parent).await?;
        let max = self.limits.direct_max_bytes;
        if req.size == 0 {
            let why = "size must be at least 1 byte";
            return Err(ServiceError::Unprocessable(why.into()));
        }
        if req.size > max {
            let why = format!("size is larger than the limit of {max} bytes");
            return Err(ServiceError::TooLarge(why));
        }
        let declared = declared_type(&req.file_name, &req.content_type)?;
        let fields = super::uploads::clean_fields(req.fields)?;
        let version = super::uploads::new_version(req.file_name, declared, req.size);
        let (t, expires_at) = (version.created_at, self.pending_until());
        let current = match req.attachment_id {
            Some(id) => Some(self.get_of_parent(who, parent, id).await?),
            None => None,
        };
        let mut att = labelled(who, parent, current.as_ref(), fields, t)?;
        let staged = att.staging_key(version.id);
        // One form POST up to the configured size, else a multipart upload, started here.
        let mut multipart = None;
        if version.size > self.limits.direct_post_max_bytes {
            let part_size = part_size_for(version.size);
            let upload_id = self.blobs.create_multipart(&staged, &version.content_type);
            multipart = Some(MultipartUpload {
                upload_id: upload_id.await?,
                part_size,
                parts: version.size.div_ceil(part_size) as u32,
            });
        }
        let upload = PendingUpload {
            version,
            declared_sha256: req.sha256.map(hex::encode),
            multipart,
            expires_at,
            verifying_since: None,
        };
        let instructions = self.instructions(&staged, &upload, Vec::new()).await?;
        att.upload = Some(upload.clone());
        att.expires_at = Some(expires_at);
        att.problem = None;
        att.updated_at = t;
        if let Err(e) = self.record(&att, current.as_ref()).await {
            let _ = self.discard_staged(&att, &upload).await;
            return Err(refused(Some("the attachment changed meanwhile; retry"))(e));
        }
        Ok((att, instructions))
    }

    /// How to send `upload` to `staged`: a form POST of exactly its file (and checksum, when
    /// declared), or the parts not among `received`, with links (each bound to its part's size)
    /// for the first [`PART_LINKS_PER_ANSWER`] of them.
    async fn instructions(
        &self,
        staged: &str,
        upload: &PendingUpload,
        received: Vec<PartInfo>,
    ) -> ServiceResult<UploadInstructions> {
        let (version, ttl) = (&upload.version, self.limits.upload_link_ttl);
        let Some(mp) = &upload.multipart else {
            let sha256 = upload.declared_sha256.as_deref().and_then(parse_sha256);
            let policy = PostPolicy {
                content_type: &version.content_type,
                size: version.size,
                sha256: sha256.as_ref(),
                ttl,
            };
            let post = self.blobs.presign_post(staged, &policy).await?;
            return Ok(UploadInstructions::Post(post));
        };
        let mut links = Vec::new();
        let missing = missing_parts(mp, version.size, &received);
        for n in missing.into_iter().take(PART_LINKS_PER_ANSWER) {
            let part = expected_part_size(mp, version.size, n);
            let link = self.blobs.presign_part(staged, &mp.upload_id, n, part, ttl);
            links.push((n, link.await?));
        }
        Ok(UploadInstructions::Multipart {
            upload_id: mp.upload_id.clone(),
            part_size: mp.part_size,
            part_count: mp.parts,
            links,
            received,
        })
    }

    /// Where an upload stands, with fresh links for what is still missing (to resume).
    pub async fn upload_status(
        &self,
        who: &Principal,
        id: AttachmentId,
    ) -> ServiceResult<(Attachment, UploadInstructions)> {
        let att = self.get(who, id).await?;
        let upload = att.upload.clone();
        let upload = upload.ok_or_else(|| ServiceError::Conflict(NO_UPLOAD.into()))?;
        let staged = att.staging_key(upload.version.id);
        let mut received = Vec::new();
        if let Some(mp) = &upload.multipart {
            let listed = self.blobs.list_parts(&staged, &mp.upload_id).await;
            received = listed.unwrap_or_default();
        }
        let instructions = self.instructions(&staged, &upload, received).await?;
        Ok((att, instructions))
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
    bytes.try_into().ok()
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
    fn the_last_part_is_what_is_left() {
        let mp = MultipartUpload {
            upload_id: "u".into(),
            part_size: 10,
            parts: 3,
        };
        assert_eq!(expected_part_size(&mp, 25, 1), 10);
        assert_eq!(expected_part_size(&mp, 25, 3), 5);
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
