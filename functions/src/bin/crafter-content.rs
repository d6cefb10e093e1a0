//! Lambda function for `GET /api/1/profile/{id}/attachment/{attachmentId}` (route `crafter-content` of the route table in `shared`).

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), attachments::lambda::Error> {
    attachments::lambda::run(&attachments::http::routes::CRAFTER_CONTENT).await
}
