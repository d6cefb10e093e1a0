//! Lambda function for `GET /v1/attachments/{id}/content` (route `native-get-content` of the route table in `shared`).

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), attachments::lambda::Error> {
    attachments::lambda::run(&attachments::http::routes::NATIVE_GET_CONTENT).await
}
