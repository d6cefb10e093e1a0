//! The admin command as an operator runs it (the real `attachments-admin` binary, in its own
//! process, with only the environment given here).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

/// Runs `attachments-admin args` with no AWS configuration but `vars` (no profile files, no
/// instance metadata), and answers its exit status and what it printed on stderr.
fn admin(args: &[&str], vars: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_attachments-admin"));
    cmd.args(args).env_clear();
    cmd.env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_CONFIG_FILE", "/nonexistent/attachments-tests/config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/attachments-tests/credentials",
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .env("AWS_MAX_ATTEMPTS", "1");
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// An AWS queue's URL names its region, so `dlq list` needs none configured: it goes on to
/// read the queue (here at an SQS endpoint where nothing listens, so the read fails).
#[test]
fn dlq_list_takes_the_region_from_an_aws_queue_url() {
    let queue = "https://sqs.eu-west-3.amazonaws.com/123456789012/attachments-dlq";
    let (ok, err) = admin(
        &["dlq", "list", "--queue", queue],
        &[("AWS_ENDPOINT_URL_SQS", "http://127.0.0.1:1")],
    );
    assert!(!ok);
    assert!(err.contains("reading the queue"), "{err}");
    assert!(!err.contains("AWS_REGION"), "{err}");
}

/// Any other queue URL (an emulator, a VPC endpoint) names no region: the command says which
/// variable to set before it calls anything.
#[test]
fn dlq_list_elsewhere_needs_a_region() {
    let queue = "http://127.0.0.1:1/000000000000/dlq";
    let (ok, err) = admin(&["dlq", "list", "--queue", queue], &[]);
    assert!(!ok);
    assert!(err.contains("AWS_REGION"), "{err}");
    assert!(!err.contains("reading the queue"), "{err}");
}
