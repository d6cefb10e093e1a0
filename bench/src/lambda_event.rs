//! The Lambda event row, and the warm durations of the main endpoints.
//!
//! Every event goes the way the Lambda runtime sends it through a function: JSON bytes are
//! deserialized into lambda_http's request, handed to the handler through lambda_http's adapter,
//! and the answer is serialized back to JSON. The subject is our handler
//! ([`attachments::lambda::handle`]) on the embedded store; the floor is a hello handler's round
//! trip on the same event plus the raw time of hashing the file (md5 then sha256), which is the
//! least any upload must do.

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use base64::Engine;
use bytes::Bytes;
use lambda_http::request::LambdaRequest;
use lambda_http::tower::Service;
use lambda_http::{service_fn, Adapter, Body, Context, LambdaEvent};
use md5::{Digest, Md5};
use serde_json::{json, Value};
use sha2::Sha256;

use attachments::config::Config;
use attachments::http::routes::{self, Route};
use attachments::App;

use crate::table::{ratio, verdict, Row};
use crate::util::{median, ms, noise, Error, TempDir};

const KEY: &str = "bench-key-0123456789abcdef";
const BOUNDARY: &str = "bench-boundary-7MA4YWxkTrZu0gW";
/// The file of the Lambda event row: 4 MiB, the largest that fits an API Gateway event.
pub const FILE_BYTES: usize = 4 * 1024 * 1024;
const TARGET: &str = "<= 1.2x floor";

/// What [`run`] found.
pub struct Outcome {
    pub row: Row,
    /// Median warm handler time of each endpoint, in seconds, with a label.
    pub warm: Vec<(String, f64)>,
    /// Stage-by-stage times of the slow paths.
    pub notes: Vec<String>,
}

/// An API Gateway HTTP API (payload 2.0) event, as JSON bytes.
pub fn event(
    method: &str,
    route: &Route,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Vec<u8> {
    let mut h = serde_json::Map::new();
    for (k, v) in [("host", "api.example.com"), ("user-agent", "bench")]
        .iter()
        .chain(headers)
    {
        h.insert((*k).to_owned(), Value::String((*v).to_owned()));
    }
    let mut params = serde_json::Map::new();
    for (p, a) in route.path.split('/').zip(path.split('/')) {
        if let Some(name) = p.strip_prefix('{').and_then(|n| n.strip_suffix('}')) {
            params.insert(name.to_owned(), Value::String(a.to_owned()));
        }
    }
    let route_key = format!("{} {}", route.method, route.path);
    let mut v = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": "",
        "headers": h,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api-id",
            "domainName": "api.example.com",
            "domainPrefix": "api",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "203.0.113.10", "userAgent": "bench"},
            "requestId": "bench-request",
            "routeKey": route_key,
            "stage": "$default",
            "time": "23/Nov/2026:12:00:00 +0000",
            "timeEpoch": 1795435200000u64
        },
        "isBase64Encoded": false,
        "pathParameters": params,
    });
    if let (Some(b), Some(obj)) = (body, v.as_object_mut()) {
        // API Gateway base64-encodes binary bodies; the handler path must decode them.
        let text = base64::engine::general_purpose::STANDARD.encode(b);
        obj.insert("body".into(), Value::String(text));
        obj.insert("isBase64Encoded".into(), Value::Bool(true));
    }
    serde_json::to_vec(&v).unwrap_or_default()
}

/// A multipart body with one `file` part.
pub fn multipart(file_name: &str, content: &[u8]) -> (String, Vec<u8>) {
    let mut body = format!(
        "--{BOUNDARY}\r\ncontent-disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\n\
         content-type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={BOUNDARY}"), body)
}

/// One invocation as the runtime makes it; returns the seconds taken and the response JSON.
async fn invoke<S>(adapter: &mut S, event: &[u8]) -> Result<(f64, Value), Error>
where
    S: Service<LambdaEvent<LambdaRequest>>,
    S::Response: serde::Serialize,
    S::Error: std::fmt::Debug,
{
    let t = Instant::now();
    let payload: LambdaRequest = serde_json::from_slice(event).map_err(|e| e.to_string())?;
    let resp = adapter
        .call(LambdaEvent::new(payload, Context::default()))
        .await
        .map_err(|e| format!("{e:?}"))?;
    let out = serde_json::to_vec(&resp).map_err(|e| e.to_string())?;
    let secs = t.elapsed().as_secs_f64();
    let v = serde_json::from_slice(&out).unwrap_or(Value::Null);
    Ok((secs, v))
}

fn status(v: &Value) -> u64 {
    v["statusCode"].as_u64().unwrap_or(0)
}

fn body_json(v: &Value) -> Value {
    v["body"]
        .as_str()
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null)
}

