//! Lambda function for `GET /v1/profile/attachments` (route `hrflow-list` of the route table in `shared`).

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), attachments::lambda::Error> {
    attachments::lambda::run(&attachments::http::routes::HRFLOW_LIST).await
}
