//! Lambda function for `POST /v1/attachments/{id}/content` (route `native-put-content` of the route table in `shared`).

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), attachments::lambda::Error> {
    attachments::lambda::run(&attachments::http::routes::NATIVE_PUT_CONTENT).await
}
