//! Reads that list: a page of a parent's attachments, the listed attachments of many parents at
//! once, the parents of a kind that have listed attachments, and the leftovers to sweep. Each
//! reads a bounded number of items, whatever a parent or a tenant holds.

use std::collections::HashMap;

use futures_util::future::try_join_all;

use super::counts::{key_of, key_strings, listed_of_item, Listed};
use super::{
    attachment_sk, doc, expiry_key, key_item, marker_pk, parent_key, parent_pk, s, DynamoStore,
    Item, QueryInput, QueryOutput, DOC, LEFTOVER, LEFTOVERS_INDEX, LEFTOVER_PK, LEFTOVER_SK,
    LEGACY_LEFTOVER, MARKER_SHARDS, PK, SK, STATUS, UPLOAD,
};
use crate::domain::{
    Attachment, AttachmentId, AttachmentStatus, ParentId, ParentKind, ParentRef, TenantId,
};
use crate::store::{
    hidden_share, ManyListing, Page, ParentPage, StoreError, StoreResult, MAX_BATCH_KEYS,
    MAX_HIDDEN_SKIPPED,
};

/// A few items more than wanted per Query of a counted parent, so that a hidden attachment or
/// two among its listed ones cost no second round trip.
const SLACK: usize = 4;

/// How many listed attachments a parent's read looks for.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// Its count says how many there are.
    Exactly(usize),
    /// A parent without a count: up to this many, and one more tells that it has too many.
    AtMost(usize),
}

/// The Query of a parent's attachments, oldest first; only listed ones unless `hidden`.
fn attachments_query(
    table: &str,
    pk: String,
    hidden: bool,
    limit: usize,
    start: Option<Item>,
) -> QueryInput<'_> {
    let mut q = QueryInput {
        table_name: table,
        key_condition_expression: "#pk = :pk AND begins_with(#sk, :a)",
        expression_attribute_names: HashMap::from([("#pk", PK), ("#sk", SK)]),
        expression_attribute_values: HashMap::from([(":pk", s(pk)), (":a", s("A#"))]),
        consistent_read: Some(true),
        limit: Some(i32::try_from(limit.max(1)).unwrap_or(i32::MAX)),
        exclusive_start_key: start,
        ..Default::default()
    };
    if !hidden {
        q.filter_expression = Some("#st IN (:ready, :placeholder)");
        q.expression_attribute_names.insert("#st", STATUS);
        q.expression_attribute_values
            .insert(":ready", s(AttachmentStatus::Ready.as_str()));
        q.expression_attribute_values
            .insert(":placeholder", s(AttachmentStatus::Placeholder.as_str()));
    }
    q
}

/// How many items beyond those still wanted the next Query of a listing reads: twice as many
/// as before plus the hidden ones this one stepped over, so that a run of hidden attachments
/// (abandoned uploads) costs a few round trips, not one per page's worth; what a listing reads
/// in all stays within its budget.
fn more_for_hidden(extra: usize, resp: &QueryOutput) -> usize {
    let hidden = resp.scanned.saturating_sub(resp.count);
    if hidden == 0 {
        extra
    } else {
        extra.saturating_add(hidden).saturating_mul(2)
    }
}

/// The attachment id of an attachment item's key (a page's stopping point).
fn attachment_of_key(k: &Item) -> StoreResult<AttachmentId> {
    key_strings(k)
        .and_then(|(_, sk)| sk.strip_prefix("A#"))
        .and_then(|id| AttachmentId::parse(id).ok())
        .ok_or_else(|| {
            StoreError::Corrupt("a listing stopped on a key that is no attachment".into())
        })
}

impl DynamoStore {
    /// One page of a parent's attachments: strongly consistent Queries from `after`, each
    /// limited to what is still wanted, until one more than `limit` is found (so `next_after`
    /// is set only when another item follows) or [`MAX_HIDDEN_SKIPPED`] hidden ones have been
    /// stepped over (then the page ends there).
    pub(super) async fn page_of(
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
        let start = after.map(|a| key_item(pk.clone(), attachment_sk(a)));
        let wanted = limit.saturating_add(1);
        let budget = if include_hidden {
            usize::MAX
        } else {
            wanted.saturating_add(MAX_HIDDEN_SKIPPED)
        };
        let (mut found, over) = self
            .read_attachments(&pk, include_hidden, start, wanted, budget, 0)
            .await?;
        let stopped = over.as_ref().map(attachment_of_key).transpose()?;
        let more = found.len() > limit;
        found.truncate(limit);
        let next_after = if more {
            found.last().map(|a| a.id)
        } else {
            stopped
        };
        Ok(Page {
            items: found,
            next_after,
        })
    }

