//! `put`: a file to a parent through the direct-upload flow. The API says how to send it (one
//! form POST, or parts of `part_size` bytes, the last one shorter, sent several at once), the
//! bytes go straight to storage, and `complete` verifies them against the SHA-256 declared at
//! the start.
//!
//! An interrupted multipart upload resumes: the upload's attachment id is kept in a small record
//! in the state folder, keyed by the API, the parent and the file (path, size, modification
//! time); run again on the same file, the client asks the status call which parts storage
//! already holds and sends only the others.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use futures_util::TryStreamExt;
use indicatif::ProgressBar;
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::client::{answer_error, segment, unreachable, Api, ParentArg};
use crate::config;
use crate::error::{CliError, CliResult};
use crate::progress;

/// Attempts per part: network errors, storage's 5xx and expired links are tried again.
const PART_ATTEMPTS: u32 = 4;
/// How much of a file is read at a time (hashing and sending).
const CHUNK: usize = 256 * 1024;

/// What `put` was asked besides the files.
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    pub parallel: usize,
    pub label: Option<String>,
    pub title: Option<String>,
    pub tags: Option<Vec<String>>,
    pub show_progress: bool,
}

/// The record of an unfinished multipart upload (never the key).
#[derive(Debug, Serialize, Deserialize)]
struct ResumeRecord {
    api: String,
    parent: String,
    path: PathBuf,
    size: u64,
    modified_ns: u128,
    sha256: String,
    attachment_id: String,
}

/// The file as the record knows it.
struct Local {
    path: PathBuf,
    name: String,
    size: u64,
    modified_ns: u128,
}

fn inspect(path: &Path) -> CliResult<Local> {
    let path = std::fs::canonicalize(path).map_err(|e| CliError::file(path, "read", e))?;
    let meta = std::fs::metadata(&path).map_err(|e| CliError::file(&path, "read", e))?;
    if !meta.is_file() {
        return Err(CliError::Local(format!(
            "{} is not a file; give files to upload",
            path.display()
        )));
    }
    let modified_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| {
            CliError::Local(format!(
                "{}: the file name must be UTF-8; rename it or copy it under another name",
                path.display()
            ))
        })?
        .to_owned();
    Ok(Local {
        path,
        name,
        size: meta.len(),
        modified_ns,
    })
}

fn record_path(api: &Api, parent: &ParentArg, file: &Local) -> CliResult<PathBuf> {
    let id = Sha256::digest(
        json!([
            api.url,
            parent.to_string(),
            file.path,
            file.size,
            file.modified_ns.to_string()
        ])
        .to_string(),
    );
    Ok(config::state_dir()?
        .join("uploads")
        .join(format!("{}.json", hex::encode(&id[..16]))))
}

