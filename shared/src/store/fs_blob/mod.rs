//! The embedded blob store: one file per stored version under the data folder, written as
//! [`write`] describes, and signed links ([`links`]) that the local server honours, like S3's
//! presigned URLs. Multipart uploads keep their parts in a folder each beside the blobs until
//! they are joined.

pub mod links;
mod write;

use std::io::SeekFrom;
use std::path::PathBuf;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::{
    content_disposition, BlobInfo, BlobStore, LinkOptions, PartInfo, PostPolicy, PresignedPost,
    StoreError, StoreResult,
};
use crate::domain::hashing::Digests;
use crate::signing::Signer;
pub use links::{LinkError, Links, PartGrant, PostGrant, LINK_PREFIX, POST_PATH};
pub use write::ReceiveError;
use write::{blocking, write_atomically, write_stream, Hashing};
pub use write::{create_private_dir, sync_folder_of};

/// The largest part of a multipart upload (S3's limit).
pub const MAX_PART_BYTES: u64 = 5 * 1024 * 1024 * 1024;
/// The most parts of a multipart upload (S3's limit).
pub const MAX_PARTS: u32 = 10_000;

/// File-backed [`BlobStore`].
#[derive(Debug)]
pub struct FsBlobStore {
    root: PathBuf,
    /// Multipart uploads in progress, one folder each, beside the blobs.
    uploads: PathBuf,
    links: Links,
}

fn io_err(e: std::io::Error) -> StoreError {
    StoreError::Unavailable(format!("blob file: {e}"))
}

