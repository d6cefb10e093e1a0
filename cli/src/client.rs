//! The native API over HTTP (reqwest on hyper and rustls with ring, as the service itself),
//! and the mapping of its answers to [`CliError`].

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::error::{CliError, CliResult};

/// The API of one server, with one key.
#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    pub url: String,
    key: String,
}

/// The HTTP client every call and transfer uses.
pub fn http_client() -> CliResult<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(15))
        // A stalled transfer fails (and resumes on the next run) instead of hanging.
        .read_timeout(Duration::from_secs(120))
        .user_agent(concat!("attachments-cli/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| CliError::Local(format!("cannot set up HTTP: {e}")))
}

/// A transport failure: the server is not there, or the connection broke.
pub fn unreachable(what: &str, e: &reqwest::Error) -> CliError {
    let mut cause = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        cause = format!("{cause}: {s}");
        source = s.source();
    }
    CliError::Unavailable(format!(
        "{what} failed ({cause}); check the URL and that the server is up, then run again"
    ))
}

/// The error of a non-2xx answer, with the API's own message.
pub fn answer_error(status: StatusCode, body: &[u8], what: &str) -> CliError {
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .or_else(|| {
            // S3 answers XML: <Error><Code>…</Code><Message>…</Message></Error>.
            let text = String::from_utf8_lossy(body);
            let start = text.find("<Message>")? + "<Message>".len();
            let end = text[start..].find("</Message>")? + start;
            Some(text[start..end].to_owned())
        })
        .unwrap_or_else(|| format!("HTTP {status}"));
    match status {
        StatusCode::UNAUTHORIZED => CliError::Unauthorized(message),
        StatusCode::NOT_FOUND => CliError::NotFound(format!("{what}: {message}")),
        s if s.is_server_error() => CliError::Unavailable(format!(
            "{what}: the server failed ({message}); run again later"
        )),
        _ => CliError::Refused(format!("{what}: {message}")),
    }
}

impl Api {
    pub fn new(http: reqwest::Client, url: String, key: String) -> Self {
        Self { http, url, key }
    }

    /// One JSON call; `Ok(None)` for 204.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        what: &str,
    ) -> CliResult<Option<Value>> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .header("x-api-key", &self.key);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.map_err(|e| unreachable(what, &e))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| unreachable(what, &e))?;
        if !status.is_success() {
            return Err(answer_error(status, &bytes, what));
        }
        if status == StatusCode::NO_CONTENT || bytes.is_empty() {
            return Ok(None);
        }
        serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            CliError::Unavailable(format!(
                "{what}: the server answered something that is not JSON ({e}); is {} the API?",
                self.url
            ))
        })
    }

    /// A call that must answer a JSON body.
    pub async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        what: &str,
    ) -> CliResult<Value> {
        self.call(method, path, body, what)
            .await?
            .ok_or_else(|| CliError::Unavailable(format!("{what}: the server answered no body")))
    }
}

/// A path segment, percent-encoded (parent ids may hold any character).
pub fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `KIND/ID` as given on the command line.
#[derive(Debug, Clone)]
pub struct ParentArg {
    pub kind: String,
    pub id: String,
}

impl std::str::FromStr for ParentArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('/') {
            Some((k, i)) if !k.is_empty() && !i.is_empty() => Ok(Self {
                kind: k.to_owned(),
                id: i.to_owned(),
            }),
            _ => Err(format!("{s:?} is not KIND/ID (for example profile/42)")),
        }
    }
}

impl ParentArg {
    pub fn path(&self) -> String {
        format!("/v1/parents/{}/{}", segment(&self.kind), segment(&self.id))
    }
}

impl std::fmt::Display for ParentArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind, self.id)
    }
}
