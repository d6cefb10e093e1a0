//! DynamoDB's JSON protocol: an operation is a signed `POST /` naming its target, with a JSON
//! body of DynamoDB-typed values ([`AttributeValue`]) and a JSON answer or error.

use std::collections::HashMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::Instrument;

use super::{with_retries, AwsError, Endpoint, Http, Payload, RequestSigner};

/// A DynamoDB value in its wire form (`{"S": "…"}`, `{"N": "42"}`, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AttributeValue {
    S(String),
    /// Numbers travel as strings.
    N(String),
    /// Binary, base64 as it travels.
    B(String),
    #[serde(rename = "SS")]
    Ss(Vec<String>),
    #[serde(rename = "NS")]
    Ns(Vec<String>),
    #[serde(rename = "BOOL")]
    Bool(bool),
    #[serde(rename = "NULL")]
    Null(bool),
    M(HashMap<String, AttributeValue>),
    L(Vec<AttributeValue>),
}

/// An item: attribute names to values.
pub type Item = HashMap<String, AttributeValue>;

/// A DynamoDB endpoint, signed for one region.
#[derive(Debug)]
pub struct DynamoClient {
    http: Http,
    endpoint: Endpoint,
    signer: RequestSigner,
}

impl DynamoClient {
    pub fn new(http: Http, endpoint: Endpoint, signer: RequestSigner) -> Self {
        Self {
            http,
            endpoint,
            signer,
        }
    }

    /// The regional endpoint, or the configured one.
    pub fn endpoint_for(region: &str, configured: Option<&str>) -> Result<Endpoint, String> {
        match configured {
            Some(url) => Endpoint::parse(url),
            None => Endpoint::parse(&format!("https://dynamodb.{region}.amazonaws.com")),
        }
    }

    /// Calls `operation` (`GetItem`, `TransactWriteItems`, …) with `body`; retried on
    /// throttling, server errors and broken connections.
    pub async fn call<T: serde::de::DeserializeOwned>(
        &self,
        operation: &str,
        body: &impl Serialize,
    ) -> Result<T, AwsError> {
        let payload = Payload::hashed(Bytes::from(
            serde_json::to_vec(body).map_err(|e| AwsError::Client(format!("{operation}: {e}")))?,
        ));
        let target = format!("DynamoDB_20120810.{operation}");
        let path = if self.endpoint.base_path.is_empty() {
            "/".to_owned()
        } else {
            format!("{}/", self.endpoint.base_path)
        };
        // The call as an X-Ray subsegment (see `telemetry::xray`).
        let span =
            crate::telemetry::xray::aws_span("DynamoDB", operation, &self.signer.region, None);
        let mut attempts = 0u64;
        let answer = with_retries(|| {
            attempts += 1;
            let req = self.signer.request(
                "POST",
                &self.endpoint,
                &path,
                &[],
                &[
                    ("content-type", "application/x-amz-json-1.0"),
                    ("x-amz-target", &target),
                ],
                payload.clone(),
            );
            let span = &span;
            async move {
                let (parts, bytes) = self.http.send(req?).await?;
                super::record_answer(span, &parts, "x-amzn-requestid");
                if parts.status.is_success() {
                    Ok(bytes)
                } else {
                    Err(service_error(parts.status.as_u16(), &bytes))
                }
            }
        })
        .instrument(span.clone())
        .await;
        super::record_outcome(&span, attempts, answer.as_ref().err());
        let answer = answer?;
        serde_json::from_slice(&answer)
            .map_err(|e| AwsError::Client(format!("{operation}: unreadable answer: {e}")))
    }
}

