//! Lambda function for `POST /v1/attachments/{id}/complete` (route `native-complete-upload` of the route table in `shared`).

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), attachments::lambda::Error> {
    attachments::lambda::run(&attachments::http::routes::NATIVE_COMPLETE_UPLOAD).await
}
