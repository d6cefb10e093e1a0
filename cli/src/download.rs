//! `get`: an attachment's bytes through its download link, with progress, checked against the
//! SHA-256 the server computed, written under a temporary name and renamed when whole.

use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use reqwest::Method;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::client::{answer_error, segment, unreachable, Api};
use crate::error::{CliError, CliResult};
use crate::progress;

/// Where the bytes go.
pub enum Output {
    Stdout,
    File(PathBuf),
}

/// Downloads an attachment; answers its metadata and where it was written.
pub async fn get(
    api: &Api,
    id: &str,
    output: Option<&Path>,
    force: bool,
    show_progress: bool,
) -> CliResult<(Value, Output)> {
    let att = api
        .json(
            Method::GET,
            &format!("/v1/attachments/{}", segment(id)),
            None,
            &format!("attachment {id}"),
        )
        .await?;
    let Some(url) = att["download_url"].as_str() else {
        return Err(CliError::Refused(format!(
            "attachment {id} has no file to download (status {})",
            att["status"].as_str().unwrap_or("unknown")
        )));
    };
    let out = match output {
        Some(p) if p.as_os_str() == "-" => Output::Stdout,
        Some(p) => Output::File(p.to_owned()),
        None => {
            let name = att["file_name"].as_str().unwrap_or(id);
            // Only the last component: a stored name never writes outside this folder.
            let name = Path::new(name)
                .file_name()
                .map_or_else(|| PathBuf::from(id), PathBuf::from);
            Output::File(name)
        }
    };
    if let Output::File(p) = &out {
        if p.exists() && !force {
            return Err(CliError::Local(format!(
                "{} exists; give --force to replace it, or -o another name",
                p.display()
            )));
        }
    }
    let resp = api
        .http
        .get(url)
        .send()
        .await
        .map_err(|e| unreachable("downloading", &e))?;
    let status = resp.status();
    if !status.is_success() {
        let body = resp.bytes().await.unwrap_or_default();
        return Err(answer_error(status, &body, "downloading"));
    }
    let total = att["size"].as_u64().or(resp.content_length()).unwrap_or(0);
    let name = att["file_name"].as_str().unwrap_or(id).to_owned();
    let bar = progress::bar(total, &name, show_progress);
    let tmp = match &out {
        Output::File(p) => Some(partial_name(p)),
        Output::Stdout => None,
    };
    let mut sink: Box<dyn tokio::io::AsyncWrite + Unpin + Send> = match &tmp {
        Some(t) => Box::new(
            tokio::fs::File::create(t)
                .await
                .map_err(|e| CliError::file(t, "write", e))?,
        ),
        None => Box::new(tokio::io::stdout()),
    };
    let mut hasher = Sha256::new();
    let mut stream = resp.bytes_stream();
    let result: CliResult<()> = async {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| unreachable("downloading", &e))?;
            hasher.update(&chunk);
            sink.write_all(&chunk)
                .await
                .map_err(|e| CliError::Local(format!("cannot write the download: {e}")))?;
            bar.inc(chunk.len() as u64);
        }
        sink.flush()
            .await
            .map_err(|e| CliError::Local(format!("cannot write the download: {e}")))?;
        let got = hex::encode(hasher.finalize());
        match att["sha256"].as_str() {
            Some(want) if want != got => Err(CliError::Unavailable(format!(
                "the download's SHA-256 is {got}, not the stored {want}; run again"
            ))),
            _ => Ok(()),
        }
    }
    .await;
    drop(sink);
    bar.finish_and_clear();
    match (result, &tmp, &out) {
        (Ok(()), Some(t), Output::File(p)) => {
            std::fs::rename(t, p).map_err(|e| CliError::file(p, "write", e))?;
        }
        (Err(e), Some(t), _) => {
            let _ = std::fs::remove_file(t);
            return Err(e);
        }
        (Err(e), None, _) => return Err(e),
        _ => {}
    }
    Ok((att, out))
}

fn partial_name(p: &Path) -> PathBuf {
    let mut name = p.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    p.with_file_name(name)
}
