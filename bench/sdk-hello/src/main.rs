//! Baseline of the init row: the SDK's hello world, as its examples write a Lambda function.
//! `aws_config::load_from_env()`, a DynamoDB and an S3 client built once, then `lambda_http::run`
//! of a handler that answers "hello" (naming both clients, so neither is optimised away). Same
//! release profile as the functions.

use lambda_http::{service_fn, Body, Error, Request, Response};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let config = aws_config::load_from_env().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let s3 = aws_sdk_s3::Client::new(&config);
    lambda_http::run(service_fn(move |_req: Request| {
        let region = format!(
            "hello from {:?} and {:?}",
            dynamodb.config().region(),
            s3.config().region()
        );
        async move { Ok::<_, std::convert::Infallible>(Response::new(Body::Text(region))) }
    }))
    .await
}
