//! Lambda function for `GET /api/v2/assets/{asset_id}/attachments` (route `assets-list` of the route table in `shared`).

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), attachments::lambda::Error> {
    attachments::lambda::run(&attachments::http::routes::ASSETS_LIST).await
}