fn load_record(path: &Path) -> Option<ResumeRecord> {
    // A record that cannot be read is as good as none: the upload starts afresh.
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

fn forget(path: &Path) {
    let _ = std::fs::remove_file(path);
}

/// Uploads one file; answers the ready attachment.
pub async fn put(
    api: &Api,
    parent: &ParentArg,
    path: &Path,
    opts: &PutOptions,
) -> CliResult<Value> {
    let file = inspect(path)?;
    let record_at = record_path(api, parent, &file)?;
    if let Some(rec) = load_record(&record_at) {
        match resume(api, &file, &rec, &record_at, opts).await? {
            Some(done) => return Ok(done),
            None => forget(&record_at),
        }
    }
    let sha256 = hash(&file, opts).await?;
    let mut body = json!({
        "file_name": file.name,
        "content_type": crate::content_type::for_name(&file.name),
        "size": file.size,
        "sha256": sha256,
    });
    for (k, v) in [("type", &opts.label), ("title", &opts.title)] {
        if let Some(v) = v {
            body[k] = json!(v);
        }
    }
    if let Some(tags) = &opts.tags {
        body["tags"] = json!(tags);
    }
    let began = api
        .json(
            Method::POST,
            &format!("{}/uploads", parent.path()),
            Some(&body),
            &format!("starting the upload of {}", file.name),
        )
        .await?;
    let id = began["attachment"]["id"]
        .as_str()
        .ok_or_else(|| CliError::Unavailable("the API answered no attachment id".into()))?
        .to_owned();
    let upload = &began["upload"];
    if upload["method"] == "multipart" {
        let rec = ResumeRecord {
            api: api.url.clone(),
            parent: parent.to_string(),
            path: file.path.clone(),
            size: file.size,
            modified_ns: file.modified_ns,
            sha256,
            attachment_id: id.clone(),
        };
        let bytes = serde_json::to_vec(&rec)
            .map_err(|e| CliError::Local(format!("cannot encode the resume record: {e}")))?;
        config::write_private(&record_at, &bytes)?;
        send_parts(api, &file, &id, upload, opts).await?;
    } else {
        send_form(api, &file, upload, opts).await?;
    }
    finish(api, &id, &file, &record_at).await
}

/// Resumes the upload of a record: `None` when there is nothing left to resume (it was swept,
/// or refused), so the caller starts afresh.
async fn resume(
    api: &Api,
    file: &Local,
    rec: &ResumeRecord,
    record_at: &Path,
    opts: &PutOptions,
) -> CliResult<Option<Value>> {
    let path = format!("/v1/attachments/{}/upload", segment(&rec.attachment_id));
    let what = format!("resuming the upload of {}", file.name);
    match api.json(Method::GET, &path, None, &what).await {
        Ok(status) => {
            send_parts(api, file, &rec.attachment_id, &status["upload"], opts).await?;
            finish(api, &rec.attachment_id, file, record_at)
                .await
                .map(Some)
        }
        // Gone (swept, deleted), or no upload under way: finished by an earlier run that
        // stopped before forgetting its record, or refused.
        Err(CliError::NotFound(_)) => Ok(None),
        Err(CliError::Refused(_)) => {
            let att = api
                .json(
                    Method::GET,
                    &format!("/v1/attachments/{}", segment(&rec.attachment_id)),
                    None,
                    &what,
                )
                .await?;
            if att["status"] == "ready" && att["sha256"] == rec.sha256.as_str() {
                forget(record_at);
                return Ok(Some(att));
            }
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// `complete`: storage has every byte; the server verifies them, within the request or, for a
/// large file, in the background (`verifying`), which this waits for.
async fn finish(api: &Api, id: &str, file: &Local, record_at: &Path) -> CliResult<Value> {
    let refused = format!("{} was refused", file.name);
    let mut r = api
        .json(
            Method::POST,
            &format!("/v1/attachments/{}/complete", segment(id)),
            None,
            &refused,
        )
        .await;
    if matches!(&r, Ok(att) if att["status"] == "verifying") {
        r = wait_for_verification(api, id, &refused).await;
    }
    // Ready, or refused for good: either way there is nothing left to resume.
    if matches!(r, Ok(_) | Err(CliError::Refused(_))) {
        forget(record_at);
    }
    r
}

/// How long a background verification is waited for; the server's own limit is far below.
const VERIFY_WAIT: std::time::Duration = std::time::Duration::from_secs(3600);

/// Polls the attachment until its verification ends: ready, or refused with the reason.
async fn wait_for_verification(api: &Api, id: &str, refused: &str) -> CliResult<Value> {
    let started = std::time::Instant::now();
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let att = api
            .json(
                Method::GET,
                &format!("/v1/attachments/{}", segment(id)),
                None,
                refused,
            )
            .await?;
        match att["status"].as_str() {
            Some("verifying") if started.elapsed() < VERIFY_WAIT => {}
            Some("verifying") => {
                return Err(CliError::Unavailable(format!(
                    "{id} is still being verified; see later with `attachments info {id}`"
                )))
            }
            Some("rejected") => {
                let why = att["problem"].as_str().unwrap_or("the file was refused");
                return Err(CliError::Refused(format!("{refused}: {why}")));
            }
            _ => return Ok(att),
        }
    }
}

/// The file's SHA-256, declared at the start so that storage's copy is checked against it.
async fn hash(file: &Local, opts: &PutOptions) -> CliResult<String> {
    let bar = progress::bar(
        file.size,
        &format!("hashing {}", file.name),
        opts.show_progress,
    );
    let path = file.path.clone();
    let b = bar.clone();
    let digest = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
        use std::io::Read;
        let mut f = std::fs::File::open(&path)?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1024 * 1024];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                return Ok(hex::encode(h.finalize()));
            }
            h.update(&buf[..n]);
            b.inc(n as u64);
        }
    })
    .await
    .map_err(|e| CliError::Local(format!("hashing stopped: {e}")))?
    .map_err(|e| CliError::file(&file.path, "read", e))?;
    bar.finish_and_clear();
    Ok(digest)
}

