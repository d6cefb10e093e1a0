//! Configuration, read once from the environment at start. Every error names the variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Which adapters serve the storage ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// SQLite and files under `data_dir`: one machine, no AWS account.
    Embedded,
    /// DynamoDB and S3.
    Aws,
}

/// An API key given in `ATTACHMENTS_API_KEYS`.
#[derive(Clone, PartialEq, Eq)]
pub struct SeedKey {
    pub tenant: String,
    pub key: String,
    pub owner: Option<String>,
}

impl std::fmt::Debug for SeedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeedKey")
            .field("tenant", &self.tenant)
            .field("key", &"<redacted>")
            .field("owner", &self.owner)
            .finish()
    }
}

/// The whole configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub backend: Backend,
    /// Local server address (`ATTACHMENTS_ADDR`).
    pub addr: SocketAddr,
    /// Embedded data folder (`ATTACHMENTS_DATA_DIR`).
    pub data_dir: PathBuf,
    /// Base URL of links to the local server (`ATTACHMENTS_PUBLIC_URL`).
    pub public_url: String,
    /// Connections the local server serves at once (`ATTACHMENTS_MAX_CONNECTIONS`).
    pub max_connections: usize,
    /// How long the local server waits for more of a request body (`ATTACHMENTS_BODY_IDLE_SECONDS`).
    pub body_idle: Duration,
    pub api_keys: Vec<SeedKey>,
    /// Largest request body accepted through the API (`ATTACHMENTS_MAX_UPLOAD_BYTES`).
    pub max_upload_bytes: usize,
    /// Lifetime of presigned links (`ATTACHMENTS_LINK_TTL_SECONDS`).
    pub link_ttl: Duration,
    /// Direct uploads up to this size are one form POST (`ATTACHMENTS_DIRECT_POST_MAX_BYTES`).
    pub direct_post_max_bytes: u64,
    /// The largest direct upload (`ATTACHMENTS_DIRECT_MAX_BYTES`).
    pub direct_max_bytes: u64,
    /// Lifetime of upload links (`ATTACHMENTS_UPLOAD_LINK_TTL_SECONDS`).
    pub upload_link_ttl: Duration,
    /// How long an upload may stay unfinished (`ATTACHMENTS_UPLOAD_EXPIRY_SECONDS`).
    pub upload_expiry: Duration,
    /// Secret for cursors and embedded links, hex (`ATTACHMENTS_SECRET`); embedded mode makes
    /// and keeps one in the data folder when unset.
    pub secret_hex: Option<String>,
    /// DynamoDB table (`ATTACHMENTS_TABLE`), AWS backend only.
    pub table: Option<String>,
    /// S3 bucket (`ATTACHMENTS_BUCKET`), AWS backend only.
    pub bucket: Option<String>,
    /// Path-style S3 addressing (`ATTACHMENTS_S3_PATH_STYLE`), for S3-compatible servers.
    pub s3_path_style: bool,
    /// A Lambda function loads the event fixtures' data into its embedded store at start, when
    /// the store is new (`ATTACHMENTS_LOAD_FIXTURES`; see [`crate::fixtures`]).
    pub load_fixtures: bool,
    /// JSON logs (`ATTACHMENTS_LOG_FORMAT=json`); Lambda defaults to JSON.
    pub json_logs: bool,
    /// Content types the Crafter Profile API accepts (`ATTACHMENTS_CRAFTER_ALLOWED_TYPES`,
    /// comma-separated); Crafter's own list by default.
    pub crafter_allowed_types: Vec<String>,
    /// The Crafter Profile API's file limit (`ATTACHMENTS_CRAFTER_MAX_FILE_BYTES`), 5 MiB by
    /// default as in Crafter; `max_upload_bytes` caps it further.
    pub crafter_max_file_bytes: usize,
    /// Origins whose browsers may call the API (`ATTACHMENTS_CORS_ORIGINS`, comma-separated;
    /// none by default). The local server applies it (see `http::cors`); on AWS the template's
    /// `ApiCorsOrigins` configures the HTTP API instead.
    pub cors_origins: Vec<String>,
    /// The CloudWatch namespace of the service's metrics (`ATTACHMENTS_METRICS_NAMESPACE`): set,
    /// every request and storage event writes its metrics as embedded metric format lines
    /// (the template sets it); unset, no metric line is written.
    pub metrics_namespace: Option<String>,
}

