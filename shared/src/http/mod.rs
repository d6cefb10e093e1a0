//! HTTP: the route table, the dialects (native and compatible APIs), and helpers they share.
//! Requests arrive fully read (`Bytes`), whether from the local server or a Lambda event.

pub mod assets;
pub mod conditional;
pub mod crafter;
pub mod error;
pub mod hrflow;
pub mod multipart;
pub mod native;
pub mod records;
pub mod routes;

use std::borrow::Cow;

use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};

use crate::domain::FileName;
use crate::service::NewFile;
pub use error::{log_internal, Answer, Dialect, DialectError};

/// A request as every handler sees it.
pub type Request = http::Request<Bytes>;
/// A response as every handler returns it.
pub type Response = http::Response<Bytes>;

/// Path parameters of a matched route, in the order of the pattern; the router puts them in
/// the request's extensions, where [`param`] reads them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Params(pub(crate) Vec<(&'static str, String)>);

/// A path parameter of the request's route (percent-decoded); empty when it has none of that name.
pub fn param<'r>(req: &'r Request, name: &str) -> &'r str {
    let params = req.extensions().get::<Params>().map_or(&[][..], |p| &p.0);
    let found = params.iter().find(|(k, _)| *k == name);
    found.map_or("", |(_, v)| v)
}

/// A JSON response, from a `Value` or straight from a `Serialize` view (no intermediate map).
pub fn json<T: serde::Serialize + ?Sized>(status: StatusCode, value: &T) -> Response {
    // An attachment's JSON is about a kilobyte: start there rather than at serde_json's 128
    // bytes and four reallocations.
    let mut body = Vec::with_capacity(1024);
    // Cannot fail: a `Value` and our views have string keys only.
    if serde_json::to_writer(&mut body, value).is_err() {
        body.clear();
    }
    let resp = with_header(empty(status), header::CONTENT_TYPE, "application/json");
    resp.map(|_| Bytes::from(body))
}

pub fn empty(status: StatusCode) -> Response {
    let mut r = http::Response::new(Bytes::new());
    *r.status_mut() = status;
    r
}

/// A `302 Found` to a link.
pub fn redirect(location: &str) -> Response {
    with_header(empty(StatusCode::FOUND), header::LOCATION, location)
}

/// A response with a header set, unless `value` cannot be one.
pub fn with_header(mut resp: Response, name: header::HeaderName, value: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(name, v);
    }
    resp
}

/// A form's file part as a new file of an upload: it must carry a valid file name.
pub fn new_file<D: Dialect>(part: &multipart::FilePart) -> Result<NewFile, DialectError<D>> {
    let name = part.file_name.as_deref();
    let name = name.ok_or_else(|| DialectError::bad_request("every file part needs a filename"))?;
    let (file_name, bytes) = (FileName::parse(name)?, part.bytes.clone());
    Ok(NewFile { file_name, bytes })
}

/// Every file part of a form as a new file; "the form has" `none` when it has no file part.
pub fn new_files<D: Dialect>(
    form: &multipart::Form,
    none: &str,
) -> Result<Vec<NewFile>, DialectError<D>> {
    if form.files.is_empty() {
        return Err(DialectError::bad_request(format!("the form has {none}")));
    }
    form.files.iter().map(new_file).collect()
}

/// The query string's pairs, percent- and plus-decoded. Undecodable pairs are kept raw, so a
/// handler sees (and can refuse) them rather than have them vanish.
pub fn query_pairs(req: &Request) -> Vec<(String, String)> {
    let query = req.uri().query().unwrap_or_default();
    let pairs = query.split('&').filter(|p| !p.is_empty());
    let pairs = pairs.map(|p| p.split_once('=').unwrap_or((p, "")));
    pairs.map(|(k, v)| (decode(k), decode(v))).collect()
}

/// Every value of a query parameter, in order.
pub fn query_values(req: &Request, name: &str) -> Vec<String> {
    let pairs = query_pairs(req).into_iter().filter(|(k, _)| k == name);
    pairs.map(|(_, v)| v).collect()
}

/// Every comma-separated item of a query parameter's values (`name=a,b&name=c`), trimmed.
pub fn query_list(req: &Request, name: &str) -> Vec<String> {
    let values = query_values(req, name);
    let items = values.iter().flat_map(|v| v.split(','));
    items.map(|s| s.trim().to_owned()).collect()
}

/// The first value of a query parameter.
pub fn query_param(req: &Request, name: &str) -> Option<String> {
    query_values(req, name).into_iter().next()
}

/// A page size, `limit`: each value a number from 1 to `max` (else 400: `message` "from 1 to
/// `max`"), the last one counting; `None` when not given.
pub fn limit_param<D: Dialect>(
    req: &Request,
    max: usize,
    message: &str,
) -> Result<Option<usize>, DialectError<D>> {
    let refused = || DialectError::bad_request(format!("{message} from 1 to {max}"));
    let valid = |v: String| v.parse().ok().filter(|n| (1..=max).contains(n));
    let limits = query_values(req, "limit").into_iter();
    let limits = limits.map(|v| valid(v).ok_or_else(refused));
    Ok(limits.collect::<Result<Vec<_>, _>>()?.pop())
}

/// A URL component, percent- and plus-decoded; kept raw when it does not decode to UTF-8.
pub(crate) fn decode(s: &str) -> String {
    let plus = s.replace('+', " ");
    let decoded = percent_encoding::percent_decode_str(&plus).decode_utf8();
    decoded.map(Cow::into_owned).unwrap_or(plus)
}

/// The API key a request presents in its headers: `X-API-KEY` or `Authorization: Bearer …`.
/// Only Crafter's routes also take one from the URL ([`crafter`]), where keys end up in logs
/// and histories, because Crafter's clients send it there.
pub fn presented_key(req: &Request) -> Option<String> {
    let header = |name: &str| req.headers().get(name)?.to_str().ok();
    let auth = header("authorization");
    let bearer = auth.and_then(|a| a.strip_prefix("Bearer ").or(a.strip_prefix("bearer ")));
    let key = header("x-api-key").or(bearer.map(str::trim));
    key.map(str::to_owned)
}

/// Adds what every answer carries, whichever server sends it: `nosniff`, so that no browser
/// second-guesses a declared content type.
pub fn hardened<B>(mut resp: http::Response<B>) -> http::Response<B> {
    let nosniff = HeaderValue::from_static("nosniff");
    resp.headers_mut()
        .insert(header::X_CONTENT_TYPE_OPTIONS, nosniff);
    resp
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
    fn keys_from_header_or_bearer_never_the_url() {
        let mut r = req("/x?accessTokenId=q");
        assert_eq!(presented_key(&r), None);
        r.headers_mut()
            .insert("authorization", HeaderValue::from_static("Bearer b"));
        assert_eq!(presented_key(&r).as_deref(), Some("b"));
        r.headers_mut()
            .insert("x-api-key", HeaderValue::from_static("h"));
        assert_eq!(presented_key(&r).as_deref(), Some("h"));
    }
}
