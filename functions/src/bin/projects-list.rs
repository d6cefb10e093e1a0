//! Lambda function for `GET /api/v2/projects/{project_id}/attachments` (route `projects-list` of the route table in `shared`).

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), attachments::lambda::Error> {
    attachments::lambda::run(&attachments::http::routes::PROJECTS_LIST).await
}