/// A configuration error; its message names the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}: {problem}")]
pub struct ConfigError {
    pub var: &'static str,
    pub problem: String,
}

fn err(var: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        problem: problem.into(),
    }
}

/// Payload limits of API Gateway and Lambda: a synchronous Lambda request carries at most 6 MB,
/// and API Gateway base64-encodes binary bodies (4 bytes for every 3). 4 MiB + 64 KiB of body
/// becomes about 5.7 MB of event, which leaves room for headers: a 4 MiB file fits.
pub const DEFAULT_MAX_UPLOAD_BYTES: usize = 4 * 1024 * 1024 + 64 * 1024;
/// Connections the local server serves at once, by default: each costs a little memory and a
/// file descriptor; past the cap, new ones wait in the listen queue.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// The longest link lifetime on AWS: what a Lambda role's temporary credentials can last.
pub const AWS_MAX_LINK_TTL_SECS: u64 = 12 * 3600;
/// The ceiling a Lambda deployment can accept at all (6 MB of event, base64).
pub const LAMBDA_MAX_UPLOAD_BYTES: usize = 6 * 1024 * 1024 / 4 * 3 - 16 * 1024;

/// Crafter Profile's default `validAttachmentMimeTypes`.
pub const DEFAULT_CRAFTER_ALLOWED_TYPES: &[&str] = &[
    "image/bmp",
    "image/gif",
    "image/jpeg",
    "image/png",
    "image/tiff",
    "image/svg+xml",
];
/// Crafter Profile's default upload limit (5 MiB).
pub const DEFAULT_CRAFTER_MAX_FILE_BYTES: usize = 5 * 1024 * 1024;

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the configuration through `get`, so tests need not touch the process environment.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let var = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let backend = match var("ATTACHMENTS_BACKEND").as_deref() {
            None | Some("embedded") => Backend::Embedded,
            Some("aws") => Backend::Aws,
            Some(other) => {
                return Err(err(
                    "ATTACHMENTS_BACKEND",
                    format!("must be `embedded` or `aws`, not {other:?}"),
                ))
            }
        };
        let addr: SocketAddr = var("ATTACHMENTS_ADDR")
            .unwrap_or_else(|| "127.0.0.1:3000".into())
            .parse()
            .map_err(|e| err("ATTACHMENTS_ADDR", format!("not a socket address: {e}")))?;
        let data_dir = PathBuf::from(var("ATTACHMENTS_DATA_DIR").unwrap_or_else(|| "data".into()));
        let public_url = var("ATTACHMENTS_PUBLIC_URL").unwrap_or_else(|| format!("http://{addr}"));
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            return Err(err(
                "ATTACHMENTS_PUBLIC_URL",
                "must start with http:// or https://",
            ));
        }
        let max_connections = match var("ATTACHMENTS_MAX_CONNECTIONS") {
            None => DEFAULT_MAX_CONNECTIONS,
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=65_536).contains(n))
                .ok_or_else(|| {
                    err(
                        "ATTACHMENTS_MAX_CONNECTIONS",
                        "must be a number from 1 to 65536",
                    )
                })?,
        };
        let body_idle = match var("ATTACHMENTS_BODY_IDLE_SECONDS") {
            None => Duration::from_secs(30),
            Some(v) => Duration::from_secs(
                v.parse::<u64>()
                    .ok()
                    .filter(|n| (1..=3600).contains(n))
                    .ok_or_else(|| {
                        err(
                            "ATTACHMENTS_BODY_IDLE_SECONDS",
                            "must be a number from 1 to 3600",
                        )
                    })?,
            ),
        };
        let api_keys = match var("ATTACHMENTS_API_KEYS") {
            None => Vec::new(),
            Some(v) => parse_keys(&v)?,
        };
        let max_upload_bytes = match var("ATTACHMENTS_MAX_UPLOAD_BYTES") {
            None => DEFAULT_MAX_UPLOAD_BYTES,
            Some(v) => v.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| {
                err(
                    "ATTACHMENTS_MAX_UPLOAD_BYTES",
                    "must be a positive number of bytes",
                )
            })?,
        };
        let link_ttl = match var("ATTACHMENTS_LINK_TTL_SECONDS") {
            None => Duration::from_secs(900),
            Some(v) => Duration::from_secs(
                v.parse::<u64>()
                    .ok()
                    .filter(|n| (1..=604_800).contains(n))
                    .ok_or_else(|| {
                        err(
                            "ATTACHMENTS_LINK_TTL_SECONDS",
                            "must be 1 to 604800 (7 days, SigV4's limit)",
                        )
                    })?,
            ),
        };
        let number =
            |name: &'static str, default: u64, min: u64, max: u64| -> Result<u64, ConfigError> {
                match var(name) {
                    None => Ok(default),
                    Some(v) => v
                        .parse::<u64>()
                        .ok()
                        .filter(|n| (min..=max).contains(n))
                        .ok_or_else(|| err(name, format!("must be a number from {min} to {max}"))),
                }
            };
        let direct_post_max_bytes = number(
            "ATTACHMENTS_DIRECT_POST_MAX_BYTES",
            100 * 1024 * 1024,
            1,
            5 * 1024 * 1024 * 1024,
        )?;
        let direct_max_bytes = number(
            "ATTACHMENTS_DIRECT_MAX_BYTES",
            5 * 1024u64.pow(4),
            1,
            5 * 1024u64.pow(4),
        )?;
        let upload_link_ttl = Duration::from_secs(number(
            "ATTACHMENTS_UPLOAD_LINK_TTL_SECONDS",
            3600,
            1,
            604_800,
        )?);
        let upload_expiry = Duration::from_secs(number(
            "ATTACHMENTS_UPLOAD_EXPIRY_SECONDS",
            86_400,
            1,
            30 * 86_400,
        )?);
        let secret_hex = var("ATTACHMENTS_SECRET");
        if let Some(s) = &secret_hex {
            if hex::decode(s).map(|b| b.len()).unwrap_or(0) != 32 {
                return Err(err(
                    "ATTACHMENTS_SECRET",
                    "must be 64 hex characters (32 bytes)",
                ));
            }
        }
        let table = var("ATTACHMENTS_TABLE");
        let bucket = var("ATTACHMENTS_BUCKET");
        if backend == Backend::Aws {
            // A presigned link dies with the temporary credentials that signed it; a Lambda
            // role's last at most 12 hours, so a longer lifetime would be a false promise.
            for (var, ttl) in [
                ("ATTACHMENTS_LINK_TTL_SECONDS", link_ttl),
                ("ATTACHMENTS_UPLOAD_LINK_TTL_SECONDS", upload_link_ttl),
            ] {
                if ttl > Duration::from_secs(AWS_MAX_LINK_TTL_SECS) {
                    return Err(err(
                        var,
                        "must be at most 43200 (12 hours) on AWS: links die with the role credentials that sign them",
                    ));
                }
            }
            if table.is_none() {
                return Err(err(
                    "ATTACHMENTS_TABLE",
                    "must name the DynamoDB table (backend aws)",
                ));
            }
            if bucket.is_none() {
                return Err(err(
                    "ATTACHMENTS_BUCKET",
                    "must name the S3 bucket (backend aws)",
                ));
            }
            if secret_hex.is_none() {
                return Err(err(
                    "ATTACHMENTS_SECRET",
                    "must be set for backend aws (64 hex characters)",
                ));
            }
        }
        let flag = |name: &'static str, default: bool| match var(name).as_deref() {
            None => Ok(default),
            Some("false") | Some("0") => Ok(false),
            Some("true") | Some("1") => Ok(true),
            Some(_) => Err(err(name, "must be true or false")),
        };
        let s3_path_style = flag("ATTACHMENTS_S3_PATH_STYLE", false)?;
        let load_fixtures = flag("ATTACHMENTS_LOAD_FIXTURES", false)?;
        if load_fixtures && backend == Backend::Aws {
            // The fixtures' API key is public: their data never goes into a real table.
            return Err(err(
                "ATTACHMENTS_LOAD_FIXTURES",
                "only with the embedded backend (the fixtures' key is public)",
            ));
        }
        let json_logs = match var("ATTACHMENTS_LOG_FORMAT").as_deref() {
            Some("json") => true,
            Some("text") => false,
            None => var("AWS_LAMBDA_FUNCTION_NAME").is_some(),
            Some(_) => return Err(err("ATTACHMENTS_LOG_FORMAT", "must be json or text")),
        };
        let crafter_allowed_types = match var("ATTACHMENTS_CRAFTER_ALLOWED_TYPES") {
            None => DEFAULT_CRAFTER_ALLOWED_TYPES
                .iter()
                .map(|t| (*t).to_owned())
                .collect(),
            Some(v) => parse_types(&v)?,
        };
        let crafter_max_file_bytes = match var("ATTACHMENTS_CRAFTER_MAX_FILE_BYTES") {
            None => DEFAULT_CRAFTER_MAX_FILE_BYTES,
            Some(v) => v.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| {
                err(
                    "ATTACHMENTS_CRAFTER_MAX_FILE_BYTES",
                    "must be a positive number of bytes",
                )
            })?,
        };
        let cors_origins = match var("ATTACHMENTS_CORS_ORIGINS") {
            None => Vec::new(),
            Some(v) => crate::http::cors::parse_origins(&v)
                .map_err(|problem| err("ATTACHMENTS_CORS_ORIGINS", problem))?,
        };
        let metrics_namespace = match var("ATTACHMENTS_METRICS_NAMESPACE") {
            None => None,
            Some(ns) => {
                let ns = ns.trim().to_owned();
                // CloudWatch's rule for namespaces, and no `:` (reserved).
                let valid = ns.len() <= 255
                    && !ns.starts_with("AWS/")
                    && ns
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || " .-_/#".contains(c));
                if !valid {
                    return Err(err(
                        "ATTACHMENTS_METRICS_NAMESPACE",
                        "must be at most 255 letters, digits or . - _ / # and space, not starting with AWS/",
                    ));
                }
                Some(ns)
            }
        };
        Ok(Self {
            backend,
            addr,
            data_dir,
            public_url,
            max_connections,
            body_idle,
            api_keys,
            max_upload_bytes,
            link_ttl,
            direct_post_max_bytes,
            direct_max_bytes,
            upload_link_ttl,
            upload_expiry,
            secret_hex,
            table,
            bucket,
            s3_path_style,
            load_fixtures,
            json_logs,
            crafter_allowed_types,
            crafter_max_file_bytes,
            cors_origins,
            metrics_namespace,
        })
    }
}

