//! The S3 blob store: one object per stored version, under the key the service derives from
//! validated ids. Uploads carry their SHA-256 (`x-amz-checksum-sha256`), so S3 refuses bytes that
//! changed on the way; downloads are presigned GET links that name the type and the file. Large
//! files go straight to S3: a presigned form POST (SigV4 POST policy, which the SDK does not
//! make, so it is signed here) or a presigned multipart upload.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_sdk_s3::config::{Credentials, ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use time::macros::format_description;
use time::OffsetDateTime;
use tokio::sync::Mutex;

use super::{
    content_disposition, BlobInfo, BlobStore, LinkOptions, PartInfo, PostPolicy, PresignedPost,
    StoreError, StoreResult,
};

/// S3-backed [`BlobStore`].
#[derive(Debug)]
pub struct S3BlobStore {
    client: Client,
    bucket: String,
    /// Where form uploads get their signing credentials (the client's own provider, which the
    /// client does not lend out).
    provider: Option<SharedCredentialsProvider>,
    /// Those credentials, kept until shortly before they expire.
    credentials: Mutex<Option<Credentials>>,
}

/// Credentials this close to their expiry are renewed before they sign anything.
const CREDENTIALS_MARGIN: Duration = Duration::from_secs(300);

/// The SigV4 signature of a POST policy: the base64 policy is the string to sign, with the
/// signing key derived from the secret, the date, the region and `s3`. (The SDK signs requests
/// and presigned URLs, but not POST policies.)
pub fn post_policy_signature(
    secret: &str,
    date: &str,
    region: &str,
    policy_b64: &str,
) -> StoreResult<String> {
    let mut signing_key = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes())?;
    for part in [region, "s3", "aws4_request"] {
        signing_key = hmac(&signing_key, part.as_bytes())?;
    }
    Ok(hex::encode(hmac(&signing_key, policy_b64.as_bytes())?))
}

fn hmac(key: &[u8], data: &[u8]) -> StoreResult<Vec<u8>> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key)
        .map_err(|e| StoreError::Unavailable(format!("hmac: {e}")))?;
    mac.update(data);
    Ok(mac.finalize().into_bytes().to_vec())
}

