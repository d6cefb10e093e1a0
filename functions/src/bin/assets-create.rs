//! Lambda function for `POST /api/v2/assets/{asset_id}/attachments` (route `assets-create` of the route table in `shared`).

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), attachments::lambda::Error> {
    attachments::lambda::run(&attachments::http::routes::ASSETS_CREATE).await
}
