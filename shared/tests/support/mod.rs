//! Test support: a real local server on a loopback port over a real backend, a small HTTP
//! client, and multipart bodies. Every behaviour test talks HTTP to it, as a user would.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

#[cfg(feature = "aws-tests")]
pub mod aws;
#[cfg(feature = "aws-tests")]
pub mod capacity;
pub mod faults;
pub mod recording;

use std::path::PathBuf;
use std::sync::Arc;

use attachments::config::Config;
use attachments::domain::{
    Attachment, AttachmentStatus, FileName, ParentRef, TenantId, Version, VersionId,
};
use attachments::store::MetadataStore;
use attachments::App;
use bytes::Bytes;
use functions::local::{self, Server};
use http::{HeaderMap, Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// Keys the harness registers: two tenants, and a revoked key of tenant a.
pub const KEY_A: &str = "key-a-0123456789abcdef";
pub const KEY_B: &str = "key-b-0123456789abcdef";
pub const OWNER_A: &str = "owner-a@example.com";

/// A response, read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
    /// Asserts the status, showing the body when it differs.
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            String::from_utf8_lossy(&self.body)
        );
        self
    }
}

/// A running server over one backend.
pub struct Harness {
    pub base: String,
    pub app: Arc<App>,
    pub data_dir: PathBuf,
    /// The AWS peers' table and bucket, on the AWS backend.
    #[cfg(feature = "aws-tests")]
    pub peers: Option<aws::Peers>,
    _tmp: Option<tempfile::TempDir>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Extra configuration for a harness.
#[derive(Default, Clone)]
pub struct Opts {
    pub vars: Vec<(&'static str, String)>,
    /// Reuse this data folder (restart tests).
    pub data_dir: Option<PathBuf>,
}

impl Opts {
    /// A fresh folder and one variable set.
    pub fn var(name: &'static str, value: impl Into<String>) -> Self {
        Self {
            vars: vec![(name, value.into())],
            ..Self::default()
        }
    }
}

impl Harness {
    /// The embedded backend in a fresh temporary folder.
    pub async fn embedded() -> Self {
        Self::embedded_with(Opts::default()).await
    }

