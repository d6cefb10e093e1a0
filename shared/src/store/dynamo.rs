//! The DynamoDB metadata store: one table, string keys `PK`/`SK`, one sparse index. The key
//! design, with every access pattern and the call that serves it, is in `docs/dynamodb.md`;
//! [`create_table`] makes a table of that shape (tests and local emulators; the SAM template
//! declares the same for AWS).
//!
//! Every read is a GetItem, a Query or a BatchGetItem, never a Scan. Every state change is a
//! conditional write; where two items must change together (a parent and its unique look-ups,
//! an attachment and its parent's index) it is one TransactWriteItems. Documents are stored as
//! JSON in a `doc` attribute beside the few attributes that keys, conditions and filters need;
//! the service bounds every free-text field, so an item stays far below DynamoDB's 400 KB.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, Delete, DeleteRequest, GlobalSecondaryIndex,
    KeySchemaElement, KeyType, KeysAndAttributes, Projection, ProjectionType, Put,
    ScalarAttributeType, TimeToLiveSpecification, TransactWriteItem, Update, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use aws_smithy_types::error::display::DisplayErrorContext;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

use super::{
    Expected, MetadataStore, Page, ParentLookup, PutOutcome, StoreError, StoreResult,
    MAX_BATCH_KEYS,
};
use crate::domain::{
    ApiKey, Attachment, AttachmentId, AttachmentStatus, Parent, ParentId, ParentKind, ParentRef,
    TenantId, Version, VersionId,
};

/// An item: attribute names to values.
type Item = HashMap<String, AttributeValue>;

/// The sparse index of leftovers: only attachments with an expiry carry its keys. (Named
/// generically, as `template.yaml` declares it.)
pub const LEFTOVERS_INDEX: &str = "gsi1";
/// DynamoDB's TTL attribute. It is a backstop only, set well after `expires_at`: the sweep must
/// remove a leftover first, because only the sweep also removes its file.
pub const TTL_ATTRIBUTE: &str = "ttl";
const TTL_GRACE_SECS: i64 = 7 * 24 * 3600;
/// Listed attachments per parent: their ids live in one index item, which this keeps near
/// 200 KB, well under the item limit.
pub const MAX_LISTED_PER_PARENT: usize = 5000;

const PK: &str = "pk";
const SK: &str = "sk";
const DOC: &str = "doc";
const STATUS: &str = "st";
const VERSION: &str = "vid";
/// The version of the upload under way to an attachment, for conditional writes.
const UPLOAD: &str = "upv";
const REV: &str = "rev";
const IDS: &str = "ids";
const PARENT_ID: &str = "pid";
const HASH: &str = "hash";
const LEFTOVER_PK: &str = "gsi1pk";
const LEFTOVER_SK: &str = "gsi1sk";
const LEFTOVER: &str = "leftover";

/// A condition failed, or a unique value is taken: several optimistic attempts, then give up.
const MAX_ATTEMPTS: u32 = 6;
/// Pages of 100 leftovers read, at most, to find the oldest upload under way.
const OLDEST_UPLOAD_PAGES: usize = 10;
/// BatchGetItem and BatchWriteItem take at most this many keys per call.
const BATCH_GET: usize = MAX_BATCH_KEYS;
const BATCH_WRITE: usize = 25;

/// Free text inside a key (sources, references, e-mails): `#` separates key parts and `%`
/// escapes, so both are percent-encoded, which keeps every key unambiguous.
const KEY_TEXT: &AsciiSet = &CONTROLS.add(b'#').add(b'%');

// ---- keys -------------------------------------------------------------------------------------

fn api_key_pk(hash: &str) -> String {
    format!("KEY#{hash}")
}
const API_KEY_SK: &str = "KEY";
/// All keys by public id, in one partition: keys are few and written rarely.
const API_KEYS_PK: &str = "KEYS";

/// The partition of a parent: the parent item (`P`) and its attachments (`A#<id>`).
fn parent_pk(tenant: &TenantId, key: &ParentRef) -> String {
    format!("T#{tenant}#P#{}#{}", key.kind, key.id)
}
const PARENT_SK: &str = "P";

fn attachment_sk(id: AttachmentId) -> String {
    format!("A#{id}")
}

/// An attachment's own partition: a pointer to its parent (`A`) and its versions (`V#<id>`).
fn attachment_pk(tenant: &TenantId, id: AttachmentId) -> String {
    format!("T#{tenant}#A#{id}")
}
const POINTER_SK: &str = "A";

fn version_sk(id: VersionId) -> String {
    format!("V#{id}")
}

/// The per-kind partition of parent index items (`SK` = parent id, `ids` = its listed
/// attachments).
fn index_pk(tenant: &TenantId, kind: &ParentKind) -> String {
    format!("T#{tenant}#I#{kind}")
}

/// A unique look-up value of a parent: `R` for references, `E` for e-mails.
fn lookup_pk(
    tenant: &TenantId,
    what: char,
    kind: &ParentKind,
    source: &str,
    value: &str,
) -> String {
    format!(
        "T#{tenant}#{what}#{kind}#{}#{}",
        utf8_percent_encode(source, KEY_TEXT),
        utf8_percent_encode(value, KEY_TEXT)
    )
}
const LOOKUP_SK: &str = "LOOKUP";

