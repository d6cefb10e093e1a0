//! Our own small AWS client: SigV4-signed HTTPS calls to DynamoDB (its JSON protocol) and S3
//! (its REST API), over hyper with rustls. It replaces the AWS SDK, whose runtime, endpoint
//! rules, credential chain and second copy of every checksum made each Lambda function about
//! twice its size and its cold start slower, for the dozen calls the adapters make.
//!
//! What it keeps from the SDK's behaviour: the standard environment variables for credentials,
//! region and endpoints (read in [`crate::config`]), retries with backoff on throttling, server
//! errors and broken connections, and idempotency tokens on transactions.

pub mod dynamodb;
pub mod s3;
pub mod sigv4;
pub mod sqs;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Signing credentials: on Lambda, the function role's, from the environment.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Where and as whom the AWS backend talks (see `config::aws_settings`).
#[derive(Debug, Clone)]
pub struct AwsSettings {
    pub credentials: Credentials,
    pub region: String,
    /// `AWS_ENDPOINT_URL_DYNAMODB` (or `AWS_ENDPOINT_URL`): a compatible server instead of AWS.
    pub dynamodb_endpoint: Option<String>,
    /// `AWS_ENDPOINT_URL_S3` (or `AWS_ENDPOINT_URL`).
    pub s3_endpoint: Option<String>,
    /// `AWS_CA_BUNDLE`: extra trusted roots (PEM) for endpoints behind a private CA.
    pub ca_bundle: Option<std::path::PathBuf>,
}

/// Why a call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AwsError {
    /// No answer: the connection failed, broke, or timed out.
    #[error("{0}")]
    Transport(String),
    /// The service answered with an error.
    #[error("{status} {code}: {message}")]
    Service {
        status: u16,
        code: String,
        message: String,
        /// The error's own details (DynamoDB's cancellation reasons).
        details: Vec<String>,
    },
    /// Our side could not build the request or read the answer.
    #[error("{0}")]
    Client(String),
}