/// DynamoDB's error body: `{"__type": "com.amazonaws.dynamodb.v20120810#Code", "message": …}`,
/// with `CancellationReasons` for a cancelled transaction.
pub(crate) fn service_error(status: u16, body: &[u8]) -> AwsError {
    #[derive(Deserialize)]
    struct Reason {
        #[serde(rename = "Code")]
        code: Option<String>,
    }
    #[derive(Deserialize)]
    struct Body {
        #[serde(rename = "__type")]
        kind: Option<String>,
        message: Option<String>,
        #[serde(rename = "Message")]
        message_upper: Option<String>,
        #[serde(rename = "CancellationReasons")]
        reasons: Option<Vec<Reason>>,
    }
    let parsed: Option<Body> = serde_json::from_slice(body).ok();
    let code = parsed
        .as_ref()
        .and_then(|b| b.kind.as_deref())
        .map(|k| k.rsplit('#').next().unwrap_or(k).to_owned())
        .unwrap_or_else(|| format!("Http{status}"));
    let message = parsed
        .as_ref()
        .and_then(|b| b.message.clone().or_else(|| b.message_upper.clone()))
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
    let details = parsed
        .and_then(|b| b.reasons)
        .map(|rs| {
            rs.into_iter()
                .map(|r| r.code.unwrap_or_else(|| "None".into()))
                .collect()
        })
        .unwrap_or_default();
    AwsError::Service {
        status,
        code,
        message,
        details,
    }
}

/// The fields of an answer the store reads, by operation.
#[derive(Debug, Default, Deserialize)]
pub struct GetItemOutput {
    #[serde(rename = "Item")]
    pub item: Option<Item>,
}

#[derive(Debug, Default, Deserialize)]
pub struct QueryOutput {
    #[serde(rename = "Items", default)]
    pub items: Vec<Item>,
    #[serde(rename = "LastEvaluatedKey")]
    pub last_evaluated_key: Option<Item>,
}

#[derive(Debug, Default, Deserialize)]
pub struct BatchGetOutput {
    #[serde(rename = "Responses", default)]
    pub responses: HashMap<String, Vec<Item>>,
    #[serde(rename = "UnprocessedKeys", default)]
    pub unprocessed_keys: HashMap<String, KeysAndAttributes>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KeysAndAttributes {
    #[serde(rename = "Keys")]
    pub keys: Vec<Item>,
    #[serde(
        rename = "ConsistentRead",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub consistent_read: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
pub struct BatchWriteOutput {
    #[serde(rename = "UnprocessedItems", default)]
    pub unprocessed_items: HashMap<String, Vec<Value>>,
}

/// Any answer whose content the store does not need.
#[derive(Debug, Default, Deserialize)]
pub struct Ignored {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_travel_in_dynamodb_json() {
        let item: Item = HashMap::from([
            ("a".into(), AttributeValue::S("x".into())),
            ("b".into(), AttributeValue::N("42".into())),
            ("c".into(), AttributeValue::Ss(vec!["p".into()])),
        ]);
        let json = serde_json::to_value(&item).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"a": {"S": "x"}, "b": {"N": "42"}, "c": {"SS": ["p"]}})
        );
        let back: Item = serde_json::from_value(json).unwrap();
        assert_eq!(back, item);
        let other: AttributeValue =
            serde_json::from_value(serde_json::json!({"M": {"k": {"BOOL": true}}})).unwrap();
        assert_eq!(
            other,
            AttributeValue::M(HashMap::from([("k".into(), AttributeValue::Bool(true))]))
        );
    }

    #[test]
    fn errors_name_their_code_and_cancellation_reasons() {
        let e = service_error(
            400,
            br#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException","Message":"cancelled","CancellationReasons":[{"Code":"None"},{"Code":"ConditionalCheckFailed","Message":"x"}]}"#,
        );
        match e {
            AwsError::Service {
                status,
                code,
                message,
                details,
            } => {
                assert_eq!(status, 400);
                assert_eq!(code, "TransactionCanceledException");
                assert_eq!(message, "cancelled");
                assert_eq!(details, ["None", "ConditionalCheckFailed"]);
            }
            other => panic!("{other:?}"),
        }
        let throttled = service_error(
            400,
            br#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"slow down"}"#,
        );
        assert!(throttled.retryable());
        assert_eq!(service_error(503, b"").code(), Some("Http503"));
    }
}
