//! Wiring: builds the storage adapters the configuration names and the [`App`] on top of them.
//! Runs once per process or Lambda container.

use std::path::Path;
use std::sync::Arc;

use crate::config::{err, Backend, Config};
use crate::domain::TenantId;
use crate::service::App;
use crate::signing::Signer;
use crate::store::dynamo::{self, DynamoStore};
use crate::store::fs_blob::{self, FsBlobStore};
use crate::store::s3::{self, S3BlobStore};
use crate::store::sqlite::SqliteStore;
use crate::store::{sdk, BlobStore, MetadataStore, StoreError};

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

/// The app over a backend's stores, with its limits and Crafter's settings from configuration.
fn built(
    cfg: &Config,
    meta: Arc<dyn MetadataStore>,
    blobs: Arc<dyn BlobStore>,
    signer: Signer,
    fs_blobs: Option<Arc<FsBlobStore>>,
) -> Built {
    let mut app = App::new(meta, blobs, signer, cfg.limits.clone());
    app.crafter = cfg.crafter.clone();
    let app = Arc::new(app);
    Built { app, fs_blobs }
}

pub async fn build(cfg: &Config) -> Result<Built, SetupError> {
    match cfg.backend {
        Backend::Embedded => build_embedded(cfg),
        Backend::Aws { .. } => build_aws(cfg, &load_aws().await?, None).await,
    }
}

/// The AWS SDK's configuration, loaded from the process environment as the SDK documents it
/// (credentials, region, endpoints, profiles), plus `AWS_CA_BUNDLE`; a region is required.
pub async fn load_aws() -> Result<aws_config::SdkConfig, SetupError> {
    Ok(sdk::load(aws_loader()?).await?)
}

/// [`load_aws`] for a client that may take its region from elsewhere: the admin command's
/// queue client reads it from the queue's URL.
pub async fn load_aws_any_region() -> Result<aws_config::SdkConfig, SetupError> {
    Ok(aws_loader()?.load().await)
}

fn aws_loader() -> Result<aws_config::ConfigLoader, SetupError> {
    let ca_bundle = std::env::var_os("AWS_CA_BUNDLE").filter(|v| !v.is_empty());
    Ok(sdk::loader(ca_bundle.as_deref().map(Path::new))?)
}

/// DynamoDB and S3 through the AWS SDK, configured by `aws` (on Lambda, the function's role and
/// region). The clients are built here once and shared by every request; they connect, and
/// resolve credentials, on first use. `dynamodb` is a client of the caller's (see [`aws_stores`]).
pub async fn build_aws(
    cfg: &Config,
    aws: &aws_config::SdkConfig,
    dynamodb: Option<aws_sdk_dynamodb::Client>,
) -> Result<Built, SetupError> {
    // Configuration refuses the AWS backend without a secret.
    let signer = cfg
        .secret
        .clone()
        .ok_or_else(|| err("ATTACHMENTS_SECRET", "must be set for backend aws"))?;
    let (meta, blobs) = aws_stores(cfg, aws, dynamodb).await?;
    Ok(built(cfg, Arc::new(meta), Arc::new(blobs), signer, None))
}

const DYNAMODB: (&str, &str) = ("DynamoDB", "AWS_ENDPOINT_URL_DYNAMODB");
const S3: (&str, &str) = ("S3", "AWS_ENDPOINT_URL_S3");

/// Where the AWS backend's data lives: the configured table and bucket, the region the SDK's
/// configuration names, and the bucket's URL.
struct AwsTarget<'c> {
    table: &'c str,
    bucket: &'c str,
    region: String,
    bucket_url: String,
}

