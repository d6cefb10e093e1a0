//! SQS's JSON protocol, for the finalize function's dead-letter queue (`attachments-admin dlq`):
//! receive, delete and count messages. The same signed `POST /` with a JSON body as DynamoDB's,
//! to the queue URL's own host.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tracing::Instrument;

use super::{with_retries, AwsError, Endpoint, Http, Payload, RequestSigner};

/// One queue, signed for one region.
#[derive(Debug)]
pub struct SqsClient {
    http: Http,
    endpoint: Endpoint,
    signer: RequestSigner,
    queue_url: String,
}

/// A received message.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Message {
    #[serde(rename = "MessageId")]
    pub id: String,
    #[serde(rename = "ReceiptHandle")]
    pub receipt_handle: String,
    #[serde(rename = "Body", default)]
    pub body: String,
    #[serde(rename = "Attributes", default)]
    pub attributes: std::collections::HashMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
struct ReceiveOutput {
    #[serde(rename = "Messages", default)]
    messages: Vec<Message>,
}

#[derive(Debug, Default, Deserialize)]
struct AttributesOutput {
    #[serde(rename = "Attributes", default)]
    attributes: std::collections::HashMap<String, String>,
}

impl SqsClient {
    /// A client of the queue at `queue_url` (`https://sqs.<region>.amazonaws.com/<account>/<name>`,
    /// or a compatible server's), whose host it talks to.
    pub fn new(http: Http, queue_url: &str, signer: RequestSigner) -> Result<Self, String> {
        let url = Endpoint::parse(queue_url)?;
        if url.base_path.trim_matches('/').is_empty() {
            return Err(format!(
                "{queue_url:?} is not a queue URL (no queue in its path)"
            ));
        }
        Ok(Self {
            http,
            endpoint: Endpoint {
                base_path: String::new(),
                ..url
            },
            signer,
            queue_url: queue_url.to_owned(),
        })
    }

    /// Calls `operation` (`ReceiveMessage`, …) with `body`; retried on throttling and server
    /// errors.
    pub async fn call<T: serde::de::DeserializeOwned>(
        &self,
        operation: &str,
        body: &impl Serialize,
    ) -> Result<T, AwsError> {
        let payload = Payload::hashed(Bytes::from(
            serde_json::to_vec(body).map_err(|e| AwsError::Client(format!("{operation}: {e}")))?,
        ));
        let target = format!("AmazonSQS.{operation}");
        let span = crate::telemetry::xray::aws_span("SQS", operation, &self.signer.region, None);
        let mut attempts = 0u64;
        let answer = with_retries(|| {
            attempts += 1;
            let req = self.signer.request(
                "POST",
                &self.endpoint,
                "/",
                &[],
                &[
                    ("content-type", "application/x-amz-json-1.0"),
                    ("x-amz-target", &target),
                ],
                payload.clone(),
            );
            let span = &span;
            async move {
                let (parts, bytes) = self.http.send(req?).await?;
                super::record_answer(span, &parts, "x-amzn-requestid");
                if parts.status.is_success() {
                    Ok(bytes)
                } else {
                    Err(super::dynamodb::service_error(
                        parts.status.as_u16(),
                        &bytes,
                    ))
                }
            }
        })
        .instrument(span.clone())
        .await;
        super::record_outcome(&span, attempts, answer.as_ref().err());
        let answer = answer?;
        if answer.is_empty() {
            return serde_json::from_value(json!({}))
                .map_err(|e| AwsError::Client(format!("{operation}: {e}")));
        }
        serde_json::from_slice(&answer)
            .map_err(|e| AwsError::Client(format!("{operation}: unreadable answer: {e}")))
    }

    /// Up to `max` (1 to 10) messages, each hidden from other readers for `hide_seconds`.
    pub async fn receive(&self, max: u32, hide_seconds: u32) -> Result<Vec<Message>, AwsError> {
        let out: ReceiveOutput = self
            .call(
                "ReceiveMessage",
                &json!({
                    "QueueUrl": self.queue_url,
                    "MaxNumberOfMessages": max.clamp(1, 10),
                    "VisibilityTimeout": hide_seconds,
                    "WaitTimeSeconds": 0,
                    "MessageSystemAttributeNames": ["ApproximateReceiveCount", "SentTimestamp"],
                    "AttributeNames": ["All"],
                }),
            )
            .await?;
        Ok(out.messages)
    }

    /// Deletes a received message.
    pub async fn delete(&self, receipt_handle: &str) -> Result<(), AwsError> {
        let _: Value = self
            .call(
                "DeleteMessage",
                &json!({ "QueueUrl": self.queue_url, "ReceiptHandle": receipt_handle }),
            )
            .await?;
        Ok(())
    }

    /// Makes a received message visible to every reader again, at once.
    pub async fn release(&self, receipt_handle: &str) -> Result<(), AwsError> {
        let _: Value = self
            .call(
                "ChangeMessageVisibility",
                &json!({
                    "QueueUrl": self.queue_url,
                    "ReceiptHandle": receipt_handle,
                    "VisibilityTimeout": 0,
                }),
            )
            .await?;
        Ok(())
    }

    /// How many messages wait (visible) and are being handled (received, not yet deleted).
    pub async fn depth(&self) -> Result<(u64, u64), AwsError> {
        let out: AttributesOutput = self
            .call(
                "GetQueueAttributes",
                &json!({
                    "QueueUrl": self.queue_url,
                    "AttributeNames": [
                        "ApproximateNumberOfMessages",
                        "ApproximateNumberOfMessagesNotVisible"
                    ],
                }),
            )
            .await?;
        let count = |name: &str| {
            out.attributes
                .get(name)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Ok((
            count("ApproximateNumberOfMessages"),
            count("ApproximateNumberOfMessagesNotVisible"),
        ))
    }
}
