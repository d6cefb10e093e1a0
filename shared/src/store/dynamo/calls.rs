//! The calls the store makes, in one place: expression names and values, transaction items,
//! Query, GetItem, BatchGetItem and BatchWriteItem with their retries of unprocessed keys, and
//! TransactWriteItems with its retries of cancellations that pass.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, DeleteRequest, KeysAndAttributes, Put, TransactWriteItem, Update,
    WriteRequest,
};
use aws_smithy_types::error::display::DisplayErrorContext;

use super::{s, DynamoStore, Item, PK, SK};
use crate::store::{StoreError, StoreResult, MAX_BATCH_KEYS};

/// A condition failed, or a unique value is taken: several optimistic attempts, then give up.
pub(super) const MAX_ATTEMPTS: u32 = 6;
/// BatchGetItem and BatchWriteItem take at most this many keys per call.
pub(super) const BATCH_GET: usize = MAX_BATCH_KEYS;
pub(super) const BATCH_WRITE: usize = 25;

/// A failed call: DynamoDB's error when it answered one, else the SDK's whole chain of causes
/// (its own `Display` says only "service error").
pub(super) fn dyn_err<E, R>(op: &str, e: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let cause = match e.as_service_error() {
        Some(answered) => DisplayErrorContext(answered).to_string(),
        None => DisplayErrorContext(&e).to_string(),
    };
    StoreError::Unavailable(format!("dynamodb {op}: {cause}"))
}

/// A request the SDK refused to build (a required field left out): our bug, not the peer's.
pub(super) fn build_err(e: aws_smithy_types::error::operation::BuildError) -> StoreError {
    StoreError::Unavailable(format!("dynamodb request: {e}"))
}

/// 25 ms doubling, with full jitter, so that writers that collided do not collide again; for
/// the optimistic loops here (a condition failed, keys left unprocessed, a transaction
/// cancelled by a conflict or by throttling), whose calls the SDK does not retry itself.
pub(super) async fn backoff(attempt: u32) {
    let base = 25u64 << attempt.min(6);
    let jitter = u64::from(time::OffsetDateTime::now_utc().nanosecond()) % (base / 2 + 1);
    tokio::time::sleep(Duration::from_millis(base / 2 + jitter)).await;
}

/// Expression attribute names and values, passed only when used (DynamoDB refuses unused ones).
#[derive(Default, Clone)]
pub(super) struct Expr {
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Expr {
    pub(super) fn new() -> Self {
        Self::default()
    }
    pub(super) fn name(mut self, placeholder: &str, attr: &str) -> Self {
        self.names.insert(placeholder.to_owned(), attr.to_owned());
        self
    }
    pub(super) fn value(mut self, placeholder: &str, v: AttributeValue) -> Self {
        self.values.insert(placeholder.to_owned(), v);
        self
    }
    /// The names, when there are any.
    pub(super) fn names(&self) -> Option<HashMap<String, String>> {
        Some(self.names.clone()).filter(|n| !n.is_empty())
    }
    /// The values, when there are any.
    pub(super) fn values(&self) -> Option<HashMap<String, AttributeValue>> {
        Some(self.values.clone()).filter(|v| !v.is_empty())
    }
}

/// A Query: what the store's queries set, in one place.
#[derive(Default)]
pub(super) struct QueryInput<'a> {
    pub(super) table_name: &'a str,
    pub(super) index_name: Option<&'a str>,
    pub(super) key_condition_expression: &'a str,
    pub(super) filter_expression: Option<&'a str>,
    pub(super) projection_expression: Option<&'a str>,
    pub(super) expression_attribute_names: HashMap<&'a str, &'a str>,
    pub(super) expression_attribute_values: HashMap<&'a str, AttributeValue>,
    pub(super) consistent_read: Option<bool>,
    pub(super) limit: Option<i32>,
    pub(super) exclusive_start_key: Option<Item>,
    /// Only how many items match (`Select: COUNT`), not the items.
    pub(super) count_only: bool,
}

/// The part of a Query's answer the store reads.
pub(super) struct QueryOutput {
    pub(super) items: Vec<Item>,
    pub(super) last_evaluated_key: Option<Item>,
    /// Items matching the filter (all of them, with `count_only`).
    pub(super) count: usize,
    /// Items read before the filter: what `Limit` counts and what the read costs.
    pub(super) scanned: usize,
}

/// How a transaction ended when it did not succeed: the cancellation code of each item.
pub(super) type Cancelled = Vec<String>;

pub(super) fn failed_at(codes: &Cancelled, i: usize) -> bool {
    codes.get(i).is_some_and(|c| c == "ConditionalCheckFailed")
}

