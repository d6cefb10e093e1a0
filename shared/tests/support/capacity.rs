//! What the DynamoDB store costs, as DynamoDB would bill it: an SDK interceptor on the store's
//! client records every request it sends (its operation and JSON body, when it left and when
//! its answer came back), and, for every write DynamoDB accepted, the write units it costs by
//! DynamoDB's rules, the partition keys it wrote (the table's, and the leftovers index's), and
//! the items as they are after it.
//!
//! Moto answers `ReturnConsumedCapacity` with fixed figures, so the units are computed here from
//! the items: an item's size is the sum of its attribute names' and values' sizes (strings in
//! UTF-8 bytes, numbers one byte per two significant digits plus one); a write costs one unit
//! per KB (rounded up) of the larger of the item's sizes before and after it; a write inside a
//! TransactWriteItems costs twice that; a write that puts an item into the leftovers index
//! (`gsi1`, which projects whole items), takes it out, or changes it there costs the index one
//! unit per KB of the entry it writes (two writes when its index key changes). To know an item's
//! size before a write, the recorder keeps every item it has seen written (and what a test
//! loads into the table itself, through [`Recorder::know`]), applying each accepted write to it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use serde_json::{Map, Value};

/// An item as DynamoDB's JSON protocol writes it: attribute names to typed values.
pub type JsonItem = Map<String, Value>;

/// One request the store sent (one attempt: a retry is another).
#[derive(Debug, Clone)]
pub struct Call {
    /// `PutItem`, `Query`, `TransactWriteItems`…
    pub op: String,
    pub body: Value,
    pub sent: Instant,
    pub answered: Option<Instant>,
    pub status: Option<u16>,
    /// What the write cost, once DynamoDB accepted it.
    pub cost: Option<Cost>,
}

/// What one accepted write request cost.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cost {
    /// Write units of the table.
    pub table: u64,
    /// Write units of the leftovers index.
    pub index: u64,
    /// Partition keys written in the table.
    pub partitions: Vec<String>,
    /// Partition keys written in the leftovers index.
    pub index_partitions: Vec<String>,
    /// The reads sent besides (their operations), in [`cost_of`]'s total.
    pub reads: Vec<String>,
}

impl Cost {
    /// Adds what another write cost.
    pub fn add(&mut self, other: Cost) {
        self.table += other.table;
        self.index += other.index;
        self.partitions.extend(other.partitions);
        self.index_partitions.extend(other.index_partitions);
        self.reads.extend(other.reads);
    }

    /// The reads, counted by operation: `GetItem 2, Query 1`.
    pub fn read_summary(&self) -> String {
        let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
        for r in &self.reads {
            *counts.entry(r.as_str()).or_default() += 1;
        }
        let parts: Vec<String> = counts.iter().map(|(op, n)| format!("{op} {n}")).collect();
        parts.join(", ")
    }
}

/// The id of a call in the log, kept in the request's config bag between its hooks.
#[derive(Debug, Clone, Copy)]
struct CallId(usize);

impl Storable for CallId {
    type Storer = StoreReplace<Self>;
}

#[derive(Default)]
struct State {
    calls: Vec<Call>,
    /// Every item known to be in the table, by (pk, sk).
    items: HashMap<(String, String), JsonItem>,
}

/// The interceptor; clones share one log.
#[derive(Clone, Default)]
pub struct Recorder(Arc<Mutex<State>>);

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Recorder")
    }
}

impl Intercept for Recorder {
    fn name(&self) -> &'static str {
        "capacity recorder"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let req = context.request();
        let op = req
            .headers()
            .get("x-amz-target")
            .and_then(|t| t.rsplit('.').next())
            .unwrap_or("")
            .to_owned();
        let body = req
            .body()
            .bytes()
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or(Value::Null);
        let mut state = self.0.lock().unwrap();
        state.calls.push(Call {
            op,
            body,
            sent: Instant::now(),
            answered: None,
            status: None,
            cost: None,
        });
        let id = state.calls.len() - 1;
        cfg.interceptor_state().store_put(CallId(id));
        Ok(())
    }

    fn read_after_transmit(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(CallId(id)) = cfg.load::<CallId>().copied() else {
            return Ok(());
        };
        let status = context.response().status().as_u16();
        let mut state = self.0.lock().unwrap();
        let (op, body) = {
            let call = &mut state.calls[id];
            call.answered = Some(Instant::now());
            call.status = Some(status);
            (call.op.clone(), call.body.clone())
        };
        if status == 200 {
            let cost = apply(&mut state.items, &op, &body);
            state.calls[id].cost = cost;
        }
        Ok(())
    }
}

