//! What the two AWS adapters share: the AWS SDK's configuration, loaded once per container by
//! `aws-config` from the standard sources, with one HTTPS client, the standard retry mode and
//! explicit timeouts; the credentials that sign what the SDK cannot sign itself (S3 POST
//! policies, links); and the X-Ray interceptor every client carries (`store::call_spans`).

use std::path::Path;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader, SdkConfig};
use aws_credential_types::Credentials;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
use aws_smithy_runtime::client::auth::no_auth::NoAuthScheme;
use aws_smithy_runtime::client::orchestrator::endpoints::StaticUriEndpointResolver;
use aws_smithy_runtime::client::retries::strategy::NeverRetryStrategy;
use aws_smithy_runtime_api::client::auth::static_resolver::StaticAuthSchemeOptionResolver;
use aws_smithy_runtime_api::client::auth::AuthSchemeId;
use aws_smithy_runtime_api::client::identity::{
    ResolveCachedIdentity, SharedIdentityCache, SharedIdentityResolver,
};
use aws_smithy_runtime_api::client::runtime_components::{
    RuntimeComponents, RuntimeComponentsBuilder,
};
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_types::service_config::ServiceConfigKey;

use super::call_spans::CallSpans;
use super::{StoreError, StoreResult};
use crate::config::{err, ConfigError};

/// A connection that is not up by then is retried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// DynamoDB answers in milliseconds: an attempt that takes seconds is stuck, and one call with
/// its retries stays well inside a Lambda function's 15 s.
const DYNAMODB_ATTEMPT: Duration = Duration::from_secs(3);
const DYNAMODB_OPERATION: Duration = Duration::from_secs(10);
/// S3 calls carry up to an API request's body (4 MiB by default) or read a range of one.
pub const S3_ATTEMPT: Duration = Duration::from_secs(10);
const S3_OPERATION: Duration = Duration::from_secs(14);

fn timeouts(attempt: Duration, operation: Duration) -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(attempt)
        .operation_timeout(operation)
        .build()
}

/// The PEM file of `AWS_CA_BUNDLE`, checked here: the SDK's client parses it only when it
/// connects, and panics on a certificate it cannot read.
fn read_ca_bundle(path: &Path) -> Result<Vec<u8>, ConfigError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let shown = path.display();
    let bad = |e: &dyn std::fmt::Display| err("AWS_CA_BUNDLE", format!("{shown}: {e}"));
    let pem = std::fs::read(path).map_err(|e| bad(&e))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
    }
    if roots.is_empty() {
        return Err(err(
            "AWS_CA_BUNDLE",
            format!("{shown} holds no PEM certificate"),
        ));
    }
    Ok(pem)
}

/// `aws_config::defaults` as the service loads it: the full default chains (credentials,
/// region, endpoints, profiles), the standard retry mode (3 attempts), every timeout set
/// (DynamoDB's; the S3 client sets its own), and one HTTPS client for every service: hyper 1
/// over rustls with ring (smaller than aws-lc and as fast to start, `docs/performance.md`),
/// trusting the system's roots as the SDK's default client does (`SSL_CERT_FILE`,
/// `SSL_CERT_DIR`), plus the PEM certificates of `ca_bundle` (`AWS_CA_BUNDLE`, for a private
/// CA). Credentials are resolved at the first call, then cached and refreshed by the SDK.
pub fn loader(ca_bundle: Option<&Path>) -> Result<ConfigLoader, ConfigError> {
    let mut trust = TrustStore::default();
    if let Some(path) = ca_bundle {
        trust = trust.with_pem_certificate(read_ca_bundle(path)?);
    }
    let context = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .map_err(|e| err("AWS_CA_BUNDLE", e.to_string()))?;
    let https = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .tls_context(context)
        .build_https();
    Ok(aws_config::defaults(BehaviorVersion::latest())
        .http_client(https)
        .retry_config(RetryConfig::standard())
        .timeout_config(timeouts(DYNAMODB_ATTEMPT, DYNAMODB_OPERATION)))
}

/// Loads the configuration; a missing region is an error that names its variable (without
/// one, every call would fail).
pub async fn load(loader: ConfigLoader) -> Result<SdkConfig, ConfigError> {
    let sdk = loader.load().await;
    if sdk.region().is_none() {
        return Err(err(
            "AWS_REGION",
            "must be set for backend aws (for example us-east-1), or `region` in the profile's config",
        ));
    }
    Ok(sdk)
}

