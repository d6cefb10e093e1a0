//! The finalize function: S3 "object created" events (through EventBridge) verify direct
//! uploads, as `POST /v1/attachments/{id}/complete` does.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), attachments::lambda::Error> {
    attachments::storage_events::run().await
}
