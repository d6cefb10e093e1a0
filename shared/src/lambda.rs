//! Running one route of the table as a Lambda function behind API Gateway (HTTP API, payload
//! v2). Configuration, clients and the app are built once per container, before the first event.
//! Every event ends with its request line (see [`crate::telemetry::request`]).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::StatusCode;
use lambda_http::{service_fn, Body, RequestExt};

use crate::config::Config;
use crate::http::routes::{self, Route};
use crate::service::App;
use crate::setup;

pub use lambda_http::Error;

/// Turns an API Gateway event into our request type. API Gateway has already decoded base64.
pub fn into_request(event: lambda_http::Request) -> crate::http::Request {
    let (parts, body) = event.into_parts();
    let bytes = match body {
        Body::Empty => Bytes::new(),
        Body::Text(s) => Bytes::from(s),
        Body::Binary(b) => Bytes::from(b),
        // `Body` is non-exhaustive in newer releases: anything else is no body we understand.
        #[allow(unreachable_patterns)]
        _ => Bytes::new(),
    };
    http::Request::from_parts(parts, bytes)
}

/// Turns our response into Lambda's. JSON goes as text; anything else as binary (base64).
pub fn into_response(resp: crate::http::Response) -> lambda_http::Response<Body> {
    let (parts, bytes) = resp.into_parts();
    let body = if bytes.is_empty() {
        Body::Empty
    } else {
        match String::from_utf8(bytes.to_vec()) {
            Ok(s) => Body::Text(s),
            Err(e) => Body::Binary(e.into_bytes()),
        }
    };
    lambda_http::Response::from_parts(parts, body)
}

/// The ids an event carries: Lambda's request id, API Gateway's, and the X-Ray trace header.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EventIds {
    pub lambda_request_id: Option<String>,
    pub api_request_id: Option<String>,
    pub trace_header: Option<String>,
}

impl EventIds {
    pub fn of(event: &lambda_http::Request) -> Self {
        let lambda = event.lambda_context_ref();
        let api_request_id = match event.request_context_ref() {
            Some(lambda_http::request::RequestContext::ApiGatewayV2(c)) => c.request_id.clone(),
            #[allow(unreachable_patterns)]
            _ => None,
        };
        Self {
            lambda_request_id: lambda.map(|c| c.request_id.clone()),
            api_request_id,
            trace_header: lambda.and_then(|c| c.xray_trace_id.clone()),
        }
    }
}

/// Serves one event with one route, and logs its line.
pub async fn handle(
    app: &Arc<App>,
    route: &'static Route,
    event: lambda_http::Request,
) -> lambda_http::Response<Body> {
    use crate::telemetry::request;
    let started = Instant::now();
    let ids = EventIds::of(&event);
    let method = event.method().clone();
    let path = event.uri().path().to_owned();
    let req = into_request(event);
    let bytes_in = req.body().len() as u64;
    let (resp, record) = request::scope(respond(app, route, req)).await;
    request::finish(
        &request::Outcome {
            route: route.name,
            method: method.as_str(),
            path: &path,
            status: resp.status().as_u16(),
            latency: started.elapsed(),
            bytes_in: Some(bytes_in),
            bytes_out: Some(resp.body().len() as u64),
            lambda_request_id: ids.lambda_request_id.as_deref(),
            api_request_id: ids.api_request_id.as_deref(),
            trace_id: ids.trace_header.as_deref().and_then(request::trace_root),
        },
        record,
    );
    into_response(resp)
}

async fn respond(
    app: &Arc<App>,
    route: &'static Route,
    req: crate::http::Request,
) -> crate::http::Response {
    let resp = if req.body().len() > app.limits.max_upload_bytes {
        (route.errors)(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "the request body is larger than the limit of {} bytes",
                app.limits.max_upload_bytes
            ),
        )
    } else {
        routes::dispatch_route(app, route, req).await
    };
    crate::http::hardened(resp)
}

/// A Lambda binary's `main`: build everything once, then serve events for `route`. The binary
/// names its row of the table (`routes::NATIVE_GET_PARENT`, …) rather than looking it up, so
/// that it links its own handler and not every other one.
pub async fn run(route: &'static Route) -> Result<(), Error> {
    let cfg = Config::from_env()?;
    crate::telemetry::init(&cfg);
    let built = setup::build(&cfg).await?;
    let app = built.app;
    // The event fixtures' data when asked for, and keys given in the environment (local runs:
    // `sam local invoke`, `cargo lambda watch`); a deployed function writes nothing at start.
    setup::load_fixtures_if_asked(&app, &cfg).await?;
    setup::register_keys(&app, &cfg).await?;
    lambda_http::run(service_fn(move |event| {
        let app = app.clone();
        async move { Ok::<_, std::convert::Infallible>(handle(&app, route, event).await) }
    }))
    .await
}
