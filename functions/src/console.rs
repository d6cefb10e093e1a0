//! The browser console at `/console`: a small page of plain ES modules (`shared/console/`),
//! compiled into the binary so `cargo run` serves it with no build step and nothing fetched from
//! elsewhere. It calls the native API of the same origin with the key the user pastes, and
//! uploads through the direct-upload flow to the links the API hands out.
//!
//! Its Content-Security-Policy allows scripts and styles from this origin only, and requests
//! and images from this origin and the origin of the store's links (`ATTACHMENTS_PUBLIC_URL`),
//! so the page cannot reach anything else whatever it is given to show.

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};

/// Where the console lives.
pub const PATH: &str = "/console";

/// The console's files: path under [`PATH`], content type, bytes.
const FILES: &[(&str, &str, &str)] = &[
    (
        "/",
        "text/html; charset=utf-8",
        include_str!("../console/index.html"),
    ),
    (
        "/console.css",
        "text/css; charset=utf-8",
        include_str!("../console/console.css"),
    ),
    (
        "/app.js",
        "text/javascript; charset=utf-8",
        include_str!("../console/app.js"),
    ),
    (
        "/api.js",
        "text/javascript; charset=utf-8",
        include_str!("../console/api.js"),
    ),
    (
        "/upload.js",
        "text/javascript; charset=utf-8",
        include_str!("../console/upload.js"),
    ),
    (
        "/format.js",
        "text/javascript; charset=utf-8",
        include_str!("../console/format.js"),
    ),
];

/// The console, with its policy for one server's links.
#[derive(Debug, Clone)]
pub struct Console {
    csp: HeaderValue,
    content_types: Bytes,
}

impl Default for Console {
    fn default() -> Self {
        Self::new(None)
    }
}

/// The origin (`scheme://host[:port]`) of a URL, if it has one.
fn origin(url: &str) -> Option<&str> {
    let after_scheme = url.find("://")? + 3;
    let end = url[after_scheme..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| after_scheme + i);
    Some(&url[..end])
}

impl Console {
    /// The console of a server whose links start with `public_url` (the embedded store's), if
    /// it has such links.
    pub fn new(public_url: Option<&str>) -> Self {
        let links = public_url
            .and_then(origin)
            .filter(|o| {
                o.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b":/.-[]".contains(&b))
            })
            .map(|o| format!(" {o}"))
            .unwrap_or_default();
        let csp = format!(
            "default-src 'none'; script-src 'self'; style-src 'self'; \
             connect-src 'self'{links}; img-src 'self'{links} data:; \
             base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        );
        let types: serde_json::Map<String, serde_json::Value> =
            attachments::domain::content::known_types()
                .map(|(ext, t)| (ext.to_owned(), serde_json::Value::from(t)))
                .collect();
        Self {
            csp: HeaderValue::from_str(&csp)
                .unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'")),
            content_types: Bytes::from(serde_json::Value::Object(types).to_string()),
        }
    }

    /// Serves a request for the console, or `None` when it is for something else.
    pub fn serve<B>(&self, req: &Request<B>) -> Option<Response<Bytes>> {
        let rest = req.uri().path().strip_prefix(PATH)?;
        let rest = if rest.is_empty() { "/" } else { rest };
        if !rest.starts_with('/') {
            return None; // `/consoles` and the like are not ours.
        }
        let (content_type, body) = if rest == "/content-types.json" {
            ("application/json", self.content_types.clone())
        } else {
            let (_, t, b) = FILES.iter().find(|(p, _, _)| *p == rest)?;
            (*t, Bytes::from_static(b.as_bytes()))
        };
        let head = req.method() == Method::HEAD;
        if req.method() != Method::GET && !head {
            return Some(attachments::http::native::error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "the console is read with GET",
            ));
        }
        let len = body.len();
        let mut resp = Response::new(if head { Bytes::new() } else { body });
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        h.insert(header::CONTENT_SECURITY_POLICY, self.csp.clone());
        Some(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(c: &Console, path: &str) -> Option<Response<Bytes>> {
        c.serve(&Request::get(path).body(()).unwrap())
    }

    #[test]
    fn serves_its_files_and_nothing_else() {
        let c = Console::new(Some("http://127.0.0.1:3000/"));
        for p in [
            "/console",
            "/console/",
            "/console/app.js",
            "/console/console.css",
        ] {
            let r = get(&c, p).unwrap();
            assert_eq!(r.status(), StatusCode::OK, "{p}");
            assert!(!r.body().is_empty());
        }
        assert!(get(&c, "/consoles").is_none());
        assert!(get(&c, "/v1/attachments/x").is_none());
        assert_eq!(
            get(&c, "/console/nope.js").map(|r| r.status()),
            None,
            "unknown files fall through to the API's 404"
        );
        let post = c
            .serve(&Request::post("/console/").body(()).unwrap())
            .unwrap();
        assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    }

    #[test]
    fn the_policy_allows_this_origin_and_the_links_origin_only() {
        let c = Console::new(Some("http://127.0.0.1:3000/base"));
        let r = get(&c, "/console").unwrap();
        let csp = r.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(
            csp.contains("connect-src 'self' http://127.0.0.1:3000;"),
            "{csp}"
        );
        assert!(
            csp.contains("img-src 'self' http://127.0.0.1:3000 data:;"),
            "{csp}"
        );
        assert!(csp.starts_with("default-src 'none'"));
        let c = Console::new(None);
        let csp = get(&c, "/console").unwrap().headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(csp.contains("connect-src 'self';"), "{csp}");
    }

    #[test]
    fn content_types_are_the_servers() {
        let c = Console::default();
        let r = get(&c, "/console/content-types.json").unwrap();
        let v: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(v["png"], "image/png");
        assert_eq!(v["wav"], "audio/x-wav");
    }
}
