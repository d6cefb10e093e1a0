//! The route table: the single source of truth for every endpoint's method, path, handler,
//! Lambda function and what that function may touch. The local server serves this table, each
//! Lambda binary serves one row of it, and `scripts/gen-template.py` writes `template.yaml` and
//! the `cargo lambda watch` router from it (the `template` test checks both).

use std::sync::Arc;

use futures_util::future::BoxFuture;
use http::{header, Method, StatusCode};

use super::{assets, conditional, crafter, hrflow, native, records, with_header};
use super::{Answer, Dialect, Params, Request, Response};
use crate::access::Capability;
use crate::service::App;

/// A handler: the app, and the request with its path parameters ([`super::param`]).
pub type Handler = fn(Arc<App>, Request) -> BoxFuture<'static, Response>;
/// How a dialect renders an error the router itself produces (405, 413, 404).
pub type ErrorRenderer = fn(StatusCode, &str) -> Response;

/// One endpoint.
#[derive(Debug)]
pub struct Route {
    /// The Lambda binary's name (a file in `functions/src/bin/`) and the function's key.
    pub name: &'static str,
    pub method: Method,
    /// The path pattern, `{name}` standing for one segment (API Gateway's syntax).
    pub path: &'static str,
    pub handler: Handler,
    pub errors: ErrorRenderer,
    /// What the route's handler does to the table and the bucket on the AWS backend: its
    /// function's IAM policy grants exactly this (see [`crate::access`]).
    pub needs: &'static [Capability],
}

macro_rules! routes {
    ($($konst:ident = $name:literal, $method:ident, $path:literal, $handler:path, $dialect:path, [$($need:ident),*];)*) => {
        $(
            #[doc = concat!("`", stringify!($method), " ", $path, "`, served by the `", $name, "` function.")]
            pub static $konst: Route = Route {
                name: $name,
                method: Method::$method,
                path: $path,
                handler: |app, req| Box::pin(async move {
                    let answer: Answer<$dialect> = $handler(app, req).await;
                    answer.unwrap_or_else(Response::from)
                }),
                errors: <$dialect as Dialect>::error,
                needs: &[$(Capability::$need),*],
            };
        )*

        /// Every endpoint of every API. Each row is also its own static, so a Lambda binary names
        /// only its row and links only its handler.
        pub static ROUTES: &[&Route] = &[$(&$konst),*];

        /// Each row's static and function name, for the test that keeps them in step.
        #[cfg(test)]
        static STATIC_NAMES: &[(&str, &str)] = &[$((stringify!($konst), $name)),*];
    };
}

