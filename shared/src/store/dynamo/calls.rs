//! Every call the store makes, with expressions, transaction items and the retries the SDK does
//! not make (unprocessed keys, cancellations that pass, optimistic attempts).

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::query::QueryOutput;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError as TxError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, DeleteRequest, KeysAndAttributes, Put,
    TransactWriteItem, Update, WriteRequest,
};
use aws_smithy_types::error::display::DisplayErrorContext;
use futures_util::future::try_join_all;
use serde::de::DeserializeOwned;

use super::{doc, DynamoStore, Item, PK};
use crate::store::{StoreError, StoreResult, MAX_BATCH_KEYS};

/// A condition failed, or a unique value is taken: several optimistic attempts, then give up.
pub(super) const MAX_ATTEMPTS: u32 = 6;
/// BatchWriteItem takes at most this many items per call.
const BATCH_WRITE: usize = 25;

/// A failed call: DynamoDB's error when it answered one, else the SDK's whole chain of causes
/// (its own `Display` says only "service error").
pub(super) fn dyn_err<E: std::error::Error + 'static>(op: &str, e: SdkError<E>) -> StoreError {
    let cause = match e.as_service_error() {
        Some(answered) => DisplayErrorContext(answered).to_string(),
        None => DisplayErrorContext(&e).to_string(),
    };
    StoreError::Unavailable(format!("dynamodb {op}: {cause}"))
}

/// 25 ms doubling, with full jitter, so that writers that collided do not collide again, for
/// the retries the SDK does not make itself; attempt 0, the first, goes at once.
pub(super) async fn backoff(attempt: u32) {
    let base = 25u64 << attempt.min(6);
    let jitter = u64::from(time::OffsetDateTime::now_utc().nanosecond()) % (base / 2 + 1);
    if attempt > 0 {
        tokio::time::sleep(Duration::from_millis(base / 2 + jitter)).await;
    }
}

/// Runs `attempt` until it gives an answer (`Some`): at most [`MAX_ATTEMPTS`] times, with
/// backoff between, then `Unavailable` with `gave_up`.
pub(super) async fn optimistic<T, F>(gave_up: &str, attempt: impl Fn() -> F) -> StoreResult<T>
where
    F: std::future::Future<Output = StoreResult<Option<T>>>,
{
    for i in 0..MAX_ATTEMPTS {
        backoff(i).await;
        if let Some(answer) = attempt().await? {
            return Ok(answer);
        }
    }
    Err(StoreError::Unavailable(gave_up.into()))
}

/// Sends `requests` in calls of at most `size`; `call` answers the items found and the requests
/// left unprocessed (if any), which go again with backoff, up to twice [`MAX_ATTEMPTS`] times.
async fn batched<T: Clone, F>(
    op: &str,
    requests: Vec<T>,
    size: usize,
    call: impl Fn(Vec<T>) -> F,
) -> StoreResult<Vec<Item>>
where
    F: std::future::Future<Output = StoreResult<(Option<Vec<Item>>, Option<Vec<T>>)>>,
{
    let mut out = Vec::new();
    for chunk in requests.chunks(size) {
        let mut pending = chunk.to_vec();
        for attempt in 1.. {
            let (found, left) = call(pending).await?;
            out.extend(found.into_iter().flatten());
            pending = left.unwrap_or_default();
            if pending.is_empty() {
                break;
            } else if attempt >= MAX_ATTEMPTS * 2 {
                return Err(StoreError::Unavailable(format!(
                    "dynamodb {op}: {} keys still unprocessed after {attempt} attempts",
                    pending.len()
                )));
            }
            backoff(attempt).await;
        }
    }
    Ok(out)
}

/// A condition (when there is one) and the expression attribute names and values of a call,
/// passed only when used (DynamoDB refuses unused ones).
#[derive(Default, Clone)]
pub(super) struct Expr {
    cond: Option<String>,
    pub(super) names: Option<HashMap<String, String>>,
    pub(super) values: Option<HashMap<String, AttributeValue>>,
}

