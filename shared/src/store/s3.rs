//! The S3 blob store: one object per stored version, under the key the service derives from
//! validated ids. Uploads carry their SHA-256 (`x-amz-checksum-sha256`), so S3 refuses bytes that
//! changed on the way; downloads are presigned GET links that name the type and the file. Large
//! files go straight to S3: a presigned form POST (SigV4 POST policy) or a presigned multipart
//! upload. The requests themselves are made by our own client, [`crate::aws::s3`].

use std::time::Duration;

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use time::macros::format_description;
use time::OffsetDateTime;

use super::{
    content_disposition, BlobInfo, BlobStore, LinkOptions, PartInfo, PostPolicy, PresignedPost,
    StoreError, StoreResult,
};
use crate::aws::s3::S3Client;
use crate::aws::sigv4::Stamp;
use crate::aws::AwsError;

/// S3-backed [`BlobStore`].
#[derive(Debug)]
pub struct S3BlobStore {
    client: S3Client,
}

fn json_str(v: &str) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn s3_err(op: &str, e: AwsError) -> StoreError {
    StoreError::Unavailable(format!("s3 {op}: {e}"))
}

impl S3BlobStore {
    pub fn new(client: S3Client) -> Self {
        Self { client }
    }

    pub fn bucket(&self) -> &str {
        self.client.bucket()
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
        // it received against it and refuses the object (BadDigest) if they differ. The
        // signature covers that checksum, not the bytes, so they are hashed once.
        self.client
            .put_object(key, data, content_type, sha256)
            .await
            .map_err(|e| s3_err("PutObject", e))
    }

    async fn head(&self, key: &str) -> StoreResult<Option<BlobInfo>> {
        match self.client.head_object(key).await {
            Ok(size) => Ok(size.map(|size| BlobInfo { size })),
            Err(e) => Err(s3_err("HeadObject", e)),
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
        match self.client.get_range(key, offset, last).await {
            Ok(data) => Ok(data),
            Err(e) if e.code() == Some("NoSuchKey") => Err(StoreError::NotFound),
            // Starting past the end: like reading a file there, nothing.
            Err(e) if e.code() == Some("InvalidRange") => Ok(Bytes::new()),
            Err(e) => Err(s3_err("GetObject", e)),
        }
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        match self.client.delete_object(key).await {
            Ok(()) => Ok(()),
            // S3 answers 204 for a missing key; some compatible servers say NoSuchKey.
            Err(e) if e.code() == Some("NoSuchKey") => Ok(()),
            Err(e) => Err(s3_err("DeleteObject", e)),
        }
    }

    async fn presign_get(&self, key: &str, opts: &LinkOptions<'_>) -> StoreResult<String> {
        // Both overrides are signed query parameters: a link cannot be edited to serve the
        // bytes as another type (say text/html) or inline.
        let disposition = content_disposition(opts.file_name);
        self.client
            .presign(
                "GET",
                key,
                &[
                    ("response-content-disposition", &disposition),
                    ("response-content-type", opts.content_type),
                ],
                Duration::from_secs(
                    u64::try_from(
                        opts.valid.expires_at - OffsetDateTime::now_utc().unix_timestamp(),
                    )
                    .unwrap_or(0),
                ),
            )
            .map_err(|e| s3_err("presign GetObject", e))
    }

    async fn presign_post(&self, key: &str, policy: &PostPolicy<'_>) -> StoreResult<PresignedPost> {
        let url = self.client.bucket_url();
        let creds = self.client.credentials();
        let now = OffsetDateTime::now_utc();
        let stamp = Stamp::at(now);
        let expiration = (now + policy.ttl)
            .format(format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].000Z"
            ))
            .map_err(|e| StoreError::Unavailable(format!("time: {e}")))?;
        let credential = self.client.credential(&stamp.date);
        // Every field the form carries is pinned by a condition, and the size is exact: S3
        // refuses another key, type, checksum or size before it stores anything.
        let mut fields: Vec<(String, String)> = vec![
            ("key".into(), key.to_owned()),
            ("Content-Type".into(), policy.content_type.to_owned()),
        ];
        if let Some(sha) = policy.sha256 {
            fields.push(("x-amz-checksum-sha256".into(), STANDARD.encode(sha)));
        }
        fields.push(("x-amz-algorithm".into(), "AWS4-HMAC-SHA256".into()));
        fields.push(("x-amz-credential".into(), credential));
        fields.push(("x-amz-date".into(), stamp.amz_date.clone()));
        if let Some(token) = &creds.session_token {
            fields.push(("x-amz-security-token".into(), token.clone()));
        }
        let mut conditions = vec![
            format!("{{\"bucket\":{}}}", json_str(self.client.bucket())?),
            format!("[\"content-length-range\",{},{}]", policy.size, policy.size),
        ];
        for (name, value) in &fields {
            conditions.push(format!(
                "[\"eq\",{},{}]",
                json_str(&format!("${name}"))?,
                json_str(value)?
            ));
        }
        let doc = format!(
            "{{\"expiration\":{},\"conditions\":[{}]}}",
            json_str(&expiration)?,
            conditions.join(",")
        );
        let policy_b64 = STANDARD.encode(doc);
        let signature = self.client.sign_policy(&stamp.date, &policy_b64);
        fields.push(("policy".into(), policy_b64));
        fields.push(("x-amz-signature".into(), signature));
        Ok(PresignedPost { url, fields })
    }

    async fn create_multipart(&self, key: &str, content_type: &str) -> StoreResult<String> {
        self.client
            .create_multipart(key, content_type)
            .await
            .map_err(|e| s3_err("CreateMultipartUpload", e))
    }

    async fn presign_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        ttl: Duration,
    ) -> StoreResult<String> {
        let number = number.to_string();
        self.client
            .presign(
                "PUT",
                key,
                &[("partNumber", &number), ("uploadId", upload_id)],
                ttl,
            )
            .map_err(|e| s3_err("presign UploadPart", e))
    }

    async fn list_parts(&self, key: &str, upload_id: &str) -> StoreResult<Vec<PartInfo>> {
        let mut parts = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let (page, next) = match self
                .client
                .list_parts(key, upload_id, marker.as_deref())
                .await
            {
                Ok(x) => x,
                Err(e) if e.code() == Some("NoSuchUpload") => return Err(StoreError::NotFound),
                Err(e) => return Err(s3_err("ListParts", e)),
            };
            for (number, size, etag) in page {
                parts.push(PartInfo {
                    number,
                    size,
                    // Bare hex, as the file store gives; quoted again on completion.
                    etag: etag.trim_matches('"').to_owned(),
                });
            }
            match next {
                Some(m) => marker = Some(m),
                None => break,
            }
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
        let completed: Vec<(u32, String)> = parts
            .iter()
            .map(|p| (p.number, format!("\"{}\"", p.etag.trim_matches('"'))))
            .collect();
        match self
            .client
            .complete_multipart(key, upload_id, &completed)
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if e.code() == Some("NoSuchUpload") => Err(StoreError::NotFound),
            Err(e) => Err(s3_err("CompleteMultipartUpload", e)),
        }
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) -> StoreResult<()> {
        match self.client.abort_multipart(key, upload_id).await {
            Ok(()) => Ok(()),
            Err(e) if e.code() == Some("NoSuchUpload") => Ok(()),
            Err(e) => Err(s3_err("AbortMultipartUpload", e)),
        }
    }
}
