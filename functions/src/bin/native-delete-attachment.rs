//! Lambda function for `DELETE /v1/attachments/{id}` (route `native-delete-attachment` of the route table in `shared`).

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), attachments::lambda::Error> {
    attachments::lambda::run(&attachments::http::routes::NATIVE_DELETE_ATTACHMENT).await
}