/// A comma-separated list of content types, compared lower-case as the service decides them.
fn parse_types(v: &str) -> Result<Vec<String>, ConfigError> {
    let types: Vec<String> = v
        .split(',')
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    let valid = |t: &str| {
        t.split_once('/').is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && !b.contains('/')
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/+-.".contains(c))
        })
    };
    match types.iter().find(|t| !valid(t)) {
        Some(bad) => Err(err(
            "ATTACHMENTS_CRAFTER_ALLOWED_TYPES",
            format!("{bad:?} is not a content type (type/subtype, comma-separated)"),
        )),
        None if types.is_empty() => Err(err(
            "ATTACHMENTS_CRAFTER_ALLOWED_TYPES",
            "must list at least one content type",
        )),
        None => Ok(types),
    }
}

fn parse_keys(v: &str) -> Result<Vec<SeedKey>, ConfigError> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|entry| {
            let mut parts = entry.splitn(3, ':');
            let tenant = parts.next().unwrap_or_default();
            let key = parts.next().unwrap_or_default();
            let owner = parts.next().map(str::to_owned);
            if tenant.is_empty() || key.len() < 16 {
                return Err(err(
                    "ATTACHMENTS_API_KEYS",
                    "entries are tenant:key[:owner], keys at least 16 characters",
                ));
            }
            Ok(SeedKey {
                tenant: tenant.to_owned(),
                key: key.to_owned(),
                owner,
            })
        })
        .collect()
}

