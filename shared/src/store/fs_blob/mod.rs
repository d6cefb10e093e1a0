//! The embedded blob store: one file per stored version under the data folder, written as
//! [`write`] describes, and signed links ([`links`]) that the local server honours. Direct
//! uploads land under `staging/` until a verification promotes the very file it checked;
//! multipart uploads keep their parts in a folder each beside the blobs until they are joined.

pub mod links;
mod write;

use std::fmt::Display;
use std::fs::Metadata;
use std::io::SeekFrom;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::{
    BlobInfo, BlobStore, LinkOptions, Page, PartInfo, PostPolicy, PresignedPost, StagedUpload,
    StoreError, StoreResult,
};
use crate::domain::{hashing::Hasher, STAGING_PREFIX};
use crate::signing::Signer;
pub use links::{LinkError, Links, PartGrant, PostGrant, LINK_PREFIX, POST_PATH};
pub use write::{create_private_dir, private_file, sync_folder_of, ReceiveError, Written};
use write::{identity, write_atomically, write_stream, Hashing};

/// The largest part of a multipart upload (S3's limit).
pub const MAX_PART_BYTES: u64 = 5 * 1024 * 1024 * 1024;
/// The most parts of a multipart upload (S3's limit).
pub const MAX_PARTS: u32 = 10_000;
/// Keys a page of the staging listing holds.
const STAGED_PAGE: usize = 1000;

/// File-backed [`BlobStore`].
#[derive(Debug)]
pub struct FsBlobStore {
    root: PathBuf,
    /// Multipart uploads in progress, one folder each, beside the blobs.
    uploads: PathBuf,
    links: Links,
}

/// A file that could not be read or written (only this store does file I/O).
impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        StoreError::Unavailable(format!("blob file: {e}"))
    }
}

/// A file that is not there is `None`, not a failure.
fn unless_missing<T>(r: std::io::Result<T>) -> StoreResult<Option<T>> {
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        r => Ok(Some(r?)),
    }
}

/// `tenant/attachment/version` (or `staging/` and those three): segments of id characters,
/// nothing that walks the tree.
pub fn is_safe_key(key: &str) -> bool {
    let key = key.strip_prefix(STAGING_PREFIX).unwrap_or(key);
    let id_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    let segment = |s: &str| !s.is_empty() && s.chars().all(id_char);
    key.split('/').count() == 3 && key.split('/').all(segment)
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

    /// The folder of a multipart upload of `key`: `NotFound` unless it exists and belongs to
    /// that key.
    async fn upload_of(&self, key: &str, upload_id: &str) -> StoreResult<PathBuf> {
        let dir = self.upload_dir(upload_id).ok_or(StoreError::NotFound)?;
        match tokio::fs::read_to_string(dir.join("key")).await {
            Ok(owner) if owner == key => Ok(dir),
            _ => Err(StoreError::NotFound),
        }
    }

    /// The file of a key, opened, with its metadata: reads stay on it if its name is replaced.
    pub async fn open(&self, key: &str) -> StoreResult<Option<(tokio::fs::File, Metadata)>> {
        let Some(file) = unless_missing(tokio::fs::File::open(self.path_of(key)?).await)? else {
            return Ok(None);
        };
        let meta = file.metadata().await?;
        Ok(Some((file, meta)))
    }

    /// Stores a form upload's file under the key its policy names, exactly its size and, when
    /// declared, its checksum; hashed as it is written. Anything else stores nothing, and
    /// leaves what was there.
    pub async fn receive_post(
        &self,
        grant: &PostGrant,
        stream: impl Stream<Item = Result<Bytes, impl Display>> + Unpin,
    ) -> Result<Written, ReceiveError> {
        let path = self.path_of(&grant.key).map_err(std::io::Error::other)?;
        let hashing = Hashing::Both(Hasher::default());
        write_stream(path, stream, grant.size, grant.sha256, hashing).await
    }

    /// Stores one part of a multipart upload of `key`, exactly the size its link signs; returns
    /// its ETag (hex MD5, as S3's).
    pub async fn receive_part(
        &self,
        key: &str,
        grant: &PartGrant,
        stream: impl Stream<Item = Result<Bytes, impl Display>> + Unpin,
    ) -> Result<String, ReceiveError> {
        let dir = self.upload_of(key, &grant.upload_id).await;
        let dir = dir.map_err(|_| ReceiveError::NoSuchUpload)?;
        let path = part_path(&dir, grant.number);
        let size = grant.size.min(MAX_PART_BYTES);
        let hashing = Hashing::Md5(Default::default());
        let written = write_stream(path.clone(), stream, size, None, hashing).await?;
        let etag = hex::encode(written.digests.md5);
        // Kept beside the part, as S3 keeps it, for the listing of parts.
        write_atomically(path.with_extension("etag"), Bytes::from(etag.clone())).await?;
        Ok(etag)
    }
}

