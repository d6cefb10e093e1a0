//! Every call the AWS SDK's clients make under a sampled invocation, as an X-Ray subsegment
//! (`telemetry::xray`): an interceptor, registered on each client's configuration
//! (`store::sdk`), opens the call when the SDK starts an operation, records what X-Ray shows
//! of it (the service and operation, the region, the bucket, the last attempt's HTTP status and
//! request id, how many attempts it took and why it failed), and sends it when it ends.

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

use crate::telemetry::xray::{self, Call, Trace};

/// The interceptor; one instance serves every call of a client.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallSpans;

/// The call under way, kept in the operation's configuration bag between hooks; taken out and
/// sent when the operation ends.
#[derive(Debug)]
struct OpenCall {
    trace: Trace,
    call: Option<Call>,
}

impl Storable for OpenCall {
    type Storer = StoreReplace<Self>;
}

impl OpenCall {
    /// Lets `outcome` record the end of the call and sends it; only the first time.
    fn finish(&mut self, outcome: impl FnOnce(&mut Call)) {
        if let Some(mut call) = self.call.take() {
            outcome(&mut call);
            self.trace.send(&call);
        }
    }
}

impl Drop for OpenCall {
    /// An operation dropped before it ended (its whole time ran out, or its caller gave up
    /// waiting) never reaches `read_after_execution`: it is still sent, as unanswered.
    fn drop(&mut self) {
        self.finish(|call| call.error_code = Some("Abandoned".into()));
    }
}

/// The call under way of the operation whose configuration `cfg` is, if it is traced.
fn open(cfg: &mut ConfigBag) -> Option<&mut OpenCall> {
    cfg.get_mut_from_interceptor_state::<OpenCall>()
}

impl Intercept for CallSpans {
    fn name(&self) -> &'static str {
        "CallSpans"
    }

    /// The first hook that sees the operation's own configuration (its name) and its endpoint
    /// parameters (an S3 call's bucket), a moment after the operation starts.
    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(trace) = xray::current() else {
            return Ok(());
        };
        let (service, operation) = cfg
            .load::<Metadata>()
            .map_or(("AWS", "unknown"), |m| (m.service(), m.name()));
        let region = cfg.load::<Region>().map_or("", |r| r.as_ref());
        let mut call = Call::new(service, operation, region);
        let params = cfg.load::<EndpointResolverParams>();
        let s3 = params.and_then(|p| p.get::<aws_sdk_s3::config::endpoint::Params>());
        call.bucket = s3.and_then(|p| p.bucket()).map(str::to_owned);
        cfg.interceptor_state().store_put(OpenCall {
            trace,
            call: Some(call),
        });
        Ok(())
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(call) = open(cfg).and_then(|o| o.call.as_mut()) {
            call.attempts += 1;
        }
        Ok(())
    }

    /// The last attempt's answer is the call's.
    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let call = open(cfg).and_then(|o| o.call.as_mut());
        if let (Some(call), Some(response)) = (call, context.response()) {
            call.status = Some(response.status().as_u16());
            if let Some(id) = response.request_id() {
                call.request_id = Some(id.to_owned());
            }
        }
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let s3 = cfg.load::<Metadata>().is_some_and(|m| m.service() == "S3");
        let missing = s3
            && context
                .response()
                .is_some_and(|r| r.status().as_u16() == 404);
        if let Some(open) = open(cfg) {
            open.finish(|call| match context.output_or_error() {
                // A missing object is an answer, not a failure, where the caller looks for one.
                Some(Err(_)) if missing => {}
                Some(Err(e)) => call.error_code = Some(error_code(e)),
                _ => {}
            });
        }
        Ok(())
    }
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