#[rustfmt::skip]
routes! {
    NATIVE_PUT_PARENT = "native-put-parent", PUT, "/v1/parents/{kind}/{id}", native::put_parent, native::Native, [TableRead, TableWrite];
    NATIVE_GET_PARENT = "native-get-parent", GET, "/v1/parents/{kind}/{id}", native::get_parent, native::Native, [TableRead];
    NATIVE_DELETE_PARENT = "native-delete-parent", DELETE, "/v1/parents/{kind}/{id}", native::delete_parent, native::Native, [TableRead, TableWrite, ObjectDelete, MultipartAbort];
    NATIVE_UPLOAD = "native-upload", POST, "/v1/parents/{kind}/{id}/attachments", native::upload, native::Native, [TableRead, TableWrite, ObjectRead, ObjectWrite, ObjectDelete];
    NATIVE_LIST = "native-list", GET, "/v1/parents/{kind}/{id}/attachments", native::list, native::Native, [TableRead, ObjectRead];
    NATIVE_GET_ATTACHMENT = "native-get-attachment", GET, "/v1/attachments/{id}", native::get_attachment, native::Native, [TableRead, ObjectRead];
    NATIVE_GET_CONTENT = "native-get-content", GET, "/v1/attachments/{id}/content", native::get_content, native::Native, [TableRead, ObjectRead];
    NATIVE_DELETE_ATTACHMENT = "native-delete-attachment", DELETE, "/v1/attachments/{id}", native::delete_attachment, native::Native, [TableRead, TableWrite, ObjectDelete, MultipartAbort];
    NATIVE_BEGIN_UPLOAD = "native-begin-upload", POST, "/v1/parents/{kind}/{id}/uploads", native::begin_upload, native::Native, [TableRead, TableWrite, ObjectWrite, MultipartAbort];
    NATIVE_UPLOAD_STATUS = "native-upload-status", GET, "/v1/attachments/{id}/upload", native::upload_status, native::Native, [TableRead, ObjectWrite, MultipartList];
    NATIVE_COMPLETE_UPLOAD = "native-complete-upload", POST, "/v1/attachments/{id}/complete", native::complete_upload, native::Native, [TableRead, TableWrite, ObjectRead, BucketList, ObjectWrite, ObjectDelete, MultipartList, MultipartAbort];
    RECORDS_LIST_MANY = "records-list-many", GET, "/v2/{object}/attachments", records::list_many, records::Records, [TableRead, ObjectRead];
    RECORDS_LIST = "records-list", GET, "/v2/{object}/{uuid}/attachments", records::list, records::Records, [TableRead, ObjectRead];
    RECORDS_UPLOAD = "records-upload", POST, "/v2/{object}/{uuid}/attachments", records::upload, records::Records, [TableRead, TableWrite, ObjectRead, ObjectWrite, ObjectDelete];
    RECORDS_DELETE = "records-delete", DELETE, "/v2/{object}/{uuid}/attachments", records::delete, records::Records, [TableRead, TableWrite, ObjectDelete, MultipartAbort];
    CRAFTER_UPLOAD = "crafter-upload", POST, "/api/1/profile/{id}/uploadAttachment", crafter::upload, crafter::Crafter, [TableRead, TableWrite, ObjectWrite, ObjectDelete];
    CRAFTER_LIST = "crafter-list", GET, "/api/1/profile/{id}/attachments", crafter::list, crafter::Crafter, [TableRead];
    CRAFTER_DETAILS = "crafter-details", GET, "/api/1/profile/{id}/attachment/{attachmentId}/details", crafter::details, crafter::Crafter, [TableRead];
    CRAFTER_CONTENT = "crafter-content", GET, "/api/1/profile/{id}/attachment/{attachmentId}", crafter::content, crafter::Crafter, [TableRead, ObjectRead];
    HRFLOW_LIST = "hrflow-list", GET, "/v1/profile/attachments", hrflow::list, hrflow::HrFlow, [TableRead, ObjectRead];
    HRFLOW_LIST_INDEXING = "hrflow-list-indexing", GET, "/v1/profile/indexing/attachments", hrflow::list, hrflow::HrFlow, [TableRead, ObjectRead];
    ASSETS_LIST = "assets-list", GET, "/api/v2/assets/{asset_id}/attachments", assets::list, assets::Assets, [TableRead];
    ASSETS_CREATE = "assets-create", POST, "/api/v2/assets/{asset_id}/attachments", assets::create, assets::Assets, [TableRead, TableWrite];
    PROJECTS_LIST = "projects-list", GET, "/api/v2/projects/{project_id}/attachments", assets::list, assets::Projects, [TableRead];
    PROJECTS_CREATE = "projects-create", POST, "/api/v2/projects/{project_id}/attachments", assets::create, assets::Projects, [TableRead, TableWrite];
    NATIVE_PUT_CONTENT = "native-put-content", POST, "/v1/attachments/{id}/content", native::put_content, native::Native, [TableRead, TableWrite, ObjectRead, ObjectWrite, ObjectDelete];
}

/// The route of a Lambda binary.
pub fn by_name(name: &str) -> Option<&'static Route> {
    ROUTES.iter().find(|r| r.name == name).copied()
}

const NOT_ALLOWED: &str = "method not allowed on this path";