// ---- attribute helpers ----------------------------------------------------------------------

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// An expiry as the index's string sort key: zero-padded, so string order is time order.
fn expiry_key(unix: i64) -> AttributeValue {
    s(format!("{:020}", unix.max(0)))
}

fn key(pk: String, sk: impl Into<String>) -> Item {
    HashMap::from([(PK.to_owned(), s(pk)), (SK.to_owned(), s(sk))])
}

fn get_s<'a>(item: &'a Item, name: &str) -> StoreResult<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v),
        _ => Err(StoreError::Corrupt(format!(
            "item without string attribute {name}"
        ))),
    }
}

fn get_n(item: &Item, name: &str) -> StoreResult<i64> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("attribute {name} is not an integer"))),
        _ => Err(StoreError::Corrupt(format!(
            "item without number attribute {name}"
        ))),
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn doc<T: serde::de::DeserializeOwned>(item: &Item) -> StoreResult<T> {
    serde_json::from_str(get_s(item, DOC)?).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// A failed call: DynamoDB's error when it answered one, else the SDK's whole chain of causes
/// (its own `Display` says only "service error").
fn dyn_err<E, R>(op: &str, e: SdkError<E, R>) -> StoreError
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
fn build_err(e: aws_smithy_types::error::operation::BuildError) -> StoreError {
    StoreError::Unavailable(format!("dynamodb request: {e}"))
}

/// 25 ms doubling, with full jitter, so that writers that collided do not collide again; for
/// the optimistic loops here (a condition failed, keys left unprocessed, a transaction
/// cancelled by a conflict or by throttling), whose calls the SDK does not retry itself.
async fn backoff(attempt: u32) {
    let base = 25u64 << attempt.min(6);
    let jitter = u64::from(time::OffsetDateTime::now_utc().nanosecond()) % (base / 2 + 1);
    tokio::time::sleep(Duration::from_millis(base / 2 + jitter)).await;
}

/// Expression attribute names and values, passed only when used (DynamoDB refuses unused ones).
#[derive(Default, Clone)]
struct Expr {
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Expr {
    fn new() -> Self {
        Self::default()
    }
    fn name(mut self, placeholder: &str, attr: &str) -> Self {
        self.names.insert(placeholder.to_owned(), attr.to_owned());
        self
    }
    fn value(mut self, placeholder: &str, v: AttributeValue) -> Self {
        self.values.insert(placeholder.to_owned(), v);
        self
    }
    /// The names, when there are any.
    fn names(&self) -> Option<HashMap<String, String>> {
        Some(self.names.clone()).filter(|n| !n.is_empty())
    }
    /// The values, when there are any.
    fn values(&self) -> Option<HashMap<String, AttributeValue>> {
        Some(self.values.clone()).filter(|v| !v.is_empty())
    }
}

/// A Query: what the store's queries set, in one place.
#[derive(Default)]
struct QueryInput<'a> {
    table_name: &'a str,
    index_name: Option<&'a str>,
    key_condition_expression: &'a str,
    filter_expression: Option<&'a str>,
    projection_expression: Option<&'a str>,
    expression_attribute_names: HashMap<&'a str, &'a str>,
    expression_attribute_values: HashMap<&'a str, AttributeValue>,
    consistent_read: Option<bool>,
    limit: Option<i32>,
    exclusive_start_key: Option<Item>,
}

/// The part of a Query's answer the store reads.
struct QueryOutput {
    items: Vec<Item>,
    last_evaluated_key: Option<Item>,
}

// ---- attachment items -------------------------------------------------------------------------

fn attachment_item(att: &Attachment) -> StoreResult<Item> {
    let mut item = key(parent_pk(&att.tenant, &att.parent), attachment_sk(att.id));
    item.insert(DOC.into(), s(to_json(att)?));
    item.insert(STATUS.into(), s(att.status.as_str()));
    if let Some(v) = &att.content {
        item.insert(VERSION.into(), s(v.id.to_string()));
    }
    if let Some(u) = &att.upload {
        item.insert(UPLOAD.into(), s(u.version.id.to_string()));
    }
    // Only what has an expiry is in the sparse index (pending and refused uploads, unfinished
    // deletions, uploads under way to an existing attachment), so the sweep never reads the
    // settled ones.
    if let Some(exp) = att.expires_at {
        item.insert(LEFTOVER_PK.into(), s(LEFTOVER));
        item.insert(LEFTOVER_SK.into(), expiry_key(exp));
        // The TTL backstop only for what is gone anyway: never for an attachment that lives on
        // while a new upload to it is under way.
        if matches!(
            att.status,
            AttachmentStatus::Pending | AttachmentStatus::Deleted | AttachmentStatus::Rejected
        ) {
            item.insert(TTL_ATTRIBUTE.into(), n(exp.saturating_add(TTL_GRACE_SECS)));
        }
    }
    Ok(item)
}

fn pointer_item(att: &Attachment) -> Item {
    let mut item = key(attachment_pk(&att.tenant, att.id), POINTER_SK);
    item.insert("kind".into(), s(att.parent.kind.as_str()));
    item.insert(PARENT_ID.into(), s(att.parent.id.as_str()));
    item
}

fn parent_of_pointer(item: &Item) -> StoreResult<ParentRef> {
    let kind =
        ParentKind::parse(get_s(item, "kind")?).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let id =
        ParentId::parse(get_s(item, PARENT_ID)?).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(ParentRef::new(kind, id))
}

/// The change to a parent's index item when an attachment enters or leaves the lists.
fn index_update(table: &str, att: &Attachment, add: bool) -> StoreResult<TransactWriteItem> {
    let mut expr = Expr::new()
        .name("#ids", IDS)
        .value(":id", AttributeValue::Ss(vec![att.id.to_string()]));
    let mut update = Update::builder().table_name(table).set_key(Some(key(
        index_pk(&att.tenant, &att.parent.kind),
        att.parent.id.as_str(),
    )));
    if add {
        update = update
            .update_expression("ADD #ids :id")
            .condition_expression("attribute_not_exists(#ids) OR size(#ids) < :cap");
        expr = expr.value(":cap", n(MAX_LISTED_PER_PARENT as i64));
    } else {
        update = update.update_expression("DELETE #ids :id");
    }
    let update = update
        .set_expression_attribute_names(expr.names())
        .set_expression_attribute_values(expr.values())
        .build()
        .map_err(build_err)?;
    Ok(TransactWriteItem::builder().update(update).build())
}

/// How a transaction ended when it did not succeed: the cancellation code of each item.
type Cancelled = Vec<String>;

fn failed_at(codes: &Cancelled, i: usize) -> bool {
    codes.get(i).is_some_and(|c| c == "ConditionalCheckFailed")
}

/// What to do with a TransactWriteItems that failed.
#[derive(Debug, PartialEq, Eq)]
enum Refusal {
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
fn refusal<R>(e: &SdkError<TransactWriteItemsError, R>) -> Refusal {
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

/// DynamoDB-backed [`MetadataStore`].
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// A conditional Put of a transaction.
    fn put(&self, item: Item, cond: Option<&str>, expr: &Expr) -> StoreResult<TransactWriteItem> {
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
    fn delete(&self, k: Item, cond: Option<&str>, expr: &Expr) -> StoreResult<TransactWriteItem> {
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

    async fn query(&self, q: QueryInput<'_>) -> StoreResult<QueryOutput> {
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
            .send()
            .await
            .map_err(|e| dyn_err("Query", e))?;
        Ok(QueryOutput {
            items: out.items.unwrap_or_default(),
            last_evaluated_key: out.last_evaluated_key,
        })
    }

    /// Runs a transaction. `Ok(Err(codes))` when a condition failed (the caller decides what it
    /// means); conflicts with concurrent transactions and throttled items are retried here,
    /// with backoff, a bounded number of times.
    async fn transact(&self, items: Vec<TransactWriteItem>) -> StoreResult<Result<(), Cancelled>> {
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

    async fn get_item(&self, k: Item) -> StoreResult<Option<Item>> {
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
    async fn batch_get(&self, keys: Vec<Item>) -> StoreResult<Vec<Item>> {
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
    async fn batch_delete(&self, keys: Vec<Item>) -> StoreResult<()> {
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
    async fn query_prefix(&self, pk: String, prefix: &str) -> StoreResult<Vec<Item>> {
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

    /// Where an attachment lives: its parent, from the pointer item.
    async fn home_of(&self, tenant: &TenantId, id: AttachmentId) -> StoreResult<Option<ParentRef>> {
        match self
            .get_item(key(attachment_pk(tenant, id), POINTER_SK))
            .await?
        {
            Some(item) => parent_of_pointer(&item).map(Some),
            None => Ok(None),
        }
    }

    async fn api_key_by_id(&self, id: &str) -> StoreResult<Option<ApiKey>> {
        match self.get_item(key(API_KEYS_PK.into(), id)).await? {
            Some(item) => doc(&item).map(Some),
            None => Ok(None),
        }
    }

    /// Writes a key's two items (by hash for authentication, by id for listing) together.
    async fn write_api_key(&self, key_rec: &ApiKey) -> StoreResult<()> {
        let body = to_json(key_rec)?;
        let mut by_hash = key(api_key_pk(&key_rec.hash), API_KEY_SK);
        by_hash.insert(DOC.into(), s(body.clone()));
        let mut by_id = key(API_KEYS_PK.into(), key_rec.id.as_str());
        by_id.insert(DOC.into(), s(body));
        by_id.insert(HASH.into(), s(key_rec.hash.as_str()));
        let id_free = Expr::new()
            .name("#pk", PK)
            .name("#hash", HASH)
            .value(":hash", s(key_rec.hash.as_str()));
        let items = vec![
            self.put(by_hash, None, &Expr::new())?,
            self.put(
                by_id,
                Some("attribute_not_exists(#pk) OR #hash = :hash"),
                &id_free,
            )?,
        ];
        match self.transact(items).await? {
            Ok(()) => Ok(()),
            Err(_) => Err(StoreError::Conflict(
                "an API key with that id exists".into(),
            )),
        }
    }
}

/// Creates a table of this store's shape, as `template.yaml` declares it: on-demand, `pk`/`sk`,
/// the sparse leftovers index `gsi1` and TTL on [`TTL_ATTRIBUTE`]. For tests and local
/// emulators. The index projects every attribute: the oldest upload under way is read from it
/// (see [`MetadataStore::oldest_upload_under_way`]).
pub async fn create_table(client: &Client, table: &str) -> StoreResult<()> {
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(build_err)
    };
    let key_el = |name: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(t)
            .build()
            .map_err(build_err)
    };
    let index = GlobalSecondaryIndex::builder()
        .index_name(LEFTOVERS_INDEX)
        .key_schema(key_el(LEFTOVER_PK, KeyType::Hash)?)
        .key_schema(key_el(LEFTOVER_SK, KeyType::Range)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .map_err(build_err)?;
    client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr(PK)?)
        .attribute_definitions(attr(SK)?)
        .attribute_definitions(attr(LEFTOVER_PK)?)
        .attribute_definitions(attr(LEFTOVER_SK)?)
        .key_schema(key_el(PK, KeyType::Hash)?)
        .key_schema(key_el(SK, KeyType::Range)?)
        .global_secondary_indexes(index)
        .send()
        .await
        .map_err(|e| dyn_err("CreateTable", e))?;
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(TTL_ATTRIBUTE)
                .enabled(true)
                .build()
                .map_err(build_err)?,
        )
        .send()
        .await
        .map_err(|e| dyn_err("UpdateTimeToLive", e))?;
    Ok(())
}

/// Whether the table exists (`init` of the local emulators).
pub async fn table_exists(client: &Client, table: &str) -> StoreResult<bool> {
    use aws_sdk_dynamodb::operation::describe_table::DescribeTableError;
    match client.describe_table().table_name(table).send().await {
        Ok(_) => Ok(true),
        Err(e) => match e.as_service_error() {
            Some(DescribeTableError::ResourceNotFoundException(_)) => Ok(false),
            _ => Err(dyn_err("DescribeTable", e)),
        },
    }
}

#[async_trait]
impl MetadataStore for DynamoStore {
    async fn put_api_key(&self, key_rec: &ApiKey) -> StoreResult<()> {
        self.write_api_key(key_rec).await
    }

    async fn get_api_key(&self, hash: &str) -> StoreResult<Option<ApiKey>> {
        // Consistent, so a revocation takes effect on the very next request.
        match self.get_item(key(api_key_pk(hash), API_KEY_SK)).await? {
            Some(item) => doc(&item).map(Some),
            None => Ok(None),
        }
    }

    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKey>> {
        let items = self.query_prefix(API_KEYS_PK.into(), "").await?;
        items.iter().map(doc).collect()
    }

    async fn revoke_api_key(&self, id: &str) -> StoreResult<bool> {
        let Some(mut rec) = self.api_key_by_id(id).await? else {
            return Ok(false);
        };
        rec.revoked = true;
        self.write_api_key(&rec).await?;
        Ok(true)
    }

    async fn put_parent(&self, parent: &Parent) -> StoreResult<PutOutcome> {
        let tenant = &parent.tenant;
        let pk = parent_pk(tenant, &parent.key);
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                backoff(attempt).await;
            }
            let stored = self.get_item(key(pk.clone(), PARENT_SK)).await?;
            let old: Option<(Parent, i64)> = match &stored {
                Some(item) => Some((doc(item)?, get_n(item, REV)?)),
                None => None,
            };
            let mut item = key(pk.clone(), PARENT_SK);
            item.insert(DOC.into(), s(to_json(parent)?));
            let rev = old.as_ref().map_or(0, |(_, r)| *r) + 1;
            item.insert(REV.into(), n(rev));
            let mut items = vec![match &old {
                // Optimistic: the parent must still be as read, so look-ups stay in step.
                Some((_, r)) => self.put(
                    item,
                    Some("#rev = :rev"),
                    &Expr::new().name("#rev", REV).value(":rev", n(*r)),
                )?,
                None => self.put(
                    item,
                    Some("attribute_not_exists(#pk)"),
                    &Expr::new().name("#pk", PK),
                )?,
            }];
            let ours = Expr::new()
                .name("#pk", PK)
                .name("#pid", PARENT_ID)
                .value(":pid", s(parent.key.id.as_str()));
            let mine = "attribute_not_exists(#pk) OR #pid = :pid";
            let mut claims = Vec::new();
            let old_parent = old.as_ref().map(|(p, _)| p);
            for (what, new_value, old_value) in [
                (
                    'R',
                    parent.reference.as_deref(),
                    old_parent.and_then(|p| p.reference.as_deref()),
                ),
                (
                    'E',
                    parent.email.as_deref(),
                    old_parent.and_then(|p| p.email.as_deref()),
                ),
            ] {
                let kind = &parent.key.kind;
                let new_key = new_value.map(|v| {
                    lookup_pk(
                        tenant,
                        what,
                        kind,
                        parent.source.as_deref().unwrap_or(""),
                        v,
                    )
                });
                let old_key = old_value.map(|v| {
                    let src = old_parent.and_then(|p| p.source.as_deref()).unwrap_or("");
                    lookup_pk(tenant, what, kind, src, v)
                });
                if let Some(k) = &new_key {
                    let mut claim = key(k.clone(), LOOKUP_SK);
                    claim.insert(PARENT_ID.into(), s(parent.key.id.as_str()));
                    items.push(self.put(claim, Some(mine), &ours)?);
                    claims.push(items.len() - 1);
                }
                if let Some(k) = old_key.filter(|k| Some(k) != new_key.as_ref()) {
                    items.push(self.delete(key(k, LOOKUP_SK), Some(mine), &ours)?);
                }
            }
            match self.transact(items).await? {
                Ok(()) => {
                    return Ok(if old.is_some() {
                        PutOutcome::Updated
                    } else {
                        PutOutcome::Created
                    })
                }
                Err(codes) if claims.iter().any(|i| failed_at(&codes, *i)) => {
                    return Err(StoreError::Conflict(
                        "another parent of this kind and source has that reference or email".into(),
                    ))
                }
                // The parent changed between the read and the write: read again.
                Err(_) => continue,
            }
        }
        Err(StoreError::Unavailable(
            "the parent kept changing during the update".into(),
        ))
    }

    async fn get_parent(&self, tenant: &TenantId, k: &ParentRef) -> StoreResult<Option<Parent>> {
        match self.get_item(key(parent_pk(tenant, k), PARENT_SK)).await? {
            Some(item) => doc(&item).map(Some),
            None => Ok(None),
        }
    }

    async fn get_parents(&self, tenant: &TenantId, keys: &[ParentRef]) -> StoreResult<Vec<Parent>> {
        let mut unique: Vec<&ParentRef> = Vec::with_capacity(keys.len());
        for k in keys {
            if !unique.contains(&k) {
                unique.push(k);
            }
        }
        if unique.len() > MAX_BATCH_KEYS {
            return Err(StoreError::Unavailable(format!(
                "get_parents takes at most {MAX_BATCH_KEYS} keys"
            )));
        }
        let items = self
            .batch_get(
                unique
                    .iter()
                    .map(|k| key(parent_pk(tenant, k), PARENT_SK))
                    .collect(),
            )
            .await?;
        items.iter().map(doc).collect()
    }

    async fn find_parent(
        &self,
        tenant: &TenantId,
        kind: &ParentKind,
        source: Option<&str>,
        lookup: ParentLookup<'_>,
    ) -> StoreResult<Option<Parent>> {
        let (what, value) = match lookup {
            ParentLookup::Reference(r) => ('R', r),
            ParentLookup::Email(e) => ('E', e),
        };
        let claim = key(
            lookup_pk(tenant, what, kind, source.unwrap_or(""), value),
            LOOKUP_SK,
        );
        let Some(item) = self.get_item(claim).await? else {
            return Ok(None);
        };
        let id = ParentId::parse(get_s(&item, PARENT_ID)?)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let parent = self
            .get_parent(tenant, &ParentRef::new(kind.clone(), id))
            .await?;
        // Look-ups change with their parent in one transaction; checking costs nothing.
        Ok(parent.filter(|p| {
            p.source.as_deref().unwrap_or("") == source.unwrap_or("")
                && match lookup {
                    ParentLookup::Reference(r) => p.reference.as_deref() == Some(r),
                    ParentLookup::Email(e) => p.email.as_deref() == Some(e),
                }
        }))
    }

    async fn delete_parent(&self, tenant: &TenantId, k: &ParentRef) -> StoreResult<bool> {
        let pk = parent_pk(tenant, k);
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                backoff(attempt).await;
            }
            let Some(item) = self.get_item(key(pk.clone(), PARENT_SK)).await? else {
                return Ok(false);
            };
            let parent: Parent = doc(&item)?;
            let rev = get_n(&item, REV)?;
            let mut items = vec![self.delete(
                key(pk.clone(), PARENT_SK),
                Some("#rev = :rev"),
                &Expr::new().name("#rev", REV).value(":rev", n(rev)),
            )?];
            let ours = Expr::new()
                .name("#pk", PK)
                .name("#pid", PARENT_ID)
                .value(":pid", s(k.id.as_str()));
            let src = parent.source.as_deref().unwrap_or("");
            for (what, value) in [('R', &parent.reference), ('E', &parent.email)] {
                if let Some(v) = value {
                    items.push(self.delete(
                        key(lookup_pk(tenant, what, &k.kind, src, v), LOOKUP_SK),
                        Some("attribute_not_exists(#pk) OR #pid = :pid"),
                        &ours,
                    )?);
                }
            }
            items.push(self.delete(
                key(index_pk(tenant, &k.kind), k.id.as_str()),
                None,
                &Expr::new(),
            )?);
            match self.transact(items).await? {
                Ok(()) => return Ok(true),
                Err(_) => continue,
            }
        }
        Err(StoreError::Unavailable(
            "the parent kept changing during its deletion".into(),
        ))
    }

    async fn parents_with_attachments(
        &self,
        tenant: &TenantId,
        kind: &ParentKind,
    ) -> StoreResult<Vec<ParentRef>> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            // An index item whose last id was removed has no `ids` attribute left.
            let resp = self
                .query(QueryInput {
                    table_name: &self.table,
                    key_condition_expression: "#pk = :pk",
                    filter_expression: Some("attribute_exists(#ids)"),
                    projection_expression: Some("#sk"),
                    expression_attribute_names: HashMap::from([
                        ("#pk", PK),
                        ("#sk", SK),
                        ("#ids", IDS),
                    ]),
                    expression_attribute_values: HashMap::from([(
                        ":pk",
                        s(index_pk(tenant, kind)),
                    )]),
                    consistent_read: Some(true),
                    exclusive_start_key: start,
                    ..Default::default()
                })
                .await?;
            for item in resp.items {
                let id = ParentId::parse(get_s(&item, SK)?)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                out.push(ParentRef::new(kind.clone(), id));
            }
            match resp.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }

    async fn create_attachment(&self, att: &Attachment) -> StoreResult<()> {
        let absent = Expr::new().name("#pk", PK);
        let mut items = vec![
            self.put(
                attachment_item(att)?,
                Some("attribute_not_exists(#pk)"),
                &absent,
            )?,
            self.put(
                pointer_item(att),
                Some("attribute_not_exists(#pk)"),
                &absent,
            )?,
        ];
        if att.status.is_listed() {
            items.push(index_update(&self.table, att, true)?);
        }
        match self.transact(items).await? {
            Ok(()) => Ok(()),
            Err(codes) if failed_at(&codes, 2) => Err(StoreError::Conflict(format!(
                "the parent already has {MAX_LISTED_PER_PARENT} attachments"
            ))),
            Err(_) => Err(StoreError::Conflict("attachment exists".into())),
        }
    }

    async fn update_attachment(&self, att: &Attachment, expected: Expected) -> StoreResult<()> {
        let mut expr = Expr::new()
            .name("#st", STATUS)
            .name("#vid", VERSION)
            .name("#upv", UPLOAD)
            .value(":st", s(expected.status.as_str()));
        let version = match expected.version {
            Some(v) => {
                expr = expr.value(":vid", s(v.to_string()));
                "#vid = :vid"
            }
            None => "attribute_not_exists(#vid)",
        };
        let upload = match expected.upload {
            Some(u) => {
                expr = expr.value(":upv", s(u.to_string()));
                "#upv = :upv"
            }
            None => "attribute_not_exists(#upv)",
        };
        let cond = format!("#st = :st AND {version} AND {upload}");
        let mut items = vec![self.put(attachment_item(att)?, Some(&cond), &expr)?];
        // Entering or leaving the lists changes the parent's index in the same transaction.
        let (was, is) = (expected.status.is_listed(), att.status.is_listed());
        if was != is {
            items.push(index_update(&self.table, att, is)?);
        }
        match self.transact(items).await? {
            Ok(()) => Ok(()),
            Err(codes) if failed_at(&codes, 1) => Err(StoreError::Conflict(format!(
                "the parent already has {MAX_LISTED_PER_PARENT} attachments"
            ))),
            Err(_) => Err(StoreError::Conflict(
                "attachment changed or was deleted meanwhile".into(),
            )),
        }
    }

    async fn get_attachment(
        &self,
        tenant: &TenantId,
        id: AttachmentId,
    ) -> StoreResult<Option<Attachment>> {
        let Some(parent) = self.home_of(tenant, id).await? else {
            return Ok(None);
        };
        match self
            .get_item(key(parent_pk(tenant, &parent), attachment_sk(id)))
            .await?
        {
            Some(item) => doc(&item).map(Some),
            None => Ok(None),
        }
    }

    async fn list_attachments(
        &self,
        tenant: &TenantId,
        parent: &ParentRef,
        after: Option<AttachmentId>,
        limit: usize,
        include_hidden: bool,
    ) -> StoreResult<Page> {
        let pk = parent_pk(tenant, parent);
        // The cursor's id is the position: it becomes the ExclusiveStartKey, whether or not that
        // attachment still exists.
        let mut start = after.map(|a| key(pk.clone(), attachment_sk(a)));
        // One more than asked tells whether another page follows, as in the SQLite store.
        let wanted = limit.saturating_add(1);
        let mut found: Vec<Attachment> = Vec::new();
        loop {
            let left = i32::try_from(wanted - found.len()).unwrap_or(i32::MAX);
            let mut q = QueryInput {
                table_name: &self.table,
                key_condition_expression: "#pk = :pk AND begins_with(#sk, :a)",
                expression_attribute_names: HashMap::from([("#pk", PK), ("#sk", SK)]),
                expression_attribute_values: HashMap::from([
                    (":pk", s(pk.clone())),
                    (":a", s("A#")),
                ]),
                consistent_read: Some(true),
                limit: Some(left),
                exclusive_start_key: start.take(),
                ..Default::default()
            };
            if !include_hidden {
                q.filter_expression = Some("#st IN (:ready, :placeholder)");
                q.expression_attribute_names.insert("#st", STATUS);
                q.expression_attribute_values
                    .insert(":ready", s(AttachmentStatus::Ready.as_str()));
                q.expression_attribute_values
                    .insert(":placeholder", s(AttachmentStatus::Placeholder.as_str()));
            }
            let resp = self.query(q).await?;
            for item in resp.items {
                found.push(doc(&item)?);
            }
            match resp.last_evaluated_key {
                Some(k) if !k.is_empty() && found.len() < wanted => start = Some(k),
                _ => break,
            }
        }
        let more = found.len() > limit;
        found.truncate(limit);
        let next_after = if more {
            found.last().map(|a| a.id)
        } else {
            None
        };
        Ok(Page {
            items: found,
            next_after,
        })
    }

    async fn list_attachments_of_many(
        &self,
        tenant: &TenantId,
        parents: &[ParentRef],
    ) -> StoreResult<Vec<Attachment>> {
        // 1. The parents' index items, batched: which attachments each one lists.
        let mut unique: Vec<&ParentRef> = Vec::new();
        for p in parents {
            if !unique.contains(&p) {
                unique.push(p);
            }
        }
        let index_keys = unique
            .iter()
            .map(|p| key(index_pk(tenant, &p.kind), p.id.as_str()))
            .collect();
        let mut wanted = Vec::new();
        for item in self.batch_get(index_keys).await? {
            let (Some(AttributeValue::S(pk)), Some(AttributeValue::S(pid))) =
                (item.get(PK), item.get(SK))
            else {
                continue;
            };
            let Some(AttributeValue::Ss(ids)) = item.get(IDS) else {
                continue;
            };
            let Some(kind) = pk.rsplit('#').next() else {
                continue;
            };
            let home = format!("T#{tenant}#P#{kind}#{pid}");
            for id in ids {
                wanted.push(key(home.clone(), format!("A#{id}")));
            }
        }
        // 2. The attachments themselves, batched.
        let mut by_parent: HashMap<ParentRef, Vec<Attachment>> = HashMap::new();
        for item in self.batch_get(wanted).await? {
            let att: Attachment = doc(&item)?;
            if att.status.is_listed() {
                by_parent.entry(att.parent.clone()).or_default().push(att);
            }
        }
        // Same order as the SQLite store: parent by parent as asked, each oldest first.
        let mut out = Vec::new();
        for p in parents {
            if let Some(list) = by_parent.get_mut(p) {
                list.sort_by_key(|a| a.id);
                out.extend(list.iter().cloned());
            }
        }
        Ok(out)
    }

    async fn delete_attachment(&self, tenant: &TenantId, id: AttachmentId) -> StoreResult<bool> {
        let pk = attachment_pk(tenant, id);
        let versions = self.query_prefix(pk.clone(), "V#").await?;
        self.batch_delete(
            versions
                .into_iter()
                .map(|mut v| {
                    v.retain(|k, _| k == PK || k == SK);
                    v
                })
                .collect(),
        )
        .await?;
        let Some(parent) = self.home_of(tenant, id).await? else {
            return Ok(false);
        };
        let home = key(parent_pk(tenant, &parent), attachment_sk(id));
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                backoff(attempt).await;
            }
            let current: Option<Attachment> = match self.get_item(home.clone()).await? {
                Some(item) => Some(doc(&item)?),
                None => None,
            };
            let mut items = vec![self.delete(key(pk.clone(), POINTER_SK), None, &Expr::new())?];
            match &current {
                Some(att) => {
                    items.push(
                        self.delete(
                            home.clone(),
                            Some("#st = :st"),
                            &Expr::new()
                                .name("#st", STATUS)
                                .value(":st", s(att.status.as_str())),
                        )?,
                    );
                    if att.status.is_listed() {
                        items.push(index_update(&self.table, att, false)?);
                    }
                }
                None => items.push(self.delete(
                    home.clone(),
                    Some("attribute_not_exists(#pk)"),
                    &Expr::new().name("#pk", PK),
                )?),
            }
            match self.transact(items).await? {
                Ok(()) => return Ok(current.is_some()),
                // Its status changed meanwhile: read again, so the index stays right.
                Err(_) => continue,
            }
        }
        Err(StoreError::Unavailable(
            "the attachment kept changing during its deletion".into(),
        ))
    }

    async fn put_version(
        &self,
        tenant: &TenantId,
        att: AttachmentId,
        v: &Version,
    ) -> StoreResult<()> {
        let mut item = key(attachment_pk(tenant, att), version_sk(v.id));
        item.insert(DOC.into(), s(to_json(v)?));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| dyn_err("PutItem", e))?;
        Ok(())
    }

    async fn list_versions(
        &self,
        tenant: &TenantId,
        att: AttachmentId,
    ) -> StoreResult<Vec<Version>> {
        let items = self.query_prefix(attachment_pk(tenant, att), "V#").await?;
        items.iter().map(doc).collect()
    }

    async fn delete_version(
        &self,
        tenant: &TenantId,
        att: AttachmentId,
        version: VersionId,
    ) -> StoreResult<()> {
        let k = key(attachment_pk(tenant, att), version_sk(version));
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(k))
            .send()
            .await
            .map_err(|e| dyn_err("DeleteItem", e))?;
        Ok(())
    }

    async fn oldest_upload_under_way(&self) -> StoreResult<Option<Attachment>> {
        // The index holds every attribute (`ALL`): its first item with an upload under way,
        // in expiry order, is the answer. The filter applies after each page is read, so pages
        // of refused uploads and unfinished deletions may come first: a few at most, as the
        // sweep removes expired leftovers every hour.
        let mut start = None;
        for _ in 0..OLDEST_UPLOAD_PAGES {
            let resp = self
                .query(QueryInput {
                    table_name: &self.table,
                    index_name: Some(LEFTOVERS_INDEX),
                    key_condition_expression: "#lpk = :l",
                    filter_expression: Some("attribute_exists(#upv)"),
                    projection_expression: Some("#doc"),
                    expression_attribute_names: HashMap::from([
                        ("#lpk", LEFTOVER_PK),
                        ("#upv", UPLOAD),
                        ("#doc", DOC),
                    ]),
                    expression_attribute_values: HashMap::from([(":l", s(LEFTOVER))]),
                    limit: Some(100),
                    exclusive_start_key: start,
                    ..Default::default()
                })
                .await?;
            if let Some(item) = resp.items.first() {
                return Ok(Some(doc(item)?));
            }
            match resp.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(None),
            }
        }
        Err(StoreError::Unavailable(format!(
            "no upload under way among the first {} leftovers: the sweep is not keeping up",
            OLDEST_UPLOAD_PAGES * 100
        )))
    }

    async fn expired_pending(&self, before: i64, limit: usize) -> StoreResult<Vec<Attachment>> {
        let mut out: Vec<Attachment> = Vec::new();
        let mut start = None;
        // The index is eventually consistent and holds keys only: each candidate is read again,
        // consistently, and kept only if it is still a leftover.
        loop {
            let resp = self
                .query(QueryInput {
                    table_name: &self.table,
                    index_name: Some(LEFTOVERS_INDEX),
                    key_condition_expression: "#lpk = :l AND #lsk < :before",
                    expression_attribute_names: HashMap::from([
                        ("#lpk", LEFTOVER_PK),
                        ("#lsk", LEFTOVER_SK),
                    ]),
                    expression_attribute_values: HashMap::from([
                        (":l", s(LEFTOVER)),
                        (":before", expiry_key(before)),
                    ]),
                    limit: Some(i32::try_from(limit.max(1)).unwrap_or(i32::MAX)),
                    exclusive_start_key: start,
                    ..Default::default()
                })
                .await?;
            let keys = resp
                .items
                .into_iter()
                .map(|mut k| {
                    k.retain(|name, _| name == PK || name == SK);
                    k
                })
                .collect();
            for item in self.batch_get(keys).await? {
                let att: Attachment = doc(&item)?;
                if att.expires_at.is_some_and(|e| e < before) {
                    out.push(att);
                }
            }
            match resp.last_evaluated_key {
                Some(k) if !k.is_empty() && out.len() < limit => start = Some(k),
                _ => break,
            }
        }
        out.sort_by_key(|a| (a.expires_at, a.id));
        out.truncate(limit);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_text_in_keys_cannot_forge_another_key() {
        let t = TenantId::parse("a").unwrap();
        let k = ParentKind::parse("profile").unwrap();
        // Without encoding, source "s#x" + ref "y" and source "s" + ref "x#y" would collide.
        assert_ne!(
            lookup_pk(&t, 'R', &k, "s#x", "y"),
            lookup_pk(&t, 'R', &k, "s", "x#y")
        );
        assert_eq!(
            lookup_pk(&t, 'E', &k, "", "a%b#c"),
            "T#a#E#profile##a%25b%23c"
        );
    }

    #[test]
    fn only_leftovers_carry_the_index_and_ttl() {
        let t = TenantId::parse("a").unwrap();
        let p = ParentRef::new(
            ParentKind::parse("profile").unwrap(),
            ParentId::parse("p1").unwrap(),
        );
        let now = time::OffsetDateTime::UNIX_EPOCH;
        let mut att = Attachment {
            tenant: t,
            id: AttachmentId::new(),
            parent: p,
            label: "file".into(),
            title: Some("x".repeat(255)),
            description: Some("é".repeat(4000)),
            category: None,
            tags: (0..50).map(|i| format!("{i:0>64}")).collect(),
            status: AttachmentStatus::Pending,
            owner: "o".into(),
            external_id: None,
            content: None,
            created_at: now,
            updated_at: now,
            expires_at: Some(100),
            upload: None,
            problem: None,
        };
        let item = attachment_item(&att).unwrap();
        assert_eq!(item.get(LEFTOVER_SK), Some(&s("00000000000000000100")));
        assert_eq!(item.get(TTL_ATTRIBUTE), Some(&n(100 + TTL_GRACE_SECS)));
        // The largest document the service allows is a few tens of KB.
        assert!(get_s(&item, DOC).unwrap().len() < 40_000);
        att.status = AttachmentStatus::Ready;
        att.expires_at = None;
        let item = attachment_item(&att).unwrap();
        assert!(!item.contains_key(LEFTOVER_PK) && !item.contains_key(TTL_ATTRIBUTE));
        assert_eq!(item.get(STATUS), Some(&s("ready")));
        assert!(!item.contains_key(VERSION));
        // A ready attachment with a new upload under way: swept when the upload expires, but
        // never removed by the TTL.
        att.expires_at = Some(200);
        let item = attachment_item(&att).unwrap();
        assert_eq!(item.get(LEFTOVER_SK), Some(&s("00000000000000000200")));
        assert!(!item.contains_key(TTL_ATTRIBUTE));
    }
}