/// The endpoint a service's client uses as the SDK reads it: the service's own variable
/// (`AWS_ENDPOINT_URL_S3`) or profile key, else `AWS_ENDPOINT_URL` or `endpoint_url`; `None`
/// for AWS's own endpoint.
pub fn configured_endpoint(sdk: &SdkConfig, service_id: &str) -> Option<String> {
    let key = ServiceConfigKey::builder()
        .service_id(service_id)
        .env("AWS_ENDPOINT_URL")
        .profile("endpoint_url")
        .build()
        .ok()?;
    sdk.service_config()
        .and_then(|c| c.load_config(key))
        .or_else(|| sdk.endpoint_url().map(str::to_owned))
}

/// The DynamoDB client: the shared configuration as loaded (its timeouts are DynamoDB's).
pub fn dynamodb_client(sdk: &SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::from_conf(dynamodb_config(sdk).build())
}

/// The DynamoDB client's configuration, for a caller that adds to it before building the
/// client (the tests' recorder of what the store writes, `setup::build_aws`).
pub fn dynamodb_config(sdk: &SdkConfig) -> aws_sdk_dynamodb::config::Builder {
    aws_sdk_dynamodb::config::Builder::from(sdk).interceptor(CallSpans)
}

/// The SQS client for the queue at `queue_url` (the finalize function's dead-letter queue, read
/// by the admin command). An AWS queue's region (`sqs.<region>.amazonaws.com`) is the one the
/// client calls, whatever the configured region; any other host (a VPC endpoint, an emulator)
/// is the client's endpoint (unless one is configured for SQS) and needs the configured region.
pub fn sqs_client(sdk: &SdkConfig, queue_url: &str) -> Result<aws_sdk_sqs::Client, String> {
    let conf = aws_sdk_sqs::config::Builder::from(sdk).interceptor(CallSpans);
    let conf = match queue_place(queue_url)? {
        (_, Some(region)) => conf.region(aws_types::region::Region::new(region)),
        _ if sdk.region().is_none() => {
            return Err(format!(
                "{queue_url:?} names no AWS region (it is not sqs.<region>.amazonaws.com): set AWS_REGION, or `region` in the profile's config"
            ))
        }
        (origin, None) if configured_endpoint(sdk, "SQS").is_none() => conf.endpoint_url(origin),
        _ => conf,
    };
    Ok(aws_sdk_sqs::Client::from_conf(conf.build()))
}

/// Where a queue URL points: its origin (`scheme://host:port`), and its region for SQS in an
/// AWS region (`https://sqs.<region>.amazonaws.com/<account>/<queue>`, or `.amazonaws.com.cn`,
/// `sqs-fips.`); any other `http(s)://host/<account>/<queue>` has none.
fn queue_place(queue_url: &str) -> Result<(String, Option<String>), String> {
    let not = |why: &str| format!("{queue_url:?} is not a queue URL ({why})");
    let uri: http::Uri = queue_url.parse().map_err(|_| not("unreadable"))?;
    let scheme = uri
        .scheme_str()
        .filter(|s| matches!(*s, "http" | "https"))
        .ok_or_else(|| not("not http:// or https://"))?;
    let authority = uri.authority().ok_or_else(|| not("no host"))?;
    if uri.path().split('/').filter(|p| !p.is_empty()).count() < 2 {
        return Err(not("no account and queue in its path"));
    }
    let region = match authority.host().split('.').collect::<Vec<_>>()[..] {
        ["sqs" | "sqs-fips", region, "amazonaws", "com"]
        | ["sqs" | "sqs-fips", region, "amazonaws", "com", "cn"] => Some(region.to_owned()),
        _ => None,
    };
    let origin = format!("{scheme}://{authority}");
    Ok((origin, region.filter(|r| !r.is_empty())))
}

/// The S3 client: longer timeouts (bodies), path-style addressing when asked (S3-compatible
/// servers), and checksums only where S3 requires them. Uploads carry the SHA-256 the service
/// computed anyway (`x-amz-checksum-sha256`, which S3 verifies), so a CRC32 of every body
/// besides it would be a second hash for nothing; in the SDK's default mode it would also go
/// as an `aws-chunked` trailer, which S3-compatible servers do not all accept. On answers, the
/// SDK would check a whole object's checksum against a ranged read's bytes, which cannot match.
pub fn s3_client(sdk: &SdkConfig, path_style: bool) -> aws_sdk_s3::Client {
    use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
    let conf = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(path_style)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .interceptor(CallSpans)
        .timeout_config(timeouts(S3_ATTEMPT, S3_OPERATION));
    aws_sdk_s3::Client::from_conf(conf.build())
}