    pub async fn embedded_with(opts: Opts) -> Self {
        let (tmp, dir) = match opts.data_dir.clone() {
            Some(d) => (None, d),
            None => {
                let t = tempfile::tempdir().unwrap();
                let d = t.path().to_path_buf();
                (Some(t), d)
            }
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut vars: Vec<(String, String)> = vec![
            ("ATTACHMENTS_DATA_DIR".into(), dir.display().to_string()),
            ("ATTACHMENTS_PUBLIC_URL".into(), format!("http://{addr}")),
            (
                "ATTACHMENTS_API_KEYS".into(),
                format!("a:{KEY_A}:{OWNER_A},b:{KEY_B}"),
            ),
        ];
        for (k, v) in opts.vars {
            vars.retain(|(n, _)| n != k);
            vars.push((k.to_string(), v));
        }
        let cfg =
            Config::from_lookup(|k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
                .unwrap();
        let (addr, server, listener, _) = local::start(&cfg, Some(listener)).await.unwrap();
        Self::run(server, listener, addr, dir, tmp)
    }

    /// The AWS backend: DynamoDB on the script's moto, S3 on an s3s-fs server inside this
    /// process (SigV4 verified), a fresh table and bucket, configured through the same
    /// variables a deployment uses.
    #[cfg(feature = "aws-tests")]
    pub async fn aws() -> Self {
        Self::aws_with(Opts::default()).await
    }

    #[cfg(feature = "aws-tests")]
    pub async fn aws_with(opts: Opts) -> Self {
        Self::aws_built(opts, None).await
    }

    /// The AWS backend with `recorder` on the store's DynamoDB client (see `capacity.rs`).
    #[cfg(feature = "aws-tests")]
    pub async fn aws_recorded(opts: Opts, recorder: &capacity::Recorder) -> Self {
        Self::aws_built(opts, Some(recorder)).await
    }

    #[cfg(feature = "aws-tests")]
    async fn aws_built(opts: Opts, recorder: Option<&capacity::Recorder>) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let s3 = aws::S3Peer::bind(&dir.join("s3")).await;
        let peers = aws::Peers::new(&s3.endpoint);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut vars = peers.service_vars();
        vars.push(("ATTACHMENTS_DATA_DIR".into(), dir.display().to_string()));
        vars.push(("ATTACHMENTS_PUBLIC_URL".into(), format!("http://{addr}")));
        vars.push((
            "ATTACHMENTS_API_KEYS".into(),
            format!("a:{KEY_A}:{OWNER_A},b:{KEY_B}"),
        ));
        for (k, v) in opts.vars {
            vars.retain(|(n, _)| n != k);
            vars.push((k.to_string(), v));
        }
        let cfg =
            Config::from_lookup(|k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
                .unwrap();
        // The S3 server must answer before the bucket can be created.
        let s3_task = tokio::spawn(s3.serve());
        peers.create().await;
        let sdk = peers.sdk(&[]).await;
        let dynamodb = recorder.map(|r| r.client(&sdk));
        let built = attachments::setup::build_aws(&cfg, &sdk, dynamodb)
            .await
            .unwrap();
        attachments::setup::seed_keys(&built.app, &cfg)
            .await
            .unwrap();
        let server = Server::new(built, &cfg);
        let app = server.app.clone();
        let task = tokio::spawn(async move {
            let _s3 = AbortOnDrop(s3_task);
            local::serve(server, listener).await
        });
        Self {
            base: format!("http://{addr}"),
            app,
            data_dir: dir,
            peers: Some(peers),
            _tmp: Some(tmp),
            task,
        }
    }

    fn run(
        server: Server,
        listener: tokio::net::TcpListener,
        addr: std::net::SocketAddr,
        data_dir: PathBuf,
        tmp: Option<tempfile::TempDir>,
    ) -> Self {
        let app = server.app.clone();
        let task = tokio::spawn(local::serve(server, listener));
        Self {
            base: format!("http://{addr}"),
            app,
            data_dir,
            #[cfg(feature = "aws-tests")]
            peers: None,
            _tmp: tmp,
            task,
        }
    }

    /// Stops the server but keeps its data folder (for restart tests).
    pub fn stop_keep_data(mut self) -> (PathBuf, Option<tempfile::TempDir>) {
        self.task.abort();
        (self.data_dir.clone(), self._tmp.take())
    }

    /// Sends a request with an API key (as `X-API-KEY`).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: impl Into<Bytes>,
    ) -> Resp {
        let mut headers = vec![];
        if let Some(k) = key {
            headers.push(("x-api-key", k.to_string()));
        }
        self.send(method, path, &headers, body.into()).await
    }

    pub async fn get(&self, path: &str, key: &str) -> Resp {
        self.call("GET", path, Some(key), Bytes::new()).await
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> Resp {
        request(method, &format!("{}{path}", self.base), headers, body).await
    }

    /// Uploads a multipart form.
    pub async fn post_form(&self, path: &str, key: &str, form: &Form) -> Resp {
        let (ct, body) = form.encode();
        self.send(
            "POST",
            path,
            &[("x-api-key", key.to_string()), ("content-type", ct)],
            body,
        )
        .await
    }

    /// Stores `atts`, ready attachments of `parent` (registered, with no attachment yet),
    /// straight into the backend's metadata store, as that many uploads would leave them
    /// (without their files: listings only sign links): for tests that need a parent with
    /// thousands, which uploads would take minutes to make on moto.
    pub async fn load_attachments(&self, tenant: &str, parent: &ParentRef, atts: &[Attachment]) {
        let who = attachments::domain::Principal {
            tenant: TenantId::parse(tenant).unwrap(),
            owner: OWNER_A.into(),
        };
        let parent = self.app.get_parent(&who, parent).await.unwrap();
        #[cfg(feature = "aws-tests")]
        if let Some(peers) = &self.peers {
            use attachments::store::dynamo::{bulk_items, DEFAULT_LEFTOVER_SHARDS};
            let items = bulk_items(Some(&parent), atts, DEFAULT_LEFTOVER_SHARDS).unwrap();
            peers.load(items).await;
            return;
        }
        let store =
            attachments::store::sqlite::SqliteStore::open(&self.data_dir.join("attachments.db"))
                .unwrap();
        for a in atts {
            store.create_attachment(a).await.unwrap();
        }
        // The parent's row is all SQLite needs; it was read above to check that it exists.
        let _ = &parent;
    }

    /// Registers a parent for tenant a or b.
    pub async fn parent(&self, key: &str, kind: &str, id: &str) {
        let r = self
            .call("PUT", &format!("/v1/parents/{kind}/{id}"), Some(key), "")
            .await;
        assert!(r.status.is_success(), "{:?}", r.body);
    }
}

/// Stops a spawned task when the owner goes (the harness's task owns the S3 server's).
pub struct AbortOnDrop<T>(pub tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One HTTP request to any URL (server routes or download links).
pub async fn request(method: &str, url: &str, headers: &[(&str, String)], body: Bytes) -> Resp {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = http::Request::builder()
        .method(Method::from_bytes(method.as_bytes()).unwrap())
        .uri(url);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let resp = client
        .request(req.body(Full::new(body)).unwrap())
        .await
        .unwrap();
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Resp {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// GET a URL with no headers.
pub async fn fetch(url: &str) -> Resp {
    request("GET", url, &[], Bytes::new()).await
}

/// A multipart form under construction.
#[derive(Default, Clone)]
pub struct Form {
    parts: Vec<(String, Option<String>, Vec<u8>)>,
}

impl Form {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn file(mut self, field: &str, name: &str, bytes: &[u8]) -> Self {
        self.parts
            .push((field.into(), Some(name.into()), bytes.to_vec()));
        self
    }
    pub fn text(mut self, field: &str, value: &str) -> Self {
        self.parts
            .push((field.into(), None, value.as_bytes().to_vec()));
        self
    }
    pub fn encode(&self) -> (String, Bytes) {
        let boundary = "----attachments-test-boundary-7MA4YWxkTrZu0gW";
        let mut out = Vec::new();
        for (field, file, bytes) in &self.parts {
            out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
            match file {
                Some(f) => out.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{field}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                    )
                    .as_bytes(),
                ),
                None => out.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{field}\"\r\n\r\n").as_bytes(),
                ),
            }
            out.extend_from_slice(bytes);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        (
            format!("multipart/form-data; boundary={boundary}"),
            Bytes::from(out),
        )
    }
}

/// A ready attachment of `parent` whose file is `name` (a text file of one byte, never stored).
pub fn ready_attachment(tenant: &str, parent: &ParentRef, name: &str) -> Attachment {
    let now = now_millis();
    let mut att = Attachment::new(
        TenantId::parse(tenant).unwrap(),
        parent.clone(),
        OWNER_A.into(),
        AttachmentStatus::Ready,
        now,
    );
    att.content = Some(Version {
        id: VersionId::new(),
        file_name: FileName::parse(name).unwrap(),
        content_type: "text/plain".into(),
        size: 1,
        md5: "0cc175b9c0f1b6a831c399e269772661".into(),
        sha256: "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb".into(),
        created_at: now,
    });
    att
}

/// Now, to the millisecond, as the service keeps times.
pub fn now_millis() -> time::OffsetDateTime {
    let t = time::OffsetDateTime::now_utc();
    t.replace_nanosecond(t.nanosecond() / 1_000_000 * 1_000_000)
        .unwrap()
}

/// A small valid PNG (1x1), real enough for magic-byte checks and image decoders.
pub fn png_1x1() -> Vec<u8> {
    hex_decode("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c63f8cfc0f01f00050001ff89993d1d0000000049454e44ae426082")
}

/// A minimal JPEG header, enough for magic-byte checks.
pub fn jpeg_bytes(len: usize) -> Vec<u8> {
    let mut v = vec![
        0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0x00,
    ];
    v.resize(len, 0x42);
    v
}

pub fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// MD5 and SHA-256 hex, computed independently of the service's code path (RustCrypto crates
/// directly).
pub fn md5_hex(b: &[u8]) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(b))
}

pub fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}