/// Claims the file `staged`, then makes it `dest` if it is the file `etag` names: the claim
/// (a rename, which keeps a file's identity) takes it away from any upload that lands under
/// `staged` meanwhile, and the link into place never replaces a file.
fn promote_file(staged: &Path, etag: &str, size: u64, dest: &Path) -> StoreResult<()> {
    let claim = staged.with_extension(format!("claim-{}", uuid::Uuid::new_v4()));
    unless_missing(std::fs::rename(staged, &claim))?.ok_or(StoreError::NotFound)?;
    let promoted = (|| {
        let meta = std::fs::metadata(&claim)?;
        if identity(&meta) != etag || meta.len() != size {
            let replaced = "the staged file was replaced after it was verified";
            return Err(StoreError::Conflict(replaced.into()));
        }
        if let Some(dir) = dest.parent() {
            create_private_dir(dir)?;
        }
        std::fs::hard_link(&claim, dest).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => {
                StoreError::Conflict("the content exists already".into())
            }
            _ => e.into(),
        })?;
        Ok(sync_folder_of(dest)?)
    })();
    let _ = std::fs::remove_file(&claim);
    let _ = sync_folder_of(staged);
    promoted
}

/// Every file under `dir` (a folder of the staging tree, `depth` levels of folders deep), as
/// keys of `prefix`. Files whose names have a dot are the store's own (temporary, claimed).
fn staged_keys(dir: &Path, prefix: &str, depth: usize) -> StoreResult<Vec<String>> {
    let mut out = Vec::new();
    let entries = unless_missing(std::fs::read_dir(dir))?;
    for entry in entries.into_iter().flatten() {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let (key, kind) = (format!("{prefix}{name}"), entry.file_type()?);
        if name.contains('.') {
            continue;
        } else if depth == 0 && kind.is_file() {
            out.push(key);
        } else if depth > 0 && kind.is_dir() {
            out.extend(staged_keys(&entry.path(), &format!("{key}/"), depth - 1)?);
        }
    }
    Ok(out)
}

