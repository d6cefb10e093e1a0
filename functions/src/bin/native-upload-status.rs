//! Lambda function for `GET /v1/attachments/{id}/upload` (route `native-upload-status` of the route table in `shared`).

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), attachments::lambda::Error> {
    attachments::lambda::run(&attachments::http::routes::NATIVE_UPLOAD_STATUS).await
}