/// Why a form upload or a part was not stored (the reasons S3 gives).
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error(transparent)]
    Receive(#[from] ReceiveError),
    #[error("the file is smaller than the upload requires")]
    TooSmall,
    #[error("the file's SHA-256 does not match the declared checksum")]
    BadDigest,
    #[error("no such upload")]
    NoSuchUpload,
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

impl FsBlobStore {
    pub fn new(root: PathBuf, base_url: &str, signer: Signer) -> Self {
        Self {
            uploads: root.with_extension("uploads"),
            root,
            links: Links::new(signer, base_url),
        }
    }

    /// The store's links, for the server that honours them.
    pub fn links(&self) -> &Links {
        &self.links
    }

    /// The file of a key. Keys are made by the server from validated ids (`tenant/att/version`);
    /// anything else is refused rather than joined onto the root.
    fn path_of(&self, key: &str) -> StoreResult<PathBuf> {
        if !is_safe_key(key) {
            return Err(StoreError::Corrupt(format!("unsafe blob key {key:?}")));
        }
        Ok(self.root.join(key))
    }

    /// The folder of a multipart upload, if `upload_id` can name one.
    fn upload_dir(&self, upload_id: &str) -> Option<PathBuf> {
        uuid::Uuid::try_parse(upload_id).ok()?;
        Some(self.uploads.join(upload_id))
    }

    /// The folder of a multipart upload of `key`, when it exists and belongs to that key.
    async fn upload_of(&self, key: &str, upload_id: &str) -> Option<PathBuf> {
        let dir = self.upload_dir(upload_id)?;
        match tokio::fs::read_to_string(dir.join("key")).await {
            Ok(owner) if owner == key => Some(dir),
            _ => None,
        }
    }

    /// The file behind a download link, opened, with its size.
    pub async fn open(&self, key: &str) -> StoreResult<Option<(tokio::fs::File, u64)>> {
        let path = self.path_of(key)?;
        let file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(e)),
        };
        let size = file.metadata().await.map_err(io_err)?.len();
        Ok(Some((file, size)))
    }

    /// Stores a form upload's file under the key its policy names, exactly its size and, when
    /// declared, its checksum; hashed as it is written. Anything else stores nothing.
    pub async fn receive_post<S, E>(
        &self,
        grant: &PostGrant,
        stream: S,
    ) -> Result<Digests, UploadError>
    where
        S: futures_util::Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let path = self
            .path_of(&grant.key)
            .map_err(|e| ReceiveError::Io(std::io::Error::other(e.to_string())))?;
        let tmp = path.with_extension(format!("incoming-{}", uuid::Uuid::new_v4()));
        let digests = write_stream(tmp.clone(), stream, grant.size, Hashing::Both).await?;
        let refused = if digests.size < grant.size {
            Some(UploadError::TooSmall)
        } else if grant.sha256.is_some_and(|sha| sha != digests.sha256) {
            Some(UploadError::BadDigest)
        } else {
            None
        };
        if let Some(e) = refused {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
        blocking(move || {
            std::fs::rename(&tmp, &path)?;
            write::sync_folder_of(&path)
        })
        .await
        .map_err(ReceiveError::Io)?;
        Ok(digests)
    }

    /// Stores one part of a multipart upload of `key`; returns its ETag (hex MD5, as S3's).
    pub async fn receive_part<S, E>(
        &self,
        key: &str,
        grant: &PartGrant,
        stream: S,
    ) -> Result<String, UploadError>
    where
        S: futures_util::Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let dir = self
            .upload_of(key, &grant.upload_id)
            .await
            .ok_or(UploadError::NoSuchUpload)?;
        let path = dir.join(format!("{:05}.part", grant.number));
        let digests = write_stream(path, stream, MAX_PART_BYTES, Hashing::Md5).await?;
        let etag = hex::encode(digests.md5);
        // Kept beside the part, as S3 keeps it, for the listing of parts.
        write_atomically(etag_path(&dir, grant.number), Bytes::from(etag.clone()))
            .await
            .map_err(ReceiveError::Io)?;
        Ok(etag)
    }
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
        write_atomically(self.path_of(key)?, data)
            .await
            .map_err(io_err)
    }

    async fn put_while_hashing(
        &self,
        key: &str,
        data: Bytes,
        _content_type: &str,
        _sha256: tokio::sync::oneshot::Receiver<[u8; 32]>,
    ) -> StoreResult<()> {
        // Nothing to verify in transit: write while the caller hashes.
        write_atomically(self.path_of(key)?, data)
            .await
            .map_err(io_err)
    }

    async fn head(&self, key: &str) -> StoreResult<Option<BlobInfo>> {
        match tokio::fs::metadata(self.path_of(key)?).await {
            Ok(m) => Ok(Some(BlobInfo { size: m.len() })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(e)),
        }
    }

    async fn get_range(&self, key: &str, offset: u64, len: u64) -> StoreResult<Bytes> {
        let Some((mut f, _)) = self.open(key).await? else {
            return Err(StoreError::NotFound);
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
        // Drop the attachment's folder once its last version is gone; a non-empty one stays.
        if let Some(dir) = path.parent() {
            let _ = tokio::fs::remove_dir(dir).await;
        }
        Ok(())
    }

    async fn presign_get(&self, key: &str, opts: &LinkOptions<'_>) -> StoreResult<String> {
        let disposition = content_disposition(opts.file_name);
        Ok(self
            .links
            .download(key, opts.content_type, &disposition, opts.valid.expires_at))
    }

    async fn presign_post(&self, key: &str, policy: &PostPolicy<'_>) -> StoreResult<PresignedPost> {
        self.path_of(key)?;
        let expires =
            time::OffsetDateTime::now_utc().unix_timestamp() + policy.ttl.as_secs() as i64;
        let (url, fields) = self
            .links
            .post(
                key,
                policy.content_type,
                policy.size,
                policy.sha256,
                expires,
            )
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(PresignedPost { url, fields })
    }

    async fn create_multipart(&self, key: &str, _content_type: &str) -> StoreResult<String> {
        self.path_of(key)?;
        let id = uuid::Uuid::new_v4().to_string();
        let dir = self.uploads.join(&id);
        write_atomically(dir.join("key"), Bytes::from(key.to_owned()))
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
        let expires = time::OffsetDateTime::now_utc().unix_timestamp() + ttl.as_secs() as i64;
        Ok(self.links.part(key, upload_id, number, expires))
    }

    async fn list_parts(&self, key: &str, upload_id: &str) -> StoreResult<Vec<PartInfo>> {
        let dir = self
            .upload_of(key, upload_id)
            .await
            .ok_or(StoreError::NotFound)?;
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
            let etag = tokio::fs::read_to_string(etag_path(&dir, n))
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
            .upload_of(key, upload_id)
            .await
            .ok_or(StoreError::NotFound)?;
        let files = parts
            .iter()
            .map(|p| dir.join(format!("{:05}.part", p.number)))
            .collect();
        write::join(files, self.path_of(key)?)
            .await
            .map_err(io_err)?;
        let _ = tokio::fs::remove_dir_all(&dir).await;
        Ok(())
    }

    async fn abort_multipart(&self, _key: &str, upload_id: &str) -> StoreResult<()> {
        if let Some(dir) = self.upload_dir(upload_id) {
            match tokio::fs::remove_dir_all(&dir).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(e)),
            }
        }
        Ok(())
    }
}