/// The AWS backend's own settings, from the standard AWS variables (what the SDKs read), so a
/// Lambda function finds its role's credentials and region where Lambda puts them:
/// - credentials: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`; without
///   them, the profile `AWS_PROFILE` (else `default`) of the shared credentials file
///   (`AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`);
/// - region: `AWS_REGION`, else `AWS_DEFAULT_REGION`;
/// - endpoints: `AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`;
/// - extra trusted roots: `AWS_CA_BUNDLE` (a PEM file).
pub fn aws_settings(
    get: impl Fn(&str) -> Option<String>,
) -> Result<crate::aws::AwsSettings, ConfigError> {
    let var = |k: &str| get(k).filter(|v| !v.trim().is_empty());
    let credentials = match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
        (Some(id), Some(secret)) => crate::aws::Credentials {
            access_key_id: id.trim().to_owned(),
            secret_access_key: secret.trim().to_owned(),
            session_token: var("AWS_SESSION_TOKEN").map(|t| t.trim().to_owned()),
        },
        (Some(_), None) => {
            return Err(err(
                "AWS_SECRET_ACCESS_KEY",
                "must be set with AWS_ACCESS_KEY_ID",
            ))
        }
        (None, Some(_)) => {
            return Err(err(
                "AWS_ACCESS_KEY_ID",
                "must be set with AWS_SECRET_ACCESS_KEY",
            ))
        }
        (None, None) => profile_credentials(&var)?,
    };
    let region = var("AWS_REGION")
        .or_else(|| var("AWS_DEFAULT_REGION"))
        .map(|r| r.trim().to_owned())
        .ok_or_else(|| {
            err(
                "AWS_REGION",
                "must be set for backend aws (for example us-east-1)",
            )
        })?;
    if !region
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(err(
            "AWS_REGION",
            format!("{region:?} is not a region name"),
        ));
    }
    let endpoint = |name: &'static str| -> Result<Option<String>, ConfigError> {
        match var(name).or_else(|| var("AWS_ENDPOINT_URL").map(|v| v.trim().to_owned())) {
            None => Ok(None),
            Some(url) => match crate::aws::Endpoint::parse(url.trim()) {
                Ok(_) => Ok(Some(url.trim().to_owned())),
                Err(problem) => Err(err(name, problem)),
            },
        }
    };
    Ok(crate::aws::AwsSettings {
        credentials,
        region,
        dynamodb_endpoint: endpoint("AWS_ENDPOINT_URL_DYNAMODB")?,
        s3_endpoint: endpoint("AWS_ENDPOINT_URL_S3")?,
        ca_bundle: var("AWS_CA_BUNDLE").map(PathBuf::from),
    })
}

