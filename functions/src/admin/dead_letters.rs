//! The finalize function's dead-letter queue: storage events it failed on after Lambda's
//! retries, each as Lambda's on-failure destination writes it (the event in `requestPayload`,
//! the error in `responsePayload`, why Lambda gave up in `requestContext.condition`).
//! `attachments-admin dlq list` shows them; `attachments-admin dlq redrive` handles each one
//! again, here, with the same code as the function, and deletes the ones that now succeed.
//! The queue is read through the AWS SDK's SQS client (`store::sdk::sqs_client`).

use aws_sdk_sqs::types::{Message, QueueAttributeName};
use aws_smithy_types::error::display::DisplayErrorContext;
use serde_json::Value;

use attachments::service::App;

/// How long a message read here stays hidden from other readers while the command works: the
/// finalize function's own time limit, so that a redrive that is still working never sees its
/// message come back. What the command leaves in the queue it makes visible again at the end.
const HIDE_SECONDS: i32 = 900;
/// The most messages one command reads.
const MAX_MESSAGES: usize = 1000;
/// How long a read waits for messages: long polling asks every SQS server, so an empty answer
/// means none is visible (a short poll samples a few servers and may miss some).
const WAIT_SECONDS: i32 = 1;

/// The dead-letter queue at one URL.
#[derive(Debug, Clone)]
pub struct DeadLetterQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

/// What the SDK's error says, with its causes.
fn why(e: impl std::error::Error) -> String {
    DisplayErrorContext(e).to_string()
}

impl DeadLetterQueue {
    /// The queue at `url` (the stack's `FinalizeDeadLetterQueueUrl`), over the AWS
    /// configuration `sdk`.
    pub fn new(sdk: &aws_config::SdkConfig, url: &str) -> Result<Self, String> {
        Ok(Self {
            client: attachments::store::sdk::sqs_client(sdk, url)?,
            url: url.to_owned(),
        })
    }

    /// Up to ten messages, each hidden from other readers for [`HIDE_SECONDS`].
    async fn receive(&self) -> Result<Vec<DeadLetter>, String> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(10)
            .visibility_timeout(HIDE_SECONDS)
            .wait_time_seconds(WAIT_SECONDS)
            .send()
            .await
            .map_err(|e| format!("reading the queue: {}", why(e)))?;
        Ok(out.messages().iter().map(DeadLetter::of).collect())
    }

    /// Deletes a message this command read.
    async fn delete(&self, letter: &DeadLetter) -> Result<(), String> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(&letter.receipt_handle)
            .send()
            .await
            .map_err(|e| format!("deleting {}: {}", letter.message_id, why(e)))?;
        Ok(())
    }

    /// Makes a message this command read visible to every reader again, at once.
    async fn release(&self, receipt_handle: &str) -> Result<(), String> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(0)
            .send()
            .await
            .map_err(|e| format!("making a message visible again: {}", why(e)))?;
        Ok(())
    }

    /// How many messages wait (visible), and how many are being handled (received, not yet
    /// deleted or made visible again); SQS's approximate counts.
    pub async fn depth(&self) -> Result<(u64, u64), String> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|e| format!("reading the queue's attributes: {}", why(e)))?;
        let count = |name: QueueAttributeName| {
            out.attributes()
                .and_then(|a| a.get(&name))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Ok((
            count(QueueAttributeName::ApproximateNumberOfMessages),
            count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        ))
    }
}

/// One failed storage event.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub message_id: String,
    pub receipt_handle: String,
    /// The storage event, as the function received it.
    pub event: Option<Value>,
    /// Why Lambda gave up (`RetriesExhausted`, `EventAgeExceeded`).
    pub condition: Option<String>,
    /// The function's last error.
    pub error: Option<String>,
    /// When Lambda wrote the record.
    pub timestamp: Option<String>,
}

impl DeadLetter {
    /// Reads a message: a Lambda destination record, or a bare event (sent by hand).
    pub fn of(m: &Message) -> Self {
        let body: Option<Value> = m.body().and_then(|b| serde_json::from_str(b).ok());
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
        let (event, condition, error, timestamp) = match &body {
            Some(record) if record.get("requestPayload").is_some() => {
                let response = record.get("responsePayload");
                let error = match (
                    text(response.and_then(|r| r.get("errorType"))),
                    text(response.and_then(|r| r.get("errorMessage"))),
                ) {
                    (Some(t), Some(msg)) => Some(format!("{t}: {msg}")),
                    (t, msg) => t.or(msg),
                };
                (
                    record.get("requestPayload").cloned(),
                    text(record.pointer("/requestContext/condition")),
                    error,
                    text(record.get("timestamp")),
                )
            }
            Some(bare) => (Some(bare.clone()), None, None, None),
            None => (None, None, Some("the message is not JSON".into()), None),
        };
        Self {
            message_id: m.message_id().unwrap_or_default().to_owned(),
            receipt_handle: m.receipt_handle().unwrap_or_default().to_owned(),
            event,
            condition,
            error,
            timestamp,
        }
    }

