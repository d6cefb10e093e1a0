//! Lambda function for `GET /v2/{object}/attachments` (route `records-list-many` of the route table in `shared`).

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), attachments::lambda::Error> {
    attachments::lambda::run(&attachments::http::routes::RECORDS_LIST_MANY).await
}
