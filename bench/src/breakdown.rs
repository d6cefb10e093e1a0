//! Where the time of the two slow paths goes, stage by stage, with the same public pieces the
//! handlers use: the 4 MiB upload (multipart parse, content-type decision, hashing, the file
//! write) and the listing of 20 attachments with links (query, links, JSON). Printed as notes
//! under the table so a failing row comes with its explanation.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use attachments::domain::{decide_content_type, Digests, ParentId, ParentKind, ParentRef};
use attachments::http::{multipart, native};
use attachments::signing::Signer;
use attachments::store::fs_blob::FsBlobStore;
use attachments::store::BlobStore;
use attachments::App;

use crate::util::{median, ms, Error, TempDir};

fn time<T>(f: impl FnOnce() -> T) -> (f64, T) {
    let t = Instant::now();
    let v = f();
    (t.elapsed().as_secs_f64(), v)
}

/// Median time of each stage of an upload of `body` (a multipart form with one file part).
pub async fn upload(content_type: &str, body: &[u8], rounds: usize) -> Result<String, Error> {
    let dir = TempDir::new("breakdown")?;
    let blobs = FsBlobStore::new(
        dir.path().to_path_buf(),
        "http://127.0.0.1",
        Signer::new([7; 32]),
    );
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        content_type.parse().map_err(|_| "bad content type")?,
    );
    let body = Bytes::copy_from_slice(body);
    let mut stages: [Vec<f64>; 7] = Default::default();
    for round in 0..=rounds {
        let mut req = http::Request::new(body.clone());
        *req.headers_mut() = headers.clone();
        let t = Instant::now();
        let form = multipart::parse(req, &["file"])
            .await
            .map_err(|e| e.to_string())?;
        let t_parse = t.elapsed().as_secs_f64();
        let file = form.files.first().ok_or("no file part")?;
        let (t_type, _) = time(|| black_box(decide_content_type("scan.pdf", "pdf", &file.bytes)));
        let (t_sniff_head, _) = time(|| {
            let head = &file.bytes[..file.bytes.len().min(8192)];
            black_box(decide_content_type("scan.pdf", "pdf", head))
        });
        let (t_hash, _) = time(|| black_box(Digests::of(&file.bytes)));
        // The same bytes written from one blocking task, with and without fsync: how much of
        // the store's write is the disk's flush.
        let path = dir.path().join(format!("plain-{round}"));
        let t = Instant::now();
        blocking_write(path.clone(), file.bytes.clone(), false).await?;
        let t_plain = t.elapsed().as_secs_f64();
        let synced = path.with_extension("synced");
        let t = Instant::now();
        blocking_write(synced.clone(), file.bytes.clone(), true).await?;
        let t_synced = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let key = format!("bench/a-{round}/v-1");
        blobs
            .put(&key, file.bytes.clone(), "application/pdf", &[0; 32])
            .await
            .map_err(|e| e.to_string())?;
        let t_write = t.elapsed().as_secs_f64();
        let _ = std::fs::remove_file(path);
        let _ = std::fs::remove_file(synced);
        let _ = blobs.delete(&key).await;
        if round > 0 {
            for (s, v) in stages.iter_mut().zip([
                t_parse,
                t_type,
                t_sniff_head,
                t_hash,
                t_write,
                t_plain,
                t_synced,
            ]) {
                s.push(v);
            }
        }
    }
    let m: Vec<f64> = stages.iter().map(|s| median(s)).collect();
    Ok(format!(
        "4 MiB upload stages (median of {rounds}): multipart parse {}, content-type decision on the \
         whole file {} (on its first 8 KiB: {}), md5+sha256 {}, FsBlobStore::put (one blocking \
         task: write + fsync + rename) {}; for comparison, std::fs::write on a blocking thread {} \
         without fsync, {} with fsync.",
        ms(m[0]),
        ms(m[1]),
        ms(m[2]),
        ms(m[3]),
        ms(m[4]),
        ms(m[5]),
        ms(m[6]),
    ))
}

async fn blocking_write(path: std::path::PathBuf, bytes: Bytes, sync: bool) -> Result<(), Error> {
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut f = std::fs::File::create(&path)?;
        f.write_all(&bytes)?;
        if sync {
            f.sync_data()?;
        }
        Ok::<_, std::io::Error>(())
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())
}

