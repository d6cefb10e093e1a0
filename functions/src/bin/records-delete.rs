//! Lambda function for `DELETE /v2/{object}/{uuid}/attachments` (route `records-delete` of the route table in `shared`).

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), attachments::lambda::Error> {
    attachments::lambda::run(&attachments::http::routes::RECORDS_DELETE).await
}
