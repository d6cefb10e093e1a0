//! Lambda function for `POST /v1/parents/{kind}/{id}/uploads` (route `native-begin-upload` of the route table in `shared`).

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), attachments::lambda::Error> {
    attachments::lambda::run(&attachments::http::routes::NATIVE_BEGIN_UPLOAD).await
}
