//! The embedded blob store: files under the data folder, and download links that the local
//! server honours, signed with HMAC-SHA256 and expiring, like S3's presigned links.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::page_cache::{self, StreamedFile};
use super::{
    content_disposition, BlobInfo, BlobStore, LinkOptions, PartInfo, PostPolicy, PresignedPost,
    StoreError, StoreResult,
};
use crate::domain::hashing::{BackgroundHasher, ChunkThread, Digests};
use crate::signing::Signer;

/// Where the local server takes form uploads.
pub const POST_PATH: &str = "/_blobs/upload";
/// The largest part of a multipart upload (S3's limit).
pub const MAX_PART_BYTES: u64 = 5 * 1024 * 1024 * 1024;
/// The most parts of a multipart upload (S3's limit).
pub const MAX_PARTS: u32 = 10_000;
/// How much of a part is read at a time when the parts are joined.
const JOIN_CHUNK: usize = 1024 * 1024;

/// The path under which the local server serves blob links.
pub const LINK_PREFIX: &str = "/_blobs/";

/// File-backed [`BlobStore`].
#[derive(Debug)]
pub struct FsBlobStore {
    root: PathBuf,
    /// Multipart uploads in progress, one folder each, beside the blobs.
    uploads: PathBuf,
    /// Where links point: the local server's public base URL, without a trailing slash.
    base_url: String,
    signer: Signer,
}

fn io_err(e: std::io::Error) -> StoreError {
    StoreError::Unavailable(format!("blob file: {e}"))
}

/// A file that is not there is `None`, not a failure.
fn unless_missing<T>(r: std::io::Result<T>) -> StoreResult<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(e)),
    }
}

/// Why a link was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("the link is malformed")]
    Malformed,
    #[error("the link's signature does not match")]
    BadSignature,
    #[error("the link has expired")]
    Expired,
    #[error("no such object")]
    NotFound,
}

/// Why a direct upload to the file store was refused (the same reasons S3 gives).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UploadError {
    #[error("the upload request is malformed: {0}")]
    Malformed(String),
    #[error("the upload's signature does not match")]
    BadSignature,
    #[error("the upload link has expired")]
    Expired,
    #[error("the file is larger than the upload allows")]
    TooLarge,
    #[error("the file is smaller than the upload requires")]
    TooSmall,
    #[error("the file's SHA-256 does not match the declared checksum")]
    BadDigest,
    #[error("no such upload")]
    NoSuchUpload,
    #[error("storage failed: {0}")]
    Io(String),
}

/// A verified form upload: where the file goes and what it must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostTarget {
    pub key: String,
    pub size: u64,
    pub sha256: Option<[u8; 32]>,
}

/// A verified part upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartTarget {
    dir: PathBuf,
    number: u32,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct PolicyDoc {
    key: String,
    content_type: String,
    size: u64,
    sha256: Option<String>,
    expires: i64,
}

/// A verified download: what to send and how to present it.
#[derive(Debug)]
pub struct SignedDownload {
    pub path: PathBuf,
    pub size: u64,
    pub content_type: String,
    pub content_disposition: String,
}

impl FsBlobStore {
    pub fn new(root: PathBuf, base_url: &str, signer: Signer) -> Self {
        Self {
            uploads: root.with_extension("uploads"),
            root,
            base_url: base_url.trim_end_matches('/').to_owned(),
            signer,
        }
    }

    /// The file of a key. Keys are made by the server from validated ids (`tenant/att/version`);
    /// anything else is refused rather than joined onto the root.
    fn path_of(&self, key: &str) -> StoreResult<PathBuf> {
        if !is_safe_key(key) {
            return Err(StoreError::Corrupt(format!("unsafe blob key {key:?}")));
        }
        Ok(self.root.join(key))
    }

