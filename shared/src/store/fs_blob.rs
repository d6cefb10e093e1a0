//! The embedded blob store: files under the data folder, and download links that the local
//! server honours, signed with HMAC-SHA256 and expiring, like S3's presigned links.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::{content_disposition, BlobInfo, BlobStore, LinkOptions, StoreError, StoreResult};
use crate::signing::Signer;

/// The path under which the local server serves blob links.
pub const LINK_PREFIX: &str = "/_blobs/";

/// File-backed [`BlobStore`].
#[derive(Debug)]
pub struct FsBlobStore {
    root: PathBuf,
    /// Where links point: the local server's public base URL, without a trailing slash.
    base_url: String,
    signer: Signer,
}

fn io_err(e: std::io::Error) -> StoreError {
    StoreError::Unavailable(format!("blob file: {e}"))
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
        let expires = expires.to_string();
        let sig = self
            .signer
            .sign(&Self::link_parts(key, &expires, content_type, disposition));
        format!(
            "{}{}{}?expires={}&response-content-type={}&response-content-disposition={}&signature={}",
            self.base_url,
            LINK_PREFIX,
            key,
            expires,
            utf8_percent_encode(content_type, NON_ALPHANUMERIC),
            utf8_percent_encode(disposition, NON_ALPHANUMERIC),
            sig
        )
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

async fn write_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4()));
    let result = async {
        let mut f = tokio::fs::File::create(&tmp).await?;
        f.write_all(data).await?;
        f.sync_all().await?;
        tokio::fs::rename(&tmp, path).await
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    result
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
        let path = self.path_of(key)?;
        write_atomically(&path, &data).await.map_err(io_err)
    }

    async fn head(&self, key: &str) -> StoreResult<Option<BlobInfo>> {
        match tokio::fs::metadata(self.path_of(key)?).await {
            Ok(m) => Ok(Some(BlobInfo { size: m.len() })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(e)),
        }
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
