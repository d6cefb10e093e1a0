//! Conditional GETs, on every read route of every API: a `200` carries a strong `ETag` (a
//! digest of its exact body) and `Cache-Control: private, no-cache`, and a request whose
//! `If-None-Match` names that tag gets `304 Not Modified` without the body.
//!
//! Links are signed for windows of half their lifetime ([`crate::store::LinkWindow`]), so an
//! answer's tag changes when its window turns: a `304` never keeps links past half their life.

use http::{header, HeaderValue, Method, StatusCode};
use sha2::{Digest, Sha256};

use super::{with_header, Response};

/// The strong entity tag of a body: 128 bits of its SHA-256, quoted.
pub fn etag_of(body: &[u8]) -> String {
    format!("\"{}\"", hex::encode(&Sha256::digest(body)[..16]))
}

/// Tags a `200` answer to a `GET`, or answers `304` when `if_none_match` (taken from the request
/// before its handler ran) names the tag; other answers pass.
pub fn apply(method: &Method, if_none_match: Option<HeaderValue>, resp: Response) -> Response {
    if method != Method::GET || resp.status() != StatusCode::OK {
        return resp;
    }
    let etag = etag_of(resp.body());
    // `*`, or a list of tags compared weakly (a `W/` prefix is ignored), as RFC 9110 has it.
    let asked = if_none_match.as_ref().and_then(|v| v.to_str().ok());
    let not_modified = asked.is_some_and(|v| {
        let tags = v.split(',').map(str::trim);
        let mut tags = tags.map(|t| t.strip_prefix("W/").unwrap_or(t));
        v.trim() == "*" || tags.any(|t| t == etag)
    });
    let resp = with_header(resp, header::ETAG, &etag);
    // Kept by the client only, and checked with it before each use.
    let mut resp = with_header(resp, header::CACHE_CONTROL, "private, no-cache");
    if not_modified {
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
        *resp.body_mut() = bytes::Bytes::new();
        resp.headers_mut().remove(header::CONTENT_TYPE);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(body: &'static str) -> Response {
        let mut r = super::super::json(StatusCode::OK, &body);
        *r.body_mut() = bytes::Bytes::from_static(body.as_bytes());
        r
    }

    fn asking(v: &str) -> Option<HeaderValue> {
        Some(HeaderValue::from_str(v).unwrap())
    }

    #[test]
    fn a_known_tag_is_not_sent_again() {
        let first = apply(&Method::GET, None, ok("{\"a\":1}"));
        assert_eq!(first.status(), StatusCode::OK);
        let tag = first.headers()[header::ETAG].to_str().unwrap().to_owned();
        assert_eq!(tag.len(), 34);
        assert_eq!(first.headers()[header::CACHE_CONTROL], "private, no-cache");

        for asked in [
            tag.clone(),
            format!("W/{tag}"),
            format!("\"x\", {tag}"),
            "*".into(),
        ] {
            let again = apply(&Method::GET, asking(&asked), ok("{\"a\":1}"));
            assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{asked}");
            assert!(again.body().is_empty());
            assert_eq!(again.headers()[header::ETAG], tag.as_str());
        }
        // Another body, another tag.
        let changed = apply(&Method::GET, asking(&tag), ok("{\"a\":2}"));
        assert_eq!(changed.status(), StatusCode::OK);
        assert_ne!(changed.headers()[header::ETAG], tag.as_str());
    }

    #[test]
    fn only_a_200_is_tagged() {
        let mut r = ok("x");
        *r.status_mut() = StatusCode::NOT_FOUND;
        let r = apply(&Method::GET, asking("*"), r);
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert!(r.headers().get(header::ETAG).is_none());
        let r = apply(&Method::POST, asking("*"), ok("x"));
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.headers().get(header::ETAG).is_none());
    }
}
