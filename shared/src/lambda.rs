//! Running one route of the table as a Lambda function behind API Gateway (HTTP API, payload
//! v2). Configuration, clients and the app are built once per container, before the first event.
//! Every event ends with its request line (see [`crate::telemetry::request`]).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::StatusCode;
use lambda_http::{request::RequestContext, service_fn, Body, RequestExt};

use crate::config::Config;
use crate::http::routes::{self, Route};
use crate::service::App;
use crate::setup;

pub use lambda_http::Error;

/// Serves one event with one route, and logs its line. API Gateway has already decoded a
/// base64 body; JSON goes back as text, anything else as binary (base64).
pub async fn handle(
    app: &Arc<App>,
    route: &'static Route,
    event: lambda_http::Request,
) -> lambda_http::Response<Body> {
    use crate::telemetry::{request, xray};
    let started = Instant::now();
    let lambda = event.lambda_context_ref();
    let lambda_request_id = lambda.map(|c| c.request_id.clone());
    let trace_header = lambda.and_then(|c| c.xray_trace_id.clone());
    let trace_header = trace_header.as_deref();
    let api_request_id = match event.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(c)) => c.request_id.clone(),
        _ => None,
    };
    let req = event.map(|body| match body {
        Body::Text(s) => Bytes::from(s),
        Body::Binary(b) => Bytes::from(b),
        other => Bytes::copy_from_slice(&other),
    });
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let bytes_in = req.body().len() as u64;
    let limit = app.limits.max_upload_bytes;
    let respond = async move {
        let resp = if req.body().len() > limit {
            let problem = format!("the request body is larger than the limit of {limit} bytes");
            (route.errors)(StatusCode::PAYLOAD_TOO_LARGE, &problem)
        } else {
            routes::dispatch_route(app, route, req).await
        };
        crate::http::hardened(resp)
    };
    let traced = xray::traced(xray::daemon(), trace_header, respond);
    let (resp, record) = request::scope(traced).await;
    request::finish(
        &request::Outcome {
            route: route.name,
            method: method.as_str(),
            path: &path,
            status: resp.status().as_u16(),
            latency: started.elapsed(),
            bytes_in: Some(bytes_in),
            bytes_out: Some(resp.body().len() as u64),
            lambda_request_id: lambda_request_id.as_deref(),
            api_request_id: api_request_id.as_deref(),
            trace_id: trace_header.and_then(|h| xray::field(h, "Root")),
        },
        record,
    );
    resp.map(|bytes| match String::from_utf8(bytes.into()) {
        Ok(s) if s.is_empty() => Body::Empty,
        Ok(s) => Body::Text(s),
        Err(e) => Body::Binary(e.into_bytes()),
    })
}

/// A Lambda binary's `main`: build everything once, then serve events for `route`, the row of
/// the table it names (`routes::NATIVE_GET_PARENT`, …): see [`routes::ROUTES`] for why.
pub async fn run(route: &'static Route) -> Result<(), Error> {
    let cfg = Config::from_env()?;
    crate::telemetry::init(&cfg);
    let app = setup::build(&cfg).await?.app;
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
