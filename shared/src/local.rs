//! The local server: the whole API on one machine (`cargo run --release`). It serves the route
//! table, plus the embedded blob store's signed links under `/_blobs/`, the browser console
//! (`/console`, see [`crate::console`]) and CORS (see [`crate::http::cors`]).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::http::routes;
use crate::service::App;
use crate::setup::{self, Built, SetupError};
use crate::store::fs_blob::{FsBlobStore, LinkError, UploadError, LINK_PREFIX, POST_PATH};

type Body = BoxBody<Bytes, std::io::Error>;

fn full(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

fn finish(resp: crate::http::Response) -> http::Response<Body> {
    resp.map(full)
}

/// The server's shared state.
#[derive(Debug, Clone)]
pub struct Server {
    pub app: Arc<App>,
    pub fs_blobs: Option<Arc<FsBlobStore>>,
    pub console: Arc<crate::console::Console>,
    pub cors: Arc<crate::http::cors::Cors>,
}

impl From<Built> for Server {
    fn from(b: Built) -> Self {
        Self {
            app: b.app,
            fs_blobs: b.fs_blobs,
            console: Arc::default(),
            cors: Arc::default(),
        }
    }
}

impl Server {
    /// Serves one request: the console, CORS, then the links or the API.
    pub async fn handle(&self, req: http::Request<Incoming>) -> http::Response<Body> {
        if let Some(page) = self.console.serve(&req) {
            return finish(page);
        }
        let blob = self.fs_blobs.is_some() && req.uri().path().starts_with(LINK_PREFIX);
        if let Some(preflight) = self.cors.preflight(&req, blob) {
            return finish(preflight);
        }
        let cors = self.cors.verdict(&req, blob);
        let mut resp = self.route(req).await;
        cors.apply(resp.headers_mut());
        resp
    }

    async fn route(&self, req: http::Request<Incoming>) -> http::Response<Body> {
        let path = req.uri().path();
        if let Some(blobs) = &self.fs_blobs {
            if path == POST_PATH && req.method() == Method::POST {
                return self.receive_form_upload(blobs, req).await;
            }
            if let Some(key) = path.strip_prefix(LINK_PREFIX) {
                let key = key.to_owned();
                if req.method() == Method::PUT {
                    return receive_part(blobs, req, &key).await;
                }
                return serve_blob(blobs, &req, &key).await;
            }
        }
        // The envelope of the route's API, looked up only when the body is refused.
        let errors = |path: &str| routes::errors_for_path(path);
        let limit = self.app.limits.max_upload_bytes;
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return finish(too_large(errors(path), limit));
        }
        let (parts, body) = req.into_parts();
        // Most requests (every GET) have no body: skip the collecting machinery for them.
        let bytes = if hyper::body::Body::is_end_stream(&body) {
            Bytes::new()
        } else {
            match Limited::new(body, limit).collect().await {
                Ok(c) => c.to_bytes(),
                Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                    return finish(too_large(errors(parts.uri.path()), limit))
                }
                Err(_) => {
                    return finish(errors(parts.uri.path())(
                        StatusCode::BAD_REQUEST,
                        "the request body could not be read",
                    ))
                }
            }
        };
        let req = http::Request::from_parts(parts, bytes);
        finish(routes::dispatch(&self.app, req).await)
    }
}

