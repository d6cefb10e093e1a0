//! Large files: uploads that go straight to storage, never through the API. The client asks for
//! an upload, storage receives the bytes (one form POST, or a resumable multipart upload) under
//! a staging key that nothing serves, and a verification ([`verify`]) — on `complete`, or on
//! storage's own "object created" event — checks size, checksum and type of exactly one object
//! and only then makes it the attachment's content, at a key no upload link reaches. Repeated or
//! concurrent verification gives one ready attachment.

mod verify;

use super::{now, uploads::AttachmentFields, App, ServiceError, ServiceResult};
use crate::domain::content::type_for_extension;
use crate::domain::{
    Attachment, AttachmentId, AttachmentStatus, FileName, MultipartUpload, ParentRef,
    PendingUpload, Principal, Version, VersionId,
};
use crate::store::{Expected, PartInfo, PostPolicy, StoreError};

pub(crate) use verify::InFlight;
pub use verify::{Completion, Receipt};

/// The smallest part the server cuts (S3 wants at least 5 MiB but for the last part).
const MIN_PART: u64 = 8 * 1024 * 1024;
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
    /// One multipart/form-data POST: `fields` first, then the file in a part named `file`.
    Post {
        url: String,
        fields: Vec<(String, String)>,
    },
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

/// An upload the client was told how to make.
#[derive(Debug, Clone)]
pub struct DirectUpload {
    pub attachment: Attachment,
    pub instructions: UploadInstructions,
    pub expires_at: i64,
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

/// The size of part `n` of an upload of `size` bytes cut as `mp` says: the last is shorter.
fn expected_part_size(mp: &MultipartUpload, size: u64, n: u32) -> u64 {
    if n < mp.parts {
        mp.part_size
    } else {
        size - mp.part_size * u64::from(mp.parts - 1)
    }
}

/// The declared content type, if it is a media type that agrees with the file's extension.
fn declared_type(file_name: &FileName, content_type: &str) -> ServiceResult<String> {
    let declared = content_type.trim().to_ascii_lowercase();
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
        let declared = declared_type(&req.file_name, &req.content_type)?;
        let fields = super::uploads::clean_fields(req.fields)?;
        let t = now();
        let expires_at = t.unix_timestamp() + self.limits.pending_ttl.as_secs() as i64;
        let version = Version {
            id: VersionId::new(),
            file_name: req.file_name.clone(),
            content_type: declared,
            size: req.size,
            md5: String::new(),
            sha256: String::new(),
            created_at: t,
        };
        let (mut att, expected) = self.upload_target(who, parent, req.attachment_id).await?;
        fields.apply(&mut att);
        let staged = att.staging_key(version.id);
        let (instructions, multipart) = self
            .instructions_for(&staged, &version, req.sha256.as_ref())
            .await?;
        att.upload = Some(PendingUpload {
            version,
            declared_sha256: req.sha256.map(hex::encode),
            multipart,
            expires_at,
            verifying_since: None,
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
            if let UploadInstructions::Multipart { upload_id, .. } = &instructions {
                let _ = self.blobs.abort_multipart(&staged, upload_id).await;
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

    /// The attachment an upload goes to: a new pending one, or an existing one of the parent
    /// (then with the state the write must still find).
    async fn upload_target(
        &self,
        who: &Principal,
        parent: &ParentRef,
        existing: Option<AttachmentId>,
    ) -> ServiceResult<(Attachment, Option<Expected>)> {
        let Some(id) = existing else {
            let att = Attachment::new(
                who.tenant.clone(),
                parent.clone(),
                who.owner.clone(),
                AttachmentStatus::Pending,
                now(),
            );
            return Ok((att, None));
        };
        let current = self.get_of_parent(who, parent, id).await?;
        if current.upload.is_some() {
            return Err(ServiceError::Conflict(
                "an upload to this attachment is already under way".into(),
            ));
        }
        let expected = Expected::of(&current);
        Ok((current, Some(expected)))
    }

    /// How to upload `version` to `staged`: one form POST up to the configured size, else a
    /// multipart upload (started here).
    async fn instructions_for(
        &self,
        staged: &str,
        version: &Version,
        sha256: Option<&[u8; 32]>,
    ) -> ServiceResult<(UploadInstructions, Option<MultipartUpload>)> {
        if version.size <= self.limits.direct_post_max_bytes {
            let post = self.post_form(staged, version, sha256).await?;
            return Ok((post, None));
        }
        let part_size = part_size_for(version.size);
        let mp = MultipartUpload {
            upload_id: self
                .blobs
                .create_multipart(staged, &version.content_type)
                .await?,
            part_size,
            parts: version.size.div_ceil(part_size) as u32,
        };
        let links = self
            .part_links(staged, &mp, version.size, (1..=mp.parts).collect())
            .await?;
        let instructions = UploadInstructions::Multipart {
            upload_id: mp.upload_id.clone(),
            part_size,
            part_count: mp.parts,
            links,
            received: Vec::new(),
        };
        Ok((instructions, Some(mp)))
    }

    /// A form POST of exactly `version` (and its checksum, when declared) to `staged`.
    async fn post_form(
        &self,
        staged: &str,
        version: &Version,
        sha256: Option<&[u8; 32]>,
    ) -> ServiceResult<UploadInstructions> {
        let post = self
            .blobs
            .presign_post(
                staged,
                &PostPolicy {
                    content_type: &version.content_type,
                    size: version.size,
                    sha256,
                    ttl: self.limits.upload_link_ttl,
                },
            )
            .await?;
        Ok(UploadInstructions::Post {
            url: post.url,
            fields: post.fields,
        })
    }

    /// Links for the parts `numbers` of a multipart upload, each bound to its part's size.
    async fn part_links(
        &self,
        staged: &str,
        mp: &MultipartUpload,
        size: u64,
        numbers: Vec<u32>,
    ) -> ServiceResult<Vec<(u32, String)>> {
        let mut links = Vec::with_capacity(numbers.len().min(PART_LINKS_PER_ANSWER));
        for n in numbers.into_iter().take(PART_LINKS_PER_ANSWER) {
            let part = expected_part_size(mp, size, n);
            let link = self
                .blobs
                .presign_part(staged, &mp.upload_id, n, part, self.limits.upload_link_ttl)
                .await?;
            links.push((n, link));
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
        let staged = att.staging_key(upload.version.id);
        let sha256 = decode_sha(upload.declared_sha256.as_deref());
        let instructions = match &upload.multipart {
            None => {
                self.post_form(&staged, &upload.version, sha256.as_ref())
                    .await?
            }
            Some(mp) => {
                let received = self
                    .blobs
                    .list_parts(&staged, &mp.upload_id)
                    .await
                    .unwrap_or_default();
                let size = upload.version.size;
                let missing: Vec<u32> = (1..=mp.parts)
                    .filter(|n| {
                        !received
                            .iter()
                            .any(|p| p.number == *n && p.size == expected_part_size(mp, size, *n))
                    })
                    .collect();
                UploadInstructions::Multipart {
                    upload_id: mp.upload_id.clone(),
                    part_size: mp.part_size,
                    part_count: mp.parts,
                    links: self.part_links(&staged, mp, size, missing).await?,
                    received,
                }
            }
        };
        Ok((att, instructions))
    }
}

fn decode_sha(hex_str: Option<&str>) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_str?, &mut out).ok()?;
    Some(out)
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
