//! The local server: the whole API on one machine (`cargo run --release`). It serves the route
//! table ([`api`]), plus the embedded blob store's signed links under `/_blobs/` ([`blobs`]), the
//! browser console (`/console`, see [`crate::console`]), the API's description and a page that
//! renders it (`/openapi.yaml`, `/api-docs`, see [`crate::api_docs`]), CORS (see
//! [`cors`]) and a health check (`/healthz`, [`health`]). Every request ends with
//! one log line, as on Lambda.
//!
//! Nothing a client sends can take it down: bodies are bounded and cut when they stall
//! ([`body`]), keys are checked before bodies are read, the connections it serves at once are
//! capped, and blocking work runs off its async workers ([`attachments::blocking`]).

mod api;
mod blobs;
mod body;
mod cors;
mod health;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use attachments::config::Config;
use attachments::service::App;
use attachments::setup::{self, Built, SetupError};
use attachments::store::fs_blob::{FsBlobStore, LINK_PREFIX, POST_PATH};

type Body = BoxBody<Bytes, std::io::Error>;

/// The health check's path: no key, answered before anything else.
pub const HEALTH_PATH: &str = "/healthz";

fn full(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

fn finish(resp: attachments::http::Response) -> http::Response<Body> {
    resp.map(full)
}

/// The server's shared state.
#[derive(Debug, Clone)]
pub struct Server {
    pub app: Arc<App>,
    pub fs_blobs: Option<Arc<FsBlobStore>>,
    /// Connections served at once (`ATTACHMENTS_MAX_CONNECTIONS`).
    pub max_connections: usize,
    /// How long a request body may send nothing (`ATTACHMENTS_BODY_IDLE_SECONDS`).
    pub body_idle: Duration,
    pub console: Arc<crate::console::Console>,
    pub cors: Arc<cors::Cors>,
}

impl Server {
    pub fn new(built: Built, cfg: &Config) -> Self {
        // The console's page may load what the store's links point at.
        let links = built.fs_blobs.as_ref().map(|_| cfg.public_url.as_str());
        Self {
            console: Arc::new(crate::console::Console::new(links)),
            app: built.app,
            fs_blobs: built.fs_blobs,
            max_connections: cfg.max_connections,
            body_idle: cfg.body_idle,
            cors: Arc::new(cors::Cors::new(cfg.cors_origins.clone())),
        }
    }
}

impl Server {
    /// Serves one request, and logs its line (see [`attachments::telemetry::request`]): the single
    /// exit of every answer.
    pub async fn handle(&self, req: http::Request<Incoming>) -> http::Response<Body> {
        use attachments::telemetry::request;
        let started = std::time::Instant::now();
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let bytes_in = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let (resp, record) = request::scope(self.respond(req)).await;
        let route = record.route.unwrap_or("unmatched");
        request::finish(
            &request::Outcome {
                route,
                method: method.as_str(),
                path: &path,
                status: resp.status().as_u16(),
                latency: started.elapsed(),
                bytes_in,
                bytes_out: hyper::body::Body::size_hint(resp.body()).exact(),
                ..Default::default()
            },
            record,
        );
        resp
    }

    /// The health check, the console, the API's description, CORS, then the links or the API.
    async fn respond(&self, req: http::Request<Incoming>) -> http::Response<Body> {
        use attachments::telemetry::request::set_route;
        if req.uri().path() == HEALTH_PATH {
            set_route("healthz");
            return attachments::http::hardened(finish(
                health::check(&self.app, req.method()).await,
            ));
        }
        if let Some(page) = self.console.serve(&req) {
            set_route("console");
            return attachments::http::hardened(finish(page));
        }
        if let Some(page) = crate::api_docs::serve(&req) {
            set_route("api-docs");
            return attachments::http::hardened(finish(page));
        }
        let blob = self.fs_blobs.is_some() && req.uri().path().starts_with(LINK_PREFIX);
        if let Some(preflight) = self.cors.preflight(&req, blob) {
            set_route("preflight");
            return attachments::http::hardened(finish(preflight));
        }
        let cors = self.cors.verdict(&req, blob);
        let mut resp = self.route(req).await;
        cors.apply(resp.headers_mut());
        attachments::http::hardened(resp)
    }

    async fn route(&self, req: http::Request<Incoming>) -> http::Response<Body> {
        let path = req.uri().path();
        if let Some(blobs) = &self.fs_blobs {
            if path == POST_PATH && req.method() == Method::POST {
                attachments::telemetry::request::set_route("blobs-post");
                return blobs::receive_form(&self.app, blobs, req, self.body_idle).await;
            }
            if let Some(key) = path.strip_prefix(LINK_PREFIX) {
                attachments::telemetry::request::set_route("blobs");
                let key = key.to_owned();
                if req.method() == Method::PUT {
                    return blobs::receive_part(blobs, req, &key, self.body_idle).await;
                }
                return blobs::serve(blobs, &req, &key).await;
            }
        }
        finish(api::serve(&self.app, req, self.body_idle).await)
    }
}

/// Serves connections on a bound listener until the future is dropped, at most
/// `max_connections` at once: past that, new ones wait in the listen queue.
pub async fn serve(server: Server, listener: TcpListener) -> std::io::Result<()> {
    let slots = Arc::new(tokio::sync::Semaphore::new(server.max_connections));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return Ok(());
        };
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
            let _slot = slot;
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
    Ok((addr, Server::new(built, cfg), listener, first_key))
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
    attachments::telemetry::init(&cfg);
    let (addr, server, listener, first_key) = start(&cfg, None).await?;
    if let Some(key) = first_key {
        // Printed once, on the first start of an empty store: the only time it is shown.
        say(&format!(
            "Created an API key for tenant `default` (shown only this once):\n\n    {key}\n"
        ));
    }
    spawn_sweeper(server.app.clone());
    tracing::info!(%addr, data_dir = %cfg.data_dir.display(), "attachments API listening");
    say(&format!("Attachments API listening on http://{addr}"));
    say(&format!("Console: http://{addr}/console"));
    say(&format!(
        "API description: http://{addr}/openapi.yaml, browsed at http://{addr}/api-docs"
    ));
    tokio::select! {
        r = serve(server, listener) => r.map_err(|e| SetupError::Other(e.to_string())),
        _ = tokio::signal::ctrl_c() => {
            tracing::info!("shutting down");
            Ok(())
        }
    }
}

/// Prints a line for the person who started the server. Nobody may be reading any more (a closed
/// pipe): that must not stop the server, as `println!` would.
fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}
