//! Configuration, read once from the environment at start. Every error names the variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::service::dialects::CrafterSettings;
use crate::service::Limits;
use crate::signing::Signer;
use crate::store::dynamo::{DEFAULT_LEFTOVER_SHARDS, MAX_LEFTOVER_SHARDS};

/// Which adapters serve the storage ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// SQLite and files under `data_dir`: one machine, no AWS account.
    Embedded,
    /// DynamoDB and S3: the table (`ATTACHMENTS_TABLE`) and bucket (`ATTACHMENTS_BUCKET`).
    Aws { table: String, bucket: String },
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

#[derive(Debug, Clone)]
pub struct Config {
    pub backend: Backend,
    /// Local server address (`ATTACHMENTS_ADDR`).
    pub addr: SocketAddr,
    /// Embedded data folder (`ATTACHMENTS_DATA_DIR`).
    pub data_dir: PathBuf,
    /// Base URL of links to the local server (`ATTACHMENTS_PUBLIC_URL`).
    pub public_url: String,
    /// Connections the local server serves at once (`ATTACHMENTS_MAX_CONNECTIONS`, 1024 by
    /// default): each costs a little memory and a file descriptor; past the cap, new ones wait.
    pub max_connections: usize,
    /// How long the local server waits for more of a request body (`ATTACHMENTS_BODY_IDLE_SECONDS`).
    pub body_idle: Duration,
    pub api_keys: Vec<SeedKey>,
    /// The service's limits: request body, link lifetimes, direct uploads and their expiry.
    pub limits: Limits,
    /// Crafter Profile's settings (`ATTACHMENTS_CRAFTER_*`).
    pub crafter: CrafterSettings,
    /// Secret for cursors and embedded links (`ATTACHMENTS_SECRET`, hex); embedded mode makes
    /// and keeps one in the data folder when unset.
    pub secret: Option<Signer>,
    /// Path-style S3 addressing (`ATTACHMENTS_S3_PATH_STYLE`), for S3-compatible servers.
    pub s3_path_style: bool,
    /// Partitions of the DynamoDB leftovers index that pending uploads and unfinished deletions
    /// are spread over (`ATTACHMENTS_LEFTOVER_SHARDS`); the sweep reads them all.
    pub leftover_shards: u32,
    /// A Lambda function loads the event fixtures' data into its embedded store at start, when
    /// the store is new (`ATTACHMENTS_LOAD_FIXTURES`; see [`crate::fixtures`]).
    pub load_fixtures: bool,
    /// JSON logs (`ATTACHMENTS_LOG_FORMAT=json`); Lambda defaults to JSON.
    pub json_logs: bool,
    /// Origins whose browsers may call the API (`ATTACHMENTS_CORS_ORIGINS`). The local server
    /// applies it; on AWS the template's `ApiCorsOrigins` configures the HTTP API instead.
    pub cors_origins: Vec<String>,
    /// The CloudWatch namespace of the service's metrics (`ATTACHMENTS_METRICS_NAMESPACE`): set,
    /// every request and storage event writes embedded metric format lines; unset, none.
    pub metrics_namespace: Option<String>,
}

/// A configuration error; its message names the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}: {problem}")]
pub struct ConfigError {
    pub var: &'static str,
    pub problem: String,
}

pub(crate) fn err(var: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        problem: problem.into(),
    }
}

/// The ceiling a Lambda deployment can accept at all (6 MB of event, base64).
pub const LAMBDA_MAX_UPLOAD_BYTES: usize = 6 * 1024 * 1024 / 4 * 3 - 16 * 1024;