/// The backend's [`AwsTarget`]. Each service's endpoint is resolved by the SDK's endpoint rules (the clients use the
/// default rules) once at start: a bad `AWS_ENDPOINT_URL_*` or region would otherwise fail every
/// call. S3's is the bucket's URL, which form uploads are posted to.
async fn aws_target<'c>(
    cfg: &'c Config,
    aws: &aws_config::SdkConfig,
) -> Result<AwsTarget<'c>, SetupError> {
    let Backend::Aws { table, bucket } = &cfg.backend else {
        return Err(err("ATTACHMENTS_BACKEND", "must be aws").into());
    };
    let region = aws
        .region()
        .ok_or_else(|| err("AWS_REGION", "must be set for backend aws"))?
        .to_string();
    // Where a service's endpoint went wrong: the endpoint variable when one is configured, else
    // the region the SDK derived it from.
    let fail = |(id, var): (&str, &'static str), e: String| {
        let configured = sdk::configured_endpoint(aws, id).is_some();
        let var = if configured { var } else { "AWS_REGION" };
        SetupError::from(err(var, format!("no usable endpoint: {e}")))
    };
    // DynamoDB's rules take a configured endpoint as it is: check that it is a URL at all.
    for service in [DYNAMODB, S3] {
        if let Some(url) = sdk::configured_endpoint(aws, service.0) {
            let uri: http::Uri = url
                .parse()
                .map_err(|e| fail(service, format!("{url:?}: {e}")))?;
            if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                let problem = format!("{url:?} is not an http:// or https:// URL");
                return Err(fail(service, problem));
            }
        }
    }
    // One service's endpoint through its SDK's default rules, with that service's own parameters.
    macro_rules! resolve {
        ($sdk:ident, $service:expr $(; $($param:ident($value:expr)),*)?) => {{
            use $sdk::config::endpoint::{DefaultResolver, Params, ResolveEndpoint as _};
            let params = Params::builder()
                .region(&region)
                .set_use_fips(aws.use_fips())
                .set_use_dual_stack(aws.use_dual_stack())
                .set_endpoint(sdk::configured_endpoint(aws, $service.0))
                $($(.$param($value))*)?
                .build()
                .map_err(|e| fail($service, e.to_string()))?;
            DefaultResolver::new()
                .resolve_endpoint(&params)
                .await
                .map_err(|e| fail($service, e.to_string()))?
        }};
    }
    resolve!(aws_sdk_dynamodb, DYNAMODB);
    let s3 = resolve!(aws_sdk_s3, S3; bucket(bucket), force_path_style(cfg.s3_path_style));
    let bucket_url = s3.url().trim_end_matches('/').to_owned();
    Ok(AwsTarget {
        table,
        bucket,
        region,
        bucket_url,
    })
}

/// The two AWS adapters, configured as the service uses them, over the clients of `aws` (one
/// HTTPS client, one credentials cache), or over a DynamoDB client of the caller's (the tests'
/// clients record what the store sends, through an interceptor).
pub async fn aws_stores(
    cfg: &Config,
    aws: &aws_config::SdkConfig,
    dynamodb: Option<aws_sdk_dynamodb::Client>,
) -> Result<(DynamoStore, S3BlobStore), SetupError> {
    let t = aws_target(cfg, aws).await?;
    let dynamodb = dynamodb.unwrap_or_else(|| sdk::dynamodb_client(aws));
    let s3 = sdk::s3_client(aws, cfg.s3_path_style);
    let credentials = sdk::SigningCredentials::new(aws).map_err(SetupError::Other)?;
    Ok((
        DynamoStore::new(dynamodb, t.table, cfg.leftover_shards),
        S3BlobStore::new(s3, t.bucket, t.bucket_url, t.region, credentials),
    ))
}

/// Creates the DynamoDB table and the S3 bucket the configuration names, where they are missing.
/// For local emulators; on AWS, `sam deploy` creates both.
pub async fn init_aws(cfg: &Config, aws: &aws_config::SdkConfig) -> Result<String, SetupError> {
    let target = aws_target(cfg, aws).await?;
    let (table, bucket) = (target.table, target.bucket);
    let dynamodb = sdk::dynamodb_client(aws);
    let table_done = if dynamo::table_exists(&dynamodb, table).await? {
        format!("table {table} exists")
    } else {
        dynamo::create_table(&dynamodb, table).await?;
        format!("created table {table}")
    };
    let client = sdk::s3_client(aws, cfg.s3_path_style);
    let cannot = |e| SetupError::Other(format!("ATTACHMENTS_BUCKET: cannot create {bucket}: {e}"));
    let created = s3::ensure_bucket(&client, bucket, &target.region).await;
    let bucket_done = match created.map_err(cannot)? {
        true => format!("created bucket {bucket}"),
        false => format!("bucket {bucket} exists"),
    };
    Ok(format!("{table_done}\n{bucket_done}"))
}

/// SQLite and files under the data folder.
pub fn build_embedded(cfg: &Config) -> Result<Built, SetupError> {
    let dir = &cfg.data_dir;
    let io = |source| SetupError::DataDir {
        path: dir.display().to_string(),
        source,
    };
    let blobs_dir = dir.join("blobs");
    fs_blob::create_private_dir(dir).map_err(io)?;
    fs_blob::create_private_dir(&blobs_dir).map_err(io)?;
    let signer = match &cfg.secret {
        Some(signer) => signer.clone(),
        None => load_or_create_secret(dir).map_err(io)?,
    };
    let meta = Arc::new(SqliteStore::open(&dir.join("attachments.db"))?);
    let blobs = Arc::new(FsBlobStore::new(blobs_dir, &cfg.public_url, signer.clone()));
    Ok(built(cfg, meta, blobs.clone(), signer, Some(blobs)))
}

