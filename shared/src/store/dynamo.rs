//! The DynamoDB metadata store: one table (`pk`/`sk`, documents as JSON in `doc`), one sparse
//! index, every change a conditional write. No partition key but the two sharded ones is written
//! by more than one parent, so no write's cost grows with a parent or a tenant; the key design,
//! access patterns and costs are in `docs/dynamodb.md`.

mod calls;
mod counts;
mod items;
mod listing;
mod migrate;
mod parents;
mod table;

pub use items::{DEFAULT_LEFTOVER_SHARDS, LEFTOVERS_INDEX, MAX_LEFTOVER_SHARDS};
pub use migrate::Migrated;
pub use table::{bulk_items, create_table, table_exists};

// The submodules share the keys, attribute names and calls through this module.
use calls::*;
use items::*;

use std::collections::{BTreeSet, HashMap, HashSet};

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::Client;
use futures_util::future::try_join_all;

use super::{
    hidden_share, Expected, ManyListing, MetadataStore, Page, ParentLookup, PutOutcome, StoreError,
    StoreResult, MAX_HIDDEN_SKIPPED,
};
use crate::domain::{
    ApiKey, Attachment, AttachmentId, AttachmentStatus, Parent, ParentId, ParentKind, ParentRef,
    TenantId, Version, VersionId,
};
use counts::{listed_of_item, Listed};

/// Pages of 100 leftovers read, at most, in each shard to find its oldest upload under way.
const OLDEST_UPLOAD_PAGES: usize = 10;

/// DynamoDB-backed [`MetadataStore`].
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    leftover_shards: u32,
}

impl DynamoStore {
    /// Leftovers are spread over `shards` partitions of the index (1 to [`MAX_LEFTOVER_SHARDS`]).
    /// The sweep reads every one of them, and the one partition of tables from before.
    pub fn new(client: Client, table: impl Into<String>, shards: u32) -> Self {
        Self {
            client,
            table: table.into(),
            leftover_shards: shards.clamp(1, MAX_LEFTOVER_SHARDS),
        }
    }

    /// Where an attachment lives: its parent, from the pointer item.
    async fn home_of(&self, tenant: &TenantId, id: AttachmentId) -> StoreResult<Option<ParentRef>> {
        let pointer = self.get_item(pointer_key(tenant, id)).await?;
        pointer.as_ref().map(parent_of_pointer).transpose()
    }

    /// The items of an attachment's versions, in its own partition.
    fn versions(&self, tenant: &TenantId, att: AttachmentId) -> QueryFluentBuilder {
        let values = [(":pk", s(attachment_pk(tenant, att))), (":prefix", s("V#"))];
        let e = Expr::of([PK, SK], values);
        self.query("#pk = :pk AND begins_with(#sk, :prefix)", &e)
    }
}

#[async_trait]
impl MetadataStore for DynamoStore {
    // ---- API keys: each stored by the hash of its secret (authentication) and by its id in the
    // one partition `KEYS` (listing, revocation): keys are few, so that partition is never busy.

    async fn put_api_key(&self, key_rec: &ApiKey) -> StoreResult<()> {
        let hash = s(key_rec.hash.as_str());
        let by_hash = doc_item(api_key_key(&key_rec.hash), key_rec)?;
        let mut by_id = doc_item(key_item(API_KEYS_PK, key_rec.id.as_str()), key_rec)?;
        by_id.insert(HASH.into(), hash.clone());
        let id_free = Expr::of([PK, HASH], [(":hash", hash)]);
        let id_free = id_free.when("attribute_not_exists(#pk) OR #hash = :hash");
        let none = Expr::default();
        let items = vec![self.put(by_hash, &none)?, self.put(by_id, &id_free)?];
        let done = self.transact(items).await?;
        done.map_err(|_| StoreError::Conflict("an API key with that id exists".into()))
    }

    async fn get_api_key(&self, hash: &str) -> StoreResult<Option<ApiKey>> {
        // Consistent, so a revocation takes effect on the very next request.
        self.get_doc(api_key_key(hash)).await
    }

    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKey>> {
        let e = Expr::of([PK], [(":pk", s(API_KEYS_PK))]);
        let items = query_all(self.query("#pk = :pk", &e)).await?;
        items.iter().map(doc).collect()
    }

