//! Cross-origin requests on the local server, for browsers on other origins (an application's
//! own front-end). Two rules, as on AWS:
//!
//! - The API answers the origins of `ATTACHMENTS_CORS_ORIGINS` (none by default; parsed in
//!   [`attachments::config`]), as the HTTP
//!   API's `CorsConfiguration` does on AWS (the template's `ApiCorsOrigins`). The key travels in a
//!   header (`X-API-KEY` or `Authorization`), never in a cookie, so no credentials are allowed.
//! - The embedded store's links under `/_blobs/` answer any origin, as the bucket's CORS rule
//!   does (the template's `CorsAllowedOrigins`, `*` by default): a signed link is its own
//!   authorization, and a browser uploading parts must read each part's `ETag`.
//!
//! The console (`/console`) is served from the API's own origin and needs neither.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};

/// Methods the API's routes use.
const API_METHODS: &str = "GET, POST, PUT, DELETE";
/// Request headers an API call may carry.
const API_HEADERS: &str = "authorization, content-type, x-api-key";
/// The bucket rule's methods: downloads, the form POST, the part PUTs.
const BLOB_METHODS: [Method; 4] = [Method::GET, Method::HEAD, Method::PUT, Method::POST];
/// How long a browser may keep a preflight's answer, as the bucket rule says.
const MAX_AGE: &str = "3600";

/// The API's allowed origins (`ATTACHMENTS_CORS_ORIGINS`).
#[derive(Debug, Clone, Default)]
pub struct Cors {
    origins: Vec<String>,
}

/// What CORS adds to one response, decided from its request before it is served.
#[derive(Debug, Default)]
pub struct Verdict {
    allow_origin: Option<HeaderValue>,
    expose: Option<&'static str>,
}

impl Verdict {
    /// Adds the CORS headers to a response (nothing for a request without an allowed origin).
    pub fn apply(self, headers: &mut HeaderMap) {
        let Some(origin) = self.allow_origin else {
            return;
        };
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
        if let Some(e) = self.expose {
            headers.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(e),
            );
        }
    }
}

impl Cors {
    /// The API's rule for these origins.
    pub fn new(origins: Vec<String>) -> Self {
        Self { origins }
    }

    /// The `Access-Control-Allow-Origin` the API answers this origin, if it is allowed.
    fn api_allows(&self, origin: &HeaderValue) -> Option<HeaderValue> {
        if self.origins.iter().any(|o| o == "*") {
            return Some(HeaderValue::from_static("*"));
        }
        let o = origin.to_str().ok()?;
        self.origins
            .iter()
            .any(|allowed| allowed == o)
            .then(|| origin.clone())
    }

    /// The headers an actual (not preflight) request's answer gets. `blob` says whether it is
    /// for the embedded store's links.
    pub fn verdict<B>(&self, req: &Request<B>, blob: bool) -> Verdict {
        let origin = req.headers().get(header::ORIGIN);
        Verdict {
            allow_origin: match blob {
                true => origin.map(|_| HeaderValue::from_static("*")),
                false => origin.and_then(|o| self.api_allows(o)),
            },
            expose: blob.then_some("ETag"),
        }
    }

    /// Answers a preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) when
    /// the rule allows it; a link's preflight that asks for another method gets 403, as from
    /// S3. `None` lets the request through: not a preflight, or an origin the API does not
    /// allow (the router's 405 then carries no CORS header, and the browser stops there).
    pub fn preflight<B>(&self, req: &Request<B>, blob: bool) -> Option<Response<Bytes>> {
        if req.method() != Method::OPTIONS {
            return None;
        }
        let origin = req.headers().get(header::ORIGIN)?;
        let asked = req
            .headers()
            .get(header::ACCESS_CONTROL_REQUEST_METHOD)?
            .to_str()
            .ok()?;
        let mut resp = Response::new(Bytes::new());
        let h = resp.headers_mut();
        let (allow_origin, methods, headers, expose) = if blob {
            if !BLOB_METHODS.iter().any(|m| m.as_str() == asked) {
                *resp.status_mut() = StatusCode::FORBIDDEN;
                return Some(resp);
            }
            // Any header, as the bucket rule's `AllowedHeaders: ["*"]`: echo what was asked.
            let headers = req.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS);
            let star = HeaderValue::from_static("*");
            (star, "GET, HEAD, PUT, POST", headers.cloned(), Some("ETag"))
        } else {
            let headers = Some(HeaderValue::from_static(API_HEADERS));
            (self.api_allows(origin)?, API_METHODS, headers, None)
        };
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin);
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(methods),
        );
        if let Some(v) = headers {
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
        }
        if let Some(e) = expose {
            h.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(e),
            );
        }
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static(MAX_AGE),
        );
        for vary in [
            "Origin",
            "Access-Control-Request-Method",
            "Access-Control-Request-Headers",
        ] {
            h.append(header::VARY, HeaderValue::from_static(vary));
        }
        *resp.status_mut() = StatusCode::NO_CONTENT;
        Some(resp)
    }
}