    fn link_parts<'a>(key: &'a str, expires: &'a str, ct: &'a str, cd: &'a str) -> [&'a [u8]; 5] {
        [
            b"GET",
            key.as_bytes(),
            expires.as_bytes(),
            ct.as_bytes(),
            cd.as_bytes(),
        ]
    }

    /// Checks a link's query against its path and the clock, and says what to serve.
    pub async fn open_signed(
        &self,
        key: &str,
        query: &str,
        now: i64,
    ) -> Result<SignedDownload, LinkError> {
        let mut expires = None;
        let mut ct = None;
        let mut cd = None;
        let mut sig = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').ok_or(LinkError::Malformed)?;
            let v = percent_encoding::percent_decode_str(v)
                .decode_utf8()
                .map_err(|_| LinkError::Malformed)?
                .into_owned();
            match k {
                "expires" => expires = Some(v),
                "response-content-type" => ct = Some(v),
                "response-content-disposition" => cd = Some(v),
                "signature" => sig = Some(v),
                _ => return Err(LinkError::Malformed),
            }
        }
        let (Some(expires), Some(ct), Some(cd), Some(sig)) = (expires, ct, cd, sig) else {
            return Err(LinkError::Malformed);
        };
        if !is_safe_key(key) {
            return Err(LinkError::Malformed);
        }
        if !self
            .signer
            .verify(&Self::link_parts(key, &expires, &ct, &cd), &sig)
        {
            return Err(LinkError::BadSignature);
        }
        let exp: i64 = expires.parse().map_err(|_| LinkError::Malformed)?;
        if now > exp {
            return Err(LinkError::Expired);
        }
        let path = self.root.join(key);
        let meta = tokio::fs::metadata(&path)
            .await
            .map_err(|_| LinkError::NotFound)?;
        Ok(SignedDownload {
            path,
            size: meta.len(),
            content_type: ct,
            content_disposition: cd,
        })
    }

    /// The link for a key, valid until `expires` (unix seconds).
    pub fn link(&self, key: &str, content_type: &str, disposition: &str, expires: i64) -> String {
        use std::fmt::Write;
        let expires = expires.to_string();
        let sig = self
            .signer
            .sign(&Self::link_parts(key, &expires, content_type, disposition));
        // Written once into a buffer of about the right size: a listing builds one per item.
        let mut url = String::with_capacity(
            self.base_url.len() + key.len() + 2 * (content_type.len() + disposition.len()) + 160,
        );
        let _ = write!(
            url,
            "{}{LINK_PREFIX}{key}?expires={expires}&response-content-type={}\
             &response-content-disposition={}&signature={sig}",
            self.base_url,
            utf8_percent_encode(content_type, NON_ALPHANUMERIC),
            utf8_percent_encode(disposition, NON_ALPHANUMERIC),
        );
        url
    }
}

impl FsBlobStore {
    /// Writes bytes the caller has (or will have) hashed; a digests record of an earlier file
    /// under the key goes first.
    async fn write(&self, key: &str, data: Bytes) -> StoreResult<()> {
        let path = self.path_of(key)?;
        write_atomically(path, data).await.map_err(io_err)
    }

    fn upload_dir(&self, upload_id: &str) -> Result<PathBuf, UploadError> {
        uuid::Uuid::try_parse(upload_id).map_err(|_| UploadError::NoSuchUpload)?;
        Ok(self.uploads.join(upload_id))
    }