impl Recorder {
    /// The service's DynamoDB client over `sdk` with this recorder on it. One thing differs
    /// from the service's own: each attempt may take 30 s, not 3. Moto copies a whole table for
    /// every transaction (to roll it back), which for the tables of thousands of items these
    /// tests load takes seconds on a busy machine; and moto ignores `ClientRequestToken`, so an
    /// attempt cut short and sent again would fail its own conditions, where DynamoDB answers
    /// the repeat as the first.
    pub fn client(&self, sdk: &aws_config::SdkConfig) -> aws_sdk_dynamodb::Client {
        use aws_smithy_types::timeout::TimeoutConfig;
        use std::time::Duration;
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(3))
            .operation_attempt_timeout(Duration::from_secs(30))
            .operation_timeout(Duration::from_secs(60))
            .build();
        aws_sdk_dynamodb::Client::from_conf(
            attachments::store::sdk::dynamodb_config(sdk)
                .interceptor(self.clone())
                .timeout_config(timeouts)
                .build(),
        )
    }

    /// Where the log stands now: [`Recorder::since`] reads what came after.
    pub fn mark(&self) -> usize {
        self.0.lock().unwrap().calls.len()
    }

    /// The calls since `mark`.
    pub fn since(&self, mark: usize) -> Vec<Call> {
        self.0.lock().unwrap().calls[mark..].to_vec()
    }

    /// The size of an item as last written, by DynamoDB's rules, when the recorder knows it.
    pub fn size_of(&self, pk: &str, sk: &str) -> Option<u64> {
        let state = self.0.lock().unwrap();
        state
            .items
            .get(&(pk.to_owned(), sk.to_owned()))
            .map(item_size)
    }

    /// Items a test wrote into the table by other means (a bulk load), so that writes to them
    /// are measured against their real size.
    pub fn know(&self, items: &[JsonItem]) {
        let mut state = self.0.lock().unwrap();
        for item in items {
            if let Some(k) = key_of(item) {
                state.items.insert(k, item.clone());
            }
        }
    }
}

/// The total cost of the writes among `calls`; panics on a write DynamoDB refused, which would
/// make the figures depend on a failure.
pub fn cost_of(calls: &[Call]) -> Cost {
    let mut total = Cost::default();
    for c in calls {
        if is_write(&c.op) {
            assert_eq!(
                c.status,
                Some(200),
                "a write was refused: {} {}",
                c.op,
                c.body
            );
            total.add(c.cost.clone().unwrap_or_default());
        } else {
            total.reads.push(c.op.clone());
        }
    }
    total
}

fn is_write(op: &str) -> bool {
    matches!(
        op,
        "PutItem" | "UpdateItem" | "DeleteItem" | "BatchWriteItem" | "TransactWriteItems"
    )
}

/// The longest chain of requests each sent after the one before was answered: how many round
/// trips a caller waited for, one after the other.
pub fn sequential_round_trips(calls: &[Call]) -> usize {
    let mut spans: Vec<(Instant, Instant)> = calls
        .iter()
        .map(|c| (c.sent, c.answered.expect("every call was answered")))
        .collect();
    spans.sort_by_key(|s| s.1);
    let mut chain = vec![0usize; spans.len()];
    for i in 0..spans.len() {
        let before = (0..i)
            .filter(|&j| spans[j].1 <= spans[i].0)
            .map(|j| chain[j])
            .max()
            .unwrap_or(0);
        chain[i] = before + 1;
    }
    chain.into_iter().max().unwrap_or(0)
}

// ---- DynamoDB's sizes and units ----------------------------------------------------------------

/// The size of an attribute value, by DynamoDB's rules.
fn value_size(v: &Value) -> u64 {
    let Some((kind, v)) = v.as_object().and_then(|o| o.iter().next()) else {
        return 0;
    };
    match kind.as_str() {
        "S" => v.as_str().map_or(0, |s| s.len() as u64),
        "N" => number_size(v.as_str().unwrap_or("0")),
        "B" => v.as_str().map_or(0, |s| (s.len() as u64) * 3 / 4),
        "BOOL" | "NULL" => 1,
        "SS" => v.as_array().map_or(0, |a| {
            a.iter()
                .map(|s| s.as_str().map_or(0, str::len) as u64)
                .sum()
        }),
        "NS" => v.as_array().map_or(0, |a| {
            a.iter()
                .map(|n| number_size(n.as_str().unwrap_or("0")))
                .sum()
        }),
        "L" => {
            3 + v
                .as_array()
                .map_or(0, |a| a.iter().map(|e| 1 + value_size(e)).sum::<u64>())
        }
        "M" => {
            3 + v.as_object().map_or(0, |m| {
                m.iter()
                    .map(|(k, e)| 1 + k.len() as u64 + value_size(e))
                    .sum::<u64>()
            })
        }
        _ => 0,
    }
}

