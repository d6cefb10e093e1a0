//! Lambda function for `POST /api/1/profile/{id}/uploadAttachment` (route `crafter-upload` of the route table in `shared`).

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), attachments::lambda::Error> {
    attachments::lambda::run(&attachments::http::routes::CRAFTER_UPLOAD).await
}