/// An adapter serving one route of our table, exactly as `attachments::lambda::run` does.
fn ours(
    app: &Arc<App>,
    route: &'static Route,
) -> impl Service<
    LambdaEvent<LambdaRequest>,
    Response = impl serde::Serialize,
    Error = impl std::fmt::Debug,
> {
    let app = app.clone();
    Adapter::from(service_fn(move |event: lambda_http::Request| {
        let app = app.clone();
        async move { Ok::<_, Infallible>(attachments::lambda::handle(&app, route, event).await) }
    }))
}

fn route(name: &str) -> Result<&'static Route, Error> {
    routes::by_name(name).ok_or_else(|| format!("no route named {name} in the table"))
}

pub async fn run(rounds: usize) -> Outcome {
    match run_inner(rounds).await {
        Ok(o) => o,
        Err(e) => Outcome {
            row: Row::failed("Lambda event (4 MiB upload)", TARGET, &e),
            warm: vec![],
            notes: vec![],
        },
    }
}

async fn run_inner(rounds: usize) -> Result<Outcome, Error> {
    let dir = TempDir::new("lambda")?;
    let data_dir = dir.path().display().to_string();
    let cfg = Config::from_lookup(|k| match k {
        "ATTACHMENTS_DATA_DIR" => Some(data_dir.clone()),
        "ATTACHMENTS_API_KEYS" => Some(format!("bench:{KEY}")),
        "ATTACHMENTS_PUBLIC_URL" => Some("https://files.example.com".into()),
        _ => None,
    })
    .map_err(|e| e.to_string())?;
    let app = attachments::setup::build(&cfg)
        .await
        .map_err(|e| e.to_string())?
        .app;
    attachments::setup::seed_keys(&app, &cfg)
        .await
        .map_err(|e| e.to_string())?;
    let auth = ("x-api-key", KEY);

    // Parents: one for the big uploads, one listed, one for small uploads, one emptied.
    let put = route("native-put-parent")?;
    let mut put_fn = ours(&app, put);
    for p in ["big", "listed", "small", "trash"] {
        let path = format!("/v1/parents/bench/{p}");
        let (_, v) = invoke(&mut put_fn, &event("PUT", put, &path, &[auth], None)).await?;
        if status(&v) != 201 {
            return Err(format!("PUT parent {p}: {v}"));
        }
    }

    // The row: a 4 MiB PDF through the upload handler, against hello + raw hashing.
    let upload = route("native-upload")?;
    let mut pdf = b"%PDF-1.7\n".to_vec();
    pdf.extend(noise(FILE_BYTES - pdf.len(), 42));
    let file = Bytes::from(pdf);
    let (ct, body) = multipart("scan.pdf", &file);
    let big_event = event(
        "POST",
        upload,
        "/v1/parents/bench/big/attachments",
        &[auth, ("content-type", &ct)],
        Some(&body),
    );
    let mut upload_fn = ours(&app, upload);
    let mut hello_fn = Adapter::from(service_fn(|_req: lambda_http::Request| async {
        Ok::<_, Infallible>(lambda_http::Response::new(Body::Text("hello".into())))
    }));
    let (mut subject, mut hello, mut hash, mut ratios) = (vec![], vec![], vec![], vec![]);
    for round in 0..=rounds {
        let (th, vh) = invoke(&mut hello_fn, &big_event).await?;
        let t = Instant::now();
        black_box(Md5::digest(black_box(&file)));
        black_box(Sha256::digest(black_box(&file)));
        let tx = t.elapsed().as_secs_f64();
        let (ts, vs) = invoke(&mut upload_fn, &big_event).await?;
        if status(&vs) != 201 || status(&vh) != 200 {
            return Err(format!(
                "upload answered {}: {}",
                status(&vs),
                vs["body"]
                    .as_str()
                    .unwrap_or("")
                    .chars()
                    .take(300)
                    .collect::<String>()
            ));
        }
        // Round 0 warms caches and the store.
        if round > 0 {
            subject.push(ts);
            hello.push(th);
            hash.push(tx);
            ratios.push(ts / (th + tx));
        }
    }
    let (s, h, x, r) = (
        median(&subject),
        median(&hello),
        median(&hash),
        median(&ratios),
    );
    let row = Row {
        figure: "Lambda event (4 MiB upload)".into(),
        value: ms(s),
        baseline: format!("{} (hello {} + hashing {})", ms(h + x), ms(h), ms(x)),
        ratio: ratio(r),
        target: TARGET.into(),
        verdict: verdict(r <= 1.2),
    };

    let mut warm = vec![("native-upload (4 MiB file)".to_owned(), s)];
    warm.extend(warm_durations(&app, rounds.max(5) * 2).await?);
    let notes = vec![
        crate::breakdown::upload_layers(&app, KEY, &big_event, &file, rounds).await?,
        crate::breakdown::upload_service(&file, rounds).await?,
        crate::breakdown::upload(&ct, &body, rounds).await?,
        crate::breakdown::list(&app, KEY, "listed", rounds * 4).await?,
        crate::breakdown::get(&app, KEY, "listed", 2000).await?,
    ];
    Ok(Outcome { row, warm, notes })
}

