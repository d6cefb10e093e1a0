//! Every call the AWS SDK's clients make under a sampled invocation, as an X-Ray subsegment
//! (`telemetry::xray`): an interceptor, registered on each client (`store::sdk`), opens the call
//! when the SDK starts an operation, records what X-Ray shows of it, and sends it when it ends.

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
use serde_json::{json, Value};

use crate::telemetry::xray::{self, Trace};

/// The interceptor; one instance serves every call of a client.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallSpans;

/// What X-Ray shows of an AWS call, retries included, kept in the operation's configuration
/// bag between hooks while it is under way. Its trace is taken when it is sent, so it is sent
/// once.
#[derive(Debug)]
struct Call {
    trace: Option<Trace>,
    /// The operation, and its service as X-Ray names it (`DynamoDB`, `S3`).
    operation: Metadata,
    region: String,
    bucket: Option<String>,
    /// The last attempt's answer.
    status: Option<u16>,
    request_id: Option<String>,
    attempts: u64,
    start: f64,
}

impl Storable for Call {
    type Storer = StoreReplace<Self>;
}

impl Call {
    /// Sends the call, ended now, failed with `code` (the service's error code, or the kind of
    /// failure) if it failed.
    fn finish(&mut self, code: Option<&str>) {
        let Some(trace) = self.trace.take() else {
            return;
        };
        let throttling = |c: &str| {
            c.contains("Throttl")
                || matches!(c, "SlowDown" | "ProvisionedThroughputExceededException")
        };
        let throttled = self.status == Some(429) || code.is_some_and(throttling);
        let error = throttled || matches!(self.status, Some(400..=499));
        // No answer at all (a broken connection, a timeout) is a fault.
        let fault = !throttled && matches!((self.status, code), (Some(500..), _) | (None, Some(_)));
        let exception =
            |c| json!({ "exceptions": [{ "id": xray::segment_id(), "type": c, "message": c }] });
        trace.send(&present(json!({
            "name": self.operation.service(),
            "id": xray::segment_id(),
            "trace_id": trace.root,
            "parent_id": trace.parent,
            "type": "subsegment",
            "namespace": "aws",
            "start_time": self.start,
            "end_time": xray::epoch_seconds(),
            "aws": present(json!({
                "operation": self.operation.name(),
                "region": self.region,
                "request_id": self.request_id,
                "retries": self.attempts.saturating_sub(1),
                "bucket_name": self.bucket,
            })),
            "http": self.status.map(|s| json!({ "response": { "status": s } })),
            "throttle": throttled.then_some(true),
            "error": error.then_some(true),
            "fault": fault.then_some(true),
            "cause": code.map(exception),
        })));
    }
}

/// `object` without its null fields: what a call does not have is left out.
fn present(object: Value) -> Value {
    match object {
        Value::Object(fields) => fields.into_iter().filter(|(_, v)| !v.is_null()).collect(),
        other => other,
    }
}

impl Drop for Call {
    /// An operation dropped before it ended (its caller gave up waiting) never reaches
    /// `read_after_execution`: it is still sent, as unanswered.
    fn drop(&mut self) {
        self.finish(Some("Abandoned"));
    }
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
        let operation = cfg.load::<Metadata>().cloned();
        let operation = operation.unwrap_or_else(|| Metadata::new("unknown", "AWS"));
        let region = cfg.load::<Region>().map_or("", |r| r.as_ref());
        let params = cfg.load::<EndpointResolverParams>();
        let s3 = params.and_then(|p| p.get::<aws_sdk_s3::config::endpoint::Params>());
        let call = Call {
            trace: Some(trace),
            operation,
            region: region.to_owned(),
            bucket: s3.and_then(|p| p.bucket()).map(str::to_owned),
            status: None,
            request_id: None,
            attempts: 0,
            start: xray::epoch_seconds(),
        };
        cfg.interceptor_state().store_put(call);
        Ok(())
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(call) = cfg.get_mut_from_interceptor_state::<Call>() {
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
        let call = cfg.get_mut_from_interceptor_state::<Call>();
        if let (Some(call), Some(response)) = (call, context.response()) {
            call.status = Some(response.status().as_u16());
            let id = response.request_id().map(str::to_owned);
            call.request_id = id.or(call.request_id.take());
        }
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(call) = cfg.get_mut_from_interceptor_state::<Call>() {
            // A missing object is an answer, not a failure, where the caller looks for one.
            let missing = call.operation.service() == "S3" && call.status == Some(404);
            let code = match context.output_or_error() {
                Some(Err(e)) if !missing => Some(error_code(e)),
                _ => None,
            };
            call.finish(code.as_deref());
        }
        Ok(())
    }
}