    async fn revoke_api_key(&self, id: &str) -> StoreResult<bool> {
        let Some(mut rec) = self.get_doc::<ApiKey>(key_item(API_KEYS_PK, id)).await? else {
            return Ok(false);
        };
        rec.revoked = true;
        self.put_api_key(&rec).await?;
        Ok(true)
    }

    // ---- parents (see `parents.rs`)

    /// Reads the parent, then one transaction of its item (on condition of the revision read)
    /// and its look-ups. A look-up another parent holds is a `Conflict`; a revision that moved
    /// meanwhile is a concurrent writer, so it reads again.
    async fn put_parent(&self, parent: &Parent) -> StoreResult<PutOutcome> {
        let taken = "another parent of this kind and source has that reference or email";
        let gave_up = "the parent kept changing during the update";
        optimistic(gave_up, move || async move {
            let stored = self.stored_parent(&parent.tenant, &parent.key).await?;
            let (items, claims) = self.parent_writes(parent, stored.as_ref())?;
            match self.transact(items).await? {
                Ok(()) if stored.is_some() => Ok(Some(PutOutcome::Updated)),
                Ok(()) => Ok(Some(PutOutcome::Created)),
                Err(codes) if claims.iter().any(|i| failed_at(&codes, *i)) => {
                    Err(StoreError::Conflict(taken.into()))
                }
                // The parent changed between the read and the write: read again.
                Err(_) => Ok(None),
            }
        })
        .await
    }

    async fn get_parent(&self, tenant: &TenantId, k: &ParentRef) -> StoreResult<Option<Parent>> {
        self.get_doc(parent_key(tenant, k)).await
    }

    async fn get_parents(&self, tenant: &TenantId, keys: &[ParentRef]) -> StoreResult<Vec<Parent>> {
        let found = self.parent_items(tenant, keys, "get_parents").await?;
        let docs = found.iter().filter_map(|(_, i)| i.as_ref().map(doc));
        docs.collect()
    }