    /// The listed attachments of several parents in two round trips: one BatchGetItem of the
    /// parents' items (which exist, and their counts), then one Query per parent that has
    /// listed attachments, all at once. Counts past `limit` are refused before any attachment
    /// is read.
    pub(super) async fn listed_of_many(
        &self,
        tenant: &TenantId,
        parents: &[ParentRef],
        limit: usize,
    ) -> StoreResult<ManyListing> {
        let mut unique: Vec<&ParentRef> = Vec::with_capacity(parents.len());
        for p in parents {
            if !unique.contains(&p) {
                unique.push(p);
            }
        }
        if unique.len() > MAX_BATCH_KEYS {
            return Err(StoreError::Unavailable(format!(
                "a listing of many parents takes at most {MAX_BATCH_KEYS}"
            )));
        }
        let items = self
            .batch_get(unique.iter().map(|p| parent_key(tenant, p)).collect())
            .await?;
        let mut by_pk: HashMap<String, Listed> = HashMap::new();
        for item in &items {
            if let Some((pk, _)) = key_strings(item) {
                by_pk.insert(pk.to_owned(), listed_of_item(Some(item))?);
            }
        }
        let seen: Vec<Listed> = unique
            .iter()
            .map(|p| {
                by_pk
                    .get(&parent_pk(tenant, p))
                    .copied()
                    .unwrap_or(Listed::NoParent)
            })
            .collect();
        let known: usize = seen
            .iter()
            .map(|l| match l {
                Listed::Count(k) => usize::try_from(*k).unwrap_or(0),
                _ => 0,
            })
            .sum();
        if known > limit {
            return Ok(ManyListing::TooMany);
        }
        let share = hidden_share(unique.len());
        let room = limit - known;
        // One Query per parent, all at once: at most MAX_BATCH_KEYS (100, checked above) in
        // flight, so the whole listing is two round trips in sequence.
        let reads = unique.iter().zip(&seen).map(|(p, listed)| async move {
            let want = match *listed {
                Listed::NoParent => return Ok(Some(None)),
                Listed::Count(0) => return Ok(Some(Some(Vec::new()))),
                Listed::Count(k) if k > 0 => Want::Exactly(usize::try_from(k).unwrap_or(0)),
                _ => Want::AtMost(room),
            };
            let found = self.listed_in(tenant, p, want, share).await?;
            Ok::<_, StoreError>(found.map(Some))
        });
        let mut lists: HashMap<&ParentRef, Option<Vec<Attachment>>> = HashMap::new();
        let mut total = 0usize;
        for (p, read) in unique.iter().zip(try_join_all(reads).await?) {
            let Some(list) = read else {
                return Ok(ManyListing::TooMany);
            };
            total += list.as_ref().map_or(0, Vec::len);
            lists.insert(p, list);
        }
        if total > limit {
            return Ok(ManyListing::TooMany);
        }
        Ok(ManyListing::Parents(
            parents
                .iter()
                .map(|p| lists.get(p).cloned().flatten())
                .collect(),
        ))
    }

    /// A parent's listed attachments, oldest first: `None` when it has more than `want`
    /// allows, or more than `share` hidden ones before its last listed one.
    async fn listed_in(
        &self,
        tenant: &TenantId,
        parent: &ParentRef,
        want: Want,
        share: usize,
    ) -> StoreResult<Option<Vec<Attachment>>> {
        let target = match want {
            Want::Exactly(k) => k,
            Want::AtMost(room) => room.saturating_add(1),
        };
        let budget = target.saturating_add(share);
        let pk = parent_pk(tenant, parent);
        let (found, over) = self
            .read_attachments(&pk, false, None, target, budget, SLACK)
            .await?;
        if over.is_some() {
            return Ok(None);
        }
        Ok(match want {
            Want::AtMost(room) if found.len() > room => None,
            _ => Some(found),
        })
    }

