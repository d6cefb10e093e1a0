//! HTTP: the route table, the dialects (native and compatible APIs), and helpers they share.
//! Requests arrive fully read (`Bytes`), whether from the local server or a Lambda event.

pub mod assets;
pub mod cors;
pub mod crafter;
pub mod hrflow;
pub mod multipart;
pub mod native;
pub mod records;
pub mod routes;

use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};

use crate::service::answers::{Answer, AnswerKey, Lookup};
use crate::service::App;

/// A request as every handler sees it.
pub type Request = http::Request<Bytes>;
/// A response as every handler returns it.
pub type Response = http::Response<Bytes>;

/// A JSON response, from a `Value` or straight from a `Serialize` view (no intermediate map).
pub fn json<T: serde::Serialize + ?Sized>(status: StatusCode, value: &T) -> Response {
    // Serialising cannot fail here: a `Value` and our views have string keys only.
    // An attachment's JSON is about a kilobyte: start there rather than at serde_json's 128
    // bytes and four reallocations.
    let mut body = Vec::with_capacity(1024);
    if serde_json::to_writer(&mut body, value).is_err() {
        body.clear();
    }
    let mut r = http::Response::new(Bytes::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// Answers a read route with the answer kept for `key` when nothing has changed since it was
/// rendered; otherwise renders it, and keeps it if it is a `200 OK` (see
/// [`crate::service::answers`]). Errors are always rendered afresh.
pub async fn kept_or_rendered(
    app: &App,
    key: AnswerKey,
    render: impl std::future::Future<Output = Response>,
) -> Response {
    let mark = match app.kept_answer(&key) {
        Lookup::Kept(answer) => {
            let mut r = http::Response::new(answer.body.clone());
            *r.headers_mut() = answer.headers.clone();
            return r;
        }
        Lookup::Render(mark) => mark,
    };
    let r = render.await;
    if let (Some(mark), StatusCode::OK) = (mark, r.status()) {
        let answer = Answer {
            headers: r.headers().clone(),
            body: r.body().clone(),
        };
        app.keep_answer(mark, key, answer);
    }
    r
}

/// An empty response.
pub fn empty(status: StatusCode) -> Response {
    let mut r = http::Response::new(Bytes::new());
    *r.status_mut() = status;
    r
}

/// A `302 Found` to a link.
pub fn redirect(location: &str) -> Response {
    let mut r = empty(StatusCode::FOUND);
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// The query string's pairs, percent- and plus-decoded. Undecodable pairs are kept raw, so a
/// handler sees (and can refuse) them rather than have them vanish.
pub fn query_pairs(req: &Request) -> Vec<(String, String)> {
    let Some(q) = req.uri().query() else {
        return Vec::new();
    };
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode_component(k), decode_component(v))
        })
        .collect()
}

/// The first value of a query parameter.
pub fn query_param(req: &Request, name: &str) -> Option<String> {
    query_pairs(req)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

fn decode_component(s: &str) -> String {
    let plus = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8()
        .map(|c| c.into_owned())
        .unwrap_or(plus)
}

/// The API key a request presents: `X-API-KEY`, `Authorization: Bearer …`, or the
/// `accessTokenId` query parameter (Crafter's way).
pub fn presented_key(req: &Request) -> Option<String> {
    if let Some(v) = req.headers().get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(v.to_owned());
    }
    if let Some(v) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        if let Some(token) = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
        {
            return Some(token.trim().to_owned());
        }
    }
    query_param(req, "accessTokenId")
}

/// The HTTP status of a use case's error: the one place where the service's errors meet HTTP,
/// shared by every dialect (each renders its own envelope, and may answer some errors its own
/// way first). `None` for an internal failure, whose cause this logs; the dialect then answers
/// its generic 500.
pub fn status_of(e: &crate::service::ServiceError) -> Option<StatusCode> {
    use crate::service::ServiceError as E;
    Some(match e {
        E::Unauthorized => StatusCode::UNAUTHORIZED,
        E::NotFound(_) => StatusCode::NOT_FOUND,
        E::Invalid(_) => StatusCode::BAD_REQUEST,
        E::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
        E::Conflict(_) => StatusCode::CONFLICT,
        E::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        E::UnsupportedMedia(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        E::Internal(cause) => {
            log_internal(cause);
            return None;
        }
    })
}

/// Logs a failure's cause under a reference the caller can quote; the body stays generic.
pub fn log_internal(err: &dyn std::fmt::Display) {
    tracing::error!(error = %err, "request failed");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(uri: &str) -> Request {
        http::Request::builder()
            .uri(uri)
            .body(Bytes::new())
            .unwrap()
    }

    #[test]
    fn query_decoding() {
        let r = req("/x?a=1&b=h%C3%A9+llo&c&uuids=a,b");
        assert_eq!(query_param(&r, "b").as_deref(), Some("hé llo"));
        assert_eq!(query_param(&r, "c").as_deref(), Some(""));
        assert_eq!(query_param(&r, "uuids").as_deref(), Some("a,b"));
        assert_eq!(query_param(&r, "z"), None);
    }

    #[test]
    fn keys_from_header_bearer_or_query() {
        let mut r = req("/x?accessTokenId=q");
        assert_eq!(presented_key(&r).as_deref(), Some("q"));
        r.headers_mut()
            .insert("authorization", HeaderValue::from_static("Bearer b"));
        assert_eq!(presented_key(&r).as_deref(), Some("b"));
        r.headers_mut()
            .insert("x-api-key", HeaderValue::from_static("h"));
        assert_eq!(presented_key(&r).as_deref(), Some("h"));
    }
}
