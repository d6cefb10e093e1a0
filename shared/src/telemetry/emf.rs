//! The embedded metric format (EMF): the service's metrics as JSON lines on standard output,
//! which CloudWatch Logs turns into metrics as it ingests a function's log, with no API call and
//! no agent. [`super::metrics`] counts; this module names the metrics and writes the lines.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::{json, Map, Value};

/// A metric of the service, with its CloudWatch name and unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Metric {
    /// Files stored, through the API or by a direct upload's verification.
    Uploads,
    /// Their bytes.
    UploadedBytes,
    /// Direct uploads refused by their verification, by reason.
    VerificationFailures,
    /// Requests answered 4xx, by reason.
    RejectedRequests,
    /// Leftovers the sweep removed (expired uploads, refused ones, unfinished deletions).
    SweptUploads,
    /// How long the oldest upload still under way has been waiting (the hourly sweep's view).
    OldestUnverifiedUploadAge,
}

impl Metric {
    /// The metric's name in CloudWatch (the template's alarms use these): the variant's own.
    pub fn name(self) -> String {
        format!("{self:?}")
    }

    /// A CloudWatch unit.
    pub fn unit(self) -> &'static str {
        match self {
            Metric::UploadedBytes => "Bytes",
            Metric::OldestUnverifiedUploadAge => "Seconds",
            _ => "Count",
        }
    }
}

/// One recorded value, with the reason of a by-reason metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub metric: Metric,
    pub value: f64,
    pub reason: Option<&'static str>,
}

/// The dimension of the by-reason metrics.
const REASON: &str = "Reason";

/// The reason word of a 4xx status, as [`super::metrics::rejected`] counts it; else `None`.
pub fn reason_of_status(status: http::StatusCode) -> Option<&'static str> {
    status.is_client_error().then(|| match status.as_u16() {
        400 => "invalid",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        408 => "timeout",
        409 => "conflict",
        412 => "precondition_failed",
        413 => "too_large",
        415 => "unsupported_media",
        422 => "unprocessable",
        429 => "throttled",
        _ => "other",
    })
}

/// Where metrics go, set once per process by [`super::init`] (`None`: nowhere).
pub(super) static NAMESPACE: OnceLock<Option<String>> = OnceLock::new();

/// Writes the samples as EMF lines on standard output, with `properties` (the request's
/// route and ids) beside them for CloudWatch Logs Insights; nothing when no namespace is set.
pub fn emit(samples: &[Sample], properties: &Map<String, Value>) {
    let Some(ns) = NAMESPACE.get().and_then(Option::as_deref) else {
        return;
    };
    let millis = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for doc in documents(ns, samples, properties, millis) {
        // Nobody may be reading (a closed pipe): metrics never stop the service.
        let _ = writeln!(out, "{doc}");
    }
}

/// The EMF documents of `samples`: one per reason (a by-reason metric has `Reason` as its
/// dimension, and a total without it), one for the metrics without a reason. Values of the
/// same metric add up; a gauge (the oldest upload's age) keeps the last.
pub fn documents(
    namespace: &str,
    samples: &[Sample],
    properties: &Map<String, Value>,
    timestamp_millis: i64,
) -> Vec<Value> {
    let mut groups: BTreeMap<Option<&str>, BTreeMap<Metric, f64>> = BTreeMap::new();
    for s in samples {
        let group = groups.entry(s.reason).or_default();
        let v = group.entry(s.metric).or_insert(0.0);
        let gauge = s.metric == Metric::OldestUnverifiedUploadAge;
        *v = if gauge { s.value } else { *v + s.value };
    }
    let documents = groups.into_iter().map(|(reason, values)| {
        let mut doc = properties.clone();
        doc.extend(reason.map(|r| (REASON.to_owned(), json!(r))));
        let metric = |m: &Metric| json!({ "Name": m.name(), "Unit": m.unit() });
        let dimensions = match reason {
            Some(_) => json!([[REASON], []]),
            None => json!([[]]),
        };
        // A whole number as an integer (counts, bytes, seconds), anything else as it is.
        doc.extend(values.iter().map(|(m, &v)| {
            let whole = v.fract() == 0.0 && (0.0..=u64::MAX as f64).contains(&v);
            (m.name(), if whole { json!(v as u64) } else { json!(v) })
        }));
        doc.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_millis,
                "CloudWatchMetrics": [{
                    "Namespace": namespace,
                    "Dimensions": dimensions,
                    "Metrics": values.keys().map(metric).collect::<Vec<_>>(),
                }],
            }),
        );
        Value::Object(doc)
    });
    documents.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(metric: Metric, value: f64, reason: Option<&'static str>) -> Sample {
        Sample {
            metric,
            value,
            reason,
        }
    }

    #[test]
    fn one_document_per_reason_with_its_dimension_and_a_total() {
        let mut props = Map::new();
        props.insert("route".into(), json!("native-upload"));
        let docs = documents(
            "Attachments/test",
            &[
                sample(Metric::Uploads, 1.0, None),
                sample(Metric::UploadedBytes, 10.0, None),
                sample(Metric::Uploads, 1.0, None),
                sample(Metric::UploadedBytes, 5.0, None),
                sample(Metric::RejectedRequests, 1.0, Some("too_large")),
            ],
            &props,
            1_700_000_000_000,
        );
        assert_eq!(docs.len(), 2, "{docs:?}");
        let plain = &docs[0];
        assert_eq!(plain["Uploads"], 2);
        assert_eq!(plain["UploadedBytes"], 15);
        assert_eq!(plain["route"], "native-upload");
        let directive = &plain["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "Attachments/test");
        assert_eq!(directive["Dimensions"], json!([[]]));
        assert_eq!(
            directive["Metrics"],
            json!([{"Name": "Uploads", "Unit": "Count"}, {"Name": "UploadedBytes", "Unit": "Bytes"}])
        );
        assert_eq!(plain["_aws"]["Timestamp"], 1_700_000_000_000i64);
        let refused = &docs[1];
        assert_eq!(refused["Reason"], "too_large");
        assert_eq!(refused["RejectedRequests"], 1);
        assert_eq!(
            refused["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Reason"], []])
        );
        assert!(refused.get("Uploads").is_none());
    }

    #[test]
    fn a_gauge_keeps_its_last_value() {
        let docs = documents(
            "n",
            &[
                sample(Metric::OldestUnverifiedUploadAge, 50.0, None),
                sample(Metric::OldestUnverifiedUploadAge, 7.0, None),
            ],
            &Map::new(),
            0,
        );
        assert_eq!(docs[0]["OldestUnverifiedUploadAge"], 7);
        assert!(documents("n", &[], &Map::new(), 0).is_empty());
    }

    #[test]
    fn every_client_error_has_a_reason_and_nothing_else_does() {
        for code in 400..500 {
            let s = http::StatusCode::from_u16(code).unwrap();
            assert!(reason_of_status(s).is_some(), "{code}");
        }
        for code in [200, 204, 304, 500, 503] {
            let s = http::StatusCode::from_u16(code).unwrap();
            assert_eq!(reason_of_status(s), None, "{code}");
        }
    }
}