    /// A parent's attachments from `start` in strongly consistent Queries, each limited to
    /// what is still wanted (plus `extra`, grown where hidden ones were stepped over), until
    /// `target` are found or the partition ends. When `budget` items have been read before
    /// either, the read stops and says at which key.
    async fn read_attachments(
        &self,
        pk: &str,
        include_hidden: bool,
        mut start: Option<Item>,
        target: usize,
        budget: usize,
        mut extra: usize,
    ) -> StoreResult<(Vec<Attachment>, Option<Item>)> {
        let mut found: Vec<Attachment> = Vec::new();
        let mut read = 0usize;
        loop {
            let page = (target - found.len())
                .saturating_add(extra)
                .min(budget - read);
            let resp = self
                .query(attachments_query(
                    &self.table,
                    pk.to_owned(),
                    include_hidden,
                    page,
                    start.take(),
                ))
                .await?;
            read = read.saturating_add(resp.scanned);
            extra = more_for_hidden(extra, &resp);
            for item in resp.items {
                found.push(doc(&item)?);
            }
            if found.len() >= target {
                return Ok((found, None));
            }
            match resp.last_evaluated_key {
                Some(k) if !k.is_empty() => {
                    if read >= budget {
                        return Ok((found, Some(k)));
                    }
                    start = Some(k);
                }
                _ => return Ok((found, None)),
            }
        }
    }

