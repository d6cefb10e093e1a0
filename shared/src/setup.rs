//! Wiring: builds the storage adapters the configuration names and the [`App`] on top of them.
//! Runs once per process or Lambda container.

use std::path::Path;
use std::sync::Arc;

use crate::config::{Backend, Config};
use crate::service::dialects::{CrafterSettings, DialectSettings};
use crate::service::{App, Limits};
use crate::signing::Signer;
use crate::store::dynamo::DynamoStore;
use crate::store::fs_blob::FsBlobStore;
use crate::store::s3::S3BlobStore;
use crate::store::sqlite::SqliteStore;
use crate::store::StoreError;

/// What a start can fail on; the message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("configuration: {0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("data folder {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Other(String),
}

/// The built application, and the embedded blob store when there is one (the local server
/// serves its links).
#[derive(Debug, Clone)]
pub struct Built {
    pub app: Arc<App>,
    pub fs_blobs: Option<Arc<FsBlobStore>>,
}

fn limits(cfg: &Config) -> Limits {
    Limits {
        max_upload_bytes: cfg.max_upload_bytes,
        link_ttl: cfg.link_ttl,
        pending_ttl: cfg.upload_expiry,
        direct_post_max_bytes: cfg.direct_post_max_bytes,
        direct_max_bytes: cfg.direct_max_bytes,
        upload_link_ttl: cfg.upload_link_ttl,
    }
}

/// The compatible APIs' settings; every backend's wiring applies them with `App::with_dialects`.
pub fn dialect_settings(cfg: &Config) -> DialectSettings {
    DialectSettings {
        crafter: CrafterSettings {
            allowed_types: cfg.crafter_allowed_types.clone(),
            max_file_bytes: cfg.crafter_max_file_bytes,
        },
    }
}

/// Builds the app for the configured backend.
pub async fn build(cfg: &Config) -> Result<Built, SetupError> {
    match cfg.backend {
        Backend::Embedded => build_embedded(cfg),
        Backend::Aws => build_aws(cfg, aws_defaults()).await,
    }
}

/// The AWS configuration loader with our HTTPS client: rustls with ring, over hyper 1. The
/// SDK's own default client uses aws-lc, which adds about 2 MB to every function for the same
/// TLS.
pub fn aws_defaults() -> aws_config::ConfigLoader {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    let https = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(https)
}

/// DynamoDB and S3. Credentials, region and endpoints come from `loader`, which reads the
/// standard AWS sources: the environment first (on Lambda, the function's role), then the
/// shared config files, web identity, ECS and EC2 metadata. `AWS_ENDPOINT_URL`,
/// `AWS_ENDPOINT_URL_DYNAMODB` and `AWS_ENDPOINT_URL_S3` point the clients at any compatible
/// server. The clients are built here once and shared by every request.
pub async fn build_aws(
    cfg: &Config,
    loader: aws_config::ConfigLoader,
) -> Result<Built, SetupError> {
    let secret = cfg
        .secret_hex
        .as_deref()
        .ok_or_else(|| missing("ATTACHMENTS_SECRET"))?;
    let signer = signer_from_hex(secret)?;
    let sdk = loader.load().await;
    let (meta, blobs) = aws_stores(cfg, &sdk)?;
    let app = Arc::new(
        App::new(Arc::new(meta), Arc::new(blobs), signer, limits(cfg))
            .with_dialects(dialect_settings(cfg)),
    );
    Ok(Built {
        app,
        fs_blobs: None,
    })
}

fn missing(var: &'static str) -> SetupError {
    SetupError::Config(crate::config::ConfigError {
        var,
        problem: "must be set for backend aws".into(),
    })
}

/// The table and bucket the AWS backend needs, and the region it needs them in.
fn table_and_bucket(
    cfg: &Config,
    sdk: &aws_config::SdkConfig,
) -> Result<(String, String), SetupError> {
    let table = cfg
        .table
        .clone()
        .ok_or_else(|| missing("ATTACHMENTS_TABLE"))?;
    let bucket = cfg
        .bucket
        .clone()
        .ok_or_else(|| missing("ATTACHMENTS_BUCKET"))?;
    if sdk.region().is_none() {
        return Err(missing("AWS_REGION"));
    }
    Ok((table, bucket))
}

/// The two AWS adapters over the clients of `sdk`, configured as the service uses them.
pub fn aws_stores(
    cfg: &Config,
    sdk: &aws_config::SdkConfig,
) -> Result<(DynamoStore, S3BlobStore), SetupError> {
    use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};

    let (table, bucket) = table_and_bucket(cfg, sdk)?;
    let dynamo = aws_sdk_dynamodb::Client::new(sdk);
    let s3_config = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(cfg.s3_path_style)
        // Uploads carry the SHA-256 the service already computed; a second checksum (CRC32 by
        // default) on every request and response would only cost time.
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .build();
    let s3 = aws_sdk_s3::Client::from_conf(s3_config);
    Ok((
        DynamoStore::new(dynamo, table),
        S3BlobStore::new(s3, bucket, sdk.credentials_provider()),
    ))
}