/// What X-Ray shows as a failed call's exception: the service's error code where it answered
/// one, else what kind of failure it was.
fn error_code<E: std::fmt::Display>(e: &OrchestratorError<E>) -> String {
    match e.as_operation_error() {
        Some(op) => operation_error_code(&op.to_string()),
        None if e.is_timeout_error() => "Timeout".into(),
        None if e.is_connector_error() => "NoAnswer".into(),
        None if e.is_response_error() => "UnreadableAnswer".into(),
        None => "ClientError".into(),
    }
}

/// The error code in an SDK operation error's message: the SDK writes a modelled error as
/// `Code: message` (or `Code` alone) and any other as `unhandled error (Code)`.
fn operation_error_code(message: &str) -> String {
    let code = match message.strip_prefix("unhandled error (") {
        Some(rest) => rest.split_once(')'),
        None => message.split_once(':').or(Some((message, ""))),
    };
    let code = code.map_or("", |(code, _)| code.trim());
    let known = !code.is_empty() && code.chars().all(|c| c.is_ascii_alphanumeric() || c == '.');
    if known { code } else { "UnknownError" }.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    /// A call starting under a sampled trace whose daemon is the socket returned.
    fn started(service: &'static str, operation: &'static str) -> (UdpSocket, Call) {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let daemon = xray::connect(socket.local_addr().unwrap()).unwrap();
        let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        let call = Call {
            trace: Trace::sampled(header, daemon),
            operation: Metadata::new(operation, service),
            region: "eu-west-1".into(),
            bucket: None,
            status: None,
            request_id: None,
            attempts: 0,
            start: xray::epoch_seconds(),
        };
        (socket, call)
    }

    fn received(daemon: &UdpSocket) -> Value {
        let mut buf = [0u8; 65_536];
        let n = daemon.recv(&mut buf).unwrap();
        let text = std::str::from_utf8(&buf[..n]).unwrap();
        let doc = text.strip_prefix("{\"format\": \"json\", \"version\": 1}\n");
        serde_json::from_str(doc.expect("the daemon header first")).unwrap()
    }

    #[test]
    fn a_call_is_a_subsegment_of_its_invocations_segment() {
        let (socket, mut call) = started("DynamoDB", "GetItem");
        call.status = Some(200);
        call.request_id = Some("REQ123".into());
        call.attempts = 2;
        call.finish(None);
        let doc = received(&socket);
        assert_eq!(doc["type"], "subsegment");
        assert_eq!(doc["name"], "DynamoDB");
        assert_eq!(doc["namespace"], "aws");
        assert_eq!(doc["trace_id"], "1-5759e988-bd862e3fe1be46a994272793");
        assert_eq!(doc["parent_id"], "53995c3f42cd8ad8");
        assert_eq!(doc["aws"]["operation"], "GetItem");
        assert_eq!(doc["aws"]["region"], "eu-west-1");
        assert_eq!(doc["aws"]["request_id"], "REQ123");
        assert_eq!(doc["aws"]["retries"], 1);
        assert_eq!(doc["http"]["response"]["status"], 200);
        assert_eq!(doc["id"].as_str().unwrap().len(), 16);
        assert!(doc["end_time"].as_f64().unwrap() >= doc["start_time"].as_f64().unwrap());
        assert!(doc.get("error").is_none() && doc.get("fault").is_none());
        assert!(doc["aws"].get("bucket_name").is_none() && doc.get("cause").is_none());
    }

    #[test]
    fn failures_are_marked_and_a_dropped_call_is_sent_once_as_abandoned() {
        let (socket, mut call) = started("S3", "GetObject");
        call.bucket = Some("files".into());
        call.status = Some(503);
        call.finish(Some("SlowDown"));
        let doc = received(&socket);
        assert_eq!(doc["aws"]["bucket_name"], "files");
        assert_eq!(doc["throttle"], true);
        assert_eq!(doc["cause"]["exceptions"][0]["type"], "SlowDown");
        drop(call);
        socket
            .set_read_timeout(Some(std::time::Duration::from_millis(200)))
            .unwrap();
        let mut buf = [0u8; 16];
        assert!(socket.recv(&mut buf).is_err(), "sent once");

        let (socket, call) = started("S3", "HeadObject");
        drop(call);
        let doc = received(&socket);
        assert_eq!(doc["fault"], true);
        assert_eq!(doc["cause"]["exceptions"][0]["type"], "Abandoned");
    }

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