/// A numeric variable: its name, and the least and greatest value it takes.
type Number = (&'static str, u64, u64);
const MAX_CONNECTIONS: Number = ("ATTACHMENTS_MAX_CONNECTIONS", 1, 65_536);
const BODY_IDLE: Number = ("ATTACHMENTS_BODY_IDLE_SECONDS", 1, 3600);
const MAX_UPLOAD: Number = ("ATTACHMENTS_MAX_UPLOAD_BYTES", 1, usize::MAX as u64);
/// Up to SigV4's 7 days.
const LINK_TTL: Number = ("ATTACHMENTS_LINK_TTL_SECONDS", 1, 604_800);
const PENDING_TTL: Number = ("ATTACHMENTS_UPLOAD_EXPIRY_SECONDS", 1, 30 * 86_400);
const DIRECT_POST_MAX: Number = ("ATTACHMENTS_DIRECT_POST_MAX_BYTES", 1, 5 * 1024u64.pow(3));
const DIRECT_MAX: Number = ("ATTACHMENTS_DIRECT_MAX_BYTES", 1, 5 * 1024u64.pow(4));
const UPLOAD_LINK_TTL: Number = ("ATTACHMENTS_UPLOAD_LINK_TTL_SECONDS", 1, 604_800);
const INLINE_VERIFY_MAX: Number = ("ATTACHMENTS_INLINE_VERIFY_MAX_BYTES", 0, 5 * 1024u64.pow(4));
const CRAFTER_MAX_FILE: Number = ("ATTACHMENTS_CRAFTER_MAX_FILE_BYTES", 1, usize::MAX as u64);
const LEFTOVER_SHARDS: Number = ("ATTACHMENTS_LEFTOVER_SHARDS", 1, MAX_LEFTOVER_SHARDS as u64);

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the configuration through `get`, so tests need not touch the process environment.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let v = Vars(get);
        let required = |var, what| {
            v.text(var)
                .ok_or_else(|| err(var, format!("must name the {what} (backend aws)")))
        };
        let backend = match v.text("ATTACHMENTS_BACKEND").as_deref() {
            None | Some("embedded") => Backend::Embedded,
            Some("aws") => Backend::Aws {
                table: required("ATTACHMENTS_TABLE", "DynamoDB table")?,
                bucket: required("ATTACHMENTS_BUCKET", "S3 bucket")?,
            },
            Some(other) => Err(err(
                "ATTACHMENTS_BACKEND",
                format!("must be `embedded` or `aws`, not {other:?}"),
            ))?,
        };
        let addr: SocketAddr = v
            .text("ATTACHMENTS_ADDR")
            .unwrap_or_else(|| "127.0.0.1:3000".into())
            .parse()
            .map_err(|e| err("ATTACHMENTS_ADDR", format!("not a socket address: {e}")))?;
        let public_url = v.parsed("ATTACHMENTS_PUBLIC_URL", |url| {
            let web = url.starts_with("http://") || url.starts_with("https://");
            web.then(|| url.into())
                .ok_or("must start with http:// or https://".into())
        })?;
        let aws = backend != Backend::Embedded;
        let crafter = CrafterSettings::default();
        let cfg = Self {
            addr,
            data_dir: v
                .text("ATTACHMENTS_DATA_DIR")
                .unwrap_or("data".into())
                .into(),
            public_url: public_url.unwrap_or_else(|| format!("http://{addr}")),
            max_connections: v.number(MAX_CONNECTIONS, 1024)?,
            body_idle: v.seconds(BODY_IDLE, Duration::from_secs(30))?,
            api_keys: v
                .parsed("ATTACHMENTS_API_KEYS", parse_keys)?
                .unwrap_or_default(),
            limits: v.limits(aws)?,
            crafter: CrafterSettings {
                allowed_types: v
                    .parsed("ATTACHMENTS_CRAFTER_ALLOWED_TYPES", parse_types)?
                    .unwrap_or(crafter.allowed_types),
                max_file_bytes: v.bytes(CRAFTER_MAX_FILE, crafter.max_file_bytes)?,
            },
            secret: v.parsed("ATTACHMENTS_SECRET", |s| {
                Signer::from_hex(s).ok_or("must be 64 hex characters (32 bytes)".into())
            })?,
            s3_path_style: v.flag("ATTACHMENTS_S3_PATH_STYLE")?,
            leftover_shards: v.number(LEFTOVER_SHARDS, DEFAULT_LEFTOVER_SHARDS)?,
            load_fixtures: v.flag("ATTACHMENTS_LOAD_FIXTURES")?,
            // JSON logs on Lambda, text elsewhere, unless asked.
            json_logs: match v.text("ATTACHMENTS_LOG_FORMAT").as_deref() {
                Some("json") => true,
                Some("text") => false,
                None => v.text("AWS_LAMBDA_FUNCTION_NAME").is_some(),
                Some(_) => Err(err("ATTACHMENTS_LOG_FORMAT", "must be json or text"))?,
            },
            cors_origins: v
                .parsed("ATTACHMENTS_CORS_ORIGINS", parse_origins)?
                .unwrap_or_default(),
            metrics_namespace: v.parsed("ATTACHMENTS_METRICS_NAMESPACE", metrics_namespace)?,
            backend,
        };
        if aws {
            cfg.check_for_aws()?;
        }
        Ok(cfg)
    }

    /// What the AWS backend needs besides its table and bucket: its secret, link lifetimes its
    /// credentials can honour, and never the fixtures' public key.
    fn check_for_aws(&self) -> Result<(), ConfigError> {
        // A presigned link dies with the temporary credentials that signed it; a Lambda role's
        // last at most 12 hours, so a longer lifetime would be a false promise.
        let max = Duration::from_secs(12 * 3600);
        let ttl = "must be at most 43200 (12 hours) on AWS: links die with the role credentials that sign them";
        let secret = "must be set for backend aws (64 hex characters)";
        // The fixtures' API key is public: their data never goes into a real table.
        let fixtures = "only with the embedded backend (the fixtures' key is public)";
        let wrong = [
            (self.limits.link_ttl > max, LINK_TTL.0, ttl),
            (self.limits.upload_link_ttl > max, UPLOAD_LINK_TTL.0, ttl),
            (self.secret.is_none(), "ATTACHMENTS_SECRET", secret),
            (self.load_fixtures, "ATTACHMENTS_LOAD_FIXTURES", fixtures),
        ];
        let first = wrong.into_iter().find(|(wrong, ..)| *wrong);
        first.map_or(Ok(()), |(_, var, problem)| Err(err(var, problem)))
    }
}