    /// Checks a form upload's fields (everything before the file) against its signed policy.
    pub fn check_post(
        &self,
        fields: &[(String, String)],
        now: i64,
    ) -> Result<PostTarget, UploadError> {
        let field = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
                .ok_or_else(|| UploadError::Malformed(format!("the form has no {name} field")))
        };
        let policy_b64 = field("policy")?;
        if !self
            .signer
            .verify(&[b"POST", policy_b64.as_bytes()], field("signature")?)
        {
            return Err(UploadError::BadSignature);
        }
        let raw = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, policy_b64)
            .map_err(|_| UploadError::Malformed("policy is not base64".into()))?;
        let doc: PolicyDoc = serde_json::from_slice(&raw)
            .map_err(|_| UploadError::Malformed("policy is not valid".into()))?;
        if now > doc.expires {
            return Err(UploadError::Expired);
        }
        if field("key")? != doc.key || !is_safe_key(&doc.key) {
            return Err(UploadError::BadSignature);
        }
        if field("Content-Type")? != doc.content_type {
            return Err(UploadError::BadSignature);
        }
        let sha256 = match doc.sha256 {
            None => None,
            Some(h) => {
                let mut out = [0u8; 32];
                hex::decode_to_slice(&h, &mut out)
                    .map_err(|_| UploadError::Malformed("policy checksum".into()))?;
                Some(out)
            }
        };
        Ok(PostTarget {
            key: doc.key,
            size: doc.size,
            sha256,
        })
    }

    /// Streams a form upload's file into place, enforcing the exact size and the checksum.
    pub async fn receive_post<S, E>(
        &self,
        target: &PostTarget,
        stream: S,
    ) -> Result<(), UploadError>
    where
        S: futures_util::Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let path = self
            .path_of(&target.key)
            .map_err(|e| UploadError::Malformed(e.to_string()))?;
        let received = receive_to(&path, stream, target.size, Hashing::Everything).await?;
        let sha = received.digests.as_ref().map(|d| d.sha256);
        let result = if received.size < target.size {
            Err(UploadError::TooSmall)
        } else if target.sha256.is_some() && sha != target.sha256 {
            Err(UploadError::BadDigest)
        } else {
            Ok(())
        };
        if result.is_err() {
            let _ = tokio::fs::remove_file(&path).await;
            let _ = forget_digests(&path).await;
        }
        result
    }

    /// Checks a part upload's link.
    pub async fn check_part(
        &self,
        key: &str,
        query: &str,
        now: i64,
    ) -> Result<PartTarget, UploadError> {
        let mut upload_id = None;
        let mut number = None;
        let mut expires = None;
        let mut sig = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| UploadError::Malformed("query".into()))?;
            match k {
                "uploadId" => upload_id = Some(v),
                "partNumber" => number = Some(v),
                "expires" => expires = Some(v),
                "signature" => sig = Some(v),
                _ => return Err(UploadError::Malformed(format!("unexpected parameter {k}"))),
            }
        }
        let (Some(upload_id), Some(number), Some(expires), Some(sig)) =
            (upload_id, number, expires, sig)
        else {
            return Err(UploadError::Malformed("the part link is incomplete".into()));
        };
        if !self.signer.verify(
            &[
                b"PUT",
                key.as_bytes(),
                upload_id.as_bytes(),
                number.as_bytes(),
                expires.as_bytes(),
            ],
            sig,
        ) {
            return Err(UploadError::BadSignature);
        }
        let exp: i64 = expires
            .parse()
            .map_err(|_| UploadError::Malformed("expires".into()))?;
        if now > exp {
            return Err(UploadError::Expired);
        }
        let number: u32 = number
            .parse()
            .map_err(|_| UploadError::Malformed("partNumber".into()))?;
        let dir = self.upload_dir(upload_id)?;
        let owner = tokio::fs::read_to_string(dir.join("key"))
            .await
            .map_err(|_| UploadError::NoSuchUpload)?;
        if owner != key {
            return Err(UploadError::NoSuchUpload);
        }
        Ok(PartTarget { dir, number })
    }

    /// Streams one part into its upload's folder; returns its ETag (hex MD5, as S3's).
    pub async fn receive_part<S, E>(
        &self,
        target: &PartTarget,
        stream: S,
    ) -> Result<String, UploadError>
    where
        S: futures_util::Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let path = target.dir.join(format!("{:05}.part", target.number));
        let received = receive_to(&path, stream, MAX_PART_BYTES, Hashing::PartEtag).await?;
        let etag = received.md5.map(hex::encode).unwrap_or_default();
        tokio::fs::write(target.dir.join(format!("{:05}.etag", target.number)), &etag)
            .await
            .map_err(|e| UploadError::Io(e.to_string()))?;
        Ok(etag)
    }
}

/// What to compute while a stream is received.
enum Hashing {
    /// A whole object: both digests, recorded beside the file for its verification.
    Everything,
    /// One part of a multipart upload: its MD5, which is its ETag, as on S3.
    PartEtag,
}

struct Received {
    size: u64,
    digests: Option<Digests>,
    md5: Option<[u8; 16]>,
}

