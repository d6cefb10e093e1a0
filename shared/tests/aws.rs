//! The behaviour suite on the AWS backend: DynamoDB served by moto and S3 served by s3s-fs with
//! SigV4 verification (see `support/aws.rs`), every function `embedded.rs` runs, plus what only
//! S3 links show: a link is a real presigned URL, refused with 403 once changed or expired.
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

/// Direct uploads go to s3s: form POSTs under a SigV4 POST policy, presigned multipart parts.
macro_rules! direct_on_aws {
    ($($name:ident),* $(,)?) => {
        mod direct {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    // A form threshold below 50 MiB, so that the multipart path is taken.
                    let h = Harness::aws_with(Opts {
                        vars: vec![(
                            "ATTACHMENTS_DIRECT_POST_MAX_BYTES",
                            (4 * 1024 * 1024).to_string(),
                        )],
                        ..Opts::default()
                    })
                    .await;
                    behaviour::direct::$name(&h).await;
                }
            )*
        }
    };
}

direct_on_aws!(
    form_upload,
    form_policy_is_enforced,
    multipart_resume,
    multipart_refused_at_completion,
    type_checked_at_completion,
    concurrent_completion_and_events,
    expired_uploads_are_swept,
    placeholder_gets_its_file,
    direct_bad_input,
);

/// A suite of another API, in a module named after it (`--test aws crafter::`).
macro_rules! dialect_on_aws {
    ($dialect:ident: $($name:ident),* $(,)?) => {
        mod $dialect {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    behaviour::$dialect::$name(&Harness::aws().await).await;
                }
            )*
        }
    };
}

dialect_on_aws!(
    records: records_seed_many,
    records_seed_all,
    records_errors,
    records_versions,
    records_delete,
    records_thumbnails,
    records_bomb
);

// Not here: `svg_downloads` also wants `X-Content-Type-Options: nosniff`, which only the local
// server's links add (a presigned S3 GET cannot ask for it; S3 links serve from S3's own origin
// and always as an attachment); `internal_error` breaks the embedded data folder on purpose.
dialect_on_aws!(
    crafter: seed_examples,
    same_name_replaces,
    file_sizes,
    unknown_attachment,
    errors,
    cross_tenant
);

dialect_on_aws!(hrflow: lookups, errors, cross_tenant);

dialect_on_aws!(
    assets: seed_examples,
    placeholder_content,
    errors,
    title_in_characters,
    cross_tenant
);

#[tokio::test]
async fn crafter_file_limit() {
    let h = Harness::aws_with(Opts {
        vars: vec![("ATTACHMENTS_CRAFTER_MAX_FILE_BYTES", "3000".into())],
        ..Opts::default()
    })
    .await;
    behaviour::crafter::file_limit(&h).await;
}

#[tokio::test]
async fn crafter_configured_types() {
    let h = Harness::aws_with(Opts {
        vars: vec![(
            "ATTACHMENTS_CRAFTER_ALLOWED_TYPES",
            "application/pdf".into(),
        )],
        ..Opts::default()
    })
    .await;
    behaviour::crafter::configured_types(&h).await;
}
