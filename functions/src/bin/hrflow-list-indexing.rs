//! Lambda function for `GET /v1/profile/indexing/attachments` (route `hrflow-list-indexing` of the route table in `shared`).

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), attachments::lambda::Error> {
    attachments::lambda::run(&attachments::http::routes::HRFLOW_LIST_INDEXING).await
}