/// What to do with a TransactWriteItems that failed.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    /// A condition failed: the caller decides what that means.
    Condition(Cancelled),
    /// Cancelled only by what passes (a concurrent transaction on the same items, throttling of
    /// an item's partition), or another transaction with our token under way: try again.
    Transient,
    /// Anything else: a failure.
    Failed,
}

/// Sorts out a failed transaction by DynamoDB's cancellation reasons. The SDK retries
/// throttling of the whole call itself, but a transaction cancelled because one item was
/// throttled (`ThrottlingError`, `ProvisionedThroughputExceeded`) comes back as a
/// `TransactionCanceledException`, which it does not retry.
pub(super) fn refusal<R>(e: &SdkError<TransactWriteItemsError, R>) -> Refusal {
    match e.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(t)) => {
            let codes: Cancelled = t
                .cancellation_reasons()
                .iter()
                .map(|r| r.code().unwrap_or("None").to_owned())
                .collect();
            let passing = |c: &str| {
                matches!(
                    c,
                    "TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded"
                )
            };
            if codes.iter().any(|c| c == "ConditionalCheckFailed") {
                Refusal::Condition(codes)
            } else if codes.iter().any(|c| passing(c))
                && codes.iter().all(|c| c == "None" || passing(c))
            {
                Refusal::Transient
            } else {
                Refusal::Failed
            }
        }
        Some(TransactWriteItemsError::TransactionInProgressException(_)) => Refusal::Transient,
        _ => Refusal::Failed,
    }
}

/// Whether a condition of one of the first `n` items of a transaction failed.
pub(super) fn failed_among(codes: &Cancelled, n: usize) -> bool {
    (0..n).any(|i| failed_at(codes, i))
}

