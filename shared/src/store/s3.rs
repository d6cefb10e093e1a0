//! The S3 blob store: one object per stored version, under the key the service derives from
//! validated ids. Uploads carry their SHA-256 (`x-amz-checksum-sha256`), so S3 refuses bytes that
//! changed on the way; downloads are presigned GET links that name the type and the file.

use async_trait::async_trait;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;

use super::{content_disposition, BlobInfo, BlobStore, LinkOptions, StoreError, StoreResult};

/// S3-backed [`BlobStore`].
#[derive(Debug, Clone)]
pub struct S3BlobStore {
    client: Client,
    bucket: String,
}

fn sdk_err<E, R>(op: &str, e: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    StoreError::Unavailable(format!("s3 {op}: {}", DisplayErrorContext(&e)))
}

/// The error code S3 answered with, when it answered at all.
fn code<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> Option<&str> {
    e.as_service_error().and_then(|s| s.code())
}

impl S3BlobStore {
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn put(
        &self,
        key: &str,
        data: Bytes,
        content_type: &str,
        sha256: &[u8; 32],
    ) -> StoreResult<()> {
        // The digest the service computed while it checked the upload: S3 verifies the bytes
        // it received against it and refuses the object (BadDigest) if they differ.
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .content_length(data.len() as i64)
            .checksum_sha256(STANDARD.encode(sha256))
            .body(ByteStream::from(data))
            .send()
            .await
            .map_err(|e| sdk_err("PutObject", e))?;
        Ok(())
    }

    async fn head(&self, key: &str) -> StoreResult<Option<BlobInfo>> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => Ok(Some(BlobInfo {
                size: out.content_length.unwrap_or(0).max(0) as u64,
            })),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => Err(sdk_err("HeadObject", e)),
        }
    }

    async fn get_range(&self, key: &str, offset: u64, len: u64) -> StoreResult<Bytes> {
        if len == 0 {
            // No byte range can say "nothing"; the object must still exist.
            return match self.head(key).await? {
                Some(_) => Ok(Bytes::new()),
                None => Err(StoreError::NotFound),
            };
        }
        let last = offset.saturating_add(len - 1);
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .range(format!("bytes={offset}-{last}"))
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
                return Err(StoreError::NotFound)
            }
            // Starting past the end: like reading a file there, nothing.
            Err(e) if code(&e) == Some("InvalidRange") => return Ok(Bytes::new()),
            Err(e) => return Err(sdk_err("GetObject", e)),
        };
        let data = out
            .body
            .collect()
            .await
            .map_err(|e| StoreError::Unavailable(format!("s3 GetObject body: {e}")))?;
        Ok(data.into_bytes())
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        match self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // S3 answers 204 for a missing key; some compatible servers say NoSuchKey.
            Err(e) if code(&e) == Some("NoSuchKey") => Ok(()),
            Err(e) => Err(sdk_err("DeleteObject", e)),
        }
    }

    async fn presign_get(&self, key: &str, opts: &LinkOptions<'_>) -> StoreResult<String> {
        let config = PresigningConfig::expires_in(opts.ttl)
            .map_err(|e| StoreError::Unavailable(format!("s3 presigning: {e}")))?;
        // Both overrides are signed query parameters: a link cannot be edited to serve the
        // bytes as another type (say text/html) or inline.
        let req = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .response_content_type(opts.content_type)
            .response_content_disposition(content_disposition(opts.file_name))
            .presigned(config)
            .await
            .map_err(|e| sdk_err("presign GetObject", e))?;
        Ok(req.uri().to_owned())
    }
}