/// A region of the file as a body stream, counted into `sent` and the bar as it goes.
async fn region_body(
    path: &Path,
    start: u64,
    len: u64,
    bar: ProgressBar,
    sent: Arc<AtomicU64>,
) -> CliResult<reqwest::Body> {
    let mut f = tokio::fs::File::open(path)
        .await
        .map_err(|e| CliError::file(path, "read", e))?;
    f.seek(std::io::SeekFrom::Start(start))
        .await
        .map_err(|e| CliError::file(path, "read", e))?;
    let reader = f.take(len);
    let stream = futures_util::stream::try_unfold(reader, move |mut r| {
        let bar = bar.clone();
        let sent = sent.clone();
        async move {
            let mut buf = vec![0u8; CHUNK];
            let n = r.read(&mut buf).await?;
            if n == 0 {
                return Ok::<_, std::io::Error>(None);
            }
            buf.truncate(n);
            bar.inc(n as u64);
            sent.fetch_add(n as u64, Ordering::Relaxed);
            Ok(Some((bytes::Bytes::from(buf), r)))
        }
    });
    Ok(reqwest::Body::wrap_stream(stream))
}

/// The form POST: the signed fields, then the file in the part the answer names.
async fn send_form(api: &Api, file: &Local, upload: &Value, opts: &PutOptions) -> CliResult<()> {
    let url = upload["url"]
        .as_str()
        .ok_or_else(|| CliError::Unavailable("the API answered no upload url".into()))?;
    let bar = progress::bar(file.size, &file.name, opts.show_progress);
    let mut form = reqwest::multipart::Form::new();
    if let Some(fields) = upload["fields"].as_object() {
        for (k, v) in fields {
            form = form.text(k.clone(), v.as_str().unwrap_or_default().to_owned());
        }
    }
    let body = region_body(
        &file.path,
        0,
        file.size,
        bar.clone(),
        Arc::new(AtomicU64::new(0)),
    )
    .await?;
    let part =
        reqwest::multipart::Part::stream_with_length(body, file.size).file_name(file.name.clone());
    let field = upload["file_field"].as_str().unwrap_or("file").to_owned();
    form = form.part(field, part);
    let resp = api
        .http
        .post(url)
        .multipart(form)
        .send()
        .await
        .map_err(|e| unreachable(&format!("sending {}", file.name), &e))?;
    let status = resp.status();
    if !status.is_success() {
        let body = resp.bytes().await.unwrap_or_default();
        return Err(answer_error(
            status,
            &body,
            &format!("storage refused {}", file.name),
        ));
    }
    bar.finish_and_clear();
    Ok(())
}

/// Upload links by part number, refreshed from the status call when they run out (it hands
/// out at most 1000 at a time) or expire.
struct Links {
    api: Api,
    id: String,
    map: tokio::sync::Mutex<std::collections::HashMap<u64, String>>,
}

