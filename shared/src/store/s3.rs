//! The S3 blob store: one object per stored version, through the AWS SDK's S3 client. Uploads
//! carry their SHA-256 (`x-amz-checksum-sha256`), so S3 refuses bytes changed on the way. Large
//! files go straight to S3 by a form POST (the SDK presigns no POST: the policy is written here)
//! or a presigned multipart upload. Links and policies are signed with `aws-sigv4` at the bucket
//! URL the SDK's endpoint rules give: the SDK's presigning runs a whole operation per link, 56 us
//! against 16 us (`docs/performance.md`). No link outlives the credentials that sign it (SSO,
//! assumed roles, web identity, container and instance roles expire).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_credential_types::Credentials;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use aws_smithy_types::error::display::DisplayErrorContext;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use serde_json::json;
use time::macros::format_description;
use time::OffsetDateTime;

use super::sdk::{SigningCredentials, S3_ATTEMPT};
use super::{
    content_disposition, BlobInfo, BlobStore, LinkOptions, Page, PartInfo, PostPolicy,
    PresignedPost, StagedUpload, StoreError, StoreResult,
};
use crate::domain::STAGING_PREFIX;

/// `$op` of the S3 client on the store's bucket, or on `$key` in it.
macro_rules! on {
    ($store:expr, $op:ident) => {
        $store.client.$op().bucket(&$store.bucket)
    };
    ($store:expr, $op:ident, $key:expr) => {
        on!($store, $op).key($key)
    };
}

/// S3-backed [`BlobStore`].
#[derive(Debug)]
pub struct S3BlobStore {
    client: Client,
    bucket: String,
    /// The bucket's URL as the SDK addresses it (virtual-hosted or path-style, in the region's
    /// partition, FIPS or dual-stack as configured): where links point and forms are posted.
    bucket_url: String,
    /// The region requests are signed for.
    region: String,
    credentials: SigningCredentials,
    /// Objects up to this size are copied in one CopyObject; larger ones in parts of this size.
    copy_part_bytes: u64,
}

/// A read or a copy pinned to an object that another object replaced meanwhile.
fn replaced() -> StoreError {
    StoreError::Conflict("the object was replaced after it was read".into())
}

/// A failed call: a missing key or upload is `NotFound`; a refused `If-Match` (412, whose code
/// a HEAD cannot carry) means the object was replaced; anything else is the SDK's whole chain
/// of causes (S3's code and message among them when it answered).
fn s3_err<E>(op: &str, e: SdkError<E, aws_smithy_runtime_api::http::Response>) -> StoreError
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    match (e.code(), e.raw_response().map(|r| r.status().as_u16())) {
        (Some("PreconditionFailed"), _) | (_, Some(412)) => replaced(),
        (Some("NoSuchKey" | "NoSuchUpload" | "NotFound"), _) => StoreError::NotFound,
        _ => StoreError::Unavailable(format!("s3 {op}: {}", DisplayErrorContext(&e))),
    }
}

impl S3BlobStore {
    /// The store over `client` (configured by `store::sdk::s3_client`) for `bucket`, found at
    /// `bucket_url`, signing for `region` with the SDK's `credentials`.
    pub fn new(
        client: Client,
        bucket: impl Into<String>,
        bucket_url: impl Into<String>,
        region: impl Into<String>,
        credentials: SigningCredentials,
    ) -> Self {
        Self {
            client,
            bucket: bucket.into(),
            bucket_url: bucket_url.into(),
            region: region.into(),
            credentials,
            // S3's largest CopyObject, 5 GiB.
            copy_part_bytes: 5 * 1024 * 1024 * 1024,
        }
    }

    /// Copies objects larger than `bytes` in parts of that size (S3's limit is the default;
    /// a smaller one lets tests copy in parts without gigabytes).
    pub fn with_copy_part_bytes(mut self, bytes: u64) -> Self {
        self.copy_part_bytes = bytes.max(1);
        self
    }

    /// `bucket/key` as a copy source names it (the key URL-encoded).
    fn copy_source(&self, key: &str) -> String {
        let key = percent_encoding::utf8_percent_encode(key, KEY_PATH);
        format!("{}/{key}", self.bucket)
    }

