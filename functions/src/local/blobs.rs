//! The file store's side of the local server, under `/_blobs/`: what S3 answers on AWS.
//! Download links are served (GET, HEAD), form uploads are taken (POST `/_blobs/upload`,
//! fields first, then the file), and multipart parts are taken (PUT on a part link). Links and
//! forms are checked by the store's own link scheme; errors use S3's codes.

use bytes::Bytes;
use http::{header, HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};

use super::body::{chunks, Allowance};
use super::{finish, full, Body};
use attachments::service::{App, Receipt};
use attachments::store::fs_blob::{FsBlobStore, LinkError, ReceiveError, MAX_PART_BYTES};

/// Why a blob request was refused, with S3's status and code.
#[derive(Debug, thiserror::Error)]
enum BlobError {
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error(transparent)]
    Upload(#[from] ReceiveError),
    #[error("{0}")]
    Malformed(String),
    #[error("no such object")]
    NotFound,
    #[error("links are for GET")]
    Method,
    #[error("storage failed: {0}")]
    Internal(String),
}

impl BlobError {
    fn into_response(self) -> http::Response<Body> {
        use ReceiveError as U;
        let (status, code) = match &self {
            BlobError::Malformed(_) | BlobError::Link(LinkError::Malformed(_)) => {
                (StatusCode::BAD_REQUEST, "MalformedPOSTRequest")
            }
            BlobError::Link(LinkError::BadSignature) => {
                (StatusCode::FORBIDDEN, "SignatureDoesNotMatch")
            }
            BlobError::Link(LinkError::Expired) => (StatusCode::FORBIDDEN, "AccessDenied"),
            BlobError::Upload(U::TooLarge) => (StatusCode::BAD_REQUEST, "EntityTooLarge"),
            BlobError::Upload(U::Body(_)) => (StatusCode::BAD_REQUEST, "IncompleteBody"),
            BlobError::Upload(U::TooSmall) => (StatusCode::BAD_REQUEST, "EntityTooSmall"),
            BlobError::Upload(U::BadDigest) => (StatusCode::BAD_REQUEST, "BadDigest"),
            BlobError::Upload(U::NoSuchUpload) => (StatusCode::NOT_FOUND, "NoSuchUpload"),
            BlobError::NotFound => (StatusCode::NOT_FOUND, "NoSuchKey"),
            BlobError::Method => (StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed"),
            BlobError::Upload(U::Io(_)) | BlobError::Internal(_) => {
                attachments::http::log_internal(&self);
                return answer(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    "internal server error",
                );
            }
        };
        answer(status, code, &self.to_string())
    }
}

fn answer(status: StatusCode, code: &str, message: &str) -> http::Response<Body> {
    finish(attachments::http::native::error(status, code, message))
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// What a form upload may send before its file: the preamble and the policy's fields, a few
/// KiB in practice. Until the policy is checked nothing more is read, so a body with no
/// boundary, or endless field headers, is cut here, not buffered.
const BEFORE_FILE_BYTES: u64 = 256 * 1024;
/// The most fields before the file (a policy has four).
const MAX_FORM_FIELDS: usize = 16;
/// What may follow the file: its closing boundary, and a client's trailing bytes.
const AFTER_FILE_BYTES: u64 = 4 * 1024;

/// A direct form upload, as S3's POST Object: fields first, then the file, streamed to disk
/// under the signed policy's exact key, size and checksum. Like S3's "object created" event,
/// a stored file then triggers the verification.
pub(super) async fn receive_form(
    app: &std::sync::Arc<App>,
    blobs: &FsBlobStore,
    req: http::Request<Incoming>,
    idle: std::time::Duration,
) -> http::Response<Body> {
    match receive_form_inner(app, blobs, req, idle).await {
        Ok(()) => finish(attachments::http::empty(StatusCode::NO_CONTENT)),
        Err(e) => e.into_response(),
    }
}

async fn receive_form_inner(
    app: &std::sync::Arc<App>,
    blobs: &FsBlobStore,
    req: http::Request<Incoming>,
    idle: std::time::Duration,
) -> Result<(), BlobError> {
    let boundary = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| multer::parse_boundary(ct).ok())
        .ok_or_else(|| BlobError::Malformed("the body must be multipart/form-data".into()))?;
    let constraints = multer::Constraints::new().size_limit(
        multer::SizeLimit::new()
            .for_field("file", u64::MAX)
            .per_field(16 * 1024),
    );
    let allowance = Allowance::new(BEFORE_FILE_BYTES);
    let body = chunks(req.into_body(), allowance.clone(), idle);
    let mut form = multer::Multipart::with_constraints(body, boundary, constraints);
    let mut fields: Vec<(String, String)> = Vec::new();
    loop {
        let field = form
            .next_field()
            .await
            .map_err(|e| BlobError::Malformed(e.to_string()))?
            .ok_or_else(|| BlobError::Malformed("the form has no file".into()))?;
        let name = field.name().unwrap_or_default().to_owned();
        if name == "file" {
            let grant = blobs.links().check_post(&fields, now())?;
            // The policy is good: the file may come, exactly its size (the store checks it).
            allowance.raise_to(
                BEFORE_FILE_BYTES
                    .saturating_add(grant.size)
                    .saturating_add(AFTER_FILE_BYTES),
            );
            let written = blobs.receive_post(&grant, field).await?;
            // As S3's "object created" event: the stored file is verified now, and the store
            // hands over the digests it computed while writing it.
            let receipt = Receipt {
                etag: written.etag,
                digests: written.digests,
            };
            let app = app.clone();
            tokio::spawn(async move {
                if let Err(e) = app.finalize_received(&grant.key, Some(receipt)).await {
                    tracing::warn!(error = %e, key = %grant.key, "verification after upload failed; complete will retry");
                }
            });
            return Ok(());
        }
        if fields.len() >= MAX_FORM_FIELDS {
            return Err(BlobError::Malformed("too many form fields".into()));
        }
        let value = field
            .text()
            .await
            .map_err(|e| BlobError::Malformed(e.to_string()))?;
        fields.push((name, value));
    }
}

/// One part of a multipart upload, streamed to disk; answers its ETag as S3 does.
pub(super) async fn receive_part(
    blobs: &FsBlobStore,
    req: http::Request<Incoming>,
    key: &str,
    idle: std::time::Duration,
) -> http::Response<Body> {
    let received = async {
        let grant = blobs
            .links()
            .check_part(key, req.uri().query().unwrap_or(""), now())?;
        // The store stops a part at the largest part size; the allowance cuts the body there too.
        let body = chunks(req.into_body(), Allowance::new(MAX_PART_BYTES), idle);
        Ok::<_, BlobError>(blobs.receive_part(key, &grant, body).await?)
    };
    match received.await {
        Ok(etag) => {
            let mut resp = finish(attachments::http::empty(StatusCode::OK));
            if let Ok(v) = HeaderValue::from_str(&format!("\"{etag}\"")) {
                resp.headers_mut().insert(header::ETAG, v);
            }
            resp
        }
        Err(e) => e.into_response(),
    }
}

/// A download link: the file, presented as the link says (always as an attachment, never
/// rendered in this origin).
pub(super) async fn serve(
    blobs: &FsBlobStore,
    req: &http::Request<Incoming>,
    key: &str,
) -> http::Response<Body> {
    match serve_inner(blobs, req, key).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn serve_inner(
    blobs: &FsBlobStore,
    req: &http::Request<Incoming>,
    key: &str,
) -> Result<http::Response<Body>, BlobError> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Err(BlobError::Method);
    }
    let grant = blobs
        .links()
        .check_download(key, req.uri().query().unwrap_or(""), now())?;
    let (file, meta) = blobs
        .open(key)
        .await
        .map_err(|e| BlobError::Internal(e.to_string()))?
        .ok_or(BlobError::NotFound)?;
    let body: Body = if req.method() == Method::HEAD {
        full(Bytes::new())
    } else {
        let stream = tokio_util::io::ReaderStream::with_capacity(file, 64 * 1024);
        let frames = futures_util::StreamExt::map(stream, |r| r.map(Frame::data));
        BodyExt::boxed(StreamBody::new(frames))
    };
    let mut resp = http::Response::new(body);
    let h = resp.headers_mut();
    let put = |h: &mut http::HeaderMap, name: header::HeaderName, v: &str| {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(name, v);
        }
    };
    put(h, header::CONTENT_TYPE, &grant.content_type);
    put(h, header::CONTENT_DISPOSITION, &grant.content_disposition);
    put(h, header::CONTENT_LENGTH, &meta.len().to_string());
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=0"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    Ok(resp)
}