/// The embedded mode's secret lives in the data folder, so links and cursors survive restarts.
/// Two processes starting together on an empty folder agree on one secret: each writes its own
/// candidate completely (synced, readable by its owner only) and publishes it with a link that
/// fails if a secret exists; the loser reads the winner's.
fn load_or_create_secret(dir: &Path) -> std::io::Result<Signer> {
    use std::io::Write;
    let path = dir.join("secret.key");
    match read_secret(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        other => return other,
    }
    let signer = Signer::random().map_err(|e| std::io::Error::other(e.to_string()))?;
    let candidate = dir.join(format!("secret.key.{}", uuid::Uuid::new_v4()));
    let mut f = fs_blob::private_file().create_new(true).open(&candidate)?;
    f.write_all(hex::encode(signer.key_bytes()).as_bytes())?;
    f.sync_all()?;
    let published = std::fs::hard_link(&candidate, &path);
    let _ = std::fs::remove_file(&candidate);
    match published {
        Ok(()) => fs_blob::sync_folder_of(&path).map(|()| signer),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_secret(&path),
        Err(e) => Err(e),
    }
}

fn read_secret(path: &Path) -> std::io::Result<Signer> {
    use std::io::{Error, ErrorKind};
    let signer = Signer::from_hex(std::fs::read_to_string(path)?.trim());
    let corrupt = format!("{} is corrupt", path.display());
    signer.ok_or_else(|| Error::new(ErrorKind::InvalidData, corrupt))
}

fn keys_error(e: impl std::fmt::Display) -> SetupError {
    SetupError::Other(format!("ATTACHMENTS_API_KEYS: {e}"))
}

/// Registers the keys of `ATTACHMENTS_API_KEYS` (none on a normal AWS deployment, so a function's
/// start writes nothing); what a Lambda function does at start.
pub async fn register_keys(app: &App, cfg: &Config) -> Result<(), SetupError> {
    for k in &cfg.api_keys {
        let tenant = TenantId::parse(&k.tenant).map_err(keys_error)?;
        app.register_key(&tenant, &k.key, k.owner.as_deref())
            .await
            .map_err(keys_error)?;
    }
    Ok(())
}

/// Loads the event fixtures' data when `ATTACHMENTS_LOAD_FIXTURES` asks for it and the store is
/// new: `sam local invoke` with `events/env.json` starts every invocation with an empty `/tmp`.
/// A store that is not new (a warm container, a restart under `cargo lambda watch`) is left as
/// it is, so keys from `ATTACHMENTS_API_KEYS` are registered after this.
pub async fn load_fixtures_if_asked(app: &App, cfg: &Config) -> Result<(), SetupError> {
    if !cfg.load_fixtures {
        return Ok(());
    }
    let done = match crate::fixtures::load(app).await {
        Ok(()) => "loaded the event fixtures' data",
        Err(crate::fixtures::FixturesError::NotNew) => {
            "the store is not new: the event fixtures' data is not loaded again"
        }
        Err(e) => return Err(SetupError::Other(format!("ATTACHMENTS_LOAD_FIXTURES: {e}"))),
    };
    tracing::info!(data = %cfg.data_dir.display(), "{done}");
    Ok(())
}

