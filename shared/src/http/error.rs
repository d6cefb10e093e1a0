//! How handlers fail: a handler returns [`Answer<D>`] and uses `?`; each error becomes its
//! dialect's answer here. A 5xx body is always the dialect's generic one; its cause is logged.

use std::marker::PhantomData;

use http::StatusCode;

use super::multipart::MultipartError;
use super::Response;
use crate::domain::IdError;
use crate::service::ServiceError;
use crate::telemetry::emf::reason_of_status;

/// An API's error envelope.
pub trait Dialect {
    /// What this API's 5xx bodies say, whatever the cause (which goes to the log).
    const INTERNAL: &'static str;

    /// This API's error body for a status and a message.
    fn envelope(status: StatusCode, message: &str) -> serde_json::Value;

    /// This API's error answer; a 5xx gets [`Self::INTERNAL`], whatever the message.
    fn error(status: StatusCode, message: &str) -> Response {
        let internal = status.is_server_error().then_some(Self::INTERNAL);
        super::json(status, &Self::envelope(status, internal.unwrap_or(message)))
    }

    /// A use case's refusal in this API's own terms, where it has them (its own message for
    /// "not found", say). `None`: the status [`status`] gives, with the error's message.
    fn refusal(_e: &ServiceError) -> Option<Response> {
        None
    }
}

/// What a handler of dialect `D` returns.
pub type Answer<D> = Result<Response, DialectError<D>>;

/// Why a request was not served: the answer, already in the envelope of dialect `D`. Each API's
/// error type is this with its own `D` (`native::Error`, `crafter::Error`, …).
#[derive(Debug)]
pub struct DialectError<D> {
    // Boxed: errors are the rare path, and a `Result` should stay as small as its `Ok`.
    answer: Box<Response>,
    /// Why the request was refused, as the rejected-requests metric counts it when the answer
    /// is sent; `None` for an internal failure, which is no refusal.
    reason: Option<&'static str>,
    dialect: PhantomData<fn() -> D>,
}

impl<D: Dialect> DialectError<D> {
    fn new(answer: Response, reason: Option<&'static str>) -> Self {
        Self {
            answer: Box::new(answer),
            reason,
            dialect: PhantomData,
        }
    }

    pub fn refused(status: StatusCode, message: impl Into<String>) -> Self {
        Self::answer(D::error(status, &message.into()))
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::refused(StatusCode::BAD_REQUEST, message)
    }

    /// An error answer the handler wrote itself, for refusals that need what only it knows
    /// (the profile id of Crafter's "no such profile").
    pub fn answer(response: Response) -> Self {
        let reason = reason_of_status(response.status());
        Self::new(response, reason)
    }
}

/// A use case's error, in the dialect's own terms where it has them ([`Dialect::refusal`]); the
/// cause of an internal failure goes to the log.
impl<D: Dialect> From<ServiceError> for DialectError<D> {
    fn from(e: ServiceError) -> Self {
        let reason = match &e {
            // A 409 of its own: the answer would be too big unpaged, nothing conflicted.
            ServiceError::TooMany(_) => Some("too_many"),
            e => reason_of_status(status(e)),
        };
        let answer = D::refusal(&e).unwrap_or_else(|| {
            if let ServiceError::Internal(cause) = &e {
                log_internal(cause);
            }
            D::error(status(&e), &e.to_string())
        });
        Self::new(answer, reason)
    }
}

impl<D: Dialect> From<IdError> for DialectError<D> {
    fn from(e: IdError) -> Self {
        ServiceError::from(e).into()
    }
}

impl<D: Dialect> From<MultipartError> for DialectError<D> {
    fn from(e: MultipartError) -> Self {
        Self::bad_request(e.to_string())
    }
}

impl<D> From<DialectError<D>> for Response {
    fn from(e: DialectError<D>) -> Self {
        if let Some(reason) = e.reason {
            crate::telemetry::metrics::rejected(reason);
        }
        *e.answer
    }
}

/// The HTTP status of a use case's error, shared by every dialect.
pub(super) fn status(e: &ServiceError) -> StatusCode {
    use ServiceError as E;
    match e {
        E::Unauthorized => StatusCode::UNAUTHORIZED,
        E::NotFound(_) => StatusCode::NOT_FOUND,
        E::Invalid(_) => StatusCode::BAD_REQUEST,
        E::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
        E::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        E::UnsupportedMedia(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        // The request is sound; the parent's state (what it holds) is what it cannot be
        // answered in: the same request succeeds once there is less, or paged.
        E::Conflict(_) | E::TooMany(_) => StatusCode::CONFLICT,
        E::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Logs a failure's cause; the body the caller gets stays generic.
pub fn log_internal(err: &dyn std::fmt::Display) {
    tracing::error!(error = %err, "request failed");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;

    struct Plain;
    impl Dialect for Plain {
        const INTERNAL: &'static str = "generic";
        fn envelope(_: StatusCode, message: &str) -> serde_json::Value {
            serde_json::json!({ "m": message })
        }
        fn refusal(e: &ServiceError) -> Option<Response> {
            matches!(e, ServiceError::NotFound("parent"))
                .then(|| Self::error(StatusCode::GONE, "ours"))
        }
    }

    fn body(r: &Response) -> serde_json::Value {
        serde_json::from_slice(r.body()).unwrap()
    }

    #[test]
    fn errors_take_the_dialects_envelope_and_hide_internal_causes() {
        let r = Response::from(DialectError::<Plain>::bad_request("no"));
        assert_eq!(
            (r.status(), body(&r)["m"].clone()),
            (StatusCode::BAD_REQUEST, "no".into())
        );
        let r = Response::from(DialectError::<Plain>::from(ServiceError::Conflict(
            "taken".into(),
        )));
        assert_eq!(
            (r.status(), body(&r)["m"].clone()),
            (StatusCode::CONFLICT, "taken".into())
        );
        let r = Response::from(DialectError::<Plain>::from(ServiceError::NotFound(
            "parent",
        )));
        assert_eq!(r.status(), StatusCode::GONE);
        let internal = ServiceError::Internal(StoreError::Unavailable("secret cause".into()));
        let r = Response::from(DialectError::<Plain>::from(internal));
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body(&r)["m"], "generic");
    }
}