impl AwsError {
    /// The service's error code, when it answered.
    pub fn code(&self) -> Option<&str> {
        match self {
            AwsError::Service { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether trying again may help: no answer, a server error, throttling.
    fn retryable(&self) -> bool {
        match self {
            AwsError::Transport(_) => true,
            AwsError::Service { status, code, .. } => {
                *status >= 500
                    || *status == 429
                    || matches!(
                        code.as_str(),
                        "ThrottlingException"
                            | "Throttling"
                            | "ProvisionedThroughputExceededException"
                            | "RequestLimitExceeded"
                            | "SlowDown"
                            | "RequestTimeout"
                    )
            }
            AwsError::Client(_) => false,
        }
    }
}

/// Attempts per call (the SDK's standard retry mode also makes three).
const ATTEMPTS: u32 = 3;
/// One attempt's limit, connection included: far above any call's normal time, short enough
/// that a dead endpoint fails well within a Lambda timeout.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Runs `attempt` until it succeeds, fails for good, or [`ATTEMPTS`] are spent, with jittered
/// exponential backoff between tries.
pub(crate) async fn with_retries<T, F, Fut>(mut attempt: F) -> Result<T, AwsError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, AwsError>>,
{
    let mut n = 0;
    loop {
        let result = match tokio::time::timeout(ATTEMPT_TIMEOUT, attempt()).await {
            Ok(r) => r,
            Err(_) => Err(AwsError::Transport(format!(
                "no answer within {} s",
                ATTEMPT_TIMEOUT.as_secs()
            ))),
        };
        n += 1;
        match result {
            Err(e) if e.retryable() && n < ATTEMPTS => backoff(n).await,
            other => return other,
        }
    }
}

/// 25 ms doubling, with full jitter, so that callers that collided do not collide again.
pub(crate) async fn backoff(attempt: u32) {
    let base = 25u64 << attempt.min(6);
    let jitter = u64::from(time::OffsetDateTime::now_utc().nanosecond()) % (base / 2 + 1);
    tokio::time::sleep(Duration::from_millis(base / 2 + jitter)).await;
}

/// Records an answer's status and request id on the call's span.
pub(crate) fn record_answer(span: &tracing::Span, parts: &http::response::Parts, id_header: &str) {
    span.record("status", u64::from(parts.status.as_u16()));
    if let Some(id) = parts.headers.get(id_header).and_then(|v| v.to_str().ok()) {
        span.record("request_id", id);
    }
}

/// Records how many attempts a call took and, when it failed, why.
pub(crate) fn record_outcome(span: &tracing::Span, attempts: u64, failure: Option<&AwsError>) {
    span.record("attempts", attempts);
    match failure {
        Some(AwsError::Service { code, .. }) => {
            span.record("error_code", code.as_str());
        }
        Some(AwsError::Transport(_)) => {
            span.record("error_code", "NoAnswer");
        }
        Some(AwsError::Client(_)) => {
            span.record("error_code", "ClientError");
        }
        None => {}
    }
}

/// The HTTPS client both services share: HTTP/1.1 over rustls (ring), keep-alive pooled.
/// Trust: the Mozilla roots compiled in (no certificate store to read and parse at every cold
/// start), plus `AWS_CA_BUNDLE` when set.
#[derive(Clone)]
pub struct Http {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Http(..)")
    }
}

impl Http {
    pub fn new(ca_bundle: Option<&std::path::Path>) -> Result<Self, AwsError> {
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Some(path) = ca_bundle {
            use rustls::pki_types::pem::PemObject;
            let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
                .map_err(|e| AwsError::Client(format!("AWS_CA_BUNDLE {}: {e}", path.display())))?;
            for cert in certs {
                let cert = cert.map_err(|e| {
                    AwsError::Client(format!("AWS_CA_BUNDLE {}: {e}", path.display()))
                })?;
                roots.add(cert).map_err(|e| {
                    AwsError::Client(format!("AWS_CA_BUNDLE {}: {e}", path.display()))
                })?;
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| AwsError::Client(format!("tls: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(https);
        Ok(Self { client })
    }

    /// Sends a request and reads the whole answer.
    pub async fn send(
        &self,
        req: http::Request<Full<Bytes>>,
    ) -> Result<(http::response::Parts, Bytes), AwsError> {
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| AwsError::Transport(error_chain(&e)))?;
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| AwsError::Transport(format!("reading the answer: {e}")))?
            .to_bytes();
        Ok((parts, body))
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// An endpoint split as requests need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `https` or `http`.
    pub scheme: String,
    /// `host[:port]`, as the `Host` header carries it.
    pub authority: String,
    /// A path prefix without the trailing `/` (usually empty).
    pub base_path: String,
}

impl Endpoint {
    pub fn parse(url: &str) -> Result<Self, String> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
        let scheme = match uri.scheme_str() {
            Some(s @ ("http" | "https")) => s.to_owned(),
            _ => return Err(format!("{url:?} must start with http:// or https://")),
        };
        let authority = uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .filter(|a| !a.is_empty() && !a.contains('@'))
            .ok_or_else(|| format!("{url:?} has no host"))?;
        if uri.query().is_some() {
            return Err(format!("{url:?} must not have a query"));
        }
        let base_path = uri.path().trim_end_matches('/').to_owned();
        Ok(Self {
            scheme,
            authority,
            base_path,
        })
    }
}

/// A request body and what its signature says of it: its hex SHA-256, computed once per call
/// (not per attempt), or [`sigv4::UNSIGNED_PAYLOAD`].
#[derive(Debug, Clone)]
pub struct Payload {
    pub bytes: Bytes,
    pub sha256: std::borrow::Cow<'static, str>,
}

impl Payload {
    /// No body.
    pub fn empty() -> Self {
        Self {
            bytes: Bytes::new(),
            sha256: sigv4::EMPTY_SHA256.into(),
        }
    }

    /// A body, hashed for the signature.
    pub fn hashed(bytes: Bytes) -> Self {
        use sha2::Digest;
        let sha256 = crate::signing::hex32(&sha2::Sha256::digest(&bytes).into()).into();
        Self { bytes, sha256 }
    }

    /// A body the signature does not cover (S3 checks it against a signed checksum instead).
    pub fn unsigned(bytes: Bytes) -> Self {
        Self {
            bytes,
            sha256: sigv4::UNSIGNED_PAYLOAD.into(),
        }
    }
}

/// Signs requests for one service in one region, keeping the day's signing key.
#[derive(Debug)]
pub struct RequestSigner {
    pub credentials: Credentials,
    pub region: String,
    pub service: &'static str,
    key: Mutex<Option<(String, [u8; 32])>>,
}

impl RequestSigner {
    pub fn new(credentials: Credentials, region: String, service: &'static str) -> Self {
        Self {
            credentials,
            region,
            service,
            key: Mutex::new(None),
        }
    }

    /// The signing key of `date` (derived once a day, not per request).
    pub fn key(&self, date: &str) -> [u8; 32] {
        let mut cached = match self.key.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some((d, k)) = cached.as_ref() {
            if d == date {
                return *k;
            }
        }
        let k = sigv4::signing_key(
            &self.credentials.secret_access_key,
            date,
            &self.region,
            self.service,
        );
        *cached = Some((date.to_owned(), k));
        k
    }

    pub fn scope(&self, date: &str) -> String {
        sigv4::scope(date, &self.region, self.service)
    }

    /// The `Credential` a presigned URL or a POST policy names: key id and scope.
    pub fn credential(&self, date: &str) -> String {
        format!("{}/{}", self.credentials.access_key_id, self.scope(date))
    }

    /// Builds a signed request: `headers` are signed with `host`, `x-amz-date` and the session
    /// token; `payload_sha256` is the body's hex SHA-256 (S3 also receives it as a header).
    pub fn request(
        &self,
        method: &str,
        endpoint: &Endpoint,
        path: &str,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        payload: Payload,
    ) -> Result<http::Request<Full<Bytes>>, AwsError> {
        let Payload {
            bytes: body,
            sha256,
        } = payload;
        let payload_sha256: &str = &sha256;
        let stamp = sigv4::Stamp::now();
        let canonical_query = sigv4::canonical_query(query);
        let mut signed: Vec<(&str, &str)> = headers.to_vec();
        signed.push(("host", &endpoint.authority));
        signed.push(("x-amz-date", &stamp.amz_date));
        if self.service == "s3" {
            signed.push(("x-amz-content-sha256", payload_sha256));
        }
        if let Some(token) = &self.credentials.session_token {
            signed.push(("x-amz-security-token", token));
        }
        let key = self.key(&stamp.date);
        let auth = sigv4::authorization(
            &self.credentials,
            &key,
            &stamp,
            &self.scope(&stamp.date),
            &sigv4::Canonical {
                method,
                path,
                query: &canonical_query,
                headers: &signed,
                payload_sha256,
            },
        );
        let mut uri = format!("{}://{}{}", endpoint.scheme, endpoint.authority, path);
        if !canonical_query.is_empty() {
            uri.push('?');
            uri.push_str(&canonical_query);
        }
        let mut b = http::Request::builder().method(method).uri(uri);
        for (k, v) in &signed {
            b = b.header(*k, *v);
        }
        b.header("authorization", auth)
            .body(Full::new(body))
            .map_err(|e| AwsError::Client(format!("request: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::aws::dynamodb::{DynamoClient, GetItemOutput};

    /// What a peer saw of one request.
    #[derive(Debug, Clone)]
    struct Seen {
        authorization: String,
        target: String,
        body: Bytes,
    }

    /// An HTTP server on loopback that answers the n-th request with `answers[n]` (the last one
    /// thereafter) and records every request.
    async fn peer(answers: Vec<(u16, &'static str)>) -> (String, Arc<Mutex<Vec<Seen>>>) {
        use hyper::service::service_fn;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let count = Arc::new(AtomicUsize::new(0));
        let answers = Arc::new(answers);
        let log = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (log, count, answers) = (log.clone(), count.clone(), answers.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let (log, count, answers) = (log.clone(), count.clone(), answers.clone());
                        async move {
                            let header = |n: &str| {
                                req.headers()
                                    .get(n)
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or("")
                                    .to_owned()
                            };
                            let (authorization, target) =
                                (header("authorization"), header("x-amz-target"));
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            log.lock().unwrap().push(Seen {
                                authorization,
                                target,
                                body,
                            });
                            let n = count.fetch_add(1, Ordering::SeqCst);
                            let (status, text) = answers[n.min(answers.len() - 1)];
                            Ok::<_, std::convert::Infallible>(
                                http::Response::builder()
                                    .status(status)
                                    .body(Full::new(Bytes::from_static(text.as_bytes())))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        (url, seen)
    }

    fn client(url: &str) -> DynamoClient {
        let creds = Credentials {
            access_key_id: "AKIDTEST".into(),
            secret_access_key: "secret".into(),
            session_token: None,
        };
        DynamoClient::new(
            Http::new(None).unwrap(),
            Endpoint::parse(url).unwrap(),
            RequestSigner::new(creds, "eu-west-1".into(), "dynamodb"),
        )
    }

    const THROTTLED: &str = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"slow down"}"#;

    #[tokio::test]
    async fn server_errors_and_throttling_are_retried_with_the_same_request() {
        let (url, seen) = peer(vec![(503, ""), (400, THROTTLED), (200, "{}")]).await;
        let out: GetItemOutput = client(&url)
            .call("GetItem", &serde_json::json!({ "TableName": "t" }))
            .await
            .unwrap();
        assert!(out.item.is_none());
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 3, "two failures, then the answer");
        for s in &seen {
            assert_eq!(s.target, "DynamoDB_20120810.GetItem");
            assert!(
                s.authorization
                    .starts_with("AWS4-HMAC-SHA256 Credential=AKIDTEST/")
                    && s.authorization.contains("/eu-west-1/dynamodb/aws4_request"),
                "{}",
                s.authorization
            );
            // A retry sends the very same body (a transaction's token included).
            assert_eq!(s.body, seen[0].body);
        }
    }

    #[tokio::test]
    async fn client_errors_are_not_retried_and_retries_stop() {
        let invalid =
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#ValidationException","message":"bad"}"#;
        let (url, seen) = peer(vec![(400, invalid)]).await;
        let e = client(&url)
            .call::<GetItemOutput>("GetItem", &serde_json::json!({}))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some("ValidationException"));
        assert_eq!(seen.lock().unwrap().len(), 1);

        let (url, seen) = peer(vec![(500, "")]).await;
        let e = client(&url)
            .call::<GetItemOutput>("GetItem", &serde_json::json!({}))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some("Http500"));
        assert_eq!(seen.lock().unwrap().len(), ATTEMPTS as usize);
    }

    #[tokio::test]
    async fn a_dead_endpoint_is_a_transport_error() {
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", l.local_addr().unwrap())
        };
        let e = client(&dead)
            .call::<GetItemOutput>("GetItem", &serde_json::json!({}))
            .await
            .unwrap_err();
        assert!(matches!(e, AwsError::Transport(_)), "{e:?}");
    }

    #[test]
    fn endpoints_parse_or_say_why_not() {
        let e = Endpoint::parse("https://example.com:8443/base/").unwrap();
        assert_eq!(e.scheme, "https");
        assert_eq!(e.authority, "example.com:8443");
        assert_eq!(e.base_path, "/base");
        assert!(Endpoint::parse("ftp://x").is_err());
        assert!(Endpoint::parse("http://user@host").is_err());
        assert!(Endpoint::parse("http://host/?q=1").is_err());
        assert!(Endpoint::parse("not a url").is_err());
    }
}