    /// One line about it: its id, when, why, and what the event was.
    pub fn describe(&self) -> String {
        let what = match &self.event {
            None => "unreadable".to_owned(),
            Some(e) => match attachments::storage_events::parse(e) {
                Ok(attachments::storage_events::StorageEvent::Sweep) => "sweep".to_owned(),
                Ok(attachments::storage_events::StorageEvent::Created(keys)) => {
                    format!("object created: {}", keys.join(", "))
                }
                Err(e) => e.to_string(),
            },
        };
        format!(
            "{}  {}  {}  {}  [{}]",
            self.message_id,
            self.timestamp.as_deref().unwrap_or("-"),
            self.condition.as_deref().unwrap_or("-"),
            what,
            self.error.as_deref().unwrap_or("-"),
        )
    }
}

/// Reads the messages, and leaves them in the queue as they were.
pub async fn list(queue: &DeadLetterQueue) -> Result<Vec<DeadLetter>, String> {
    let mut out: Vec<DeadLetter> = Vec::new();
    while out.len() < MAX_MESSAGES {
        let batch = queue.receive().await?;
        if batch.is_empty() {
            break;
        }
        for letter in batch {
            if !out.iter().any(|d| d.message_id == letter.message_id) {
                out.push(letter);
            }
        }
    }
    release(queue, out.iter().map(|d| d.receipt_handle.as_str())).await?;
    Ok(out)
}

/// Makes messages this command read visible again.
async fn release<'a>(
    queue: &DeadLetterQueue,
    receipts: impl Iterator<Item = &'a str>,
) -> Result<(), String> {
    for r in receipts {
        queue.release(r).await?;
    }
    Ok(())
}

/// What a redrive did.
#[derive(Debug, Default)]
pub struct Redrive {
    /// Handled this time, and deleted from the queue.
    pub handled: Vec<String>,
    /// Failed again (left in the queue), with why.
    pub failed: Vec<(String, String)>,
}

/// Handles every message's event again, as the finalize function would, and deletes each one
/// that succeeds; a failure stays in the queue.
pub async fn redrive(app: &App, queue: &DeadLetterQueue) -> Result<Redrive, String> {
    let mut report = Redrive::default();
    // Failures stay hidden while the run goes on (so it never reads them twice), then go back.
    let mut kept: Vec<String> = Vec::new();
    while report.handled.len() + report.failed.len() < MAX_MESSAGES {
        let batch = queue.receive().await?;
        if batch.is_empty() {
            break;
        }
        for letter in batch {
            let Some(event) = &letter.event else {
                report
                    .failed
                    .push((letter.message_id, "the message is not JSON".into()));
                kept.push(letter.receipt_handle);
                continue;
            };
            match attachments::storage_events::invoke(app, event, None, None).await {
                Ok(_) => {
                    queue.delete(&letter).await?;
                    report.handled.push(letter.message_id);
                }
                Err(e) => {
                    report.failed.push((letter.message_id, e.to_string()));
                    kept.push(letter.receipt_handle);
                }
            }
        }
    }
    release(queue, kept.iter().map(String::as_str)).await?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(body: &str) -> Message {
        Message::builder()
            .message_id("m-1")
            .receipt_handle("r-1")
            .body(body)
            .build()
    }

    #[test]
    fn destination_records_and_bare_events_are_read() {
        let record = serde_json::json!({
            "version": "1.0",
            "timestamp": "2026-01-02T03:04:05.678Z",
            "requestContext": {"requestId": "x", "condition": "RetriesExhausted", "approximateInvokeCount": 3},
            "requestPayload": {"detail-type": "Object Created", "detail": {"object": {"key": "t/a/v"}}},
            "responseContext": {"statusCode": 200, "functionError": "Unhandled"},
            "responsePayload": {"errorType": "EventError", "errorMessage": "storage unavailable"}
        });
        let d = DeadLetter::of(&message(&record.to_string()));
        assert_eq!(d.condition.as_deref(), Some("RetriesExhausted"));
        assert_eq!(d.error.as_deref(), Some("EventError: storage unavailable"));
        assert_eq!(
            d.event.as_ref().unwrap()["detail"]["object"]["key"],
            "t/a/v"
        );
        let line = d.describe();
        assert!(
            line.contains("object created: t/a/v") && line.contains("RetriesExhausted"),
            "{line}"
        );

        let bare = DeadLetter::of(&message(r#"{"detail-type": "Scheduled Event"}"#));
        assert!(bare.describe().contains("sweep"));
        let junk = DeadLetter::of(&message("not json"));
        assert_eq!(junk.event, None);
        assert!(junk.describe().contains("unreadable"));
    }
}