    /// Its look-up item, then the parent.
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
        let claim = lookup_key(tenant, what, kind, source.unwrap_or(""), value);
        let Some(item) = self.get_item(claim.clone()).await? else {
            return Ok(None);
        };
        let at = ParentRef::new(kind.clone(), parent_id(get_s(&item, PARENT_ID)?)?);
        let parent = self.get_parent(tenant, &at).await?;
        // Look-ups change with their parent in one transaction; checking costs nothing.
        Ok(parent.filter(|p| parents::lookup_of(p, what) == Some(claim)))
    }

    /// Deletes the parent's item, its look-ups (while still its own), its marker and the index
    /// item of a table from before counts existed: one transaction of at most five items,
    /// whatever the parent held (its attachments are removed before, one by one).
    async fn delete_parent(&self, tenant: &TenantId, k: &ParentRef) -> StoreResult<bool> {
        let gave_up = "the parent kept changing during its deletion";
        optimistic(gave_up, move || async move {
            let Some((parent, rev)) = self.stored_parent(tenant, k).await? else {
                return Ok(Some(false));
            };
            let as_read = Expr::of([REV], [(":rev", n(rev))]).when("#rev = :rev");
            let mut items = vec![self.delete(parent_key(tenant, k), &as_read)?];
            let claims = ['R', 'E'].map(|w| parents::lookup_of(&parent, w));
            for claim in claims.into_iter().flatten() {
                items.push(self.delete(claim, &parents::mine(&k.id))?);
            }
            // Its marker goes whatever its count: nothing lists a parent that is gone.
            items.push(self.delete(marker_key(tenant, k), &Expr::default())?);
            items.push(self.delete(legacy_index_key(tenant, k), &Expr::default())?);
            Ok(self.transact(items).await?.ok().map(|()| true))
        })
        .await
    }

    /// Every marker shard is read at once, each from `after` (its start key) and for one more
    /// than `limit`, and the answers merged in id order.
    async fn parents_with_attachments(
        &self,
        tenant: &TenantId,
        kind: &ParentKind,
        after: Option<&ParentId>,
        limit: usize,
    ) -> StoreResult<Page<ParentRef, ParentId>> {
        let shards = (0..MARKER_SHARDS).map(|shard| {
            let pk = marker_pk(tenant, kind, shard);
            let from = after.map(|a| key_item(pk.clone(), a.as_str()));
            let e = Expr::of([PK], [(":pk", s(pk))]);
            self.query("#pk = :pk", &e).set_exclusive_start_key(from)
        });
        let items = firsts(shards, limit.saturating_add(1)).await?;
        let ids: BTreeSet<&str> = items.iter().filter_map(key_strings).map(|k| k.1).collect();
        let more = ids.len() > limit;
        let items = ids
            .into_iter()
            .take(limit)
            .map(|id| Ok(ParentRef::new(kind.clone(), parent_id(id)?)))
            .collect::<StoreResult<Vec<_>>>()?;
        let next = items.last().filter(|_| more).map(|p| p.id.clone());
        Ok(Page { items, next })
    }

    // ---- attachments: each in its parent's partition (a listing is one Query), its pointer and
    // versions in a partition of its own (found by id alone, never crowding the parent's).

    /// Its item and its pointer, each only if absent; a listed one (a placeholder) moves its
    /// parent's count in the same transaction.
    async fn create_attachment(&self, att: &Attachment) -> StoreResult<()> {
        let absent = Expr::absent();
        let items = vec![
            self.put(attachment_item(att, self.leftover_shards)?, &absent)?,
            self.put(pointer_item(att), &absent)?,
        ];
        let listed = i64::from(att.status.is_listed());
        self.transact_counted(items, &att.tenant, &att.parent, listed)
            .await?
            .map_err(|_| StoreError::Conflict("attachment exists".into()))
    }

    /// On condition that its status, version and upload under way are still as `expected`;
    /// entering or leaving the lists moves its parent's count with it.
    async fn update_attachment(&self, att: &Attachment, expected: Expected) -> StoreResult<()> {
        let st = [(":st", s(expected.status.as_str()))];
        let mut e = Expr::of([STATUS, VERSION, UPLOAD], st);
        let mut cond = "#st = :st".to_owned();
        // `#st = :st AND #vid = :vid AND attribute_not_exists(#upv)` and the like.
        for (attr, expected) in [("vid", expected.version), ("upv", expected.upload)] {
            match expected {
                Some(v) => {
                    e = e.value(&format!(":{attr}"), s(v.to_string()));
                    cond += &format!(" AND #{attr} = :{attr}");
                }
                None => cond += &format!(" AND attribute_not_exists(#{attr})"),
            }
        }
        let e = e.when(cond);
        let items = vec![self.put(attachment_item(att, self.leftover_shards)?, &e)?];
        let listed = |status: AttachmentStatus| i64::from(status.is_listed());
        let delta = listed(att.status) - listed(expected.status);
        self.transact_counted(items, &att.tenant, &att.parent, delta)
            .await?
            .map_err(|_| StoreError::Conflict("attachment changed or was deleted meanwhile".into()))
    }

    /// Its pointer (where it lives), then its item, both consistent.
    async fn get_attachment(
        &self,
        tenant: &TenantId,
        id: AttachmentId,
    ) -> StoreResult<Option<Attachment>> {
        let Some(parent) = self.home_of(tenant, id).await? else {
            return Ok(None);
        };
        self.get_doc(attachment_key(tenant, &parent, id)).await
    }

    /// Queries from `after` until one more than `limit` is found (so `next` is set only
    /// when another item follows) or [`MAX_HIDDEN_SKIPPED`] hidden ones were stepped over.
    async fn list_attachments(
        &self,
        tenant: &TenantId,
        parent: &ParentRef,
        after: Option<AttachmentId>,
        limit: usize,
        include_hidden: bool,
    ) -> StoreResult<Page<Attachment, AttachmentId>> {
        // The cursor's id is the position: it becomes the ExclusiveStartKey, whether or not that
        // attachment still exists.
        let q = self.attachments_query(parent_pk(tenant, parent), include_hidden);
        let q = q.set_exclusive_start_key(after.map(|a| attachment_key(tenant, parent, a)));
        let wanted = limit.saturating_add(1);
        let budget = if include_hidden {
            usize::MAX
        } else {
            wanted.saturating_add(MAX_HIDDEN_SKIPPED)
        };
        let (mut items, over) = listing::read_attachments(q, wanted, budget, 0).await?;
        let stopped = over.map(|k| {
            let id = get_s(&k, SK)?.strip_prefix("A#").unwrap_or_default();
            AttachmentId::parse(id).map_err(corrupt)
        });
        let stopped = stopped.transpose()?;
        let more = items.len() > limit;
        items.truncate(limit);
        // When more follow, the page ends at its last item (a page that ends at `stopped` has
        // fewer than `limit`).
        let next = items.last().filter(|_| more).map(|a| a.id).or(stopped);
        Ok(Page { items, next })
    }

    /// Two round trips: one BatchGetItem of the parents' items (which exist, and their
    /// counts), then one Query per parent that has listed attachments, all at once. Counts
    /// past `limit` are refused before any attachment is read.
    async fn list_attachments_of_many(
        &self,
        tenant: &TenantId,
        parents: &[ParentRef],
        limit: usize,
    ) -> StoreResult<ManyListing> {
        let found = self.parent_items(tenant, parents, "a listing of many parents");
        let seen = found
            .await?
            .into_iter()
            .map(|(p, item)| Ok((p, listed_of_item(item.as_ref())?)))
            .collect::<StoreResult<Vec<(&ParentRef, Listed)>>>()?;
        // A parent's count, when it is one that can be right.
        let count = |l: Listed| match l {
            Listed::Count(k) => usize::try_from(k).ok(),
            _ => None,
        };
        let known: usize = seen.iter().filter_map(|(_, l)| count(*l)).sum();
        if known > limit {
            return Ok(ManyListing::TooMany);
        }
        let (share, room) = (hidden_share(seen.len()), limit - known);
        let reads = seen.iter().map(|&(p, listed)| async move {
            // A parent's listed attachments, oldest first, or `None` when it has more than its
            // count allows (or, without a count, more than `room`), or more than `share`
            // hidden ones before its last listed one.
            let (target, at_most) = match (listed, count(listed)) {
                (Listed::NoParent, _) => return Ok(Some(None)),
                (_, Some(0)) => return Ok(Some(Some(Vec::new()))),
                (_, Some(k)) => (k, None),
                _ => (room.saturating_add(1), Some(room)),
            };
            let q = self.attachments_query(parent_pk(tenant, p), false);
            let budget = target.saturating_add(share);
            let (list, over) = listing::read_attachments(q, target, budget, listing::SLACK).await?;
            let too_many = over.is_some() || at_most.is_some_and(|room| list.len() > room);
            Ok::<_, StoreError>((!too_many).then_some(Some(list)))
        });
        let lists: Option<Vec<_>> = try_join_all(reads).await?.into_iter().collect();
        let total: usize = lists.iter().flatten().flatten().map(Vec::len).sum();
        let Some(lists) = lists.filter(|_| total <= limit) else {
            return Ok(ManyListing::TooMany);
        };
        let lists: HashMap<_, _> = seen.iter().map(|(p, _)| *p).zip(lists).collect();
        let answer = parents.iter().map(|p| lists.get(p).cloned().flatten());
        Ok(ManyListing::Parents(answer.collect()))
    }

    /// Its versions, then its item and pointer in one transaction (with its parent's count
    /// when it was listed), on condition that its status is as read.
    async fn delete_attachment(&self, tenant: &TenantId, id: AttachmentId) -> StoreResult<bool> {
        let keys = self.versions(tenant, id).projection_expression("#pk, #sk");
        self.batch_delete(query_all(keys).await?).await?;
        let Some(parent) = self.home_of(tenant, id).await? else {
            return Ok(false);
        };
        let (home, parent) = (&attachment_key(tenant, &parent, id), &parent);
        let gave_up = "the attachment kept changing during its deletion";
        optimistic(gave_up, move || async move {
            let current: Option<Attachment> = self.get_doc(home.clone()).await?;
            let st = current.as_ref().map(|a| [(":st", s(a.status.as_str()))]);
            let as_read = st.map_or_else(Expr::absent, |v| Expr::of([STATUS], v).when("#st = :st"));
            let items = vec![
                self.delete(pointer_key(tenant, id), &Expr::default())?,
                self.delete(home.clone(), &as_read)?,
            ];
            let delta = -i64::from(current.as_ref().is_some_and(|a| a.status.is_listed()));
            // When its status changed meanwhile, read again, so the count stays right.
            let done = self.transact_counted(items, tenant, parent, delta).await?;
            Ok(done.ok().map(|()| current.is_some()))
        })
        .await
    }

    async fn put_version(
        &self,
        tenant: &TenantId,
        att: AttachmentId,
        v: &Version,
    ) -> StoreResult<()> {
        let item = doc_item(version_key(tenant, att, v.id), v)?;
        let put = self.client.put_item().table_name(&self.table);
        let done = put.set_item(Some(item)).send().await;
        done.map(drop).map_err(|e| dyn_err("PutItem", e))
    }

    async fn list_versions(
        &self,
        tenant: &TenantId,
        att: AttachmentId,
    ) -> StoreResult<Vec<Version>> {
        let items = query_all(self.versions(tenant, att)).await?;
        items.iter().map(doc).collect()
    }

    async fn delete_version(
        &self,
        tenant: &TenantId,
        att: AttachmentId,
        version: VersionId,
    ) -> StoreResult<()> {
        self.delete_item(version_key(tenant, att, version)).await
    }

    // ---- leftovers

    /// Every partition of the index read at once for its earliest `limit`, the candidates
    /// merged, and each read again consistently (the index is eventually consistent): only
    /// those still expired are kept.
    async fn expired_pending(&self, before: i64, limit: usize) -> StoreResult<Vec<Attachment>> {
        let limit = limit.max(1);
        let e = Expr::of([LEFTOVER_SK, PK, SK], [(":before", expiry_key(before))]);
        let queries = self.leftover_queries(" AND #gsi1sk < :before", &e);
        let queries = queries.map(|(_, q)| q.projection_expression("#pk, #sk, #gsi1sk"));
        let found = firsts(queries, limit).await?;
        // Earliest first, then in key order.
        let candidates: BTreeSet<(&str, (&str, &str))> = found
            .iter()
            .filter_map(|i| Some((get_s(i, LEFTOVER_SK).unwrap_or_default(), key_strings(i)?)))
            .collect();
        let keys = candidates.into_iter().take(limit);
        let items = self.batch_get(keys.map(|(_, (pk, sk))| key_item(pk, sk)).collect());
        let mut out: Vec<Attachment> = items.await?.iter().map(doc).collect::<StoreResult<_>>()?;
        out.retain(|a| a.expires_at.is_some_and(|e| e < before));
        out.sort_by_key(|a| (a.expires_at, a.id));
        Ok(out)
    }

    /// Each partition of the index (which holds every attribute) read at once for its first
    /// leftover with an upload under way; the earliest of those. The filter applies after each
    /// page is read, so pages of refused uploads and unfinished deletions may come first: a
    /// few at most, as the sweep removes expired leftovers every hour.
    async fn oldest_upload_under_way(&self) -> StoreResult<Option<Attachment>> {
        let e = Expr::of([UPLOAD, DOC], []);
        let firsts = self.leftover_queries("", &e).map(|(partition, q)| async move {
            let q = q.filter_expression("attribute_exists(#upv)").projection_expression("#doc");
            let (mut first, mut read) = (None, 0);
            let more = pages(q, 100, |resp| {
                first = resp.items.unwrap_or_default().into_iter().next();
                read += 1;
                Ok((first.is_none() && read < OLDEST_UPLOAD_PAGES).then_some(100))
            })
            .await?;
            match first {
                Some(item) => Ok(Some(doc::<Attachment>(&item)?)),
                None if more.is_none() => Ok(None),
                None => Err(StoreError::Unavailable(format!(
                    "no upload under way among the first {} leftovers of {partition}: the sweep is not keeping up",
                    OLDEST_UPLOAD_PAGES * 100
                ))),
            }
        });
        let firsts = try_join_all(firsts).await?.into_iter().flatten();
        Ok(firsts.min_by_key(|a| (a.expires_at, a.id)))
    }
}