impl Server {
    /// A direct form upload, as S3's POST Object: fields first, then the file, streamed to disk
    /// under the signed policy's exact key, size and checksum. Like S3's "object created" event,
    /// a stored file then triggers the verification.
    async fn receive_form_upload(
        &self,
        blobs: &FsBlobStore,
        req: http::Request<Incoming>,
    ) -> http::Response<Body> {
        let Some(boundary) = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|ct| multer::parse_boundary(ct).ok())
        else {
            return upload_error(UploadError::Malformed(
                "the body must be multipart/form-data".into(),
            ));
        };
        let body = http_body_util::BodyStream::new(req.into_body());
        let data = futures_util::StreamExt::filter_map(body, |frame| async move {
            match frame {
                Ok(f) => f.into_data().ok().map(Ok),
                Err(e) => Some(Err(e)),
            }
        });
        let constraints = multer::Constraints::new().size_limit(
            multer::SizeLimit::new()
                .for_field("file", u64::MAX)
                .per_field(16 * 1024),
        );
        let mut form = multer::Multipart::with_constraints(Box::pin(data), boundary, constraints);
        let mut fields: Vec<(String, String)> = Vec::new();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        loop {
            let field = match form.next_field().await {
                Ok(Some(f)) => f,
                Ok(None) => {
                    return upload_error(UploadError::Malformed("the form has no file".into()))
                }
                Err(e) => return upload_error(UploadError::Malformed(e.to_string())),
            };
            let name = field.name().unwrap_or_default().to_owned();
            if name == "file" {
                let target = match blobs.check_post(&fields, now) {
                    Ok(t) => t,
                    Err(e) => return upload_error(e),
                };
                if let Err(e) = blobs.receive_post(&target, field).await {
                    return upload_error(e);
                }
                let app = self.app.clone();
                let key = target.key.clone();
                tokio::spawn(async move {
                    if let Err(e) = app.finalize_key(&key).await {
                        tracing::warn!(error = %e, %key, "verification after upload failed; complete will retry");
                    }
                });
                return finish(crate::http::empty(StatusCode::NO_CONTENT));
            }
            if fields.len() >= 32 {
                return upload_error(UploadError::Malformed("too many form fields".into()));
            }
            match field.text().await {
                Ok(v) => fields.push((name, v)),
                Err(e) => return upload_error(UploadError::Malformed(e.to_string())),
            }
        }
    }
}

/// One part of a multipart upload, streamed to disk; answers its ETag as S3 does.
async fn receive_part(
    blobs: &FsBlobStore,
    req: http::Request<Incoming>,
    key: &str,
) -> http::Response<Body> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let target = match blobs
        .check_part(key, req.uri().query().unwrap_or(""), now)
        .await
    {
        Ok(t) => t,
        Err(e) => return upload_error(e),
    };
    let body = http_body_util::BodyStream::new(req.into_body());
    let data = futures_util::StreamExt::filter_map(body, |frame| async move {
        match frame {
            Ok(f) => f.into_data().ok().map(Ok),
            Err(e) => Some(Err(e)),
        }
    });
    match blobs.receive_part(&target, Box::pin(data)).await {
        Ok(etag) => {
            let mut resp = finish(crate::http::empty(StatusCode::OK));
            if let Ok(v) = HeaderValue::from_str(&format!("\"{etag}\"")) {
                resp.headers_mut().insert(header::ETAG, v);
            }
            resp
        }
        Err(e) => upload_error(e),
    }
}

fn upload_error(e: UploadError) -> http::Response<Body> {
    let (status, code) = match &e {
        UploadError::Malformed(_) => (StatusCode::BAD_REQUEST, "MalformedPOSTRequest"),
        UploadError::BadSignature => (StatusCode::FORBIDDEN, "SignatureDoesNotMatch"),
        UploadError::Expired => (StatusCode::FORBIDDEN, "AccessDenied"),
        UploadError::TooLarge => (StatusCode::BAD_REQUEST, "EntityTooLarge"),
        UploadError::TooSmall => (StatusCode::BAD_REQUEST, "EntityTooSmall"),
        UploadError::BadDigest => (StatusCode::BAD_REQUEST, "BadDigest"),
        UploadError::NoSuchUpload => (StatusCode::NOT_FOUND, "NoSuchUpload"),
        UploadError::Io(cause) => {
            crate::http::log_internal(cause);
            return blob_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "internal server error",
            );
        }
    };
    blob_error(status, code, &e.to_string())
}

fn too_large(errors: routes::ErrorRenderer, limit: usize) -> crate::http::Response {
    errors(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("the request body is larger than the limit of {limit} bytes"),
    )
}

fn blob_error(status: StatusCode, code: &str, message: &str) -> http::Response<Body> {
    finish(crate::http::native::error(status, code, message))
}