/// Registers the keys of `ATTACHMENTS_API_KEYS`, and when the store has no key at all, creates
/// one for tenant `default` and returns it (to be printed once).
pub async fn seed_keys(app: &App, cfg: &Config) -> Result<Option<String>, SetupError> {
    register_keys(app, cfg).await?;
    if !app.list_keys().await.map_err(keys_error)?.is_empty() {
        return Ok(None);
    }
    let tenant = TenantId::parse("default").map_err(|e| SetupError::Other(e.to_string()))?;
    let key = app.create_key(&tenant, None).await.map_err(keys_error)?;
    Ok(Some(key.secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processes_starting_together_agree_on_one_secret() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let keys: Vec<[u8; 32]> = std::thread::scope(|s| {
                let starts: Vec<_> = (0..4)
                    .map(|_| s.spawn(|| *load_or_create_secret(dir.path()).unwrap().key_bytes()))
                    .collect();
                starts.into_iter().map(|t| t.join().unwrap()).collect()
            });
            assert!(keys.iter().all(|k| *k == keys[0]));
            // Only the secret is left: no candidate lies around.
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(dir.path().join("secret.key"))
                    .unwrap()
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o777, 0o600);
            }
        }
    }

    #[tokio::test]
    async fn a_function_loads_the_fixtures_only_when_asked_and_only_once() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().to_str().unwrap().to_owned();
        let cfg = |load: &str| {
            Config::from_lookup(|k| match k {
                "ATTACHMENTS_DATA_DIR" => Some(data.clone()),
                "ATTACHMENTS_LOAD_FIXTURES" => Some(load.to_owned()),
                _ => None,
            })
            .unwrap()
        };
        let app = build(&cfg("false")).await.unwrap().app;
        load_fixtures_if_asked(&app, &cfg("false")).await.unwrap();
        assert!(crate::fixtures::is_new(&app).await.unwrap());
        load_fixtures_if_asked(&app, &cfg("true")).await.unwrap();
        let who = app.authenticate(Some(crate::fixtures::KEY)).await.unwrap();
        let profile = crate::domain::ParentRef::new(
            crate::domain::ParentKind::parse("profile").unwrap(),
            crate::domain::ParentId::parse("59284659d4c650213cc2f3fc").unwrap(),
        );
        app.get_parent(&who, &profile).await.unwrap();
        // A fixture deletes the profile; the next start (a warm container, a restart under
        // `cargo lambda watch`) leaves the store as the fixtures left it.
        assert_eq!(
            app.delete_parent(&who, &profile).await.unwrap(),
            crate::service::ParentDeletion::Deleted
        );
        load_fixtures_if_asked(&app, &cfg("true")).await.unwrap();
        assert!(app.get_parent(&who, &profile).await.is_err());
    }

    fn aws_cfg() -> Config {
        let vars = [
            ("ATTACHMENTS_BACKEND", "aws"),
            ("ATTACHMENTS_TABLE", "t"),
            ("ATTACHMENTS_BUCKET", "my-bucket"),
            (
                "ATTACHMENTS_SECRET",
                "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
            ),
        ];
        Config::from_lookup(|k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        })
        .unwrap()
    }

    async fn sdk_with(vars: &[(&'static str, &'static str)]) -> aws_config::SdkConfig {
        let mut all = vec![
            ("AWS_CONFIG_FILE", "/nonexistent/attachments/config"),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/attachments/credentials",
            ),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
        ];
        all.extend_from_slice(vars);
        let env = aws_types::os_shim_internal::Env::from_slice(&all);
        sdk::load(sdk::loader(None).unwrap().env(env))
            .await
            .unwrap()
    }

    fn var_of(r: Result<(DynamoStore, S3BlobStore), SetupError>) -> &'static str {
        match r {
            Err(SetupError::Config(e)) => e.var,
            Err(other) => panic!("{other}"),
            Ok(_) => panic!("accepted"),
        }
    }

    #[tokio::test]
    async fn bad_endpoints_stop_the_start_naming_their_variable() {
        let cfg = aws_cfg();
        for (var, name) in [
            ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_S3"),
            ("AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_DYNAMODB"),
        ] {
            for url in ["not a url", "ftp://host", "/path"] {
                let sdk = sdk_with(&[("AWS_REGION", "us-east-1"), (var, url)]).await;
                assert_eq!(var_of(aws_stores(&cfg, &sdk, None).await), name, "{url}");
            }
        }
        let sdk = sdk_with(&[("AWS_REGION", "not a region!")]).await;
        assert_eq!(var_of(aws_stores(&cfg, &sdk, None).await), "AWS_REGION");
    }

    /// Form uploads go where the SDK's endpoint rules put the bucket: the region's partition,
    /// FIPS when asked, path-style when configured.
    #[tokio::test]
    async fn the_bucket_url_follows_the_sdks_endpoint_rules() {
        let mut cfg = aws_cfg();
        for (vars, want) in [
            (
                &[("AWS_REGION", "eu-west-1")][..],
                "https://my-bucket.s3.eu-west-1.amazonaws.com",
            ),
            (
                &[("AWS_REGION", "cn-north-1")][..],
                "https://my-bucket.s3.cn-north-1.amazonaws.com.cn",
            ),
            (
                &[
                    ("AWS_REGION", "us-gov-west-1"),
                    ("AWS_USE_FIPS_ENDPOINT", "true"),
                ][..],
                "https://my-bucket.s3-fips.us-gov-west-1.amazonaws.com",
            ),
        ] {
            let sdk = sdk_with(vars).await;
            let url = aws_target(&cfg, &sdk).await.unwrap().bucket_url;
            assert_eq!(url, want);
        }
        cfg.s3_path_style = true;
        let sdk = sdk_with(&[
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
        ])
        .await;
        let url = aws_target(&cfg, &sdk).await.unwrap().bucket_url;
        assert_eq!(url, "http://127.0.0.1:9000/my-bucket");
    }
}