/// Creates the DynamoDB table and the S3 bucket the configuration names, where they are missing.
/// For local emulators; on AWS, `sam deploy` creates both.
pub async fn init_aws(cfg: &Config) -> Result<String, SetupError> {
    let sdk = aws_defaults().load().await;
    let (table, bucket) = table_and_bucket(cfg, &sdk)?;
    let mut done = Vec::new();
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    if dynamo
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .is_err()
    {
        crate::store::dynamo::create_table(&dynamo, &table).await?;
        done.push(format!("created table {table}"));
    } else {
        done.push(format!("table {table} exists"));
    }
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(cfg.s3_path_style)
            .build(),
    );
    if s3.head_bucket().bucket(&bucket).send().await.is_err() {
        s3.create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .map_err(|e| {
                SetupError::Other(format!(
                    "ATTACHMENTS_BUCKET: cannot create {bucket}: {}",
                    aws_sdk_s3::error::DisplayErrorContext(&e)
                ))
            })?;
        done.push(format!("created bucket {bucket}"));
    } else {
        done.push(format!("bucket {bucket} exists"));
    }
    Ok(done.join("\n"))
}

/// SQLite and files under the data folder.
pub fn build_embedded(cfg: &Config) -> Result<Built, SetupError> {
    let dir = &cfg.data_dir;
    let io = |source| SetupError::DataDir {
        path: dir.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dir.join("blobs")).map_err(io)?;
    let signer = match &cfg.secret_hex {
        Some(h) => signer_from_hex(h)?,
        None => load_or_create_secret(dir).map_err(io)?,
    };
    let meta = Arc::new(SqliteStore::open(&dir.join("attachments.db"))?);
    let blobs = Arc::new(FsBlobStore::new(
        dir.join("blobs"),
        &cfg.public_url,
        signer.clone(),
    ));
    let app = Arc::new(
        App::new(meta, blobs.clone(), signer, limits(cfg)).with_dialects(dialect_settings(cfg)),
    );
    Ok(Built {
        app,
        fs_blobs: Some(blobs),
    })
}

pub(crate) fn signer_from_hex(h: &str) -> Result<Signer, SetupError> {
    let mut key = [0u8; 32];
    hex::decode_to_slice(h, &mut key)
        .map_err(|_| SetupError::Other("ATTACHMENTS_SECRET: must be 64 hex characters".into()))?;
    Ok(Signer::new(key))
}

/// The embedded mode's secret lives in the data folder, so links and cursors survive restarts.
fn load_or_create_secret(dir: &Path) -> std::io::Result<Signer> {
    let path = dir.join("secret.key");
    match std::fs::read_to_string(&path) {
        Ok(h) => {
            let mut key = [0u8; 32];
            hex::decode_to_slice(h.trim(), &mut key).map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} is corrupt", path.display()),
                )
            })?;
            Ok(Signer::new(key))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let signer = Signer::random().map_err(|e| std::io::Error::other(e.to_string()))?;
            write_private(&path, &hex::encode(signer.key_bytes()))?;
            Ok(signer)
        }
        Err(e) => Err(e),
    }
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(contents.as_bytes())
}

/// Registers the keys of `ATTACHMENTS_API_KEYS` (none on a normal AWS deployment, so a function's
/// start writes nothing); what a Lambda function does at start.
pub async fn register_keys(app: &App, cfg: &Config) -> Result<(), SetupError> {
    use crate::domain::TenantId;
    for k in &cfg.api_keys {
        let tenant = TenantId::parse(&k.tenant)
            .map_err(|e| SetupError::Other(format!("ATTACHMENTS_API_KEYS: {e}")))?;
        app.register_key(&tenant, &k.key, k.owner.as_deref())
            .await
            .map_err(|e| SetupError::Other(format!("ATTACHMENTS_API_KEYS: {e}")))?;
    }
    Ok(())
}

/// Registers the keys of `ATTACHMENTS_API_KEYS`, and when the store has no key at all, creates
/// one for tenant `default` and returns it (to be printed once).
pub async fn seed_keys(app: &App, cfg: &Config) -> Result<Option<String>, SetupError> {
    use crate::domain::TenantId;
    let svc =
        |e: crate::service::ServiceError| SetupError::Other(format!("ATTACHMENTS_API_KEYS: {e}"));
    register_keys(app, cfg).await?;
    if app.list_keys().await.map_err(svc)?.is_empty() {
        let tenant = TenantId::parse("default").map_err(|e| SetupError::Other(e.to_string()))?;
        let key = app.create_key(&tenant, None).await.map_err(svc)?;
        return Ok(Some(key.secret));
    }
    Ok(None)
}
