//! Lambda function for `PUT /v1/parents/{kind}/{id}` (route `native-put-parent` of the route table in `shared`).

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), attachments::lambda::Error> {
    attachments::lambda::run(&attachments::http::routes::NATIVE_PUT_PARENT).await
}