/// The page of `all`, sorted by `of`, after `after`.
fn page_after<T>(mut all: Vec<T>, after: Option<&str>, of: impl Fn(&T) -> &str) -> Page<T> {
    all.sort_by(|a, b| of(a).cmp(of(b)));
    let start = after.map_or(0, |a| all.partition_point(|x| of(x) <= a));
    let more = all.len() > start + STAGED_PAGE;
    let items: Vec<T> = all.into_iter().skip(start).take(STAGED_PAGE).collect();
    let next = items.last().filter(|_| more).map(|x| of(x).to_owned());
    Page { items, next }
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
        Ok(write_atomically(self.path_of(key)?, data).await?)
    }

    /// Nothing to verify in transit: written while the caller hashes.
    async fn put_while_hashing(
        &self,
        key: &str,
        data: Bytes,
        _content_type: &str,
        _sha256: tokio::sync::oneshot::Receiver<[u8; 32]>,
    ) -> StoreResult<()> {
        self.put(key, data, "", &[0; 32]).await
    }

    async fn head(&self, key: &str) -> StoreResult<Option<BlobInfo>> {
        let meta = unless_missing(tokio::fs::metadata(self.path_of(key)?).await)?;
        Ok(meta.map(|m| BlobInfo {
            size: m.len(),
            etag: identity(&m),
        }))
    }

    async fn get_range(
        &self,
        key: &str,
        etag: Option<&str>,
        offset: u64,
        len: u64,
    ) -> StoreResult<Bytes> {
        let (mut f, meta) = self.open(key).await?.ok_or(StoreError::NotFound)?;
        if etag.is_some_and(|etag| identity(&meta) != etag) {
            let replaced = "the object was replaced while it was read";
            return Err(StoreError::Conflict(replaced.into()));
        }
        f.seek(SeekFrom::Start(offset)).await?;
        let mut buf = Vec::with_capacity(len.min(64 * 1024 * 1024) as usize);
        f.take(len).read_to_end(&mut buf).await?;
        Ok(Bytes::from(buf))
    }

    async fn promote(&self, staged: &str, etag: &str, size: u64, key: &str) -> StoreResult<()> {
        let (staged, dest, etag) = (self.path_of(staged)?, self.path_of(key)?, etag.to_owned());
        crate::blocking::run(move || promote_file(&staged, &etag, size, &dest)).await?
    }

    async fn list_staged(&self, after: Option<String>) -> StoreResult<Page<String>> {
        let dir = self.root.join(STAGING_PREFIX);
        let all = crate::blocking::run(move || staged_keys(&dir, STAGING_PREFIX, 2));
        Ok(page_after(all.await??, after.as_deref(), |k| k))
    }

    async fn list_staged_uploads(&self, after: Option<String>) -> StoreResult<Page<StagedUpload>> {
        let uploads = self.uploads.clone();
        let all = crate::blocking::run(move || {
            let mut out = Vec::new();
            let entries = unless_missing(std::fs::read_dir(&uploads))?;
            for entry in entries.into_iter().flatten() {
                let entry = entry?;
                let modified = time::OffsetDateTime::from(entry.metadata()?.modified()?);
                let key = match std::fs::read_to_string(entry.path().join("key")) {
                    Ok(key) if key.starts_with(STAGING_PREFIX) => key,
                    // An upload folder whose key was never written: a start that crashed.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
                    _ => continue,
                };
                out.push(StagedUpload {
                    key,
                    upload_id: entry.file_name().to_string_lossy().into_owned(),
                    initiated: modified.unix_timestamp().max(0),
                });
            }
            Ok::<_, StoreError>(out)
        })
        .await??;
        Ok(page_after(all, after.as_deref(), |u| &u.upload_id))
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        let path = self.path_of(key)?;
        unless_missing(tokio::fs::remove_file(&path).await)?;
        // Drop the attachment's folder once its last version is gone; a non-empty one stays.
        if let Some(dir) = path.parent() {
            let _ = tokio::fs::remove_dir(dir).await;
        }
        Ok(())
    }

    async fn presign_get(&self, key: &str, opts: &LinkOptions<'_>) -> StoreResult<String> {
        Ok(self.links.download(key, opts))
    }

    async fn presign_post(&self, key: &str, policy: &PostPolicy<'_>) -> StoreResult<PresignedPost> {
        self.path_of(key)?;
        let post = self.links.post(key, policy, expires_in(policy.ttl));
        post.map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    async fn create_multipart(&self, key: &str, _content_type: &str) -> StoreResult<String> {
        self.path_of(key)?;
        let id = uuid::Uuid::new_v4().to_string();
        let dir = self.uploads.join(&id);
        write_atomically(dir.join("key"), Bytes::from(key.to_owned())).await?;
        Ok(id)
    }

    async fn presign_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        size: u64,
        ttl: std::time::Duration,
    ) -> StoreResult<String> {
        let expires = expires_in(ttl);
        Ok(self.links.part(key, upload_id, number, size, expires))
    }

    async fn list_parts(&self, key: &str, upload_id: &str) -> StoreResult<Vec<PartInfo>> {
        let dir = self.upload_of(key, upload_id).await?;
        let mut parts = Vec::new();
        let mut rd = tokio::fs::read_dir(&dir).await?;
        while let Some(e) = rd.next_entry().await? {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(number) = name.strip_suffix(".part").and_then(|n| n.parse().ok()) else {
                continue;
            };
            let size = e.metadata().await?.len();
            let etag = tokio::fs::read_to_string(e.path().with_extension("etag")).await;
            let etag = etag.unwrap_or_default();
            parts.push(PartInfo { number, size, etag });
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
        let dir = self.upload_of(key, upload_id).await?;
        let files = parts.iter().map(|p| part_path(&dir, p.number));
        write::join(files.collect(), self.path_of(key)?).await?;
        let _ = tokio::fs::remove_dir_all(&dir).await;
        Ok(())
    }

    async fn abort_multipart(&self, _key: &str, upload_id: &str) -> StoreResult<()> {
        if let Some(dir) = self.upload_dir(upload_id) {
            unless_missing(tokio::fs::remove_dir_all(&dir).await)?;
        }
        Ok(())
    }
}

