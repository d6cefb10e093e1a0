//! S3's REST API, the part the blob store uses: objects (put with a SHA-256 checksum, head,
//! ranged get, delete), multipart uploads, presigned URLs, and the bucket calls of `init`.
//! Answers are XML; the few values read from them are picked out by tag.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use tracing::Instrument;

use super::sigv4::{self, UNSIGNED_PAYLOAD};
use super::{with_retries, AwsError, Endpoint, Http, Payload, RequestSigner};

/// One bucket of S3 or of a compatible server.
#[derive(Debug)]
pub struct S3Client {
    http: Http,
    endpoint: Endpoint,
    path_style: bool,
    signer: RequestSigner,
    bucket: String,
}

/// What a request addresses inside the bucket.
enum Target<'a> {
    Bucket,
    Object(&'a str),
}

/// S3's name for a call, from its method, target and query (X-Ray shows it).
fn operation(method: &str, object: bool, query: &[(&str, &str)]) -> &'static str {
    let has = |name: &str| query.iter().any(|(k, _)| *k == name);
    match (method, object) {
        ("PUT", true) if has("partNumber") => "UploadPart",
        ("PUT", true) => "PutObject",
        ("GET", true) if has("uploadId") => "ListParts",
        ("GET", true) => "GetObject",
        ("HEAD", true) => "HeadObject",
        ("DELETE", true) if has("uploadId") => "AbortMultipartUpload",
        ("DELETE", true) => "DeleteObject",
        ("POST", true) if has("uploads") => "CreateMultipartUpload",
        ("POST", true) if has("uploadId") => "CompleteMultipartUpload",
        ("HEAD", false) => "HeadBucket",
        ("PUT", false) if has("cors") => "PutBucketCors",
        ("PUT", false) => "CreateBucket",
        ("GET", false) => "ListObjects",
        _ => "S3",
    }
}

impl S3Client {
    pub fn new(
        http: Http,
        endpoint: Endpoint,
        path_style: bool,
        signer: RequestSigner,
        bucket: impl Into<String>,
    ) -> Self {
        Self {
            http,
            endpoint,
            path_style,
            signer,
            bucket: bucket.into(),
        }
    }