/// Writes a stream to `path` through a temporary file, at most `max` bytes, hashing on the way.
async fn receive_to<S, E>(
    path: &Path,
    mut stream: S,
    max: u64,
    hashing: Hashing,
) -> Result<Received, UploadError>
where
    S: futures_util::Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    use futures_util::StreamExt;
    use md5::Digest;
    let io = |e: std::io::Error| UploadError::Io(e.to_string());
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await.map_err(io)?;
    }
    let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4()));
    let result = async {
        // Written on a thread of its own, straight from the received chunks: no buffer copies
        // them again (tokio's file would, twice), and the writing overlaps the hashing.
        let file = tokio::fs::File::create(&tmp)
            .await
            .map_err(io)?
            .into_std()
            .await;
        let f = ChunkThread::spawn("writing", StreamedFile::new(file), StreamedFile::write);
        let mut size = 0u64;
        // Hashing a whole object runs on its own thread, beside the receiving and the writing.
        let background = matches!(hashing, Hashing::Everything).then(BackgroundHasher::spawn);
        let mut md5 = matches!(hashing, Hashing::PartEtag).then(md5::Md5::new);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk
                .map_err(|e| UploadError::Malformed(format!("the body could not be read: {e}")))?;
            size += chunk.len() as u64;
            if size > max {
                return Err(UploadError::TooLarge);
            }
            if let Some(h) = md5.as_mut() {
                h.update(&chunk);
            }
            if let Some(h) = &background {
                h.update(chunk.clone()).await.map_err(io)?;
            }
            if let Err(e) = f.update(chunk).await {
                // The writer stopped on an error of its own: that error, not the stop.
                return Err(io(f.finish().await.err().unwrap_or(e)));
            }
        }
        let file = f.finish().await.map_err(io)?;
        let file = blocking(move || file.flush()).await.map_err(io)?;
        let file = tokio::fs::File::from_std(file);
        let digests = match background {
            Some(h) => {
                let digests = h.finish().await.map_err(io)?;
                let meta = file.metadata().await.map_err(io)?;
                record_digests(path, &meta, &digests).await.map_err(io)?;
                Some(digests)
            }
            None => None,
        };
        tokio::fs::rename(&tmp, path).await.map_err(io)?;
        Ok(Received {
            size,
            digests,
            md5: md5.map(|h| h.finalize().into()),
        })
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    result
}

/// Where the digests computed while receiving an object are kept: beside it, under a name no
/// key can take (keys have no dots).
fn digests_path(path: &Path) -> PathBuf {
    path.with_extension("digests")
}

/// Which file a digests record belongs to: the inode and modification time survive the rename
/// into place, and any later replacement of the object changes them, so a stale record is
/// never believed.
#[cfg(unix)]
fn identity(meta: &std::fs::Metadata) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    Some(format!(
        "{}.{}.{}",
        meta.ino(),
        meta.mtime(),
        meta.mtime_nsec()
    ))
}

#[cfg(not(unix))]
fn identity(_meta: &std::fs::Metadata) -> Option<String> {
    None
}

/// Writes the record `identity size md5 sha256`; a record cut short does not parse, and then the
/// object is simply read back and hashed again.
async fn record_digests(
    path: &Path,
    meta: &std::fs::Metadata,
    digests: &Digests,
) -> std::io::Result<()> {
    let Some(id) = identity(meta) else {
        return Ok(());
    };
    let line = format!(
        "{id} {} {} {}\n",
        digests.size,
        digests.md5_hex(),
        digests.sha256_hex()
    );
    tokio::fs::write(digests_path(path), line).await
}

fn parse_record(text: &str) -> Option<(&str, Digests)> {
    let mut fields = text.strip_suffix('\n')?.split(' ');
    let (id, size, md5, sha) = (
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
    );
    if fields.next().is_some() {
        return None;
    }
    let mut d = Digests {
        md5: [0; 16],
        sha256: [0; 32],
        size: size.parse().ok()?,
    };
    hex::decode_to_slice(md5, &mut d.md5).ok()?;
    hex::decode_to_slice(sha, &mut d.sha256).ok()?;
    Some((id, d))
}

/// Removes an object's digests record, if it has one.
async fn forget_digests(path: &Path) -> std::io::Result<()> {
    let digests = digests_path(path);
    blocking(move || forget_digests_now(&digests)).await
}

