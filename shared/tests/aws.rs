//! The behaviour suite on the AWS backend: DynamoDB served by moto and S3 served by s3s-fs with
//! SigV4 verification (see `support/aws.rs`), plus what only S3 links show: a link is a real
//! presigned URL, refused with 403 once changed or expired.
//!
//! Run through `scripts/aws-peers.sh run -- cargo test -p attachments-shared --features
//! aws-tests --test aws --test aws_faults`; without the script's moto the tests fail, they
//! never skip.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod behaviour;
mod support;

use support::*;

macro_rules! on_aws {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            behaviour::$name(&Harness::aws().await).await;
        }
    )*};
}

on_aws!(
    walkthrough,
    parents,
    auth,
    cross_tenant,
    bad_input,
    tampered_links
);

#[tokio::test]
async fn expired_links() {
    // S3 dates a signature to the second: a 1 s link signed late in a second can expire before
    // the first fetch. 2 s is still well inside the suite's 2.6 s wait.
    let h = Harness::aws_with(Opts {
        vars: vec![("ATTACHMENTS_LINK_TTL_SECONDS", "2".into())],
        ..Opts::default()
    })
    .await;
    behaviour::expired_links(&h).await;
}