/// Median time of each stage of listing a parent's attachments with links.
pub async fn list(app: &App, key: &str, parent: &str, rounds: usize) -> Result<String, Error> {
    let parent = ParentRef::new(
        ParentKind::parse("bench").map_err(|e| e.to_string())?,
        ParentId::parse(parent).map_err(|e| e.to_string())?,
    );
    let mut stages: [Vec<f64>; 4] = Default::default();
    let mut count = 0;
    for round in 0..=rounds {
        let t = Instant::now();
        let who = app
            .authenticate(Some(key))
            .await
            .map_err(|e| e.to_string())?;
        let t_auth = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let page = app
            .list(&who, &parent, None, 100)
            .await
            .map_err(|e| e.to_string())?;
        let t_query = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut links = Vec::with_capacity(page.items.len());
        for a in &page.items {
            links.push(app.download_link(a).await.map_err(|e| e.to_string())?);
        }
        let t_links = t.elapsed().as_secs_f64();
        // As the list handler renders: views serialised straight from the model.
        let (t_json, _) = time(|| {
            #[derive(serde::Serialize)]
            struct ListView<'a> {
                items: Vec<native::AttachmentView<'a>>,
                next_cursor: &'a Option<String>,
            }
            let items = page
                .items
                .iter()
                .zip(links)
                .map(|(a, l)| native::attachment_view(a, l))
                .collect();
            black_box(serde_json::to_vec(&ListView {
                items,
                next_cursor: &page.next,
            }))
        });
        count = page.items.len();
        if round > 0 {
            for (s, v) in stages.iter_mut().zip([t_auth, t_query, t_links, t_json]) {
                s.push(v);
            }
        }
    }
    let m: Vec<f64> = stages.iter().map(|s| median(s)).collect();
    Ok(format!(
        "List of {count} stages (median of {rounds}): authenticate {}, get parent + query {}, \
         {count} links {}, JSON {}.",
        ms(m[0]),
        ms(m[1]),
        ms(m[2]),
        ms(m[3]),
    ))
}

/// Median time of each stage of `GET /v1/attachments/{id}`, and of the whole request through
/// the route table, over `n` requests (the stages take microseconds, so they are timed in
/// batches of 100).
pub async fn get(app: &Arc<App>, key: &str, parent: &str, n: usize) -> Result<String, Error> {
    let parent = ParentRef::new(
        ParentKind::parse("bench").map_err(|e| e.to_string())?,
        ParentId::parse(parent).map_err(|e| e.to_string())?,
    );
    let who = app
        .authenticate(Some(key))
        .await
        .map_err(|e| e.to_string())?;
    let first = app
        .list(&who, &parent, None, 1)
        .await
        .map_err(|e| e.to_string())?
        .items
        .into_iter()
        .next()
        .ok_or("no attachment to get")?;
    let id = first.id;
    let request = || {
        http::Request::builder()
            .method("GET")
            .uri(format!("/v1/attachments/{id}"))
            .header("x-api-key", key)
            .body(Bytes::new())
    };
    const BATCH: usize = 100;
    let mut stages: [Vec<f64>; 5] = Default::default();
    for _ in 0..=(n / BATCH) {
        let t = Instant::now();
        for _ in 0..BATCH {
            black_box(
                app.authenticate(Some(key))
                    .await
                    .map_err(|e| e.to_string())?,
            );
        }
        stages[0].push(t.elapsed().as_secs_f64() / BATCH as f64);
        let t = Instant::now();
        for _ in 0..BATCH {
            black_box(app.get(&who, id).await.map_err(|e| e.to_string())?);
        }
        stages[1].push(t.elapsed().as_secs_f64() / BATCH as f64);
        let t = Instant::now();
        let mut link = None;
        for _ in 0..BATCH {
            link = black_box(app.download_link(&first).await.map_err(|e| e.to_string())?);
        }
        stages[2].push(t.elapsed().as_secs_f64() / BATCH as f64);
        let t = Instant::now();
        for _ in 0..BATCH {
            let v = native::attachment_view(&first, link.clone());
            black_box(serde_json::to_vec(&v).map_err(|e| e.to_string())?);
        }
        stages[3].push(t.elapsed().as_secs_f64() / BATCH as f64);
        let t = Instant::now();
        for _ in 0..BATCH {
            let req = request().map_err(|e| e.to_string())?;
            let resp = attachments::http::routes::dispatch(app, req).await;
            if resp.status() != http::StatusCode::OK {
                return Err(format!("GET answered {}", resp.status()));
            }
        }
        stages[4].push(t.elapsed().as_secs_f64() / BATCH as f64);
    }
    let m: Vec<f64> = stages.iter().map(|s| median(s)).collect();
    Ok(format!(
        "GET attachment stages (median of batches): authenticate {}, get {}, link {}, JSON {}; \
         the whole request through the route table {} (the local server adds hyper's share).",
        ms(m[0]),
        ms(m[1]),
        ms(m[2]),
        ms(m[3]),
        ms(m[4]),
    ))
}