impl DynamoStore {
    /// A conditional Update of a transaction.
    pub(super) fn update(
        &self,
        k: Item,
        expression: &str,
        cond: Option<&str>,
        expr: &Expr,
    ) -> StoreResult<TransactWriteItem> {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(k))
            .update_expression(expression)
            .set_condition_expression(cond.map(str::to_owned))
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values())
            .build()
            .map_err(build_err)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// A condition on an item that the transaction does not change.
    pub(super) fn condition_check(
        &self,
        k: Item,
        cond: &str,
        expr: &Expr,
    ) -> StoreResult<TransactWriteItem> {
        let check = aws_sdk_dynamodb::types::ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(k))
            .condition_expression(cond)
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values())
            .build()
            .map_err(build_err)?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }

    /// A conditional Put of a transaction.
    pub(super) fn put(
        &self,
        item: Item,
        cond: Option<&str>,
        expr: &Expr,
    ) -> StoreResult<TransactWriteItem> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .set_condition_expression(cond.map(str::to_owned))
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values())
            .build()
            .map_err(build_err)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// A conditional Delete of a transaction.
    pub(super) fn delete(
        &self,
        k: Item,
        cond: Option<&str>,
        expr: &Expr,
    ) -> StoreResult<TransactWriteItem> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(k))
            .set_condition_expression(cond.map(str::to_owned))
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values())
            .build()
            .map_err(build_err)?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    pub(super) async fn query(&self, q: QueryInput<'_>) -> StoreResult<QueryOutput> {
        let owned = |m: HashMap<&str, &str>| {
            m.into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect::<HashMap<_, _>>()
        };
        let out = self
            .client
            .query()
            .table_name(q.table_name)
            .set_index_name(q.index_name.map(str::to_owned))
            .key_condition_expression(q.key_condition_expression)
            .set_filter_expression(q.filter_expression.map(str::to_owned))
            .set_projection_expression(q.projection_expression.map(str::to_owned))
            .set_expression_attribute_names(Some(owned(q.expression_attribute_names)))
            .set_expression_attribute_values(Some(
                q.expression_attribute_values
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect(),
            ))
            .set_consistent_read(q.consistent_read)
            .set_limit(q.limit)
            .set_exclusive_start_key(q.exclusive_start_key)
            .set_select(
                q.count_only
                    .then_some(aws_sdk_dynamodb::types::Select::Count),
            )
            .send()
            .await
            .map_err(|e| dyn_err("Query", e))?;
        let count = usize::try_from(out.count).unwrap_or(0);
        Ok(QueryOutput {
            scanned: usize::try_from(out.scanned_count).unwrap_or(count),
            count,
            items: out.items.unwrap_or_default(),
            last_evaluated_key: out.last_evaluated_key,
        })
    }

    /// Runs a transaction. `Ok(Err(codes))` when a condition failed (the caller decides what it
    /// means); conflicts with concurrent transactions and throttled items are retried here,
    /// with backoff, a bounded number of times.
    pub(super) async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> StoreResult<Result<(), Cancelled>> {
        let mut attempt = 0;
        loop {
            // The token makes the SDK's own retries of this call (a lost answer) idempotent; a
            // new attempt after a cancellation is a new request with a new token.
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .client_request_token(uuid::Uuid::new_v4().to_string())
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok(Ok(())),
                Err(e) => e,
            };
            attempt += 1;
            match refusal(&err) {
                Refusal::Condition(codes) => return Ok(Err(codes)),
                Refusal::Transient if attempt < MAX_ATTEMPTS => backoff(attempt).await,
                Refusal::Transient | Refusal::Failed => {
                    return Err(dyn_err("TransactWriteItems", err))
                }
            }
        }
    }

    pub(super) async fn get_item(&self, k: Item) -> StoreResult<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(k))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| dyn_err("GetItem", e))?;
        Ok(out.item)
    }

    /// Reads many items by key, in as few calls as BatchGetItem allows, retrying whatever
    /// DynamoDB leaves unprocessed (throttling, the 16 MB response limit) with backoff. The
    /// result is in no particular order; missing items are absent.
    pub(super) async fn batch_get(&self, keys: Vec<Item>) -> StoreResult<Vec<Item>> {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(BATCH_GET) {
            let mut pending = chunk.to_vec();
            let mut attempt = 0;
            while !pending.is_empty() {
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(pending))
                    .consistent_read(true)
                    .build()
                    .map_err(build_err)?;
                let resp = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| dyn_err("BatchGetItem", e))?;
                out.extend(
                    resp.responses
                        .and_then(|mut r| r.remove(&self.table))
                        .unwrap_or_default(),
                );
                pending = resp
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                    .map(|k| k.keys)
                    .unwrap_or_default();
                if !pending.is_empty() {
                    attempt += 1;
                    if attempt >= MAX_ATTEMPTS * 2 {
                        return Err(StoreError::Unavailable(format!(
                            "dynamodb BatchGetItem: {} keys still unprocessed after {attempt} attempts",
                            pending.len()
                        )));
                    }
                    backoff(attempt).await;
                }
            }
        }
        Ok(out)
    }

    /// Deletes many items, retrying unprocessed ones with backoff.
    pub(super) async fn batch_delete(&self, keys: Vec<Item>) -> StoreResult<()> {
        for chunk in keys.chunks(BATCH_WRITE) {
            let mut pending = chunk
                .iter()
                .map(|k| {
                    let delete = DeleteRequest::builder()
                        .set_key(Some(k.clone()))
                        .build()
                        .map_err(build_err)?;
                    Ok(WriteRequest::builder().delete_request(delete).build())
                })
                .collect::<StoreResult<Vec<_>>>()?;
            let mut attempt = 0;
            while !pending.is_empty() {
                let resp = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, pending)
                    .send()
                    .await
                    .map_err(|e| dyn_err("BatchWriteItem", e))?;
                pending = resp
                    .unprocessed_items
                    .and_then(|mut u| u.remove(&self.table))
                    .unwrap_or_default();
                if !pending.is_empty() {
                    attempt += 1;
                    if attempt >= MAX_ATTEMPTS * 2 {
                        return Err(StoreError::Unavailable(
                            "dynamodb BatchWriteItem: items still unprocessed".into(),
                        ));
                    }
                    backoff(attempt).await;
                }
            }
        }
        Ok(())
    }

    /// Every item of a partition whose sort key starts with `prefix`, in key order.
    pub(super) async fn query_prefix(&self, pk: String, prefix: &str) -> StoreResult<Vec<Item>> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let mut q = QueryInput {
                table_name: &self.table,
                key_condition_expression: "#pk = :pk",
                expression_attribute_names: HashMap::from([("#pk", PK)]),
                expression_attribute_values: HashMap::from([(":pk", s(pk.clone()))]),
                consistent_read: Some(true),
                exclusive_start_key: start,
                ..Default::default()
            };
            // DynamoDB refuses an empty prefix: no prefix is the whole partition.
            if !prefix.is_empty() {
                q.key_condition_expression = "#pk = :pk AND begins_with(#sk, :prefix)";
                q.expression_attribute_names.insert("#sk", SK);
                q.expression_attribute_values.insert(":prefix", s(prefix));
            }
            let resp = self.query(q).await?;
            out.extend(resp.items);
            match resp.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }
}