/// A number: one byte per two significant digits, plus one.
fn number_size(n: &str) -> u64 {
    let digits: String = n.chars().filter(char::is_ascii_digit).collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0');
    (significant.len() as u64).div_ceil(2) + 1
}

/// An item's size: its attributes' names and values.
pub fn item_size(item: &JsonItem) -> u64 {
    item.iter()
        .map(|(k, v)| k.len() as u64 + value_size(v))
        .sum()
}

/// Write units of an item of `size` bytes: one per KB, at least one.
fn units(size: u64) -> u64 {
    size.div_ceil(1024).max(1)
}

fn s_attr<'a>(item: &'a JsonItem, name: &str) -> Option<&'a str> {
    item.get(name)?.get("S")?.as_str()
}

fn key_of(item: &JsonItem) -> Option<(String, String)> {
    Some((
        s_attr(item, "pk")?.to_owned(),
        s_attr(item, "sk")?.to_owned(),
    ))
}

/// The leftovers index key of an item, when it is in the index.
fn index_key(item: &JsonItem) -> Option<(String, String)> {
    Some((
        s_attr(item, "gsi1pk")?.to_owned(),
        s_attr(item, "gsi1sk")?.to_owned(),
    ))
}

/// Applies one accepted write request to the known items and says what it cost.
fn apply(items: &mut HashMap<(String, String), JsonItem>, op: &str, body: &Value) -> Option<Cost> {
    let mut cost = Cost::default();
    match op {
        "PutItem" => cost.add(put(items, body.get("Item")?.as_object()?, 1)),
        "DeleteItem" => cost.add(delete(items, body.get("Key")?.as_object()?, 1)),
        "UpdateItem" => cost.add(update(items, body, 1)),
        "BatchWriteItem" => {
            for requests in body.get("RequestItems")?.as_object()?.values() {
                for r in requests.as_array()? {
                    if let Some(item) = r.pointer("/PutRequest/Item").and_then(Value::as_object) {
                        cost.add(put(items, item, 1));
                    }
                    if let Some(k) = r.pointer("/DeleteRequest/Key").and_then(Value::as_object) {
                        cost.add(delete(items, k, 1));
                    }
                }
            }
        }
        "TransactWriteItems" => {
            for t in body.get("TransactItems")?.as_array()? {
                if let Some(p) = t.get("Put") {
                    cost.add(put(items, p.get("Item")?.as_object()?, 2));
                } else if let Some(d) = t.get("Delete") {
                    cost.add(delete(items, d.get("Key")?.as_object()?, 2));
                } else if let Some(u) = t.get("Update") {
                    cost.add(update(items, u, 2));
                } else if let Some(c) = t.get("ConditionCheck") {
                    // Counted as a transactional write of the item checked, as it stands.
                    let k = key_of(c.get("Key")?.as_object()?)?;
                    let size = items.get(&k).map_or(0, item_size);
                    cost.table += 2 * units(size);
                    cost.partitions.push(k.0);
                }
            }
        }
        _ => return None,
    }
    Some(cost)
}

/// The cost of an item changing from `before` to `after` (absent: no item), `factor` 2 in a
/// transaction.
fn change(before: Option<&JsonItem>, after: Option<&JsonItem>, factor: u64) -> Cost {
    let size = |i: Option<&JsonItem>| i.map_or(0, item_size);
    let mut cost = Cost {
        table: factor * units(size(before).max(size(after))),
        ..Cost::default()
    };
    if let Some(k) = after.or(before).and_then(key_of) {
        cost.partitions.push(k.0);
    }
    let (was, is) = (before.and_then(index_key), after.and_then(index_key));
    match (was, is) {
        (None, None) => {}
        (Some(old), None) => {
            cost.index += units(size(before));
            cost.index_partitions.push(old.0);
        }
        (None, Some(new)) => {
            cost.index += units(size(after));
            cost.index_partitions.push(new.0);
        }
        (Some(old), Some(new)) if old != new => {
            cost.index += units(size(before)) + units(size(after));
            cost.index_partitions.push(old.0);
            cost.index_partitions.push(new.0);
        }
        (Some(_), Some(new)) => {
            // The index projects every attribute: any change rewrites the entry.
            if before != after {
                cost.index += units(size(before).max(size(after)));
                cost.index_partitions.push(new.0);
            }
        }
    }
    cost
}

fn put(items: &mut HashMap<(String, String), JsonItem>, item: &JsonItem, factor: u64) -> Cost {
    let Some(k) = key_of(item) else {
        return Cost::default();
    };
    let before = items.get(&k).cloned();
    let cost = change(before.as_ref(), Some(item), factor);
    items.insert(k, item.clone());
    cost
}