/// Median warm handler time of the main endpoints (the figures the cost table uses).
async fn warm_durations(app: &Arc<App>, n: usize) -> Result<Vec<(String, f64)>, Error> {
    let auth = ("x-api-key", KEY);
    let upload = route("native-upload")?;
    let mut upload_fn = ours(app, upload);
    let small_file = b"a small note of the benchmark\n".repeat(32);
    let (ct, small_body) = multipart("note.txt", &small_file);
    let upload_to = |parent: &str| {
        event(
            "POST",
            upload,
            &format!("/v1/parents/bench/{parent}/attachments"),
            &[auth, ("content-type", &ct)],
            Some(&small_body),
        )
    };
    let ids = |v: &Value| -> Result<String, Error> {
        body_json(v)["items"][0]["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("no id in {v}"))
    };
    let mut listed = vec![];
    for _ in 0..20 {
        let (_, v) = invoke(&mut upload_fn, &upload_to("listed")).await?;
        listed.push(ids(&v)?);
    }
    let mut trash = vec![];
    for _ in 0..=n {
        let (_, v) = invoke(&mut upload_fn, &upload_to("trash")).await?;
        trash.push(ids(&v)?);
    }
    let id = listed[0].clone();
    let small_event = upload_to("small");

    // (label, route, events to cycle through, expected status)
    let get = |name: &str, path: String| -> Result<(&'static Route, Vec<u8>), Error> {
        let r = route(name)?;
        Ok((r, event(r.method.as_str(), r, &path, &[auth], None)))
    };
    let mut cases: Vec<(String, &'static Route, Vec<Vec<u8>>, u64)> = vec![];
    let (r, e) = get("native-get-attachment", format!("/v1/attachments/{id}"))?;
    cases.push(("native-get-attachment".into(), r, vec![e], 200));
    let (r, e) = get("native-list", "/v1/parents/bench/listed/attachments".into())?;
    cases.push(("native-list (20 with links)".into(), r, vec![e], 200));
    let (r, e) = get(
        "native-get-content",
        format!("/v1/attachments/{id}/content"),
    )?;
    cases.push(("native-get-content".into(), r, vec![e], 302));
    let (r, e) = get("native-get-parent", "/v1/parents/bench/listed".into())?;
    cases.push(("native-get-parent".into(), r, vec![e], 200));
    let (r, e) = get("native-put-parent", "/v1/parents/bench/listed".into())?;
    cases.push(("native-put-parent (update)".into(), r, vec![e], 200));
    cases.push((
        "native-upload (small file)".into(),
        upload,
        vec![small_event],
        201,
    ));
    let del = route("native-delete-attachment")?;
    let deletes = trash
        .iter()
        .map(|t| {
            event(
                "DELETE",
                del,
                &format!("/v1/attachments/{t}"),
                &[auth],
                None,
            )
        })
        .collect();
    cases.push(("native-delete-attachment".into(), del, deletes, 204));

    let mut fns: Vec<_> = cases.iter().map(|c| ours(app, c.1)).collect();
    let mut times: Vec<Vec<f64>> = vec![vec![]; cases.len()];
    for i in 0..=n {
        for ((case, f), t) in cases.iter().zip(&mut fns).zip(&mut times) {
            let ev = &case.2[i % case.2.len()];
            let (secs, v) = invoke(f, ev).await?;
            if status(&v) != case.3 {
                return Err(format!("{}: status {}: {v}", case.0, status(&v)));
            }
            if i > 0 {
                t.push(secs);
            }
        }
    }
    Ok(cases
        .iter()
        .zip(&times)
        .map(|(c, t)| (c.0.clone(), median(t)))
        .collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// The events the row builds are what lambda_http accepts from API Gateway, with the body
    /// decoded back to the exact multipart bytes.
    #[test]
    fn events_parse_as_api_gateway_requests() {
        let upload = route("native-upload").unwrap();
        let (ct, body) = multipart("a.pdf", b"%PDF-1.7\nxyz");
        let bytes = event(
            "POST",
            upload,
            "/v1/parents/bench/p1/attachments",
            &[("x-api-key", KEY), ("content-type", &ct)],
            Some(&body),
        );
        let req = lambda_http::request::from_str(std::str::from_utf8(&bytes).unwrap()).unwrap();
        assert_eq!(req.method(), "POST");
        assert_eq!(req.uri().path(), "/v1/parents/bench/p1/attachments");
        assert_eq!(req.headers()["content-type"], ct.as_str());
        match req.body() {
            Body::Binary(b) => assert_eq!(b, &body),
            other => panic!("body is {other:?}"),
        }
    }
}
