//! Lambda function for `POST /api/v2/projects/{project_id}/attachments` (route `projects-create` of the route table in `shared`).

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), attachments::lambda::Error> {
    attachments::lambda::run(&attachments::http::routes::PROJECTS_CREATE).await
}
