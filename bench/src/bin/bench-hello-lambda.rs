//! Baseline of the init row: the smallest lambda_http function there is, built with the same
//! profile as ours. Its start-up is what any Rust function pays before its own work.

use lambda_http::{service_fn, Body, Error, Request, Response};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_http::run(service_fn(|_req: Request| async {
        Ok::<_, std::convert::Infallible>(Response::new(Body::Text("hello".into())))
    }))
    .await
}