/// The variables, read through a lookup; a variable set to blanks counts as unset. Each reader
/// names the variable in its error.
struct Vars<F>(F);

impl<F: Fn(&str) -> Option<String>> Vars<F> {
    fn text(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|v| !v.trim().is_empty())
    }

    /// The variable through `parse`, when it is set; `parse` says what is wrong with it.
    fn parsed<T>(
        &self,
        name: &'static str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        let parsed = self.text(name).as_deref().map(parse).transpose();
        parsed.map_err(|problem| err(name, problem))
    }

    /// The limits of uploads and links: the service's defaults, which the variables override.
    fn limits(&self, aws: bool) -> Result<Limits, ConfigError> {
        let d = Limits::default();
        Ok(Limits {
            max_upload_bytes: self.bytes(MAX_UPLOAD, d.max_upload_bytes)?,
            link_ttl: self
                .seconds(LINK_TTL, d.link_ttl)
                .map_err(|_| err(LINK_TTL.0, "must be 1 to 604800 (7 days, SigV4's limit)"))?,
            pending_ttl: self.seconds(PENDING_TTL, d.pending_ttl)?,
            direct_post_max_bytes: self.number(DIRECT_POST_MAX, d.direct_post_max_bytes)?,
            direct_max_bytes: self.number(DIRECT_MAX, d.direct_max_bytes)?,
            upload_link_ttl: self.seconds(UPLOAD_LINK_TTL, d.upload_link_ttl)?,
            inline_verify_max_bytes: self.number(INLINE_VERIFY_MAX, d.inline_verify_max_bytes)?,
            // The embedded store has no storage events: this process verifies in the background.
            verify_in_process: !aws,
        })
    }

    /// A number in its range, `default` when unset.
    fn number<T: TryFrom<u64>>(
        &self,
        (name, min, max): Number,
        default: T,
    ) -> Result<T, ConfigError> {
        let in_range = |n: &u64| (min..=max).contains(n);
        let number = |v: &str| {
            let n = v.trim().parse::<u64>().ok().filter(in_range);
            let n = n.and_then(|n| T::try_from(n).ok());
            n.ok_or_else(|| format!("must be a number from {min} to {max}"))
        };
        Ok(self.parsed(name, number)?.unwrap_or(default))
    }

    fn seconds(&self, var: Number, default: Duration) -> Result<Duration, ConfigError> {
        self.number(var, default.as_secs()).map(Duration::from_secs)
    }

    /// A positive number of bytes.
    fn bytes(&self, var: Number, default: usize) -> Result<usize, ConfigError> {
        self.number(var, default)
            .map_err(|_| err(var.0, "must be a positive number of bytes"))
    }

    /// `true`/`1` or `false`/`0`, `false` when unset.
    fn flag(&self, name: &'static str) -> Result<bool, ConfigError> {
        match self.text(name).as_deref() {
            None | Some("false" | "0") => Ok(false),
            Some("true" | "1") => Ok(true),
            Some(_) => Err(err(name, "must be true or false")),
        }
    }
}

/// A CloudWatch namespace: at most 255 letters, digits or `. - _ / #` and spaces, not in
/// AWS's own `AWS/` (and no `:`, which CloudWatch reserves).
fn metrics_namespace(ns: &str) -> Result<String, String> {
    let ns = ns.trim();
    let allowed = |c: char| c.is_ascii_alphanumeric() || " .-_/#".contains(c);
    let valid = ns.len() <= 255 && !ns.starts_with("AWS/") && ns.chars().all(allowed);
    let problem =
        "must be at most 255 letters, digits or . - _ / # and space, not starting with AWS/";
    valid.then(|| ns.to_owned()).ok_or(problem.into())
}