impl Expr {
    /// The names and values of a key condition, an update or a filter.
    pub(super) fn of<const N: usize, const V: usize>(
        names: [&str; N],
        values: [(&str, AttributeValue); V],
    ) -> Self {
        let e = names.into_iter().fold(Self::default(), Self::name);
        values.into_iter().fold(e, |e, (p, v)| e.value(p, v))
    }
    /// On condition that `cond` holds.
    pub(super) fn when(mut self, cond: impl Into<String>) -> Self {
        self.cond = Some(cond.into());
        self
    }
    /// On condition that the item does not exist.
    pub(super) fn absent() -> Self {
        Self::of([PK], []).when("attribute_not_exists(#pk)")
    }
    /// An attribute name, as `#` and itself in the expressions.
    pub(super) fn name(mut self, attr: &str) -> Self {
        let names = self.names.get_or_insert_with(HashMap::new);
        names.insert(format!("#{attr}"), attr.to_owned());
        self
    }
    pub(super) fn value(mut self, placeholder: &str, v: AttributeValue) -> Self {
        let values = self.values.get_or_insert_with(HashMap::new);
        values.insert(placeholder.to_owned(), v);
        self
    }
}

/// Methods that make an item of a transaction on the store's table, on the condition and with
/// the names and values of an [`Expr`]: `name(args) => builder` makes `name`, whose `builder`
/// (a Put, Update, Delete or ConditionCheck) is the item's by its setter of the same name.
macro_rules! conditional {
    ($($(#[$doc:meta])* $name:ident($($arg:ident: $t:ty),*) => $builder:expr;)*) => {$(
        $(#[$doc])*
        pub(super) fn $name(&self, $($arg: $t,)* e: &Expr) -> StoreResult<TransactWriteItem> {
            let write = $builder
                .table_name(&self.table)
                .set_condition_expression(e.cond.clone())
                .set_expression_attribute_names(e.names.clone())
                .set_expression_attribute_values(e.values.clone())
                .build()?;
            Ok(TransactWriteItem::builder().$name(write).build())
        }
    )*};
}

/// How a transaction ended when it did not succeed: the cancellation code of each item.
pub(super) type Cancelled = Vec<String>;

/// Cancellation codes of an item that pass: a concurrent transaction on it, or throttling of its
/// partition (which the SDK does not retry, unlike throttling of the whole call).
const PASSING: [&str; 3] = [
    "TransactionConflict",
    "ThrottlingError",
    "ProvisionedThroughputExceeded",
];

pub(super) fn failed_at(codes: &Cancelled, i: usize) -> bool {
    codes.get(i).is_some_and(|c| c == "ConditionalCheckFailed")
}

/// Runs `q` page by page from its start key, the first page limited to `limit` items: `next`
/// takes each answer and says how many items the next page may read, or `None` to stop.
/// Returns the key where the Query stopped while its partition went on.
pub(super) async fn pages(
    mut q: QueryFluentBuilder,
    mut limit: usize,
    mut next: impl FnMut(QueryOutput) -> StoreResult<Option<usize>>,
) -> StoreResult<Option<Item>> {
    loop {
        let page = i32::try_from(limit.max(1)).unwrap_or(i32::MAX);
        let resp = q.clone().limit(page).send().await;
        let resp = resp.map_err(|e| dyn_err("Query", e))?;
        let more = resp.last_evaluated_key.clone().filter(|k| !k.is_empty());
        match (next(resp)?, more) {
            (Some(l), Some(k)) => (limit, q) = (l, q.set_exclusive_start_key(Some(k))),
            (_, more) => return Ok(more),
        }
    }
}

/// The first `limit` items each of `queries` finds, all read at once.
pub(super) async fn firsts(
    queries: impl Iterator<Item = QueryFluentBuilder>,
    limit: usize,
) -> StoreResult<Vec<Item>> {
    let reads = queries.map(|q| async move {
        let mut found = Vec::new();
        pages(q, limit, |resp| {
            found.extend(resp.items.unwrap_or_default());
            Ok((found.len() < limit).then(|| limit - found.len()))
        })
        .await?;
        Ok::<_, StoreError>(found)
    });
    Ok(try_join_all(reads).await?.concat())
}

/// Every item `q` finds, all pages of it.
pub(super) async fn query_all(q: QueryFluentBuilder) -> StoreResult<Vec<Item>> {
    let items = q.into_paginator().items().send().try_collect().await;
    items.map_err(|e| dyn_err("Query", e))
}

impl DynamoStore {
    conditional! {
        put(item: Item) => Put::builder().set_item(Some(item));
        delete(k: Item) => Delete::builder().set_key(Some(k));
        update(k: Item, set: &str) => Update::builder().set_key(Some(k)).update_expression(set);
        /// A condition on an item that the transaction does not change.
        condition_check(k: Item) => ConditionCheck::builder().set_key(Some(k));
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
            let call = self.client.transact_write_items();
            let call = call.set_transact_items(Some(items.clone()));
            let token = uuid::Uuid::new_v4().to_string();
            let Err(err) = call.client_request_token(token).send().await else {
                return Ok(Ok(()));
            };
            attempt += 1;
            // Tried again when cancelled only with codes that pass, or while another transaction
            // with our token is under way.
            let passes = match err.as_service_error() {
                Some(TxError::TransactionCanceledException(t)) => {
                    let reasons = t.cancellation_reasons();
                    let codes = reasons.iter().map(|r| r.code().unwrap_or("None"));
                    if codes.clone().any(|c| c == "ConditionalCheckFailed") {
                        return Ok(Err(codes.map(String::from).collect()));
                    }
                    let mut failed = codes.filter(|&c| c != "None").peekable();
                    failed.peek().is_some() && failed.all(|c| PASSING.contains(&c))
                }
                Some(TxError::TransactionInProgressException(_)) => true,
                _ => false,
            };
            if !passes || attempt >= MAX_ATTEMPTS {
                return Err(dyn_err("TransactWriteItems", err));
            }
            backoff(attempt).await;
        }
    }

    /// An item, strongly consistent.
    pub(super) async fn get_item(&self, k: Item) -> StoreResult<Option<Item>> {
        let get = self.client.get_item().table_name(&self.table);
        let out = get.consistent_read(true).set_key(Some(k)).send().await;
        Ok(out.map_err(|e| dyn_err("GetItem", e))?.item)
    }

    /// The document of an item, strongly consistent.
    pub(super) async fn get_doc<T: DeserializeOwned>(&self, k: Item) -> StoreResult<Option<T>> {
        self.get_item(k).await?.as_ref().map(doc).transpose()
    }

    pub(super) async fn delete_item(&self, k: Item) -> StoreResult<()> {
        let delete = self.client.delete_item().table_name(&self.table);
        let done = delete.set_key(Some(k)).send().await;
        done.map(drop).map_err(|e| dyn_err("DeleteItem", e))
    }

    /// A strongly consistent Query of the table on `key` (a key condition), with the names and
    /// values of `e`.
    pub(super) fn query(&self, key: &str, e: &Expr) -> QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.table)
            .key_condition_expression(key)
            .set_expression_attribute_names(e.names.clone())
            .set_expression_attribute_values(e.values.clone())
            .consistent_read(true)
    }

    /// Reads many items by key, retrying whatever DynamoDB leaves unprocessed (throttling, the
    /// 16 MB response limit). The result is in no particular order; missing items are absent.
    pub(super) async fn batch_get(&self, keys: Vec<Item>) -> StoreResult<Vec<Item>> {
        batched("BatchGetItem", keys, MAX_BATCH_KEYS, |keys| async move {
            let request = KeysAndAttributes::builder().set_keys(Some(keys));
            let request = request.consistent_read(true).build()?;
            let call = self.client.batch_get_item();
            let resp = call.request_items(&self.table, request).send().await;
            let resp = resp.map_err(|e| dyn_err("BatchGetItem", e))?;
            let left = self.ours(resp.unprocessed_keys).map(|k| k.keys);
            Ok((self.ours(resp.responses), left))
        })
        .await
    }

    /// Deletes many items, retrying unprocessed ones.
    pub(super) async fn batch_delete(&self, keys: Vec<Item>) -> StoreResult<()> {
        let delete = |k| DeleteRequest::builder().set_key(Some(k)).build();
        let writes = keys
            .into_iter()
            .map(|k| Ok(WriteRequest::builder().delete_request(delete(k)?).build()))
            .collect::<StoreResult<_>>()?;
        batched("BatchWriteItem", writes, BATCH_WRITE, |w| async move {
            let call = self.client.batch_write_item();
            let resp = call.request_items(&self.table, w).send().await;
            let resp = resp.map_err(|e| dyn_err("BatchWriteItem", e))?;
            Ok((None, self.ours(resp.unprocessed_items)))
        })
        .await?;
        Ok(())
    }

    /// This table's part of a batch call's answer.
    fn ours<T>(&self, by_table: Option<HashMap<String, T>>) -> Option<T> {
        by_table?.remove(&self.table)
    }
}
