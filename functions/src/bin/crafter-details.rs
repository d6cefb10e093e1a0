//! Lambda function for `GET /api/1/profile/{id}/attachment/{attachmentId}/details` (route `crafter-details` of the route table in `shared`).

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), attachments::lambda::Error> {
    attachments::lambda::run(&attachments::http::routes::CRAFTER_DETAILS).await
}