/// The entries of a comma-separated list, trimmed, without empty ones.
fn list(v: &str) -> impl Iterator<Item = &str> {
    v.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// A comma-separated list of content types, compared lower-case as the service decides them.
fn parse_types(v: &str) -> Result<Vec<String>, String> {
    let types: Vec<String> = list(v).map(str::to_ascii_lowercase).collect();
    let allowed = |c: char| c.is_ascii_alphanumeric() || "/+-.".contains(c);
    let two_parts = |(a, b): (&str, &str)| !a.is_empty() && !b.is_empty() && !b.contains('/');
    let valid = |t: &str| t.split_once('/').is_some_and(two_parts) && t.chars().all(allowed);
    match types.iter().find(|t| !valid(t)) {
        Some(bad) => Err(format!(
            "{bad:?} is not a content type (type/subtype, comma-separated)"
        )),
        None if types.is_empty() => Err("must list at least one content type".into()),
        None => Ok(types),
    }
}

fn parse_keys(v: &str) -> Result<Vec<SeedKey>, String> {
    let entry = |entry: &str| {
        let mut parts = entry.splitn(3, ':');
        match (parts.next(), parts.next()) {
            (Some(tenant), Some(key)) if !tenant.is_empty() && key.len() >= 16 => Ok(SeedKey {
                tenant: tenant.to_owned(),
                key: key.to_owned(),
                owner: parts.next().map(str::to_owned),
            }),
            _ => Err("entries are tenant:key[:owner], keys at least 16 characters".into()),
        }
    };
    list(v).map(entry).collect()
}

/// Parses `ATTACHMENTS_CORS_ORIGINS`: comma-separated origins (`https://app.example.com`,
/// `http://localhost:5173`) or `*`. An origin is a scheme, a host and an optional port: no path,
/// no trailing slash, since browsers send exactly that and compare it byte for byte.
fn parse_origins(v: &str) -> Result<Vec<String>, String> {
    let origin = |o: &str| {
        let problem = format!("{o:?} is not an origin (scheme://host[:port], no path), nor *");
        (o == "*" || is_origin(o))
            .then(|| o.to_owned())
            .ok_or(problem)
    };
    list(v).map(origin).collect()
}

fn is_origin(o: &str) -> bool {
    let rest = o
        .strip_prefix("http://")
        .or_else(|| o.strip_prefix("https://"));
    let Some(rest) = rest else { return false };
    // A port (not the inside of an IPv6 literal such as `[::1]`).
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') => (h, Some(p)),
        _ => (rest, None),
    };
    let digits = |p: &str| (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit());
    let host_char = |c: char| c.is_ascii_alphanumeric() || "-.[]:".contains(c);
    port.is_none_or(digits) && !host.is_empty() && host.chars().all(host_char)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::DEFAULT_MAX_UPLOAD_BYTES;

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
        assert_eq!(c.limits.max_upload_bytes, DEFAULT_MAX_UPLOAD_BYTES);
        assert_eq!(c.limits.link_ttl, Duration::from_secs(900));
        assert!(!c.s3_path_style);
        assert!(c.cors_origins.is_empty(), "no API CORS unless asked");
        assert!(!c.load_fixtures);
        assert_eq!(c.leftover_shards, 16);
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
        for bad in ["0", "257", "-1", "many"] {
            assert_eq!(
                cfg(&[("ATTACHMENTS_LEFTOVER_SHARDS", bad)])
                    .unwrap_err()
                    .var,
                "ATTACHMENTS_LEFTOVER_SHARDS"
            );
        }
        assert_eq!(
            cfg(&[("ATTACHMENTS_LEFTOVER_SHARDS", "4")])
                .unwrap()
                .leftover_shards,
            4
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
        assert_eq!(
            c.crafter.allowed_types,
            crate::service::dialects::DEFAULT_CRAFTER_ALLOWED_TYPES
        );
        assert_eq!(c.crafter.max_file_bytes, 5 * 1024 * 1024);
        let c = cfg(&[
            (
                "ATTACHMENTS_CRAFTER_ALLOWED_TYPES",
                " image/PNG, application/pdf,,",
            ),
            ("ATTACHMENTS_CRAFTER_MAX_FILE_BYTES", "1000"),
        ])
        .unwrap();
        assert_eq!(c.crafter.allowed_types, ["image/png", "application/pdf"]);
        assert_eq!(c.crafter.max_file_bytes, 1000);
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
    fn origins_are_scheme_host_and_port_or_a_star() {
        assert_eq!(
            parse_origins(" https://app.example.com, http://localhost:5173 ,*").unwrap(),
            ["https://app.example.com", "http://localhost:5173", "*"]
        );
        assert_eq!(parse_origins("").unwrap(), Vec::<String>::new());
        for bad in [
            "app.example.com",
            "https://app.example.com/",
            "https://app.example.com/x",
            "ftp://x",
            "https://",
            "http://x:port",
            "http://x:123456",
        ] {
            assert!(parse_origins(bad).is_err(), "{bad}");
        }
    }
}