    /// A multipart copy of exactly the object `etag` names, each part pinned to it; abandoned
    /// (aborted) when a part fails.
    async fn copy_in_parts(
        &self,
        staged: &str,
        etag: &str,
        size: u64,
        key: &str,
    ) -> StoreResult<()> {
        let head = on!(self, head_object, staged)
            .if_match(etag)
            .send()
            .await
            .map_err(|e| s3_err("HeadObject", e))?;
        let content_type = head.content_type().unwrap_or("application/octet-stream");
        let upload_id = self.create_multipart(key, content_type).await?;
        let copied = async {
            let mut parts = Vec::new();
            let step = usize::try_from(self.copy_part_bytes).unwrap_or(usize::MAX);
            for (i, first) in (0..size).step_by(step).enumerate() {
                let last = (first + self.copy_part_bytes).min(size) - 1;
                let number = i32::try_from(i + 1)
                    .map_err(|_| StoreError::Unavailable("too many parts to copy".into()))?;
                let out = on!(self, upload_part_copy, key)
                    .upload_id(&upload_id)
                    .part_number(number)
                    .copy_source(self.copy_source(staged))
                    .copy_source_range(format!("bytes={first}-{last}"))
                    .copy_source_if_match(etag)
                    .send()
                    .await
                    .map_err(|e| s3_err("UploadPartCopy", e))?;
                let tag = out.copy_part_result().and_then(|r| r.e_tag());
                parts.push(PartInfo {
                    number: number.unsigned_abs(),
                    size: last - first + 1,
                    etag: tag.unwrap_or_default().to_owned(),
                });
            }
            Ok(parts)
        };
        match copied.await {
            Ok(parts) => self.complete_multipart(key, &upload_id, &parts).await,
            Err(e) => {
                let _ = self.abort_multipart(key, &upload_id).await;
                Err(e)
            }
        }
    }

    /// A presigned URL for `method` on `key` with the request's own query parameters and
    /// headers (signed, so they cannot be edited), valid from `time` for `ttl` or until the
    /// credentials expire. S3's SigV4: the path encoded once and not normalised, the payload
    /// unsigned (the client sends it later), the session token in the query.
    async fn presign(
        &self,
        method: &str,
        key: &str,
        own: &[(&str, &str)],
        headers: &[(&str, &str)],
        time: SystemTime,
        ttl: Duration,
    ) -> StoreResult<String> {
        use aws_sigv4::http_request::{
            sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest,
            SignatureLocation, SigningSettings, UriPathNormalizationMode,
        };
        use percent_encoding::utf8_percent_encode as encode;
        let (ttl, creds) = self.signing(ttl, time).await?;
        let failed =
            |e: &dyn std::fmt::Display| StoreError::Unavailable(format!("s3 presign: {e}"));
        let query = |pairs: &[(&str, &str)]| {
            let pair = |(k, v): &(&str, &str)| format!("{}={}", encode(k, QUERY), encode(v, QUERY));
            pairs.iter().map(pair).collect::<Vec<_>>().join("&")
        };
        let path = format!("{}/{}", self.bucket_url, encode(key, KEY_PATH));
        let mut pairs = own.to_vec();
        let url = format!("{path}?{}", query(&pairs));
        let mut settings = SigningSettings::default();
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(ttl);
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        settings.payload_checksum_kind = PayloadChecksumKind::NoHeader;
        let identity = creds.into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("s3")
            .time(time)
            .settings(settings)
            .build()
            .map_err(|e| failed(&e))?
            .into();
        let headers = headers.iter().copied();
        let signable = SignableRequest::new(method, &url, headers, SignableBody::UnsignedPayload)
            .map_err(|e| failed(&e))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| failed(&e))?
            .into_parts();
        pairs.extend(instructions.params().iter().map(|(k, v)| (*k, v.as_ref())));
        Ok(format!("{path}?{}", query(&pairs)))
    }

    /// The credentials a link signed at `time` is signed with, and how long it may live: `ttl`,
    /// cut short where they expire first. The signature is dated to the second, at or before
    /// now, so a link signed now with this lifetime ends by their expiry.
    async fn signing(
        &self,
        ttl: Duration,
        time: SystemTime,
    ) -> StoreResult<(Duration, Credentials)> {
        let creds = self.credentials.get().await?;
        let left = |expiry: SystemTime| expiry.duration_since(time).unwrap_or_default().as_secs();
        match creds.expiry().map(left) {
            Some(0) => Err(StoreError::Unavailable(
                "the AWS credentials expire before a link signed with them could be used".into(),
            )),
            left => Ok((
                ttl.min(Duration::from_secs(left.unwrap_or(u64::MAX))),
                creds,
            )),
        }
    }
}