impl Route {
    /// Matches a request path against the pattern. A single trailing slash is ignored, as
    /// Crafter's clients send both spellings.
    pub fn matches(&self, path: &str) -> Option<Params> {
        let path = path.strip_suffix('/').unwrap_or(path);
        // Every request is matched against the table in order: the literal start of the
        // pattern turns most routes away before any splitting.
        let literal = self.path.split_once('{').map_or(self.path, |(l, _)| l);
        if !path.starts_with(literal) {
            return None;
        }
        let mut actual = path.split('/');
        let mut params = Vec::new();
        for p in self.path.split('/') {
            let a = actual.next()?;
            match p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                Some(name) => {
                    let value = percent_encoding::percent_decode_str(a).decode_utf8().ok();
                    let value = value.filter(|v| !v.is_empty())?;
                    params.push((name, value.into_owned()));
                }
                None if p != a => return None,
                None => {}
            }
        }
        actual.next().is_none().then_some(Params(params))
    }

    /// Runs the handler; a read route's answer is made conditional ([`super::conditional`]).
    async fn serve(&self, app: &Arc<App>, mut req: Request, params: Params) -> Response {
        crate::telemetry::request::set_route(self.name);
        req.extensions_mut().insert(params);
        let if_none_match = req.headers().get(header::IF_NONE_MATCH).cloned();
        let resp = (self.handler)(app.clone(), req).await;
        conditional::apply(&self.method, if_none_match, resp)
    }
}

/// The route whose pattern matches a path, for the envelope of errors that precede dispatch.
pub fn errors_for_path(path: &str) -> ErrorRenderer {
    let route = ROUTES.iter().find(|r| r.matches(path).is_some());
    route.map_or(native::Native::error, |r| r.errors)
}

/// Serves a request with the route table; a path served with other methods answers 405 in
/// the envelope of the first such route, naming them in `Allow`.
pub async fn dispatch(app: &Arc<App>, req: Request) -> Response {
    let mut allowed = Vec::new();
    for route in ROUTES {
        if let Some(params) = route.matches(req.uri().path()) {
            if route.method == req.method() {
                return route.serve(app, req, params).await;
            }
            allowed.push(route);
        }
    }
    let Some(first) = allowed.first() else {
        return native::Native::error(StatusCode::NOT_FOUND, "no such route");
    };
    let allow: Vec<&str> = allowed.iter().map(|r| r.method.as_str()).collect();
    let resp = (first.errors)(StatusCode::METHOD_NOT_ALLOWED, NOT_ALLOWED);
    with_header(resp, header::ALLOW, &allow.join(", "))
}

/// Serves a request with one route (a Lambda function), refusing any other method or path.
pub async fn dispatch_route(app: &Arc<App>, route: &'static Route, req: Request) -> Response {
    match route.matches(req.uri().path()) {
        Some(params) if route.method == req.method() => route.serve(app, req, params).await,
        Some(_) => (route.errors)(StatusCode::METHOD_NOT_ALLOWED, NOT_ALLOWED),
        None => (route.errors)(StatusCode::NOT_FOUND, "no such route"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_method_path_pairs_too() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert_ne!(a.name, b.name);
                assert!(
                    !(a.method == b.method && a.path == b.path),
                    "{} {}",
                    a.method,
                    a.path
                );
            }
        }
    }

    #[test]
    fn each_static_is_named_after_its_function() {
        for (konst, name) in STATIC_NAMES {
            assert_eq!(*konst, name.to_uppercase().replace('-', "_"));
        }
        assert_eq!(STATIC_NAMES.len(), ROUTES.len());
    }

    #[test]
    fn patterns_match_segments() {
        let r = by_name("native-list").unwrap();
        let p = r.matches("/v1/parents/profile/p%2D1/attachments").unwrap();
        let mut req = Request::new(bytes::Bytes::new());
        req.extensions_mut().insert(p);
        assert_eq!(super::super::param(&req, "kind"), "profile");
        assert_eq!(super::super::param(&req, "id"), "p-1");
        assert!(r.matches("/v1/parents/profile/p1/attachments/").is_some());
        assert!(r.matches("/v1/parents/profile//attachments").is_none());
        assert!(r.matches("/v1/parents/profile/p1/attachments/x").is_none());
        assert!(r.matches("/v1/parents/profile/p1").is_none());
    }
}