    /// The regional endpoint, or the configured one.
    pub fn endpoint_for(region: &str, configured: Option<&str>) -> Result<Endpoint, String> {
        match configured {
            Some(url) => Endpoint::parse(url),
            None => Endpoint::parse(&format!("https://s3.{region}.amazonaws.com")),
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub fn credentials(&self) -> &super::Credentials {
        &self.signer.credentials
    }

    /// The `x-amz-credential` of a form signed on `date`.
    pub fn credential(&self, date: &str) -> String {
        self.signer.credential(date)
    }

    /// The signature of a form upload's base64 POST policy, with the day's cached key.
    pub fn sign_policy(&self, date: &str, policy_b64: &str) -> String {
        sigv4::post_policy_signature(&self.signer.key(date), policy_b64)
    }

    /// The host and path of a target: virtual-hosted (`bucket.host/key`) unless path-style
    /// (`host/bucket/key`), as S3-compatible servers usually need. A bucket name with dots is
    /// always addressed path-style: as a host name, it would not match S3's certificate.
    fn locate(&self, target: Target<'_>) -> (Endpoint, String) {
        let mut ep = self.endpoint.clone();
        let mut path = ep.base_path.clone();
        if self.path_style || self.bucket.contains('.') {
            path.push('/');
            sigv4::uri_encode(&self.bucket, false, &mut path);
        } else {
            ep.authority = format!("{}.{}", self.bucket, ep.authority);
        }
        path.push('/');
        if let Target::Object(key) = target {
            sigv4::uri_encode(key, true, &mut path);
        }
        (ep, path)
    }

    /// The URL of the bucket itself, where form uploads are posted.
    pub fn bucket_url(&self) -> String {
        let (ep, path) = self.locate(Target::Bucket);
        format!(
            "{}://{}{}",
            ep.scheme,
            ep.authority,
            path.trim_end_matches('/')
        )
    }

    /// One signed request, retried; answers that are not 2xx become [`AwsError::Service`].
    async fn send(
        &self,
        method: &str,
        target: Target<'_>,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        payload: Payload,
    ) -> Result<(http::response::Parts, Bytes), AwsError> {
        let is_object = matches!(target, Target::Object(_));
        let (ep, path) = self.locate(target);
        // The call as an X-Ray subsegment (see `telemetry::xray`).
        let span = crate::telemetry::xray::aws_span(
            "S3",
            operation(method, is_object, query),
            &self.signer.region,
            Some(self.bucket()),
        );
        let mut attempts = 0u64;
        let answer = with_retries(|| {
            attempts += 1;
            let req = self
                .signer
                .request(method, &ep, &path, query, headers, payload.clone());
            let span = &span;
            async move {
                let (parts, bytes) = self.http.send(req?).await?;
                super::record_answer(span, &parts, "x-amz-request-id");
                if parts.status.is_success() {
                    Ok((parts, bytes))
                } else {
                    Err(service_error(parts.status.as_u16(), &bytes))
                }
            }
        })
        .instrument(span.clone())
        .await;
        // A missing object is an answer, not a failure, where the caller looks for one.
        let failure = answer
            .as_ref()
            .err()
            .filter(|e| !matches!(e, AwsError::Service { status: 404, .. }));
        super::record_outcome(&span, attempts, failure);
        answer
    }

    /// Stores an object; S3 checks the bytes against `sha256` and refuses them if they differ.
    pub async fn put_object(
        &self,
        key: &str,
        data: Bytes,
        content_type: &str,
        sha256: &[u8; 32],
    ) -> Result<(), AwsError> {
        let b64 = STANDARD.encode(sha256);
        self.send(
            "PUT",
            Target::Object(key),
            &[],
            &[
                ("content-type", content_type),
                ("x-amz-checksum-sha256", &b64),
            ],
            // The checksum header, which the signature covers, is what S3 verifies the bytes
            // against (BadDigest); the payload itself is left unsigned rather than hashed twice.
            Payload::unsigned(data),
        )
        .await
        .map(|_| ())
    }

    /// The size of an object, or `None` when there is none.
    pub async fn head_object(&self, key: &str) -> Result<Option<u64>, AwsError> {
        match self
            .send("HEAD", Target::Object(key), &[], &[], Payload::empty())
            .await
        {
            Ok((parts, _)) => Ok(Some(
                parts
                    .headers
                    .get(http::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
            )),
            Err(AwsError::Service { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Bytes `first..=last` of an object.
    pub async fn get_range(&self, key: &str, first: u64, last: u64) -> Result<Bytes, AwsError> {
        let range = format!("bytes={first}-{last}");
        self.send(
            "GET",
            Target::Object(key),
            &[],
            &[("range", &range)],
            Payload::empty(),
        )
        .await
        .map(|(_, body)| body)
    }

    pub async fn delete_object(&self, key: &str) -> Result<(), AwsError> {
        self.send("DELETE", Target::Object(key), &[], &[], Payload::empty())
            .await
            .map(|_| ())
    }

    /// A presigned URL for `method` on `key` with the given query parameters (which the
    /// signature covers, so they cannot be edited), valid for `ttl`.
    pub fn presign(
        &self,
        method: &str,
        key: &str,
        own: &[(&str, &str)],
        ttl: Duration,
    ) -> Result<String, AwsError> {
        let (ep, path) = self.locate(Target::Object(key));
        let stamp = sigv4::Stamp::now();
        let scope = self.signer.scope(&stamp.date);
        let creds = &self.signer.credentials;
        let credential = format!("{}/{scope}", creds.access_key_id);
        let expires = ttl.as_secs().clamp(1, 604_800).to_string();
        let params = sigv4::presign_params(creds, &credential, &stamp, &expires, own);
        let query = sigv4::canonical_query(&params);
        let (_, signature) = sigv4::signature(
            &self.signer.key(&stamp.date),
            &stamp,
            &scope,
            &sigv4::Canonical {
                method,
                path: &path,
                query: &query,
                headers: &[("host", &ep.authority)],
                payload_sha256: UNSIGNED_PAYLOAD,
            },
        );
        Ok(format!(
            "{}://{}{path}?{query}&X-Amz-Signature={signature}",
            ep.scheme, ep.authority
        ))
    }

    pub async fn create_multipart(
        &self,
        key: &str,
        content_type: &str,
    ) -> Result<String, AwsError> {
        let (_, body) = self
            .send(
                "POST",
                Target::Object(key),
                &[("uploads", "")],
                &[("content-type", content_type)],
                Payload::empty(),
            )
            .await?;
        let xml = std::str::from_utf8(&body)
            .map_err(|_| AwsError::Client("CreateMultipartUpload: answer is not UTF-8".into()))?;
        tag(xml, "UploadId")
            .map(unescape)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| AwsError::Client("CreateMultipartUpload: no upload id".into()))
    }

    /// One page of an upload's parts: `(number, size, etag)` and the next marker, if any.
    pub async fn list_parts(
        &self,
        key: &str,
        upload_id: &str,
        marker: Option<&str>,
    ) -> Result<(Vec<(u32, u64, String)>, Option<String>), AwsError> {
        let mut query = vec![("uploadId", upload_id)];
        if let Some(m) = marker {
            query.push(("part-number-marker", m));
        }
        let (_, body) = self
            .send("GET", Target::Object(key), &query, &[], Payload::empty())
            .await?;
        let xml = std::str::from_utf8(&body)
            .map_err(|_| AwsError::Client("ListParts: answer is not UTF-8".into()))?;
        let mut parts = Vec::new();
        for part in blocks(xml, "Part") {
            let number = tag(part, "PartNumber").and_then(|v| v.trim().parse().ok());
            let size = tag(part, "Size").and_then(|v| v.trim().parse().ok());
            // Some compatible servers leave the ETag out; completion then sends it empty.
            let etag = tag(part, "ETag").map(unescape).unwrap_or_default();
            match (number, size) {
                (Some(n), Some(s)) => parts.push((n, s, etag)),
                _ => {
                    return Err(AwsError::Client(
                        "ListParts: a part without its fields".into(),
                    ))
                }
            }
        }
        let truncated = tag(xml, "IsTruncated").is_some_and(|v| v.trim() == "true");
        let next = tag(xml, "NextPartNumberMarker")
            .map(|v| v.trim().to_owned())
            .filter(|v| truncated && !v.is_empty());
        Ok((parts, next))
    }

    /// Joins the parts, given as `(number, etag)`.
    pub async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[(u32, String)],
    ) -> Result<(), AwsError> {
        let mut xml = String::from("<CompleteMultipartUpload>");
        for (n, etag) in parts {
            xml.push_str(&format!(
                "<Part><PartNumber>{n}</PartNumber><ETag>{}</ETag></Part>",
                escape(etag)
            ));
        }
        xml.push_str("</CompleteMultipartUpload>");
        let (_, body) = self
            .send(
                "POST",
                Target::Object(key),
                &[("uploadId", upload_id)],
                &[("content-type", "application/xml")],
                Payload::hashed(Bytes::from(xml)),
            )
            .await?;
        // S3 can answer 200 and still report an error in the body, once it has started.
        match std::str::from_utf8(&body) {
            Ok(text) if text.contains("<Error>") => Err(service_error(200, &body)),
            _ => Ok(()),
        }
    }

    pub async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), AwsError> {
        self.send(
            "DELETE",
            Target::Object(key),
            &[("uploadId", upload_id)],
            &[],
            Payload::empty(),
        )
        .await
        .map(|_| ())
    }

    /// Whether the bucket exists (and is ours to use).
    pub async fn head_bucket(&self) -> Result<bool, AwsError> {
        match self
            .send("HEAD", Target::Bucket, &[], &[], Payload::empty())
            .await
        {
            Ok(_) => Ok(true),
            Err(AwsError::Service { status: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Creates the bucket (outside us-east-1, in the client's region).
    pub async fn create_bucket(&self) -> Result<(), AwsError> {
        let body = if self.signer.region == "us-east-1" {
            String::new()
        } else {
            format!(
                "<CreateBucketConfiguration><LocationConstraint>{}</LocationConstraint></CreateBucketConfiguration>",
                escape(&self.signer.region)
            )
        };
        let payload = Payload::hashed(Bytes::from(body));
        self.send("PUT", Target::Bucket, &[], &[], payload)
            .await
            .map(|_| ())
    }
}

/// S3's error body: `<Error><Code>NoSuchKey</Code><Message>…</Message></Error>`. A HEAD has no
/// body, so its status stands for the code.
fn service_error(status: u16, body: &[u8]) -> AwsError {
    let text = std::str::from_utf8(body).unwrap_or("");
    let code = tag(text, "Code")
        .map(unescape)
        .unwrap_or_else(|| match status {
            404 => "NotFound".into(),
            403 => "Forbidden".into(),
            s => format!("Http{s}"),
        });
    let message = tag(text, "Message").map(unescape).unwrap_or_default();
    AwsError::Service {
        status,
        code,
        message,
        details: Vec::new(),
    }
}

/// The text of the first `<name>…</name>` element.
fn tag<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    blocks(xml, name).next()
}

/// The text of every `<name>…</name>` element, in order.
fn blocks<'a>(xml: &'a str, name: &str) -> impl Iterator<Item = &'a str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let mut rest = xml;
    std::iter::from_fn(move || {
        let start = rest.find(&open)? + open.len();
        let len = rest[start..].find(&close)?;
        let found = &rest[start..start + len];
        rest = &rest[start + len + close.len()..];
        Some(found)
    })
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_read_from_s3_answers() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListPartsResult><Bucket>b</Bucket><IsTruncated>true</IsTruncated><NextPartNumberMarker>2</NextPartNumberMarker>
<Part><PartNumber>1</PartNumber><ETag>&quot;abc&quot;</ETag><Size>5242880</Size></Part>
<Part><PartNumber>2</PartNumber><ETag>"def"</ETag><Size>7</Size></Part></ListPartsResult>"#;
        let parts: Vec<_> = blocks(xml, "Part").collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(
            tag(parts[0], "ETag").map(unescape).as_deref(),
            Some("\"abc\"")
        );
        assert_eq!(tag(parts[1], "Size"), Some("7"));
        assert_eq!(tag(xml, "NextPartNumberMarker"), Some("2"));
        assert_eq!(tag(xml, "Missing"), None);
    }

    #[test]
    fn errors_carry_the_code_s3_names() {
        let e = service_error(
            404,
            b"<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code><Message>gone &amp; away</Message></Error>",
        );
        assert_eq!(e.code(), Some("NoSuchKey"));
        assert!(e.to_string().contains("gone & away"));
        assert_eq!(service_error(404, b"").code(), Some("NotFound"));
        assert!(service_error(503, b"<Error><Code>SlowDown</Code></Error>").retryable());
    }

    fn client(path_style: bool, endpoint: &str) -> S3Client {
        let creds = super::super::Credentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: "secret".into(),
            session_token: Some("token/+=".into()),
        };
        S3Client::new(
            Http::new(None).unwrap(),
            Endpoint::parse(endpoint).unwrap(),
            path_style,
            RequestSigner::new(creds, "eu-west-1".into(), "s3"),
            "my-bucket",
        )
    }

    #[test]
    fn addressing_is_virtual_hosted_unless_path_style() {
        let mut dotted = client(false, "https://s3.eu-west-1.amazonaws.com");
        dotted.bucket = "my.bucket".into();
        assert_eq!(
            dotted.bucket_url(),
            "https://s3.eu-west-1.amazonaws.com/my.bucket"
        );
        let v = client(false, "https://s3.eu-west-1.amazonaws.com");
        assert_eq!(
            v.bucket_url(),
            "https://my-bucket.s3.eu-west-1.amazonaws.com"
        );
        let p = client(true, "http://127.0.0.1:9000/base/");
        assert_eq!(p.bucket_url(), "http://127.0.0.1:9000/base/my-bucket");
        let url = p
            .presign(
                "GET",
                "t/a b",
                &[("response-content-type", "text/plain")],
                Duration::from_secs(60),
            )
            .unwrap();
        assert!(
            url.starts_with("http://127.0.0.1:9000/base/my-bucket/t/a%20b?"),
            "{url}"
        );
        assert!(url.contains("X-Amz-Security-Token=token%2F%2B%3D"), "{url}");
        assert!(url.contains("response-content-type=text%2Fplain"), "{url}");
        assert!(url.contains("X-Amz-Expires=60&"), "{url}");
    }
}
