//! Lambda function for `GET /api/1/profile/{id}/attachments` (route `crafter-list` of the route table in `shared`).

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), attachments::lambda::Error> {
    attachments::lambda::run(&attachments::http::routes::CRAFTER_LIST).await
}
