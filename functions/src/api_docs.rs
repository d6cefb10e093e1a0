//! The API's description, served by the local server without a key: `GET /openapi.yaml` (the
//! repository's `openapi.yaml`, OpenAPI 3.1) and `GET /api-docs`, a page that renders it for a
//! person (Swagger UI, vendored from npm under `docs/api/`). Both are compiled into the binary,
//! so `cargo run` serves them with no build step and the page needs no network.
//!
//! They are pages of the local server, like the console, not routes of the API: the route table
//! (and so AWS) does not have them, and the document describes them in its introduction rather
//! than as operations. The page's Content-Security-Policy allows this origin only, so nothing it
//! shows can make the browser reach elsewhere ("Try it out" calls this server).

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};

/// Where the document is served.
pub const DOCUMENT_PATH: &str = "/openapi.yaml";
/// Where the API browser lives.
pub const PAGE_PATH: &str = "/api-docs";

/// The document, as committed.
pub const DOCUMENT: &str = include_str!("../../openapi.yaml");

/// The page's files: path under [`PAGE_PATH`], content type, bytes.
const PAGE_FILES: &[(&str, &str, &[u8])] = &[
    (
        "/",
        "text/html; charset=utf-8",
        include_bytes!("../../docs/api/index.html"),
    ),
    (
        "/init.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../docs/api/init.js"),
    ),
    (
        "/swagger-ui-bundle.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../docs/api/swagger-ui/swagger-ui-bundle.js"),
    ),
    (
        "/swagger-ui.css",
        "text/css; charset=utf-8",
        include_bytes!("../../docs/api/swagger-ui/swagger-ui.css"),
    ),
];

/// This origin only: scripts and styles from files of this server, requests (the document,
/// "Try it out") to it, images from it and inline `data:` icons of the stylesheet.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; font-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The file a path names: the document, or one of the page's files.
fn file_for(path: &str) -> Option<(&'static str, &'static [u8], bool)> {
    if path == DOCUMENT_PATH {
        return Some(("application/yaml", DOCUMENT.as_bytes(), false));
    }
    let rest = path.strip_prefix(PAGE_PATH)?;
    let rest = if rest.is_empty() { "/" } else { rest };
    PAGE_FILES
        .iter()
        .find(|(p, _, _)| *p == rest)
        .map(|(_, t, b)| (*t, *b, true))
}

/// Serves a request for the document or the page, or `None` when it is for something else.
pub fn serve<B>(req: &Request<B>) -> Option<Response<Bytes>> {
    let (content_type, body, page) = file_for(req.uri().path())?;
    let head = req.method() == Method::HEAD;
    if req.method() != Method::GET && !head {
        let mut resp = attachments::http::native::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "the API's description is read with GET",
        );
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Some(resp);
    }
    let mut resp = Response::new(if head {
        Bytes::new()
    } else {
        Bytes::from_static(body)
    });
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if page {
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
    }
    Some(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(method: &str, path: &str) -> Option<Response<Bytes>> {
        serve(
            &Request::builder()
                .method(method)
                .uri(path)
                .body(())
                .unwrap(),
        )
    }

    #[test]
    fn serves_the_document_and_the_page_and_nothing_else() {
        let doc = call("GET", "/openapi.yaml").unwrap();
        assert_eq!(doc.status(), StatusCode::OK);
        assert_eq!(doc.headers()[header::CONTENT_TYPE], "application/yaml");
        assert!(doc.body().starts_with(b"openapi: 3.1"));
        for p in [
            "/api-docs",
            "/api-docs/",
            "/api-docs/init.js",
            "/api-docs/swagger-ui-bundle.js",
            "/api-docs/swagger-ui.css",
        ] {
            let r = call("GET", p).unwrap();
            assert_eq!(r.status(), StatusCode::OK, "{p}");
            assert!(!r.body().is_empty(), "{p}");
            let csp = r.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap();
            assert!(csp.starts_with("default-src 'none'"), "{csp}");
            assert!(csp.contains("connect-src 'self';"), "{csp}");
        }
        for other in [
            "/openapi.yml",
            "/openapi.yaml/x",
            "/api-docsx",
            "/api-docs/LICENSE",
            "/api-docs/nope.js",
            "/v1/attachments/x",
        ] {
            assert!(call("GET", other).is_none(), "{other}");
        }
    }

    #[test]
    fn head_has_no_body_and_writes_are_refused() {
        let head = call("HEAD", "/openapi.yaml").unwrap();
        assert_eq!(head.status(), StatusCode::OK);
        assert!(head.body().is_empty());
        assert_eq!(
            head.headers()[header::CONTENT_LENGTH],
            DOCUMENT.len().to_string().as_str()
        );
        let post = call("POST", "/api-docs").unwrap();
        assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(post.headers()[header::ALLOW], "GET, HEAD");
    }
}
