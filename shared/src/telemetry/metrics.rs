//! The service's own CloudWatch metrics, counted by the use cases with the one-line calls below
//! and written by [`super::emf`]: with the line of the request (or storage event) that counted
//! them ([`super::request`]), else at once. They go out only where `ATTACHMENTS_METRICS_NAMESPACE`
//! names a namespace (the template's `Attachments/<stack name>`); else a call costs a push.

use std::time::Duration;

use super::emf::{Metric, Sample};

/// A file was stored (`bytes` long).
pub fn upload(bytes: u64) {
    record(Metric::Uploads, 1.0, None);
    record(Metric::UploadedBytes, bytes as f64, None);
}

/// A direct upload was refused by its verification (`size_mismatch`, `checksum_mismatch`, …).
pub fn verification_failed(reason: &'static str) {
    record(Metric::VerificationFailures, 1.0, Some(reason));
}

/// A request was answered 4xx; `reason` is one of [`super::emf::reason_of_status`]'s words,
/// or a use case's (see `http::error`).
pub fn rejected(reason: &'static str) {
    record(Metric::RejectedRequests, 1.0, Some(reason));
}

/// The sweep removed `n` leftovers.
pub fn swept(n: usize) {
    record(Metric::SweptUploads, n as f64, None);
}

/// The oldest upload under way started `age` ago (zero when none is).
pub fn oldest_unverified_upload(age: Duration) {
    let age = age.as_secs() as f64;
    record(Metric::OldestUnverifiedUploadAge, age, None);
}

fn record(metric: Metric, value: f64, reason: Option<&'static str>) {
    super::request::record(Sample {
        metric,
        value,
        reason,
    });
}