async fn serve_blob(
    blobs: &FsBlobStore,
    req: &http::Request<Incoming>,
    key: &str,
) -> http::Response<Body> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return blob_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "links are for GET",
        );
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let dl = match blobs
        .open_signed(key, req.uri().query().unwrap_or(""), now)
        .await
    {
        Ok(d) => d,
        Err(LinkError::NotFound) => {
            return blob_error(StatusCode::NOT_FOUND, "not_found", "no such object")
        }
        Err(e) => return blob_error(StatusCode::FORBIDDEN, "access_denied", &e.to_string()),
    };
    let file = match tokio::fs::File::open(&dl.path).await {
        Ok(f) => f,
        Err(_) => return blob_error(StatusCode::NOT_FOUND, "not_found", "no such object"),
    };
    let body: Body = if req.method() == Method::HEAD {
        full(Bytes::new())
    } else {
        let stream = tokio_util::io::ReaderStream::with_capacity(file, 64 * 1024);
        let frames = futures_util::StreamExt::map(stream, |r| r.map(Frame::data));
        BodyExt::boxed(StreamBody::new(frames))
    };
    let mut resp = http::Response::new(body);
    let h = resp.headers_mut();
    let put = |h: &mut http::HeaderMap, name: header::HeaderName, v: &str| {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(name, v);
        }
    };
    put(h, header::CONTENT_TYPE, &dl.content_type);
    put(h, header::CONTENT_DISPOSITION, &dl.content_disposition);
    put(h, header::CONTENT_LENGTH, &dl.size.to_string());
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=0"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    resp
}

/// Serves connections on a bound listener until the future is dropped.
pub async fn serve(server: Server, listener: TcpListener) -> std::io::Result<()> {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: wait a little instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let server = server.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let server = server.clone();
                async move { Ok::<_, Infallible>(server.handle(req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .max_buf_size(64 * 1024)
                .header_read_timeout(Duration::from_secs(30))
                .timer(hyper_util::rt::TokioTimer::new())
                .serve_connection(TokioIo::new(stream), svc);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
}

/// Starts a server for `cfg` on its address (or the listener given), with keys seeded and the
/// sweep running. Returns the bound address and the serving future.
pub async fn start(
    cfg: &Config,
    listener: Option<TcpListener>,
) -> Result<(SocketAddr, Server, TcpListener, Option<String>), SetupError> {
    let built = setup::build(cfg).await?;
    let first_key = setup::seed_keys(&built.app, cfg).await?;
    let listener = match listener {
        Some(l) => l,
        None => TcpListener::bind(cfg.addr).await.map_err(|e| {
            SetupError::Other(format!(
                "ATTACHMENTS_ADDR: cannot listen on {}: {e}",
                cfg.addr
            ))
        })?,
    };
    let addr = listener
        .local_addr()
        .map_err(|e| SetupError::Other(e.to_string()))?;
    let mut server = Server::from(built);
    let links = server.fs_blobs.as_ref().map(|_| cfg.public_url.as_str());
    server.console = Arc::new(crate::console::Console::new(links));
    server.cors = Arc::new(crate::http::cors::Cors::new(cfg.cors_origins.clone()));
    Ok((addr, server, listener, first_key))
}

/// Removes abandoned uploads and unfinished deletions every minute.
pub fn spawn_sweeper(app: Arc<App>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            match app.sweep(now).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "sweep removed leftovers"),
                Err(e) => tracing::warn!(error = %e, "sweep failed"),
            }
        }
    });
}

/// The local server's `main`.
pub async fn run() -> Result<(), SetupError> {
    let cfg = Config::from_env()?;
    crate::telemetry::init(cfg.json_logs);
    let (addr, server, listener, first_key) = start(&cfg, None).await?;
    if let Some(key) = first_key {
        // Printed once, on the first start of an empty store: the only time it is shown.
        println!("Created an API key for tenant `default` (shown only this once):\n\n    {key}\n");
    }
    spawn_sweeper(server.app.clone());
    tracing::info!(%addr, data_dir = %cfg.data_dir.display(), "attachments API listening");
    println!("Attachments API listening on http://{addr}");
    println!("Console: http://{addr}/console");
    tokio::select! {
        r = serve(server, listener) => r.map_err(|e| SetupError::Other(e.to_string())),
        _ = tokio::signal::ctrl_c() => {
            tracing::info!("shutting down");
            Ok(())
        }
    }
}