fn links_of(upload: &Value) -> std::collections::HashMap<u64, String> {
    upload["parts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p["part_number"].as_u64()?, p["url"].as_str()?.to_owned())))
        .collect()
}

impl Links {
    async fn get(&self, n: u64) -> CliResult<String> {
        let mut map = self.map.lock().await;
        if let Some(url) = map.get(&n) {
            return Ok(url.clone());
        }
        let status = self
            .api
            .json(
                Method::GET,
                &format!("/v1/attachments/{}/upload", segment(&self.id)),
                None,
                "asking for upload links",
            )
            .await?;
        *map = links_of(&status["upload"]);
        map.get(&n)
            .cloned()
            .ok_or_else(|| CliError::Unavailable(format!("the API gave no link for part {n}")))
    }

    async fn expire(&self, n: u64) {
        self.map.lock().await.remove(&n);
    }
}

/// The parts storage does not hold yet, `parallel` at a time, each exactly its size.
async fn send_parts(
    api: &Api,
    file: &Local,
    id: &str,
    upload: &Value,
    opts: &PutOptions,
) -> CliResult<()> {
    let (Some(part_size), Some(count)) =
        (upload["part_size"].as_u64(), upload["part_count"].as_u64())
    else {
        return Err(CliError::Unavailable(
            "the API answered no part_size or part_count".into(),
        ));
    };
    let expected = |n: u64| {
        if n < count {
            part_size
        } else {
            file.size.saturating_sub(part_size * (count - 1))
        }
    };
    let have: Vec<(u64, u64)> = upload["parts_received"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p["part_number"].as_u64()?, p["size"].as_u64()?)))
        .collect();
    let held = |n: u64| have.iter().any(|&(m, s)| m == n && s == expected(n));
    let todo: Vec<u64> = (1..=count).filter(|&n| !held(n)).collect();
    let done: u64 = (1..=count).filter(|&n| held(n)).map(expected).sum();
    let bar = progress::bar(file.size, &file.name, opts.show_progress);
    bar.set_position(done);
    bar.reset_eta();
    let links = Arc::new(Links {
        api: api.clone(),
        id: id.to_owned(),
        map: tokio::sync::Mutex::new(links_of(upload)),
    });
    futures_util::stream::iter(todo.into_iter().map(Ok::<u64, CliError>))
        .try_for_each_concurrent(opts.parallel.max(1), |n| {
            let links = links.clone();
            let bar = bar.clone();
            let start = (n - 1) * part_size;
            async move { send_part(api, &links, &file.path, n, start, expected(n), bar).await }
        })
        .await?;
    bar.finish_and_clear();
    Ok(())
}

async fn send_part(
    api: &Api,
    links: &Links,
    path: &Path,
    n: u64,
    start: u64,
    len: u64,
    bar: ProgressBar,
) -> CliResult<()> {
    let what = format!("sending part {n}");
    let mut attempt = 0;
    loop {
        attempt += 1;
        let url = links.get(n).await?;
        let sent = Arc::new(AtomicU64::new(0));
        let body = region_body(path, start, len, bar.clone(), sent.clone()).await?;
        // Exactly the part's length, declared: storage (and a signed Content-Length) wants it.
        let result = api
            .http
            .put(&url)
            .header(reqwest::header::CONTENT_LENGTH, len)
            .body(body)
            .send()
            .await;
        let error = match result {
            Ok(resp) if resp.status().is_success() => return Ok(()),
            Ok(resp) => {
                let status = resp.status();
                let body = resp.bytes().await.unwrap_or_default();
                if status == StatusCode::FORBIDDEN {
                    // An expired link: the status call hands out a fresh one.
                    links.expire(n).await;
                }
                let retry = status == StatusCode::FORBIDDEN || status.is_server_error();
                (answer_error(status, &body, &what), retry)
            }
            Err(e) => (unreachable(&what, &e), true),
        };
        bar.dec(sent.load(Ordering::Relaxed));
        match error {
            (e, true) if attempt < PART_ATTEMPTS => {
                bar.suspend(|| eprintln!("warning: {e}; trying again"));
                tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
            }
            (e, _) => return Err(e),
        }
    }
}

/// Uploads every file in turn, going on after a failure; answers the attachments and the
/// failures, each led by its file when there are several.
pub async fn put_all(
    api: &Api,
    parent: &ParentArg,
    files: &[PathBuf],
    opts: &PutOptions,
) -> (Vec<Value>, Vec<CliError>) {
    forget_stale_records();
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for f in files {
        match put(api, parent, f, opts).await {
            Ok(att) => done.push(att),
            Err(e) if files.len() > 1 => failed.push(e.about(&f.display().to_string())),
            Err(e) => failed.push(e),
        }
    }
    (done, failed)
}

/// Records older than the longest an unfinished upload may live on a server (30 days) name
/// uploads that are gone: they are removed.
fn forget_stale_records() {
    let Ok(dir) = config::state_dir().map(|d| d.join("uploads")) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let month = Duration::from_secs(30 * 86_400);
    for e in entries.flatten() {
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > month);
        if old {
            forget(&e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_read_by_part_number() {
        let up = json!({"parts": [{"part_number": 2, "url": "u2"}, {"part_number": 3}]});
        let l = links_of(&up);
        assert_eq!(l.get(&2).map(String::as_str), Some("u2"));
        assert_eq!(l.len(), 1);
    }
}
