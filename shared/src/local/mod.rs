//! The local server: the whole API on one machine (`cargo run --release`). It serves the route
//! table, plus the embedded blob store's signed links under `/_blobs/` ([`blobs`]).

mod blobs;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::http::routes;
use crate::service::App;
use crate::setup::{self, Built, SetupError};
use crate::store::fs_blob::{FsBlobStore, LINK_PREFIX, POST_PATH};

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
}

impl From<Built> for Server {
    fn from(b: Built) -> Self {
        Self {
            app: b.app,
            fs_blobs: b.fs_blobs,
        }
    }
}

impl Server {
    /// Serves one request.
    pub async fn handle(&self, req: http::Request<Incoming>) -> http::Response<Body> {
        let path = req.uri().path();
        if let Some(blobs) = &self.fs_blobs {
            if path == POST_PATH && req.method() == Method::POST {
                return blobs::receive_form(&self.app, blobs, req).await;
            }
            if let Some(key) = path.strip_prefix(LINK_PREFIX) {
                let key = key.to_owned();
                if req.method() == Method::PUT {
                    return blobs::receive_part(blobs, req, &key).await;
                }
                return blobs::serve(blobs, &req, &key).await;
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

fn too_large(errors: routes::ErrorRenderer, limit: usize) -> crate::http::Response {
    errors(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("the request body is larger than the limit of {limit} bytes"),
    )
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
    Ok((addr, built.into(), listener, first_key))
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
    tokio::select! {
        r = serve(server, listener) => r.map_err(|e| SetupError::Other(e.to_string())),
        _ = tokio::signal::ctrl_c() => {
            tracing::info!("shutting down");
            Ok(())
        }
    }
}