/// The credentials the SDK's clients sign with, for what we sign ourselves: resolved through
/// the SDK's identity cache as the clients' own calls are, so each call gets the credentials a
/// request made now would carry, refreshed as the SDK refreshes them.
#[derive(Debug, Clone)]
pub struct SigningCredentials {
    cache: SharedIdentityCache,
    resolver: SharedIdentityResolver,
    components: RuntimeComponents,
}

impl SigningCredentials {
    pub fn new(sdk: &SdkConfig) -> Result<Self, String> {
        let cache = sdk
            .identity_cache()
            .ok_or("the SDK configuration has no identity cache")?;
        let provider = sdk
            .credentials_provider()
            .ok_or("the SDK configuration has no credentials provider")?;
        let resolver = SharedIdentityResolver::new(provider);
        // The cache reads only the time source and the sleep of these components; a set of
        // them must still name an auth scheme, an endpoint resolver and a retry strategy,
        // which nothing here calls.
        let sigv4 = AuthSchemeId::new("sigv4");
        let options = StaticAuthSchemeOptionResolver::new(vec![sigv4.clone()]);
        let components = RuntimeComponentsBuilder::new("attachments signing credentials")
            .with_identity_cache(Some(cache.clone()))
            .with_identity_resolver(sigv4, resolver.clone())
            .with_auth_scheme(NoAuthScheme::new())
            .with_auth_scheme_option_resolver(Some(options))
            .with_endpoint_resolver(Some(StaticUriEndpointResolver::uri("https://unused")))
            .with_retry_strategy(Some(NeverRetryStrategy::new()))
            .with_time_source(sdk.time_source())
            .with_sleep_impl(sdk.sleep_impl())
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            cache,
            resolver,
            components,
        })
    }

    /// The current credentials, with their expiry when they have one.
    pub async fn get(&self) -> StoreResult<Credentials> {
        let failed =
            |e: &dyn std::fmt::Display| StoreError::Unavailable(format!("s3 credentials: {e}"));
        let resolver = self.resolver.clone();
        let identity = self
            .cache
            .resolve_cached_identity(resolver, &self.components, &ConfigBag::base())
            .await
            .map_err(|e| failed(&DisplayErrorContext(&*e)))?;
        let not_aws = || failed(&"the identity resolved is not AWS credentials");
        identity.data::<Credentials>().cloned().ok_or_else(not_aws)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_types::os_shim_internal::Env;

    /// A self-signed CA certificate, only ever parsed.
    const TEST_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBkzCCATmgAwIBAgIUdtRyfd/bjT9xHRaIgBktU68kBGAwCgYIKoZIzj0EAwIw
HjEcMBoGA1UEAwwTYXR0YWNobWVudHMtdGVzdC1jYTAgFw0yNjEyMDIxODQ0MDZa
GA8yMTI2MTEwODE4NDQwNlowHjEcMBoGA1UEAwwTYXR0YWNobWVudHMtdGVzdC1j
YTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABKcf7w7CU1QIhDXNN9WLgMGyu1/u
+ZvBsjiquQbL8NS0CtW3qnhrO+CynyKW/JCNPTdBlppTvprIFoSYBq0HwSWjUzBR
MB0GA1UdDgQWBBRfHiPQZfN4lOlroa8092sIMEBDvDAfBgNVHSMEGDAWgBRfHiPQ
ZfN4lOlroa8092sIMEBDvDAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0gA
MEUCIGKBkmVY00T1DnoxXtNppdwI/77syBQkWSuotoGVKy4nAiEAzn5lBHolM1Yx
au7sY8ApNtM0FEtsjZLX8I+a6MMZJHM=
-----END CERTIFICATE-----
";

    /// An environment with no profile files and no instance metadata, plus `vars`.
    fn env(vars: &[(&'static str, &'static str)]) -> Env {
        let mut all = vec![
            ("AWS_CONFIG_FILE", "/nonexistent/attachments/config"),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/attachments/credentials",
            ),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ];
        all.extend_from_slice(vars);
        Env::from_slice(&all)
    }

    #[tokio::test]
    async fn a_missing_region_names_its_variable() {
        let e = load(loader(None).unwrap().env(env(&[]))).await.unwrap_err();
        assert_eq!(e.var, "AWS_REGION");
        let sdk = load(
            loader(None)
                .unwrap()
                .env(env(&[("AWS_DEFAULT_REGION", "eu-west-3")])),
        )
        .await
        .unwrap();
        assert_eq!(sdk.region().map(|r| r.as_ref()), Some("eu-west-3"));
    }

    #[tokio::test]
    async fn endpoints_are_read_as_the_sdk_reads_them() {
        let sdk = load(loader(None).unwrap().env(env(&[
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
            ("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:2"),
        ])))
        .await
        .unwrap();
        assert_eq!(
            configured_endpoint(&sdk, "S3").as_deref(),
            Some("http://127.0.0.1:2")
        );
        assert_eq!(
            configured_endpoint(&sdk, "DynamoDB").as_deref(),
            Some("http://127.0.0.1:1")
        );
        let sdk = load(
            loader(None)
                .unwrap()
                .env(env(&[("AWS_REGION", "us-east-1")])),
        )
        .await
        .unwrap();
        assert_eq!(configured_endpoint(&sdk, "S3"), None);
    }

    #[test]
    fn queue_urls_say_where_the_queue_is() {
        let aws = |origin: &str, region: &str| Ok((origin.to_owned(), Some(region.to_owned())));
        assert_eq!(
            queue_place("https://sqs.eu-west-3.amazonaws.com/123456789012/dlq"),
            aws("https://sqs.eu-west-3.amazonaws.com", "eu-west-3")
        );
        assert_eq!(
            queue_place("https://sqs.cn-north-1.amazonaws.com.cn/123456789012/dlq"),
            aws("https://sqs.cn-north-1.amazonaws.com.cn", "cn-north-1")
        );
        assert_eq!(
            queue_place("http://127.0.0.1:5000/000000000000/dlq"),
            Ok(("http://127.0.0.1:5000".into(), None))
        );
        assert_eq!(
            queue_place("https://vpce-1a2b.sqs.us-east-1.vpce.amazonaws.com/123456789012/dlq"),
            Ok((
                "https://vpce-1a2b.sqs.us-east-1.vpce.amazonaws.com".into(),
                None
            ))
        );
        for bad in [
            "sqs.us-east-1.amazonaws.com/1/q",
            "ftp://sqs.us-east-1.amazonaws.com/1/q",
            "https://sqs.us-east-1.amazonaws.com/",
            "https://sqs.us-east-1.amazonaws.com/123456789012",
            "not a url",
        ] {
            assert!(queue_place(bad).is_err(), "{bad}");
        }
    }

    /// The admin command loads no region of its own: an AWS queue's URL names it; any other
    /// queue needs one configured.
    #[tokio::test]
    async fn a_queue_client_takes_its_region_from_the_url() {
        let no_region = loader(None).unwrap().env(env(&[])).load().await;
        let aws_queue = "https://sqs.eu-west-3.amazonaws.com/123456789012/dlq";
        let client = sqs_client(&no_region, aws_queue).unwrap();
        let region = client.config().region().map(|r| r.as_ref().to_owned());
        assert_eq!(region.as_deref(), Some("eu-west-3"));
        let elsewhere = "http://127.0.0.1:5000/000000000000/dlq";
        let e = sqs_client(&no_region, elsewhere).unwrap_err();
        assert!(e.contains("AWS_REGION"), "{e}");
        let with_region = loader(None)
            .unwrap()
            .env(env(&[("AWS_REGION", "us-east-1")]))
            .load()
            .await;
        let client = sqs_client(&with_region, elsewhere).unwrap();
        let region = client.config().region().map(|r| r.as_ref().to_owned());
        assert_eq!(region.as_deref(), Some("us-east-1"));
    }

    #[test]
    fn a_ca_bundle_must_hold_pem_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.pem");
        std::fs::write(&good, TEST_CA).unwrap();
        assert!(loader(Some(&good)).is_ok());
        let bad = dir.path().join("bad.pem");
        std::fs::write(&bad, "not a certificate").unwrap();
        let broken = dir.path().join("broken.pem");
        std::fs::write(&broken, TEST_CA.replace("MIIB", "AAAA")).unwrap();
        for path in [bad, broken, dir.path().join("missing.pem")] {
            let e = loader(Some(&path)).err().unwrap();
            assert_eq!(e.var, "AWS_CA_BUNDLE", "{}", path.display());
            assert!(e.problem.contains(&path.display().to_string()), "{e}");
        }
    }
}
