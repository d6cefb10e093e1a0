//! Lambda function for `POST /v1/parents/{kind}/{id}/attachments` (route `native-upload` of the route table in `shared`).

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), attachments::lambda::Error> {
    attachments::lambda::run(&attachments::http::routes::NATIVE_UPLOAD).await
}