/// The upload's service call alone (`App::upload_many`: parent check, type, hashes, store
/// writes) and the handler alone (`attachments::lambda::handle` on an already parsed event), to
/// split the Lambda event row's time between the runtime's JSON, the handler and the service.
pub async fn upload_layers(
    app: &Arc<App>,
    key: &str,
    event: &[u8],
    file: &Bytes,
    rounds: usize,
) -> Result<String, Error> {
    use attachments::domain::FileName;
    let route = attachments::http::routes::by_name("native-upload").ok_or("no native-upload")?;
    let text = std::str::from_utf8(event).map_err(|e| e.to_string())?;
    let who = app
        .authenticate(Some(key))
        .await
        .map_err(|e| e.to_string())?;
    let parent = ParentRef::new(
        ParentKind::parse("bench").map_err(|e| e.to_string())?,
        ParentId::parse("big").map_err(|e| e.to_string())?,
    );
    let name = FileName::parse("scan.pdf").map_err(|e| e.to_string())?;
    let (mut parse, mut handle, mut service) = (vec![], vec![], vec![]);
    for round in 0..=rounds {
        let t = Instant::now();
        let req = lambda_http::request::from_str(text).map_err(|e| e.to_string())?;
        let t_parse = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let resp = attachments::lambda::handle(app, route, req).await;
        let t_handle = t.elapsed().as_secs_f64();
        if resp.status() != http::StatusCode::CREATED {
            return Err(format!("handle answered {}", resp.status()));
        }
        let t = Instant::now();
        upload_file(app, &who, &parent, &name, file).await?;
        let t_service = t.elapsed().as_secs_f64();
        if round > 0 {
            parse.push(t_parse);
            handle.push(t_handle);
            service.push(t_service);
        }
    }
    Ok(format!(
        "4 MiB upload layers (median of {rounds}): event JSON to request {}, handler {} of which \
         App::upload_many {}.",
        ms(median(&parse)),
        ms(median(&handle)),
        ms(median(&service)),
    ))
}

/// `App::upload_many` of one file as a new attachment, as the native upload does.
async fn upload_file(
    app: &App,
    who: &attachments::domain::Principal,
    parent: &ParentRef,
    name: &attachments::domain::FileName,
    file: &Bytes,
) -> Result<(), Error> {
    use attachments::service::{AttachmentFields, NewFile, UploadTarget};
    app.upload_many(
        who,
        parent,
        vec![NewFile {
            file_name: name.clone(),
            bytes: file.clone(),
        }],
        AttachmentFields::default(),
        UploadTarget::New,
        None,
    )
    .await
    .map(|_| ())
    .map_err(|e| e.to_string())
}

/// A blob store that times its writes, around the embedded one: splits `App::upload_many` into
/// the blob write and the rest without touching the service.
struct TimedBlobs {
    inner: FsBlobStore,
    put_seconds: std::sync::Mutex<f64>,
}

impl TimedBlobs {
    fn add(&self, t: Instant) {
        if let Ok(mut s) = self.put_seconds.lock() {
            *s += t.elapsed().as_secs_f64();
        }
    }
}