/// Static keys of a profile in the shared credentials file (an INI file of `[profile]`
/// sections with `aws_access_key_id`, `aws_secret_access_key`, `aws_session_token`).
fn profile_credentials(
    var: &impl Fn(&str) -> Option<String>,
) -> Result<crate::aws::Credentials, ConfigError> {
    const NONE: &str = "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (Lambda sets them for the function's role), or a profile with static keys in the shared credentials file";
    let path = match var("AWS_SHARED_CREDENTIALS_FILE") {
        Some(p) => PathBuf::from(p),
        None => match var("HOME") {
            Some(home) => PathBuf::from(home).join(".aws").join("credentials"),
            None => return Err(err("AWS_ACCESS_KEY_ID", NONE)),
        },
    };
    let profile = var("AWS_PROFILE").unwrap_or_else(|| "default".into());
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(_) => return Err(err("AWS_ACCESS_KEY_ID", NONE)),
    };
    let mut in_profile = false;
    let (mut id, mut secret, mut token) = (None, None, None);
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_profile = name.trim() == profile;
            continue;
        }
        if !in_profile {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = Some(v.trim().to_owned()).filter(|v| !v.is_empty());
            match k.trim() {
                "aws_access_key_id" => id = v,
                "aws_secret_access_key" => secret = v,
                "aws_session_token" => token = v,
                _ => {}
            }
        }
    }
    match (id, secret) {
        (Some(access_key_id), Some(secret_access_key)) => Ok(crate::aws::Credentials {
            access_key_id,
            secret_access_key,
            session_token: token,
        }),
        _ => Err(err(
            "AWS_PROFILE",
            format!(
                "profile {profile:?} of {} has no aws_access_key_id and aws_secret_access_key",
                path.display()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
    }

    #[test]
    fn defaults() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.backend, Backend::Embedded);
        assert_eq!(c.addr.to_string(), "127.0.0.1:3000");
        assert_eq!(c.public_url, "http://127.0.0.1:3000");
        assert_eq!(c.max_upload_bytes, DEFAULT_MAX_UPLOAD_BYTES);
        assert_eq!(c.link_ttl, Duration::from_secs(900));
        assert!(!c.s3_path_style);
        assert!(c.cors_origins.is_empty(), "no API CORS unless asked");
        assert!(!c.load_fixtures);
        assert_eq!(c.metrics_namespace, None, "no metric lines unless asked");
        assert_eq!(
            cfg(&[("ATTACHMENTS_METRICS_NAMESPACE", "Attachments/prod")])
                .unwrap()
                .metrics_namespace
                .as_deref(),
            Some("Attachments/prod")
        );
        for bad in ["AWS/Lambda", "a:b", &"x".repeat(256)] {
            assert_eq!(
                cfg(&[("ATTACHMENTS_METRICS_NAMESPACE", bad)])
                    .unwrap_err()
                    .var,
                "ATTACHMENTS_METRICS_NAMESPACE"
            );
        }
        const { assert!(DEFAULT_MAX_UPLOAD_BYTES < LAMBDA_MAX_UPLOAD_BYTES) };
    }

    #[test]
    fn errors_name_the_variable() {
        let e = cfg(&[("ATTACHMENTS_BACKEND", "aws")]).unwrap_err();
        assert_eq!(e.var, "ATTACHMENTS_TABLE");
        let e = cfg(&[("ATTACHMENTS_BACKEND", "aws"), ("ATTACHMENTS_TABLE", "t")]).unwrap_err();
        assert_eq!(e.var, "ATTACHMENTS_BUCKET");
        assert!(e.to_string().starts_with("ATTACHMENTS_BUCKET:"));
        assert_eq!(
            cfg(&[("ATTACHMENTS_ADDR", "nope")]).unwrap_err().var,
            "ATTACHMENTS_ADDR"
        );
        assert_eq!(
            cfg(&[("ATTACHMENTS_LINK_TTL_SECONDS", "0")])
                .unwrap_err()
                .var,
            "ATTACHMENTS_LINK_TTL_SECONDS"
        );
        assert_eq!(
            cfg(&[("ATTACHMENTS_API_KEYS", "t:short")]).unwrap_err().var,
            "ATTACHMENTS_API_KEYS"
        );
        assert_eq!(
            cfg(&[("ATTACHMENTS_S3_PATH_STYLE", "yes")])
                .unwrap_err()
                .var,
            "ATTACHMENTS_S3_PATH_STYLE"
        );
        assert_eq!(
            cfg(&[("ATTACHMENTS_CORS_ORIGINS", "https://app.example.com/")])
                .unwrap_err()
                .var,
            "ATTACHMENTS_CORS_ORIGINS"
        );
        assert_eq!(
            cfg(&[(
                "ATTACHMENTS_CORS_ORIGINS",
                "https://a.example, http://localhost:5173"
            )])
            .unwrap()
            .cors_origins,
            ["https://a.example", "http://localhost:5173"]
        );
        assert_eq!(
            cfg(&[("ATTACHMENTS_LOAD_FIXTURES", "yes")])
                .unwrap_err()
                .var,
            "ATTACHMENTS_LOAD_FIXTURES"
        );
        assert!(
            cfg(&[("ATTACHMENTS_S3_PATH_STYLE", "1")])
                .unwrap()
                .s3_path_style
        );
        assert!(
            cfg(&[("ATTACHMENTS_LOAD_FIXTURES", "true")])
                .unwrap()
                .load_fixtures
        );
        let aws = [
            ("ATTACHMENTS_BACKEND", "aws"),
            ("ATTACHMENTS_TABLE", "t"),
            ("ATTACHMENTS_BUCKET", "b"),
            ("ATTACHMENTS_SECRET", &"ab".repeat(32)),
        ];
        assert!(cfg(&aws).is_ok());
        let with_fixtures = [&aws[..], &[("ATTACHMENTS_LOAD_FIXTURES", "true")]].concat();
        assert_eq!(
            cfg(&with_fixtures).unwrap_err().var,
            "ATTACHMENTS_LOAD_FIXTURES"
        );
    }

    #[test]
    fn crafter_settings() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.crafter_allowed_types, DEFAULT_CRAFTER_ALLOWED_TYPES);
        assert_eq!(c.crafter_max_file_bytes, 5 * 1024 * 1024);
        let c = cfg(&[
            (
                "ATTACHMENTS_CRAFTER_ALLOWED_TYPES",
                " image/PNG, application/pdf,,",
            ),
            ("ATTACHMENTS_CRAFTER_MAX_FILE_BYTES", "1000"),
        ])
        .unwrap();
        assert_eq!(c.crafter_allowed_types, ["image/png", "application/pdf"]);
        assert_eq!(c.crafter_max_file_bytes, 1000);
        for bad in ["png", "image/", "a/b/c", "image/p ng", ","] {
            assert_eq!(
                cfg(&[("ATTACHMENTS_CRAFTER_ALLOWED_TYPES", bad)])
                    .unwrap_err()
                    .var,
                "ATTACHMENTS_CRAFTER_ALLOWED_TYPES",
                "{bad}"
            );
        }
        assert_eq!(
            cfg(&[("ATTACHMENTS_CRAFTER_MAX_FILE_BYTES", "0")])
                .unwrap_err()
                .var,
            "ATTACHMENTS_CRAFTER_MAX_FILE_BYTES"
        );
    }

    #[test]
    fn links_on_aws_never_outlive_role_credentials() {
        let aws = [
            ("ATTACHMENTS_BACKEND", "aws"),
            ("ATTACHMENTS_TABLE", "t"),
            ("ATTACHMENTS_BUCKET", "b"),
            (
                "ATTACHMENTS_SECRET",
                "0000000000000000000000000000000000000000000000000000000000000000",
            ),
        ];
        let mut v = aws.to_vec();
        v.push(("ATTACHMENTS_LINK_TTL_SECONDS", "43201"));
        assert_eq!(cfg(&v).unwrap_err().var, "ATTACHMENTS_LINK_TTL_SECONDS");
        let mut v = aws.to_vec();
        v.push(("ATTACHMENTS_LINK_TTL_SECONDS", "43200"));
        assert!(cfg(&v).is_ok());
        // Locally there is no such limit.
        assert!(cfg(&[("ATTACHMENTS_LINK_TTL_SECONDS", "604800")]).is_ok());
    }

    #[test]
    fn keys_parse_with_optional_owner() {
        let c = cfg(&[(
            "ATTACHMENTS_API_KEYS",
            "acme:0123456789abcdef:me@acme.io, beta:fedcba9876543210",
        )])
        .unwrap();
        assert_eq!(c.api_keys.len(), 2);
        assert_eq!(c.api_keys[0].owner.as_deref(), Some("me@acme.io"));
        assert_eq!(c.api_keys[1].tenant, "beta");
        assert!(!format!("{:?}", c.api_keys).contains("0123456789abcdef"));
    }

    #[test]
    fn aws_settings_come_from_the_standard_variables() {
        let get = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let a = aws_settings(get(&[
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "s3cr3t-value"),
            ("AWS_SESSION_TOKEN", "t0ken-value"),
            ("AWS_DEFAULT_REGION", "eu-west-1"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
            ("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9000"),
        ]))
        .unwrap();
        assert_eq!(a.credentials.access_key_id, "AKID");
        assert_eq!(a.credentials.session_token.as_deref(), Some("t0ken-value"));
        assert_eq!(a.region, "eu-west-1");
        assert_eq!(
            a.dynamodb_endpoint.as_deref(),
            Some("http://127.0.0.1:5000")
        );
        assert_eq!(a.s3_endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        let shown = format!("{a:?}");
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("t0ken"),
            "{shown}"
        );

        let e = aws_settings(get(&[
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_REGION", "us-east-1"),
        ]))
        .unwrap_err();
        assert_eq!(e.var, "AWS_SECRET_ACCESS_KEY");
        let e = aws_settings(get(&[
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
        ]))
        .unwrap_err();
        assert_eq!(e.var, "AWS_REGION");
        let e = aws_settings(get(&[
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL_DYNAMODB", "ftp://x"),
        ]))
        .unwrap_err();
        assert_eq!(e.var, "AWS_ENDPOINT_URL_DYNAMODB");
        let e = aws_settings(get(&[
            ("AWS_REGION", "us-east-1"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials"),
        ]))
        .unwrap_err();
        assert_eq!(e.var, "AWS_ACCESS_KEY_ID");
    }

    #[test]
    fn aws_credentials_come_from_a_profile_without_variables() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("credentials");
        std::fs::write(
            &file,
            "[default]\naws_access_key_id = D\naws_secret_access_key = DS\n\n# dev\n[dev]\naws_access_key_id=AKDEV\naws_secret_access_key = dev/secret\naws_session_token = tok\n",
        )
        .unwrap();
        let path = file.display().to_string();
        let lookup = |profile: Option<&'static str>| {
            let path = path.clone();
            move |k: &str| match k {
                "AWS_SHARED_CREDENTIALS_FILE" => Some(path.clone()),
                "AWS_REGION" => Some("us-east-1".to_owned()),
                "AWS_PROFILE" => profile.map(str::to_owned),
                _ => None,
            }
        };
        let dev = aws_settings(lookup(Some("dev"))).unwrap().credentials;
        assert_eq!(dev.access_key_id, "AKDEV");
        assert_eq!(dev.secret_access_key, "dev/secret");
        assert_eq!(dev.session_token.as_deref(), Some("tok"));
        let default = aws_settings(lookup(None)).unwrap().credentials;
        assert_eq!(default.access_key_id, "D");
        assert_eq!(default.session_token, None);
        let e = aws_settings(lookup(Some("missing"))).unwrap_err();
        assert_eq!(e.var, "AWS_PROFILE");
    }
}