/// Where a part's ETag is kept, beside the part.
fn etag_path(dir: &std::path::Path, number: u32) -> PathBuf {
    dir.join(format!("{number:05}.etag"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &std::path::Path) -> FsBlobStore {
        FsBlobStore::new(
            dir.to_path_buf(),
            "http://127.0.0.1:3000/",
            Signer::new([1; 32]),
        )
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
    async fn form_uploads_store_exactly_what_the_policy_allows() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let data = vec![5u8; 300_000];
        let grant = PostGrant {
            key: "t/a/v".into(),
            size: data.len() as u64,
            sha256: None,
        };
        let d = s
            .receive_post(&grant, chunked(&data, 70_000))
            .await
            .unwrap();
        assert_eq!(d, Digests::of(&data));
        // Fewer bytes, more bytes, another checksum: refused, and the stored file is untouched.
        let short = s.receive_post(&grant, chunked(&data[1..], 70_000)).await;
        assert!(matches!(short, Err(UploadError::TooSmall)));
        let long = [data.clone(), vec![1]].concat();
        let long = s.receive_post(&grant, chunked(&long, 70_000)).await;
        assert!(matches!(
            long,
            Err(UploadError::Receive(ReceiveError::TooLarge))
        ));
        let pinned = PostGrant {
            sha256: Some([9; 32]),
            ..grant.clone()
        };
        let bad = s.receive_post(&pinned, chunked(&data, 70_000)).await;
        assert!(matches!(bad, Err(UploadError::BadDigest)));
        assert_eq!(
            &s.get_range("t/a/v", 0, 1 << 20).await.unwrap()[..],
            &data[..]
        );
    }

    #[tokio::test]
    async fn parts_join_into_the_object() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 241) as u8).collect();
        let key = "t/b/v";
        let id = s.create_multipart(key, "x").await.unwrap();
        for (i, part) in data.chunks(1_200_000).enumerate() {
            let grant = PartGrant {
                upload_id: id.clone(),
                number: i as u32 + 1,
            };
            let etag = s
                .receive_part(key, &grant, chunked(part, 70_000))
                .await
                .unwrap();
            assert_eq!(etag, Digests::of(part).md5_hex());
        }
        // Another key cannot use this upload's id.
        let grant = PartGrant {
            upload_id: id.clone(),
            number: 1,
        };
        let stolen = s
            .receive_part("t/c/v", &grant, chunked(&data[..10], 10))
            .await;
        assert!(matches!(stolen, Err(UploadError::NoSuchUpload)));
        let parts = s.list_parts(key, &id).await.unwrap();
        assert_eq!(parts.len(), 3);
        s.complete_multipart(key, &id, &parts).await.unwrap();
        assert_eq!(&s.get_range(key, 0, 1 << 30).await.unwrap()[..], &data[..]);
        assert!(matches!(
            s.list_parts(key, &id).await,
            Err(StoreError::NotFound)
        ));
    }
}