/// [`forget_digests`] for code already on a blocking thread; takes the digests' own path.
fn forget_digests_now(digests: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(digests) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// `tenant/attachment/version`: three segments of id characters, nothing that walks the tree.
pub fn is_safe_key(key: &str) -> bool {
    let segments: Vec<&str> = key.split('/').collect();
    segments.len() == 3
        && segments.iter().all(|s| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

/// Runs blocking file work on one of tokio's blocking threads, off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?
}

/// Forgets the digests recorded for what was there before (see [`record_digests`]), then writes
/// through a temporary file and a rename, so a reader never sees half a file, and syncs
/// before the rename, so the metadata never points at bytes a crash could lose; a bulk file's
/// pages then leave the cache ([`page_cache`]). One blocking task does it all with `std::fs`:
/// far fewer thread hops than `tokio::fs` per call.
async fn write_atomically(path: PathBuf, data: Bytes) -> std::io::Result<()> {
    blocking(move || {
        use std::io::Write;
        forget_digests_now(&digests_path(&path))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4()));
        let result = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&data)?;
            page_cache::sync_and_release(f, data.len() as u64)?;
            std::fs::rename(&tmp, &path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    })
    .await
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn put(
        &self,
        key: &str,
        data: Bytes,
        _content_type: &str,
        _sha256: &[u8; 32],
    ) -> StoreResult<()> {
        // No transport to verify: the caller hashed these very bytes.
        self.write(key, data).await
    }

    async fn put_while_hashing(
        &self,
        key: &str,
        data: Bytes,
        _content_type: &str,
        _sha256: tokio::sync::oneshot::Receiver<[u8; 32]>,
    ) -> StoreResult<()> {
        // Nothing to verify in transit: write while the caller hashes.
        self.write(key, data).await
    }

    async fn head(&self, key: &str) -> StoreResult<Option<BlobInfo>> {
        let meta = unless_missing(tokio::fs::metadata(self.path_of(key)?).await)?;
        Ok(meta.map(|m| BlobInfo { size: m.len() }))
    }

    async fn get_range(&self, key: &str, offset: u64, len: u64) -> StoreResult<Bytes> {
        let mut f = match tokio::fs::File::open(self.path_of(key)?).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(StoreError::NotFound),
            Err(e) => return Err(io_err(e)),
        };
        f.seek(SeekFrom::Start(offset)).await.map_err(io_err)?;
        let mut buf = Vec::with_capacity(len.min(64 * 1024 * 1024) as usize);
        f.take(len).read_to_end(&mut buf).await.map_err(io_err)?;
        Ok(Bytes::from(buf))
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        let path = self.path_of(key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(e)),
        }
        forget_digests(&path).await.map_err(io_err)?;
        // Drop the attachment's folder once its last version is gone; a non-empty one stays.
        if let Some(dir) = path.parent() {
            let _ = tokio::fs::remove_dir(dir).await;
        }
        Ok(())
    }

    async fn presign_get(&self, key: &str, opts: &LinkOptions<'_>) -> StoreResult<String> {
        let expires = time::OffsetDateTime::now_utc().unix_timestamp() + opts.ttl.as_secs() as i64;
        let disposition = content_disposition(opts.file_name);
        Ok(self.link(key, opts.content_type, &disposition, expires))
    }

    async fn presign_post(&self, key: &str, policy: &PostPolicy<'_>) -> StoreResult<PresignedPost> {
        self.path_of(key)?;
        let doc = PolicyDoc {
            key: key.to_owned(),
            content_type: policy.content_type.to_owned(),
            size: policy.size,
            sha256: policy.sha256.map(hex::encode),
            expires: time::OffsetDateTime::now_utc().unix_timestamp() + policy.ttl.as_secs() as i64,
        };
        let json = serde_json::to_vec(&doc).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let policy_b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, json);
        let signature = self.signer.sign(&[b"POST", policy_b64.as_bytes()]);
        Ok(PresignedPost {
            url: format!("{}{POST_PATH}", self.base_url),
            fields: vec![
                ("key".into(), key.to_owned()),
                ("Content-Type".into(), policy.content_type.to_owned()),
                ("policy".into(), policy_b64),
                ("signature".into(), signature),
            ],
        })
    }

    async fn create_multipart(&self, key: &str, _content_type: &str) -> StoreResult<String> {
        self.path_of(key)?;
        let id = uuid::Uuid::new_v4().to_string();
        let dir = self.uploads.join(&id);
        tokio::fs::create_dir_all(&dir).await.map_err(io_err)?;
        tokio::fs::write(dir.join("key"), key)
            .await
            .map_err(io_err)?;
        Ok(id)
    }

    async fn presign_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        ttl: std::time::Duration,
    ) -> StoreResult<String> {
        let expires =
            (time::OffsetDateTime::now_utc().unix_timestamp() + ttl.as_secs() as i64).to_string();
        let number = number.to_string();
        let sig = self.signer.sign(&[
            b"PUT",
            key.as_bytes(),
            upload_id.as_bytes(),
            number.as_bytes(),
            expires.as_bytes(),
        ]);
        Ok(format!(
            "{}{LINK_PREFIX}{key}?uploadId={upload_id}&partNumber={number}&expires={expires}&signature={sig}",
            self.base_url
        ))
    }

    async fn list_parts(&self, key: &str, upload_id: &str) -> StoreResult<Vec<PartInfo>> {
        let dir = self
            .upload_dir(upload_id)
            .map_err(|_| StoreError::NotFound)?;
        match tokio::fs::read_to_string(dir.join("key")).await {
            Ok(k) if k == key => {}
            _ => return Err(StoreError::NotFound),
        }
        let mut parts = Vec::new();
        let mut rd = tokio::fs::read_dir(&dir).await.map_err(io_err)?;
        while let Some(e) = rd.next_entry().await.map_err(io_err)? {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(n) = name
                .strip_suffix(".part")
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let size = e.metadata().await.map_err(io_err)?.len();
            let etag = tokio::fs::read_to_string(dir.join(format!("{n:05}.etag")))
                .await
                .unwrap_or_default();
            parts.push(PartInfo {
                number: n,
                size,
                etag,
            });
        }
        parts.sort_by_key(|p| p.number);
        Ok(parts)
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[PartInfo],
    ) -> StoreResult<()> {
        let dir = self
            .upload_dir(upload_id)
            .map_err(|_| StoreError::NotFound)?;
        let path = self.path_of(key)?;
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(io_err)?;
        }
        let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4()));
        // Joining reads every byte anyway: hash them on the way, so verification need not.
        let joined = async {
            let hasher = BackgroundHasher::spawn();
            let mut out = tokio::fs::File::create(&tmp).await?;
            for p in parts {
                let mut part =
                    tokio::fs::File::open(dir.join(format!("{:05}.part", p.number))).await?;
                loop {
                    let mut buf = bytes::BytesMut::with_capacity(JOIN_CHUNK);
                    while buf.len() < JOIN_CHUNK && part.read_buf(&mut buf).await? > 0 {}
                    if buf.is_empty() {
                        break;
                    }
                    let chunk = buf.freeze();
                    out.write_all(&chunk).await?;
                    hasher.update(chunk).await?;
                }
            }
            out.flush().await?;
            let out = out.into_std().await;
            let out = blocking(move || {
                let len = out.metadata()?.len();
                page_cache::sync_and_release(out, len)
            })
            .await?;
            let out = tokio::fs::File::from_std(out);
            let digests = hasher.finish().await?;
            record_digests(&path, &out.metadata().await?, &digests).await?;
            tokio::fs::rename(&tmp, &path).await
        }
        .await;
        if let Err(e) = joined {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(io_err(e));
        }
        let _ = tokio::fs::remove_dir_all(&dir).await;
        Ok(())
    }

    async fn received_digests(&self, key: &str) -> StoreResult<Option<Digests>> {
        let path = self.path_of(key)?;
        let Some(text) = unless_missing(tokio::fs::read_to_string(digests_path(&path)).await)?
        else {
            return Ok(None);
        };
        let Some(meta) = unless_missing(tokio::fs::metadata(&path).await)? else {
            return Ok(None);
        };
        let current = identity(&meta);
        Ok(parse_record(&text)
            .filter(|(id, d)| current.as_deref() == Some(*id) && d.size == meta.len())
            .map(|(_, d)| d))
    }

    async fn abort_multipart(&self, _key: &str, upload_id: &str) -> StoreResult<()> {
        if let Ok(dir) = self.upload_dir(upload_id) {
            match tokio::fs::remove_dir_all(&dir).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(e)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path) -> FsBlobStore {
        FsBlobStore::new(
            dir.to_path_buf(),
            "http://127.0.0.1:3000/",
            Signer::new([1; 32]),
        )
    }

    fn query_of(link: &str) -> (&str, &str) {
        let rest = link.split_once(LINK_PREFIX).unwrap().1;
        rest.split_once('?').unwrap()
    }

    #[tokio::test]
    async fn put_head_range_delete() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let key = "t/a-1/v-1";
        s.put(
            key,
            Bytes::from_static(b"hello world"),
            "text/plain",
            &[0; 32],
        )
        .await
        .unwrap();
        assert_eq!(s.head(key).await.unwrap(), Some(BlobInfo { size: 11 }));
        assert_eq!(&s.get_range(key, 6, 100).await.unwrap()[..], b"world");
        s.delete(key).await.unwrap();
        s.delete(key).await.unwrap();
        assert_eq!(s.head(key).await.unwrap(), None);
        assert!(s.put("../x/y", Bytes::new(), "", &[0; 32]).await.is_err());
    }

    fn chunked(
        data: &[u8],
        size: usize,
    ) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Unpin {
        let chunks: Vec<_> = data
            .chunks(size)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        futures_util::stream::iter(chunks)
    }

    #[tokio::test]
    async fn received_objects_carry_their_digests_while_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 241) as u8).collect();
        let key = "t/a/v";
        let path = dir.path().join(key);
        let target = PostTarget {
            key: key.into(),
            size: data.len() as u64,
            sha256: None,
        };
        let receive = || s.receive_post(&target, chunked(&data, 100_000));

        receive().await.unwrap();
        assert_eq!(
            s.received_digests(key).await.unwrap(),
            Some(Digests::of(&data))
        );
        // Written again through `put`: the record goes.
        s.put(key, Bytes::from(data.clone()), "x", &[0; 32])
            .await
            .unwrap();
        assert_eq!(s.received_digests(key).await.unwrap(), None);
        // Replaced behind the store's back: the record no longer names the file.
        receive().await.unwrap();
        std::fs::write(dir.path().join("other"), &data).unwrap();
        std::fs::rename(dir.path().join("other"), &path).unwrap();
        assert_eq!(s.received_digests(key).await.unwrap(), None);
        // Deleted: the record goes with the object.
        receive().await.unwrap();
        s.delete(key).await.unwrap();
        assert!(!digests_path(&path).exists());
        assert_eq!(s.received_digests(key).await.unwrap(), None);

        // Joined from parts: hashed while joining.
        let key = "t/b/v";
        let id = s.create_multipart(key, "x").await.unwrap();
        for (i, part) in data.chunks(1_200_000).enumerate() {
            let target = PartTarget {
                dir: s.upload_dir(&id).unwrap(),
                number: i as u32 + 1,
            };
            s.receive_part(&target, chunked(part, 70_000))
                .await
                .unwrap();
        }
        let parts = s.list_parts(key, &id).await.unwrap();
        s.complete_multipart(key, &id, &parts).await.unwrap();
        assert_eq!(&s.get_range(key, 0, 1 << 30).await.unwrap()[..], &data[..]);
        assert_eq!(
            s.received_digests(key).await.unwrap(),
            Some(Digests::of(&data))
        );
        // A record cut short is not believed.
        let record = digests_path(&dir.path().join(key));
        let text = std::fs::read_to_string(&record).unwrap();
        std::fs::write(&record, &text[..text.len() - 2]).unwrap();
        assert_eq!(s.received_digests(key).await.unwrap(), None);
    }

    /// Every way a file reaches the store (a put, a form upload, parts joined) leaves no bulk
    /// file in the page cache once it is on disk; a small one (a thumbnail) stays.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn bulk_files_leave_the_page_cache_once_on_disk() {
        use crate::store::page_cache::tests::{cached_pages, disk_dir};
        let dir = disk_dir();
        let s = store(dir.path());
        // 4 MiB and a few bytes: the last, partial page is the kernel's to keep.
        let data: Vec<u8> = (0..(4 << 20) + 3000u32).map(|i| (i % 251) as u8).collect();
        let pages = data.len().div_ceil(4096);
        let uncached = |key: &str| {
            let (cached, total) = cached_pages(&dir.path().join(key));
            assert_eq!(total, pages, "{key}");
            assert!(cached <= 1, "{key}: {cached} of {total} pages still cached");
        };

        s.put("t/a/v", Bytes::from(data.clone()), "x", &[0; 32])
            .await
            .unwrap();
        uncached("t/a/v");

        let target = PostTarget {
            key: "t/b/v".into(),
            size: data.len() as u64,
            sha256: None,
        };
        s.receive_post(&target, chunked(&data, 64 << 10))
            .await
            .unwrap();
        uncached("t/b/v");

        let id = s.create_multipart("t/c/v", "x").await.unwrap();
        for (i, part) in data.chunks(3 << 20).enumerate() {
            let target = PartTarget {
                dir: s.upload_dir(&id).unwrap(),
                number: i as u32 + 1,
            };
            s.receive_part(&target, chunked(part, 64 << 10))
                .await
                .unwrap();
        }
        let parts = s.list_parts("t/c/v", &id).await.unwrap();
        s.complete_multipart("t/c/v", &id, &parts).await.unwrap();
        uncached("t/c/v");
        for key in ["t/a/v", "t/b/v", "t/c/v"] {
            assert_eq!(&s.get_range(key, 0, 1 << 30).await.unwrap()[..], &data[..]);
        }

        s.put("t/d/v", Bytes::from_static(&[9; 5000]), "x", &[0; 32])
            .await
            .unwrap();
        assert_eq!(cached_pages(&dir.path().join("t/d/v")), (2, 2));
    }

    #[tokio::test]
    async fn writes_while_the_caller_still_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        // The checksum never arrives while the write runs: the file store must not wait for it.
        let (_still_hashing, sha256) = tokio::sync::oneshot::channel();
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            s.put_while_hashing("t/a/v", Bytes::from_static(b"bytes"), "text/plain", sha256),
        )
        .await
        .expect("the file store waited for the checksum")
        .unwrap();
        assert_eq!(&s.get_range("t/a/v", 0, 100).await.unwrap()[..], b"bytes");
    }

    #[tokio::test]
    async fn links_verify_and_refuse_tampering_and_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let key = "t/a/v";
        s.put(key, Bytes::from_static(b"x"), "text/plain", &[0; 32])
            .await
            .unwrap();
        let link = s.link(
            key,
            "text/plain",
            "attachment; filename*=UTF-8''a.txt",
            1000,
        );
        assert!(link.starts_with("http://127.0.0.1:3000/_blobs/t/a/v?expires=1000&"));
        let (k, q) = query_of(&link);
        let ok = s.open_signed(k, q, 999).await.unwrap();
        assert_eq!(ok.content_type, "text/plain");
        assert_eq!(ok.size, 1);
        assert_eq!(
            s.open_signed(k, q, 1001).await.unwrap_err(),
            LinkError::Expired
        );
        let tampered = q.replace("text%2Fplain", "text%2Fhtml");
        assert_eq!(
            s.open_signed(k, &tampered, 999).await.unwrap_err(),
            LinkError::BadSignature
        );
        let later = q.replace("expires=1000", "expires=9999");
        assert_eq!(
            s.open_signed(k, &later, 999).await.unwrap_err(),
            LinkError::BadSignature
        );
        assert_eq!(
            s.open_signed("t/a/w", q, 999).await.unwrap_err(),
            LinkError::BadSignature
        );
        assert_eq!(
            s.open_signed(k, "expires=1", 0).await.unwrap_err(),
            LinkError::Malformed
        );
    }
}