fn json_str(v: &str) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
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
    /// `provider` should be the one the client was built with (`SdkConfig::credentials_provider`);
    /// without one, form uploads cannot be signed.
    pub fn new(
        client: Client,
        bucket: impl Into<String>,
        provider: Option<SharedCredentialsProvider>,
    ) -> Self {
        Self {
            client,
            bucket: bucket.into(),
            provider,
            credentials: Mutex::new(None),
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    async fn credentials(&self) -> StoreResult<Credentials> {
        let mut cached = self.credentials.lock().await;
        let fresh = |c: &Credentials| {
            c.expiry()
                .is_none_or(|e| e > SystemTime::now() + CREDENTIALS_MARGIN)
        };
        if let Some(c) = cached.as_ref().filter(|c| fresh(c)) {
            return Ok(c.clone());
        }
        let provider = self.provider.as_ref().ok_or_else(|| {
            StoreError::Unavailable("s3: no credentials to sign uploads with".into())
        })?;
        let c = provider
            .provide_credentials()
            .await
            .map_err(|e| StoreError::Unavailable(format!("s3 credentials: {e}")))?;
        *cached = Some(c.clone());
        Ok(c)
    }

    /// Where form uploads to the bucket go. Taken from a presigned URL, so it follows the SDK's
    /// own endpoint rules (custom endpoints, path-style or virtual-hosted addressing).
    async fn bucket_url(&self, key: &str) -> StoreResult<String> {
        let probe = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(
                PresigningConfig::expires_in(Duration::from_secs(60))
                    .map_err(|e| StoreError::Unavailable(format!("s3 presigning: {e}")))?,
            )
            .await
            .map_err(|e| sdk_err("presign HeadObject", e))?;
        let uri = probe.uri();
        let path = uri.split(['?', '#']).next().unwrap_or(uri);
        // Keys are made of id characters and `/`, which URLs carry as they are.
        path.strip_suffix(key)
            .map(|base| base.trim_end_matches('/').to_owned())
            .filter(|base| !base.is_empty())
            .ok_or_else(|| StoreError::Unavailable(format!("s3: unexpected link shape {path}")))
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

    async fn presign_post(&self, key: &str, policy: &PostPolicy<'_>) -> StoreResult<PresignedPost> {
        let url = self.bucket_url(key).await?;
        let creds = self.credentials().await?;
        let region = self
            .client
            .config()
            .region()
            .map(|r| r.as_ref().to_owned())
            .ok_or_else(|| StoreError::Unavailable("s3: no region to sign uploads for".into()))?;
        let now = OffsetDateTime::now_utc();
        let fmt = |f: &[time::format_description::FormatItem<'_>]| {
            now.format(f)
                .map_err(|e| StoreError::Unavailable(format!("time: {e}")))
        };
        let date = fmt(format_description!("[year][month][day]"))?;
        let amz_date = fmt(format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))?;
        let expiration = (now + policy.ttl)
            .format(format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].000Z"
            ))
            .map_err(|e| StoreError::Unavailable(format!("time: {e}")))?;
        let credential = format!("{}/{date}/{region}/s3/aws4_request", creds.access_key_id());
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
        fields.push(("x-amz-date".into(), amz_date));
        if let Some(token) = creds.session_token() {
            fields.push(("x-amz-security-token".into(), token.to_owned()));
        }
        let mut conditions = vec![
            format!("{{\"bucket\":{}}}", json_str(&self.bucket)?),
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
        let signature =
            post_policy_signature(creds.secret_access_key(), &date, &region, &policy_b64)?;
        fields.push(("policy".into(), policy_b64));
        fields.push(("x-amz-signature".into(), signature));
        Ok(PresignedPost { url, fields })
    }

    async fn create_multipart(&self, key: &str, content_type: &str) -> StoreResult<String> {
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .send()
            .await
            .map_err(|e| sdk_err("CreateMultipartUpload", e))?;
        out.upload_id
            .ok_or_else(|| StoreError::Unavailable("s3 CreateMultipartUpload: no upload id".into()))
    }

    async fn presign_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        ttl: Duration,
    ) -> StoreResult<String> {
        let config = PresigningConfig::expires_in(ttl)
            .map_err(|e| StoreError::Unavailable(format!("s3 presigning: {e}")))?;
        let req = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(i32::try_from(number).unwrap_or(i32::MAX))
            .presigned(config)
            .await
            .map_err(|e| sdk_err("presign UploadPart", e))?;
        Ok(req.uri().to_owned())
    }

    async fn list_parts(&self, key: &str, upload_id: &str) -> StoreResult<Vec<PartInfo>> {
        let mut parts = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let out = match self
                .client
                .list_parts()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .set_part_number_marker(marker.take())
                .send()
                .await
            {
                Ok(out) => out,
                Err(e) if code(&e) == Some("NoSuchUpload") => return Err(StoreError::NotFound),
                Err(e) => return Err(sdk_err("ListParts", e)),
            };
            for p in out.parts.unwrap_or_default() {
                parts.push(PartInfo {
                    number: p.part_number.unwrap_or(0).max(0) as u32,
                    size: p.size.unwrap_or(0).max(0) as u64,
                    // Bare hex, as the file store gives; quoted again on completion.
                    etag: p.e_tag.unwrap_or_default().trim_matches('"').to_owned(),
                });
            }
            match out.next_part_number_marker {
                Some(m) if out.is_truncated == Some(true) => marker = Some(m),
                _ => break,
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
        let completed = CompletedMultipartUpload::builder()
            .set_parts(Some(
                parts
                    .iter()
                    .map(|p| {
                        CompletedPart::builder()
                            .part_number(i32::try_from(p.number).unwrap_or(i32::MAX))
                            .e_tag(format!("\"{}\"", p.etag.trim_matches('"')))
                            .build()
                    })
                    .collect(),
            ))
            .build();
        match self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(completed)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if code(&e) == Some("NoSuchUpload") => Err(StoreError::NotFound),
            Err(e) => Err(sdk_err("CompleteMultipartUpload", e)),
        }
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) -> StoreResult<()> {
        match self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if code(&e) == Some("NoSuchUpload") => Ok(()),
            Err(e) => Err(sdk_err("AbortMultipartUpload", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's documented example of a browser-based upload with SigV4 ("Example: Browser-Based
    /// Upload using HTTP POST (Using AWS Signature Version 4)", S3 API reference): its policy,
    /// credentials and date give this signature.
    #[test]
    fn post_policy_signature_matches_aws_documented_example() {
        let policy = "eyAiZXhwaXJhdGlvbiI6ICIyMDE1LTEyLTMwVDEyOjAwOjAwLjAwMFoiLA0KICAiY29uZGl0aW9ucyI6IFsNCiAgICB7ImJ1Y2tldCI6ICJzaWd2NGV4YW1wbGVidWNrZXQifSwNCiAgICBbInN0YXJ0cy13aXRoIiwgIiRrZXkiLCAidXNlci91c2VyMS8iXSwNCiAgICB7ImFjbCI6ICJwdWJsaWMtcmVhZCJ9LA0KICAgIHsic3VjY2Vzc19hY3Rpb25fcmVkaXJlY3QiOiAiaHR0cDovL3NpZ3Y0ZXhhbXBsZWJ1Y2tldC5zMy5hbWF6b25hd3MuY29tL3N1Y2Nlc3NmdWxfdXBsb2FkLmh0bWwifSwNCiAgICBbInN0YXJ0cy13aXRoIiwgIiRDb250ZW50LVR5cGUiLCAiaW1hZ2UvIl0sDQogICAgeyJ4LWFtei1tZXRhLXV1aWQiOiAiMTQzNjUxMjM2NTEyNzQifSwNCiAgICB7IngtYW16LXNlcnZlci1zaWRlLWVuY3J5cHRpb24iOiAiQUVTMjU2In0sDQogICAgWyJzdGFydHMtd2l0aCIsICIkeC1hbXotbWV0YS10YWciLCAiIl0sDQoNCiAgICB7IngtYW16LWNyZWRlbnRpYWwiOiAiQUtJQUlPU0ZPRE5ON0VYQU1QTEUvMjAxNTEyMjkvdXMtZWFzdC0xL3MzL2F3czRfcmVxdWVzdCJ9LA0KICAgIHsieC1hbXotYWxnb3JpdGhtIjogIkFXUzQtSE1BQy1TSEEyNTYifSwNCiAgICB7IngtYW16LWRhdGUiOiAiMjAxNTEyMjlUMDAwMDAwWiIgfQ0KICBdDQp9";
        let sig = post_policy_signature(
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "20151229",
            "us-east-1",
            policy,
        )
        .unwrap();
        assert_eq!(
            sig,
            "8afdbf4008c03f22c2cd3cdb72e4afbb1f6a588f3255ac628749a66d7f09699e"
        );
    }
}
