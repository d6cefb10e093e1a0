//! Every call the AWS SDK's clients make, as a span of `telemetry::xray`: an interceptor,
//! registered on each client's configuration (`store::sdk`), opens the call's span when the SDK
//! starts an operation, and records on it what X-Ray shows of a call — the service and
//! operation, the region, the bucket, each attempt's HTTP status and request id, how many
//! attempts it took and why it failed — and closes it when the operation ends. Under a sampled
//! Lambda invocation, the X-Ray layer sends the closed span to the daemon as a subsegment.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::endpoint::EndpointResolverParams;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
    FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::{Metadata, OrchestratorError};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use aws_types::region::Region;
use aws_types::request_id::RequestId;

use crate::telemetry::xray;

/// The interceptor; one instance serves every call of a client.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallSpans;

/// The span of the call under way, kept in the operation's configuration bag between hooks.
#[derive(Debug)]
struct OpenCall {
    /// Taken out, recorded and dropped (which closes the span) when the operation ends.
    span: Mutex<Option<tracing::Span>>,
    attempts: AtomicU64,
}

impl Storable for OpenCall {
    type Storer = StoreReplace<Self>;
}

impl OpenCall {
    /// Records how many attempts the call took, lets `outcome` record the rest, and closes the
    /// span; only the first time.
    fn finish(&self, outcome: impl FnOnce(&tracing::Span)) {
        let span = self
            .span
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(span) = span {
            span.record("attempts", self.attempts.load(Ordering::Relaxed));
            outcome(&span);
        }
    }
}

impl Drop for OpenCall {
    /// An operation dropped before it ended (its whole time ran out, or its caller gave up
    /// waiting) never reaches `read_after_execution`: its span still closes, as unanswered.
    fn drop(&mut self) {
        self.finish(|span| {
            span.record("error_code", "Abandoned");
        });
    }
}

impl Intercept for CallSpans {
    fn name(&self) -> &'static str {
        "CallSpans"
    }

    /// The first hook that sees the operation's own configuration (its name), a moment after
    /// the operation starts.
    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (service, operation) = cfg
            .load::<Metadata>()
            .map(|m| (m.service().to_owned(), m.name().to_owned()))
            .unwrap_or_else(|| ("AWS".into(), "unknown".into()));
        let region = cfg
            .load::<Region>()
            .map(|r| r.as_ref().to_owned())
            .unwrap_or_default();
        let span = xray::aws_span(&service, &operation, &region, None);
        cfg.interceptor_state().store_put(OpenCall {
            span: Mutex::new(Some(span)),
            attempts: AtomicU64::new(0),
        });
        Ok(())
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(call) = cfg.load::<OpenCall>() {
            call.attempts.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(call) = cfg.load::<OpenCall>() else {
            return Ok(());
        };
        let guard = call
            .span
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(span) = guard.as_ref() else {
            return Ok(());
        };
        // The last attempt's answer is the call's.
        if let Some(response) = context.response() {
            span.record("status", u64::from(response.status().as_u16()));
            if let Some(id) = response.request_id() {
                span.record("request_id", id);
            }
        }
        if let Some(bucket) = bucket_of(cfg) {
            span.record("resource", bucket);
        }
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let status = context.response().map(|r| r.status().as_u16());
        let s3 = cfg.load::<Metadata>().is_some_and(|m| m.service() == "S3");
        let failure = match context.output_or_error() {
            Some(Err(e)) => Some(error_code(e)),
            _ => None,
        };
        if let Some(call) = cfg.load::<OpenCall>() {
            call.finish(|span| match failure {
                // A missing object is an answer, not a failure, where the caller looks for one.
                Some(_) if s3 && status == Some(404) => {}
                Some(code) => {
                    span.record("error_code", code.as_str());
                }
                None => {}
            });
        }
        Ok(())
    }
}

/// The bucket an S3 call addresses, from its endpoint parameters.
fn bucket_of(cfg: &ConfigBag) -> Option<&str> {
    cfg.load::<EndpointResolverParams>()?
        .get::<aws_sdk_s3::config::endpoint::Params>()?
        .bucket()
}

/// What X-Ray shows as a failed call's exception: the service's error code where it answered
/// one, else what kind of failure it was.
fn error_code<E: std::fmt::Display>(e: &OrchestratorError<E>) -> String {
    if let Some(op) = e.as_operation_error() {
        return operation_error_code(&op.to_string());
    }
    if e.is_timeout_error() {
        "Timeout"
    } else if e.is_connector_error() {
        "NoAnswer"
    } else if e.is_response_error() {
        "UnreadableAnswer"
    } else {
        "ClientError"
    }
    .to_owned()
}

/// The error code in an SDK operation error's message: the SDK writes a modelled error as
/// `Code: message` (or `Code` alone) and any other as `unhandled error (Code)`.
fn operation_error_code(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("unhandled error") {
        return rest
            .trim()
            .strip_prefix('(')
            .and_then(|r| r.split_once(')'))
            .map(|(code, _)| code.to_owned())
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| "UnknownError".into());
    }
    let code = message.split(':').next().unwrap_or_default().trim();
    if !code.is_empty() && code.chars().all(|c| c.is_ascii_alphanumeric() || c == '.') {
        code.to_owned()
    } else {
        "UnknownError".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_read_from_the_sdks_messages() {
        assert_eq!(
            operation_error_code("ConditionalCheckFailedException: The conditional request failed"),
            "ConditionalCheckFailedException"
        );
        assert_eq!(operation_error_code("NotFound"), "NotFound");
        assert_eq!(
            operation_error_code("unhandled error (SlowDown)"),
            "SlowDown"
        );
        assert_eq!(operation_error_code("unhandled error"), "UnknownError");
        assert_eq!(
            operation_error_code("something went wrong: badly"),
            "UnknownError"
        );
    }
}