/// When a link made now that lives `ttl` expires (unix seconds).
fn expires_in(ttl: std::time::Duration) -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp() + ttl.as_secs() as i64
}

/// Where a part is kept in its upload's folder (its ETag beside it, as `.etag`).
fn part_path(dir: &Path, number: u32) -> PathBuf {
    dir.join(format!("{number:05}.part"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Digests;

    fn store(dir: &Path) -> FsBlobStore {
        FsBlobStore::new(
            dir.to_path_buf(),
            "http://127.0.0.1:3000/",
            Signer::new([1; 32]),
        )
    }

    /// `data` as a stream of `size`-byte chunks, as a request body arrives.
    pub(in crate::store::fs_blob) fn chunked(
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
        let info = s.head(key).await.unwrap().unwrap();
        assert_eq!(info.size, 11);
        assert_eq!(&s.get_range(key, None, 6, 100).await.unwrap()[..], b"world");
        assert_eq!(
            &s.get_range(key, Some(&info.etag), 0, 5).await.unwrap()[..],
            b"hello"
        );
        // Written again: another file, and reads pinned to the first one are refused.
        s.put(
            key,
            Bytes::from_static(b"HELLO WORLD"),
            "text/plain",
            &[0; 32],
        )
        .await
        .unwrap();
        assert_ne!(s.head(key).await.unwrap().unwrap().etag, info.etag);
        assert!(matches!(
            s.get_range(key, Some(&info.etag), 0, 5).await,
            Err(StoreError::Conflict(_))
        ));
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
        assert_eq!(
            &s.get_range("t/a/v", None, 0, 100).await.unwrap()[..],
            b"bytes"
        );
    }

    #[tokio::test]
    async fn form_uploads_store_exactly_what_the_policy_allows() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let data = vec![5u8; 300_000];
        let key = "staging/t/a/v";
        let grant = PostGrant {
            key: key.into(),
            size: data.len() as u64,
            sha256: None,
        };
        let w = s
            .receive_post(&grant, chunked(&data, 70_000))
            .await
            .unwrap();
        assert_eq!(w.digests, Digests::of(&data));
        assert_eq!(w.etag, s.head(key).await.unwrap().unwrap().etag);
        // Fewer bytes, more bytes, another checksum: refused, and the stored file is untouched.
        let refused = |r: Result<Written, ReceiveError>| match r {
            Err(e) => e.to_string(),
            other => panic!("{other:?}"),
        };
        let short = s.receive_post(&grant, chunked(&data[1..], 70_000)).await;
        assert!(refused(short).contains("smaller"));
        let long = [data.clone(), vec![1]].concat();
        let long = s.receive_post(&grant, chunked(&long, 70_000)).await;
        assert!(refused(long).contains("larger"));
        let pinned = PostGrant {
            sha256: Some([9; 32]),
            ..grant.clone()
        };
        let bad = s.receive_post(&pinned, chunked(&data, 70_000)).await;
        assert!(refused(bad).contains("SHA-256"));
        assert_eq!(s.head(key).await.unwrap().unwrap().etag, w.etag);
    }

    #[tokio::test]
    async fn parts_are_bound_to_their_size_and_join_into_the_object() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 241) as u8).collect();
        let key = "staging/t/b/v";
        let id = s.create_multipart(key, "x").await.unwrap();
        let grant = |number: u32, size: usize| PartGrant {
            upload_id: id.clone(),
            number,
            size: size as u64,
        };
        for (i, part) in data.chunks(1_200_000).enumerate() {
            let g = grant(i as u32 + 1, part.len());
            // More than the part's size is refused, and so is less.
            let more = [part, b"x"].concat();
            assert!(s
                .receive_part(key, &g, chunked(&more, 70_000))
                .await
                .is_err());
            assert!(s
                .receive_part(key, &g, chunked(&part[1..], 70_000))
                .await
                .is_err());
            let etag = s
                .receive_part(key, &g, chunked(part, 70_000))
                .await
                .unwrap();
            assert_eq!(etag, Digests::of(part).md5_hex());
        }
        // Another key cannot use this upload's id.
        let stolen = s
            .receive_part("staging/t/c/v", &grant(1, 10), chunked(&data[..10], 10))
            .await;
        assert!(matches!(stolen, Err(ReceiveError::NoSuchUpload)));
        let parts = s.list_parts(key, &id).await.unwrap();
        assert_eq!(parts.len(), 3);
        s.complete_multipart(key, &id, &parts).await.unwrap();
        assert_eq!(
            &s.get_range(key, None, 0, 1 << 30).await.unwrap()[..],
            &data[..]
        );
        assert!(matches!(
            s.list_parts(key, &id).await,
            Err(StoreError::NotFound)
        ));
    }

    #[tokio::test]
    async fn promotion_takes_exactly_the_verified_file_and_never_replaces_one() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let (staged, key) = ("staging/t/a/v", "t/a/v");
        s.put(staged, Bytes::from_static(b"verified"), "x", &[0; 32])
            .await
            .unwrap();
        let verified = s.head(staged).await.unwrap().unwrap();
        // Replaced after its verification: not promoted, and the replacement is gone with it.
        s.put(staged, Bytes::from_static(b"replaced"), "x", &[0; 32])
            .await
            .unwrap();
        assert!(matches!(
            s.promote(staged, &verified.etag, 8, key).await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(s.head(key).await.unwrap(), None);
        s.put(staged, Bytes::from_static(b"verified"), "x", &[0; 32])
            .await
            .unwrap();
        let verified = s.head(staged).await.unwrap().unwrap();
        s.promote(staged, &verified.etag, 8, key).await.unwrap();
        assert_eq!(s.head(staged).await.unwrap(), None);
        assert_eq!(
            &s.get_range(key, None, 0, 100).await.unwrap()[..],
            b"verified"
        );
        // A second promotion (a replay verified again) never replaces the content.
        s.put(staged, Bytes::from_static(b"replay!!"), "x", &[0; 32])
            .await
            .unwrap();
        let replay = s.head(staged).await.unwrap().unwrap();
        assert!(s.promote(staged, &replay.etag, 8, key).await.is_err());
        assert_eq!(
            &s.get_range(key, None, 0, 100).await.unwrap()[..],
            b"verified"
        );
        assert!(matches!(
            s.promote("staging/t/a/w", "x", 1, "t/a/w").await,
            Err(StoreError::NotFound)
        ));
    }

    #[tokio::test]
    async fn staged_objects_and_uploads_are_listed_in_pages() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        for i in 0..3 {
            let key = format!("staging/t/a/v{i}");
            s.put(&key, Bytes::from_static(b"x"), "x", &[0; 32])
                .await
                .unwrap();
        }
        s.put("t/a/v9", Bytes::from_static(b"x"), "x", &[0; 32])
            .await
            .unwrap();
        let page = s.list_staged(None).await.unwrap();
        assert_eq!(
            page.items,
            ["staging/t/a/v0", "staging/t/a/v1", "staging/t/a/v2"]
        );
        assert_eq!(page.next, None);
        let id = s.create_multipart("staging/t/b/v", "x").await.unwrap();
        let uploads = s.list_staged_uploads(None).await.unwrap();
        assert_eq!(uploads.items.len(), 1);
        assert_eq!(uploads.items[0].upload_id, id);
        assert_eq!(uploads.items[0].key, "staging/t/b/v");
    }
}