#[async_trait::async_trait]
impl BlobStore for TimedBlobs {
    async fn put(
        &self,
        key: &str,
        data: Bytes,
        content_type: &str,
        sha256: &[u8; 32],
    ) -> attachments::store::StoreResult<()> {
        let t = Instant::now();
        let r = self.inner.put(key, data, content_type, sha256).await;
        self.add(t);
        r
    }
    /// The path uploads take: the file store writes while the service hashes.
    async fn put_while_hashing(
        &self,
        key: &str,
        data: Bytes,
        content_type: &str,
        sha256: tokio::sync::oneshot::Receiver<[u8; 32]>,
    ) -> attachments::store::StoreResult<()> {
        let t = Instant::now();
        let r = self
            .inner
            .put_while_hashing(key, data, content_type, sha256)
            .await;
        self.add(t);
        r
    }
    async fn head(
        &self,
        key: &str,
    ) -> attachments::store::StoreResult<Option<attachments::store::BlobInfo>> {
        self.inner.head(key).await
    }
    async fn get_range(
        &self,
        key: &str,
        etag: Option<&str>,
        offset: u64,
        len: u64,
    ) -> attachments::store::StoreResult<Bytes> {
        self.inner.get_range(key, etag, offset, len).await
    }
    async fn promote(
        &self,
        staged: &str,
        etag: &str,
        size: u64,
        key: &str,
    ) -> attachments::store::StoreResult<()> {
        self.inner.promote(staged, etag, size, key).await
    }
    async fn list_staged(
        &self,
        after: Option<String>,
    ) -> attachments::store::StoreResult<attachments::store::Page<String>> {
        self.inner.list_staged(after).await
    }
    async fn list_staged_uploads(
        &self,
        after: Option<String>,
    ) -> attachments::store::StoreResult<attachments::store::Page<attachments::store::StagedUpload>>
    {
        self.inner.list_staged_uploads(after).await
    }
    async fn delete(&self, key: &str) -> attachments::store::StoreResult<()> {
        self.inner.delete(key).await
    }
    async fn presign_get(
        &self,
        key: &str,
        opts: &attachments::store::LinkOptions<'_>,
    ) -> attachments::store::StoreResult<String> {
        self.inner.presign_get(key, opts).await
    }
    async fn presign_post(
        &self,
        key: &str,
        policy: &attachments::store::PostPolicy<'_>,
    ) -> attachments::store::StoreResult<attachments::store::PresignedPost> {
        self.inner.presign_post(key, policy).await
    }
    async fn create_multipart(
        &self,
        key: &str,
        content_type: &str,
    ) -> attachments::store::StoreResult<String> {
        self.inner.create_multipart(key, content_type).await
    }
    async fn presign_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        size: u64,
        ttl: std::time::Duration,
    ) -> attachments::store::StoreResult<String> {
        self.inner
            .presign_part(key, upload_id, number, size, ttl)
            .await
    }
    async fn list_parts(
        &self,
        key: &str,
        upload_id: &str,
    ) -> attachments::store::StoreResult<Vec<attachments::store::PartInfo>> {
        self.inner.list_parts(key, upload_id).await
    }
    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[attachments::store::PartInfo],
    ) -> attachments::store::StoreResult<()> {
        self.inner.complete_multipart(key, upload_id, parts).await
    }
    async fn abort_multipart(
        &self,
        key: &str,
        upload_id: &str,
    ) -> attachments::store::StoreResult<()> {
        self.inner.abort_multipart(key, upload_id).await
    }
}