/// An object key in a URL path: everything but unreserved characters and `/` encoded, as
/// SigV4 canonicalises S3 paths.
const KEY_PATH: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');
/// A query name or value: everything but unreserved characters encoded.
const QUERY: &percent_encoding::AsciiSet = &KEY_PATH.add(b'/');

/// Reads a body, refusing more than `max` bytes and a peer that stalls.
async fn read_body(body: ByteStream, max: u64) -> StoreResult<Bytes> {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    let mut body = body.into_async_read().take(max.saturating_add(1));
    let failed = |why: String| Err(StoreError::Unavailable(format!("s3 GetObject: {why}")));
    match tokio::time::timeout(S3_ATTEMPT, body.read_to_end(&mut out)).await {
        Err(_) => failed("the body stalled".into()),
        Ok(Err(e)) => failed(format!("reading the body: {}", DisplayErrorContext(&e))),
        Ok(Ok(n)) if n as u64 > max => {
            failed(format!("the answer holds more than the {max} bytes asked"))
        }
        Ok(Ok(_)) => Ok(out.into()),
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
        // signature covers that checksum header, not the bytes, so they are hashed once.
        on!(self, put_object, key)
            .content_type(content_type)
            .checksum_sha256(STANDARD.encode(sha256))
            .body(ByteStream::from(data))
            .customize()
            .disable_payload_signing()
            .send()
            .await
            .map_err(|e| s3_err("PutObject", e))?;
        Ok(())
    }

    async fn head(&self, key: &str) -> StoreResult<Option<BlobInfo>> {
        let out = on!(self, head_object, key);
        let out = match out.send().await.map_err(|e| s3_err("HeadObject", e)) {
            Err(StoreError::NotFound) => return Ok(None),
            out => out?,
        };
        let size = out.content_length().and_then(|n| u64::try_from(n).ok());
        match (size, out.e_tag) {
            (Some(size), Some(etag)) => Ok(Some(BlobInfo { size, etag })),
            _ => Err(StoreError::Unavailable(
                "s3 HeadObject: the answer has no Content-Length or ETag".into(),
            )),
        }
    }

    async fn get_range(
        &self,
        key: &str,
        etag: Option<&str>,
        offset: u64,
        len: u64,
    ) -> StoreResult<Bytes> {
        if len == 0 {
            // No byte range can say "nothing"; the object must still exist.
            return match self.head(key).await? {
                Some(info) if etag.is_none_or(|e| e == info.etag) => Ok(Bytes::new()),
                Some(_) => Err(replaced()),
                None => Err(StoreError::NotFound),
            };
        }
        let last = offset.saturating_add(len - 1);
        match on!(self, get_object, key)
            .range(format!("bytes={offset}-{last}"))
            .set_if_match(etag.map(str::to_owned))
            .send()
            .await
        {
            Ok(out) => read_body(out.body, len).await,
            // Starting past the end: like reading a file there, nothing.
            Err(e) if e.code() == Some("InvalidRange") => Ok(Bytes::new()),
            Err(e) => Err(s3_err("GetObject", e)),
        }
    }

    async fn promote(&self, staged: &str, etag: &str, size: u64, key: &str) -> StoreResult<()> {
        if size <= self.copy_part_bytes {
            on!(self, copy_object, key)
                .copy_source(self.copy_source(staged))
                .copy_source_if_match(etag)
                .send()
                .await
                .map_err(|e| s3_err("CopyObject", e))?;
        } else {
            self.copy_in_parts(staged, etag, size, key).await?;
        }
        // The staged object, or one that landed after it: nothing reads either any more.
        self.delete(staged).await
    }

    async fn list_staged(&self, after: Option<String>) -> StoreResult<Page<String>> {
        let page = on!(self, list_objects_v2)
            .prefix(STAGING_PREFIX)
            .set_continuation_token(after)
            .send()
            .await
            .map_err(|e| s3_err("ListObjectsV2", e))?;
        let truncated = page.is_truncated() == Some(true);
        let next = page.next_continuation_token().filter(|_| truncated);
        let items = page.contents().iter().filter_map(|o| o.key());
        Ok(Page {
            items: items.map(str::to_owned).collect(),
            next: next.map(str::to_owned),
        })
    }

    async fn list_staged_uploads(&self, after: Option<String>) -> StoreResult<Page<StagedUpload>> {
        // The position is S3's pair of markers, one per line.
        let markers = after.as_deref().and_then(|a| a.split_once('\n'));
        let page = on!(self, list_multipart_uploads)
            .prefix(STAGING_PREFIX)
            .set_key_marker(markers.map(|(k, _)| k.to_owned()))
            .set_upload_id_marker(markers.map(|(_, i)| i.to_owned()))
            .send()
            .await
            .map_err(|e| s3_err("ListMultipartUploads", e))?;
        let next = match (page.next_key_marker(), page.next_upload_id_marker()) {
            (Some(k), Some(i)) if page.is_truncated() == Some(true) => Some(format!("{k}\n{i}")),
            _ => None,
        };
        let items = page.uploads().iter().filter_map(|u| {
            Some(StagedUpload {
                key: u.key()?.to_owned(),
                upload_id: u.upload_id()?.to_owned(),
                initiated: u.initiated().map_or(0, |t| t.secs()),
            })
        });
        Ok(Page {
            items: items.collect(),
            next,
        })
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        let deleted = on!(self, delete_object, key).send().await;
        match deleted.map_err(|e| s3_err("DeleteObject", e)) {
            // S3 answers 204 for a missing key; some compatible servers say NoSuchKey.
            Ok(_) | Err(StoreError::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn presign_get(&self, key: &str, opts: &LinkOptions<'_>) -> StoreResult<String> {
        // Both overrides are signed query parameters: a link cannot be edited to serve the
        // bytes as another type (say text/html) or inline.
        let disposition = content_disposition(opts.file_name);
        // Signed as of the start of the link window, so that every answer of one window carries
        // the very same link (see `LinkWindow`).
        let (signed_at, expires_at) = (opts.valid.signed_at, opts.valid.expires_at);
        let secs = |s: i64| Duration::from_secs(u64::try_from(s).unwrap_or(0));
        let own = [
            ("response-content-disposition", disposition.as_str()),
            ("response-content-type", opts.content_type),
        ];
        let (time, ttl) = (UNIX_EPOCH + secs(signed_at), secs(expires_at - signed_at));
        self.presign("GET", key, &own, &[], time, ttl).await
    }

    async fn presign_post(&self, key: &str, policy: &PostPolicy<'_>) -> StoreResult<PresignedPost> {
        let now = SystemTime::now();
        let (ttl, creds) = self.signing(policy.ttl, now).await?;
        let date = OffsetDateTime::from(now);
        let failed = |e: time::error::Format| StoreError::Unavailable(format!("time: {e}"));
        let iso = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].000Z");
        let basic = format_description!("[year][month][day]T[hour][minute][second]Z");
        let expiration = (date + ttl).format(iso).map_err(failed)?;
        let amz_date = date.format(basic).map_err(failed)?;
        let (access_key, day, region) = (creds.access_key_id(), &amz_date[..8], &self.region);
        let credential = format!("{access_key}/{day}/{region}/s3/aws4_request");
        // Every field the form carries is pinned by a condition, and the size is exact: S3
        // refuses another key, type, checksum or size before it stores anything.
        let sha256 = policy.sha256.map(|s| STANDARD.encode(s));
        let token = creds.session_token().map(str::to_owned);
        let mut fields: Vec<(String, String)> = [
            ("key", Some(key.to_owned())),
            ("Content-Type", Some(policy.content_type.to_owned())),
            ("x-amz-checksum-sha256", sha256),
            ("x-amz-algorithm", Some("AWS4-HMAC-SHA256".into())),
            ("x-amz-credential", Some(credential)),
            ("x-amz-date", Some(amz_date.clone())),
            ("x-amz-security-token", token),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name.to_owned(), value?)))
        .collect();
        let size = json!(["content-length-range", policy.size, policy.size]);
        let mut conditions = vec![json!({ "bucket": self.bucket }), size];
        let eq = |(name, value): &(String, String)| json!(["eq", format!("${name}"), value]);
        conditions.extend(fields.iter().map(eq));
        let doc = json!({ "expiration": expiration, "conditions": conditions });
        let policy_b64 = STANDARD.encode(doc.to_string());
        // SigV4 for a POST policy: the base64 policy is the string to sign.
        let secret = creds.secret_access_key();
        let signing_key = aws_sigv4::sign::v4::generate_signing_key(secret, now, region, "s3");
        let signature =
            aws_sigv4::sign::v4::calculate_signature(signing_key, policy_b64.as_bytes());
        fields.push(("policy".into(), policy_b64));
        fields.push(("x-amz-signature".into(), signature));
        Ok(PresignedPost {
            url: self.bucket_url.clone(),
            fields,
        })
    }

    async fn create_multipart(&self, key: &str, content_type: &str) -> StoreResult<String> {
        let out = on!(self, create_multipart_upload, key)
            .content_type(content_type)
            .send()
            .await
            .map_err(|e| s3_err("CreateMultipartUpload", e))?;
        out.upload_id
            .filter(|id| !id.is_empty())
            .ok_or_else(|| StoreError::Unavailable("s3 CreateMultipartUpload: no upload id".into()))
    }

    async fn presign_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        size: u64,
        ttl: Duration,
    ) -> StoreResult<String> {
        let (number, size) = (number.to_string(), size.to_string());
        let own = [("partNumber", number.as_str()), ("uploadId", upload_id)];
        // The part's length is signed: S3 refuses a body of any other size.
        let headers = [("content-length", size.as_str())];
        self.presign("PUT", key, &own, &headers, SystemTime::now(), ttl)
            .await
    }

    async fn list_parts(&self, key: &str, upload_id: &str) -> StoreResult<Vec<PartInfo>> {
        let listed = on!(self, list_parts, key)
            .upload_id(upload_id)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| s3_err("ListParts", e))?;
        // Bare hex, as the file store gives; quoted again on completion. Some compatible
        // servers leave the ETag out; completion then sends it empty.
        let parts = listed.iter().map(|part| {
            let etag = part.e_tag().unwrap_or_default().trim_matches('"');
            Some(PartInfo {
                number: part.part_number()?.try_into().ok()?,
                size: part.size()?.try_into().ok()?,
                etag: etag.to_owned(),
            })
        });
        let mut parts = parts.collect::<Option<Vec<_>>>().ok_or_else(|| {
            StoreError::Unavailable("s3 ListParts: a part without its number or size".into())
        })?;
        parts.sort_by_key(|p| p.number);
        Ok(parts)
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[PartInfo],
    ) -> StoreResult<()> {
        let completed = parts.iter().map(|p| {
            let number = i32::try_from(p.number)
                .map_err(|_| StoreError::Unavailable(format!("part number {}", p.number)))?;
            Ok(CompletedPart::builder()
                .part_number(number)
                .e_tag(format!("\"{}\"", p.etag.trim_matches('"')))
                .build())
        });
        let upload = CompletedMultipartUpload::builder()
            .set_parts(Some(completed.collect::<StoreResult<_>>()?))
            .build();
        on!(self, complete_multipart_upload, key)
            .upload_id(upload_id)
            .multipart_upload(upload)
            .send()
            .await
            .map_err(|e| s3_err("CompleteMultipartUpload", e))?;
        Ok(())
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) -> StoreResult<()> {
        let aborted = on!(self, abort_multipart_upload, key)
            .upload_id(upload_id)
            .send()
            .await;
        match aborted.map_err(|e| s3_err("AbortMultipartUpload", e)) {
            Ok(_) | Err(StoreError::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Creates the bucket where it is missing (`init` of the local emulators); says which it did.
pub async fn ensure_bucket(client: &Client, bucket: &str, region: &str) -> Result<bool, String> {
    use aws_sdk_s3::operation::head_bucket::HeadBucketError;
    use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
    match client.head_bucket().bucket(bucket).send().await {
        Ok(_) => return Ok(false),
        Err(e) if matches!(e.as_service_error(), Some(HeadBucketError::NotFound(_))) => {}
        Err(e) => return Err(DisplayErrorContext(&e).to_string()),
    }
    // us-east-1 takes no location constraint; every other region needs its own.
    let location = (region != "us-east-1").then(|| {
        CreateBucketConfiguration::builder()
            .location_constraint(BucketLocationConstraint::from(region))
            .build()
    });
    client
        .create_bucket()
        .bucket(bucket)
        .set_create_bucket_configuration(location)
        .send()
        .await
        .map(|_| true)
        .map_err(|e| DisplayErrorContext(&e).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(expiry: Option<SystemTime>) -> Credentials {
        Credentials::new("AKID", "secret", None, expiry, "test")
    }

    /// A store at `bucket_url` signing for `region` with `creds` (presigning calls nothing).
    async fn store(bucket_url: &str, region: &str, creds: Credentials) -> S3BlobStore {
        let env = aws_types::os_shim_internal::Env::from_slice(&[
            ("AWS_CONFIG_FILE", "/nonexistent/attachments/config"),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/attachments/credentials",
            ),
        ]);
        let loader = crate::store::sdk::loader(None).unwrap().env(env);
        let loader = loader.region(aws_types::region::Region::new(region.to_owned()));
        let sdk = loader.credentials_provider(creds).load().await;
        let signing = SigningCredentials::new(&sdk).unwrap();
        let client = crate::store::sdk::s3_client(&sdk, false);
        S3BlobStore::new(client, "unused", bucket_url, region, signing)
    }

    /// "Authenticating Requests: Using Query Parameters" (S3 API reference): the presigned GET
    /// of `examplebucket/test.txt` for 86400 s, signed on 2013-05-24 with the documented example
    /// keys, carries this signature.
    #[tokio::test]
    async fn links_match_aws_documented_example() {
        let creds = Credentials::new(
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            None,
            None,
            "test",
        );
        let s3 = store("https://examplebucket.s3.amazonaws.com", "us-east-1", creds).await;
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_369_353_600);
        let ttl = Duration::from_secs(86400);
        let url = s3.presign("GET", "test.txt", &[], &[], time, ttl).await;
        let url = url.unwrap();
        assert!(
            url.starts_with("https://examplebucket.s3.amazonaws.com/test.txt?"),
            "{url}"
        );
        assert!(url.contains("X-Amz-Expires=86400"), "{url}");
        assert!(
            url.ends_with(
                "X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
            ),
            "{url}"
        );
    }

    #[tokio::test]
    async fn keys_and_parameters_are_encoded_once() {
        let creds = Credentials::new("AKID", "secret", Some("tok/+=".into()), None, "test");
        let s3 = store("http://127.0.0.1:9000/base/my-bucket", "eu-west-1", creds).await;
        let own = [("response-content-type", "text/plain")];
        let ttl = Duration::from_secs(60);
        let url = s3.presign("GET", "t/a b", &own, &[], SystemTime::now(), ttl);
        let url = url.await.unwrap();
        assert!(
            url.starts_with("http://127.0.0.1:9000/base/my-bucket/t/a%20b?"),
            "{url}"
        );
        assert!(url.contains("response-content-type=text%2Fplain"), "{url}");
        assert!(url.contains("X-Amz-Security-Token=tok%2F%2B%3D"), "{url}");
        assert!(url.contains("X-Amz-Expires=60&"), "{url}");
    }

    #[tokio::test]
    async fn a_part_link_signs_its_length() {
        let creds = Credentials::new("AKID", "secret", None, None, "test");
        let s3 = store("https://b.s3.amazonaws.com", "us-east-1", creds).await;
        let url = s3
            .presign_part("staging/t/a/v", "u", 1, 8_388_608, Duration::from_secs(60))
            .await
            .unwrap();
        assert!(
            url.contains("X-Amz-SignedHeaders=content-length%3Bhost"),
            "{url}"
        );
        assert!(url.contains("?partNumber=1&uploadId=u&"), "{url}");
    }

    #[tokio::test]
    async fn a_link_never_outlives_its_credentials() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let ttl = Duration::from_secs(900);
        let lifetime = |expiry: Option<SystemTime>| async move {
            let s3 = store("https://b.s3.amazonaws.com", "us-east-1", creds(expiry)).await;
            s3.signing(ttl, now).await.map(|(ttl, _)| ttl)
        };
        assert_eq!(lifetime(None).await.unwrap(), ttl);
        let later = now + Duration::from_secs(3600);
        assert_eq!(lifetime(Some(later)).await.unwrap(), ttl);
        // 10 minutes and a half left: the link lives 10 minutes, in whole seconds.
        let soon = now + Duration::from_millis(630_500);
        assert_eq!(
            lifetime(Some(soon)).await.unwrap(),
            Duration::from_secs(630)
        );
        for gone in [
            now,
            now - Duration::from_secs(5),
            now + Duration::from_millis(999),
        ] {
            assert!(lifetime(Some(gone)).await.is_err());
        }
    }
}