    /// Parents of a kind with listed attachments: every marker shard is read at once, each
    /// from `after` and for one more than `limit`, and the answers merged in id order.
    pub(super) async fn marked_parents(
        &self,
        tenant: &TenantId,
        kind: &ParentKind,
        after: Option<&ParentId>,
        limit: usize,
    ) -> StoreResult<ParentPage> {
        let wanted = limit.saturating_add(1);
        let shards = (0..MARKER_SHARDS).map(|shard| async move {
            let mut ids: Vec<String> = Vec::new();
            let mut start = None;
            loop {
                let mut q = QueryInput {
                    table_name: &self.table,
                    key_condition_expression: "#pk = :pk",
                    expression_attribute_names: HashMap::from([("#pk", PK)]),
                    expression_attribute_values: HashMap::from([(
                        ":pk",
                        s(marker_pk(tenant, kind, shard)),
                    )]),
                    consistent_read: Some(true),
                    limit: Some(i32::try_from(wanted - ids.len()).unwrap_or(i32::MAX)),
                    exclusive_start_key: start.take(),
                    ..Default::default()
                };
                if let Some(a) = after {
                    q.key_condition_expression = "#pk = :pk AND #sk > :after";
                    q.expression_attribute_names.insert("#sk", SK);
                    q.expression_attribute_values
                        .insert(":after", s(a.as_str()));
                }
                let resp = self.query(q).await?;
                ids.extend(
                    resp.items
                        .iter()
                        .filter_map(|i| key_strings(i).map(|(_, sk)| sk.to_owned())),
                );
                match resp.last_evaluated_key {
                    Some(k) if !k.is_empty() && ids.len() < wanted => start = Some(k),
                    _ => return Ok::<_, StoreError>(ids),
                }
            }
        });
        let mut ids: Vec<String> = try_join_all(shards).await?.concat();
        ids.sort_unstable();
        ids.dedup();
        let more = ids.len() > limit;
        ids.truncate(limit);
        let parents = ids
            .iter()
            .map(|id| {
                ParentId::parse(id)
                    .map(|id| ParentRef::new(kind.clone(), id))
                    .map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        let next_after = if more {
            parents.last().map(|p| p.id.clone())
        } else {
            None
        };
        Ok(ParentPage {
            parents,
            next_after,
        })
    }

    /// The leftovers expired before `before`, the earliest first: every shard of the index
    /// (and the one partition of tables from before it was sharded) is read at once for its
    /// earliest `limit`, the candidates merged, and each read again consistently, since the
    /// index is eventually consistent: only those still expired are kept.
    pub(super) async fn leftovers(
        &self,
        before: i64,
        limit: usize,
    ) -> StoreResult<Vec<Attachment>> {
        let limit = limit.max(1);
        let partitions = self.leftover_partitions();
        let reads = partitions.iter().map(|partition| async move {
            let mut found: Vec<(String, Item)> = Vec::new();
            let mut start = None;
            loop {
                let resp = self
                    .query(QueryInput {
                        table_name: &self.table,
                        index_name: Some(LEFTOVERS_INDEX),
                        key_condition_expression: "#lpk = :l AND #lsk < :before",
                        projection_expression: Some("#pk, #sk, #lsk"),
                        expression_attribute_names: HashMap::from([
                            ("#lpk", LEFTOVER_PK),
                            ("#lsk", LEFTOVER_SK),
                            ("#pk", PK),
                            ("#sk", SK),
                        ]),
                        expression_attribute_values: HashMap::from([
                            (":l", s(partition.as_str())),
                            (":before", expiry_key(before)),
                        ]),
                        limit: Some(i32::try_from(limit - found.len()).unwrap_or(i32::MAX)),
                        exclusive_start_key: start.take(),
                        ..Default::default()
                    })
                    .await?;
                for item in resp.items {
                    let expiry = match item.get(LEFTOVER_SK) {
                        Some(aws_sdk_dynamodb::types::AttributeValue::S(e)) => e.clone(),
                        _ => String::new(),
                    };
                    if let Some((pk, sk)) = key_strings(&item) {
                        found.push((expiry, key_of(pk, sk)));
                    }
                }
                match resp.last_evaluated_key {
                    Some(k) if !k.is_empty() && found.len() < limit => start = Some(k),
                    _ => return Ok::<_, StoreError>(found),
                }
            }
        });
        let mut candidates: Vec<(String, Item)> = try_join_all(reads).await?.concat();
        candidates.sort_by(|a, b| {
            (a.0.as_str(), key_strings(&a.1)).cmp(&(b.0.as_str(), key_strings(&b.1)))
        });
        candidates.truncate(limit);
        let mut out: Vec<Attachment> = Vec::with_capacity(candidates.len());
        for item in self
            .batch_get(candidates.into_iter().map(|(_, k)| k).collect())
            .await?
        {
            let att: Attachment = doc(&item)?;
            if att.expires_at.is_some_and(|e| e < before) {
                out.push(att);
            }
        }
        out.sort_by_key(|a| (a.expires_at, a.id));
        Ok(out)
    }
}

/// Pages of 100 leftovers read, at most, in each shard to find its oldest upload under way.
const OLDEST_UPLOAD_PAGES: usize = 10;

impl DynamoStore {
    /// Every partition of the leftovers index the sweep reads: the `N` shards and the one
    /// partition of tables from before they were sharded.
    fn leftover_partitions(&self) -> Vec<String> {
        let mut partitions: Vec<String> = (0..self.leftover_shards)
            .map(|i| format!("{LEFTOVER}#{i}"))
            .collect();
        partitions.push(LEGACY_LEFTOVER.to_owned());
        partitions
    }

    /// The leftover with an upload under way that expires first: each partition of the index
    /// read at once for its first, the earliest of those.
    pub(super) async fn oldest_upload(&self) -> StoreResult<Option<Attachment>> {
        let partitions = self.leftover_partitions();
        let firsts = partitions.iter().map(|p| self.oldest_upload_in(p));
        Ok(try_join_all(firsts)
            .await?
            .into_iter()
            .flatten()
            .min_by_key(|a| (a.expires_at, a.id)))
    }

    /// The first leftover of one partition, in expiry order, with an upload under way. The
    /// index holds every attribute (`ALL`), so its items are the answer. The filter applies
    /// after each page is read, so pages of refused uploads and unfinished deletions may come
    /// first: a few at most, as the sweep removes expired leftovers every hour.
    async fn oldest_upload_in(&self, partition: &str) -> StoreResult<Option<Attachment>> {
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
                    expression_attribute_values: HashMap::from([(":l", s(partition))]),
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
            "no upload under way among the first {} leftovers of {partition}: the sweep is not keeping up",
            OLDEST_UPLOAD_PAGES * 100
        )))
    }
}