/// `App::upload_many` of a 4 MiB file on an embedded app whose blob writes are timed: total,
/// blob write, and the hashing of the same bytes, which the upload overlaps with its writes.
pub async fn upload_service(file: &Bytes, rounds: usize) -> Result<String, Error> {
    use attachments::domain::{FileName, TenantId};
    use attachments::service::ParentFields;
    let dir = TempDir::new("timed")?;
    let e = |e: &dyn std::fmt::Display| e.to_string();
    std::fs::create_dir_all(dir.path().join("blobs")).map_err(|x| e(&x))?;
    let meta = Arc::new(
        attachments::store::sqlite::SqliteStore::open(&dir.path().join("a.db"))
            .map_err(|x| e(&x))?,
    );
    let blobs = Arc::new(TimedBlobs {
        inner: FsBlobStore::new(
            dir.path().join("blobs"),
            "http://127.0.0.1",
            Signer::new([7; 32]),
        ),
        put_seconds: std::sync::Mutex::new(0.0),
    });
    let app = App::new(
        meta,
        blobs.clone(),
        Signer::new([9; 32]),
        attachments::service::Limits::default(),
    );
    let tenant = TenantId::parse("bench").map_err(|x| e(&x))?;
    let key = "timed-key-0123456789abcdef";
    app.register_key(&tenant, key, None)
        .await
        .map_err(|x| e(&x))?;
    let who = app.authenticate(Some(key)).await.map_err(|x| e(&x))?;
    let parent = ParentRef::new(
        ParentKind::parse("bench").map_err(|x| e(&x))?,
        ParentId::parse("timed").map_err(|x| e(&x))?,
    );
    app.put_parent(&who, parent.clone(), ParentFields::default())
        .await
        .map_err(|x| e(&x))?;
    let name = FileName::parse("scan.pdf").map_err(|x| e(&x))?;
    let (mut total, mut put, mut hash) = (vec![], vec![], vec![]);
    for round in 0..=rounds {
        if let Ok(mut s) = blobs.put_seconds.lock() {
            *s = 0.0;
        }
        let t = Instant::now();
        upload_file(&app, &who, &parent, &name, file).await?;
        let t_total = t.elapsed().as_secs_f64();
        let (t_hash, _) = time(|| black_box(Digests::of(file)));
        if round > 0 {
            total.push(t_total);
            put.push(blobs.put_seconds.lock().map(|s| *s).unwrap_or(f64::NAN));
            hash.push(t_hash);
        }
    }
    let (t, p, h) = (median(&total), median(&put), median(&hash));
    Ok(format!(
        "App::upload_many of 4 MiB (median of {rounds}): {}, in which the blob write ({}, timed \
         in the store) runs beside the hashing ({}, the same bytes hashed apart) and the \
         metadata writes.",
        ms(t),
        ms(p),
        ms(h),
    ))
}

/// What one S3 download link costs on the AWS backend: `S3BlobStore::presign_get` (the
/// credentials from the SDK's cache, their expiry, and `aws-sigv4`'s signature), in process,
/// with made-up credentials and the default endpoint (presigning makes no network call). Median
/// of `rounds` batches of `links` links, per link.
pub async fn s3_links(links: usize, rounds: usize) -> Result<String, Error> {
    use attachments::store::LinkOptions;
    let loader = attachments::store::sdk::loader(None)
        .map_err(|e| e.to_string())?
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::new(
            "ASIAEXAMPLEEXAMPLE00",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            Some("IQoJb3JpZ2luX2VjEXAMPLE-session-token".into()),
            None,
            "bench",
        ));
    let sdk = attachments::store::sdk::load(loader)
        .await
        .map_err(|e| e.to_string())?;
    let vars = [
        ("ATTACHMENTS_BACKEND", "aws"),
        ("ATTACHMENTS_TABLE", "attachments-Table-EXAMPLE"),
        ("ATTACHMENTS_BUCKET", "attachments-bucket-example"),
        (
            "ATTACHMENTS_SECRET",
            "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
        ),
    ];
    let cfg = attachments::Config::from_lookup(|k| {
        vars.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| (*v).to_owned())
    })
    .map_err(|e| e.to_string())?;
    let (_, s3) = attachments::setup::aws_stores(&cfg, &sdk, None)
        .await
        .map_err(|e| e.to_string())?;
    let opts = LinkOptions {
        content_type: "application/pdf",
        file_name: "report 2024.pdf",
        valid: attachments::store::LinkWindow::aligned(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64),
            std::time::Duration::from_secs(900),
        ),
    };
    let key = "acme/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c";
    s3.presign_get(key, &opts)
        .await
        .map_err(|e| e.to_string())?;
    let mut per_link = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..links {
            black_box(
                s3.presign_get(key, &opts)
                    .await
                    .map_err(|e| e.to_string())?,
            );
        }
        per_link.push(t.elapsed().as_secs_f64() / links as f64);
    }
    let one = median(&per_link);
    Ok(format!(
        "S3 download links (AWS backend, in process): {} per link (aws-sigv4, credentials from \
         the SDK's cache), {} for a listing of {links}.",
        ms(one),
        ms(one * links as f64)
    ))
}