fn delete(items: &mut HashMap<(String, String), JsonItem>, key: &JsonItem, factor: u64) -> Cost {
    let Some(k) = key_of(key) else {
        return Cost::default();
    };
    let before = items.remove(&k);
    let mut cost = change(before.as_ref(), None, factor);
    if cost.partitions.is_empty() {
        cost.partitions.push(k.0);
    }
    cost
}

/// An UpdateItem (or a transaction's Update), for the expressions the store writes: `SET a =
/// :v[, b = :w]` and `ADD a :n`, with `#names` and `:values`.
fn update(items: &mut HashMap<(String, String), JsonItem>, u: &Value, factor: u64) -> Cost {
    let Some(key) = u.get("Key").and_then(Value::as_object) else {
        return Cost::default();
    };
    let Some(k) = key_of(key) else {
        return Cost::default();
    };
    let names = u.get("ExpressionAttributeNames").and_then(Value::as_object);
    let values = u
        .get("ExpressionAttributeValues")
        .and_then(Value::as_object);
    let name = |n: &str| -> String {
        names
            .and_then(|m| m.get(n))
            .and_then(Value::as_str)
            .unwrap_or(n)
            .to_owned()
    };
    let value = |v: &str| -> Value {
        values
            .and_then(|m| m.get(v))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let before = items.get(&k).cloned();
    let mut after = before.clone().unwrap_or_else(|| key.clone());
    let expression = u
        .get("UpdateExpression")
        .and_then(Value::as_str)
        .unwrap_or("");
    for (verb, clause) in clauses(expression) {
        for part in clause.split(',') {
            match verb {
                "SET" => {
                    let (path, v) = part.split_once('=').expect("SET a = :v");
                    after.insert(name(path.trim()), value(v.trim()));
                }
                "ADD" => {
                    let mut words = part.split_whitespace();
                    let (path, v) = (name(words.next().unwrap()), value(words.next().unwrap()));
                    let add = |n: &Value| {
                        n.get("N")
                            .and_then(Value::as_str)
                            .and_then(|s| s.parse::<i64>().ok())
                            .unwrap_or(0)
                    };
                    let sum = after.get(&path).map_or(0, add) + add(&v);
                    after.insert(path, serde_json::json!({"N": sum.to_string()}));
                }
                "REMOVE" => {
                    after.remove(&name(part.trim()));
                }
                other => panic!("update verb {other} is not measured here"),
            }
        }
    }
    let cost = change(before.as_ref(), Some(&after), factor);
    items.insert(k, after);
    cost
}

/// The clauses of an update expression: `SET a = :v, b = :w ADD n :d` gives `("SET", "a = :v, b
/// = :w")` and `("ADD", "n :d")`.
fn clauses(expression: &str) -> Vec<(&'static str, String)> {
    let mut out: Vec<(&'static str, String)> = Vec::new();
    for word in expression.split_whitespace() {
        match ["SET", "ADD", "REMOVE", "DELETE"]
            .iter()
            .find(|v| word.eq_ignore_ascii_case(v))
        {
            Some(verb) => out.push((verb, String::new())),
            None => {
                if let Some((_, text)) = out.last_mut() {
                    text.push(' ');
                    text.push_str(word);
                }
            }
        }
    }
    out
}

/// An item of the SDK's types in the JSON form DynamoDB's protocol writes (strings and numbers,
/// all the store's items hold).
pub fn json_item(item: &HashMap<String, aws_sdk_dynamodb::types::AttributeValue>) -> JsonItem {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    item.iter()
        .map(|(k, v)| {
            let v = match v {
                A::S(s) => serde_json::json!({ "S": s }),
                A::N(n) => serde_json::json!({ "N": n }),
                other => panic!("{other:?} is not measured here"),
            };
            (k.clone(), v)
        })
        .collect()
}

#[test]
fn sizes_and_units_follow_dynamodbs_rules() {
    // Numbers: one byte per two significant digits, plus one; zeroes at either end are free.
    assert_eq!(number_size("7"), 2);
    assert_eq!(number_size("6000"), 2);
    assert_eq!(number_size("6001"), 3);
    assert_eq!(number_size("-12345"), 4);
    let item: JsonItem = serde_json::from_value(serde_json::json!({
        "pk": {"S": "T#a#P#profile#p1"},
        "sk": {"S": "P"},
        "n": {"N": "10"},
        "doc": {"S": "é"},
    }))
    .unwrap();
    assert_eq!(item_size(&item), (2 + 16) + (2 + 1) + (1 + 2) + (3 + 2));
    assert_eq!((units(0), units(1024), units(1025)), (1, 1, 2));
    assert_eq!(
        clauses("SET #doc = :doc, #rev = :next ADD #n :d"),
        vec![
            ("SET", " #doc = :doc, #rev = :next".to_owned()),
            ("ADD", " #n :d".to_owned())
        ]
    );
}
