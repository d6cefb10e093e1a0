//! Parents: written with their unique look-ups (references, e-mails) in one transaction, read
//! one at a time, in batches or by look-up, and deleted with their look-ups and marker.
//!
//! A parent's item carries `rev`, bumped on every write: a write is conditioned on the `rev` it
//! read, so its look-ups stay in step with the document even when two writers race. Its count
//! of listed attachments (`n`, see `counts.rs`) lives on the same item and is never touched
//! here but on creation.

use aws_sdk_dynamodb::types::TransactWriteItem;

use super::{
    backoff, doc, failed_at, get_n, get_s, key_item, legacy_index_key, lookup_pk, marker_key, n,
    parent_pk, s, to_json, DynamoStore, Expr, COUNT, DOC, LOOKUP_SK, MAX_ATTEMPTS, PARENT_ID,
    PARENT_SK, PK, REV,
};
use crate::domain::{Parent, ParentId, ParentKind, ParentRef, TenantId};
use crate::store::{ParentLookup, PutOutcome, StoreError, StoreResult, MAX_BATCH_KEYS};

/// A parent as stored: its document and its revision.
type Stored = (Parent, i64);

/// The condition of a look-up item that this parent may write or remove: free, or its own.
const MINE: &str = "attribute_not_exists(#pk) OR #pid = :pid";

fn mine(id: &ParentId) -> Expr {
    Expr::new()
        .name("#pk", PK)
        .name("#pid", PARENT_ID)
        .value(":pid", s(id.as_str()))
}

impl DynamoStore {
    /// Creates or updates a parent: read it, then one transaction of its item (on condition of
    /// the revision read) and its look-ups. A look-up another parent holds is a `Conflict`; a
    /// revision that moved meanwhile is a concurrent writer, so it reads again.
    pub(super) async fn write_parent(&self, parent: &Parent) -> StoreResult<PutOutcome> {
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                backoff(attempt).await;
            }
            let stored = self.stored_parent(&parent.tenant, &parent.key).await?;
            let mut items = vec![self.parent_write(parent, stored.as_ref())?];
            let claims = self.lookup_writes(parent, stored.as_ref().map(|s| &s.0), &mut items)?;
            match self.transact(items).await? {
                Ok(()) if stored.is_some() => return Ok(PutOutcome::Updated),
                Ok(()) => return Ok(PutOutcome::Created),
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

    /// The parent as stored now (consistent), with its revision.
    async fn stored_parent(&self, tenant: &TenantId, k: &ParentRef) -> StoreResult<Option<Stored>> {
        match self
            .get_item(key_item(parent_pk(tenant, k), PARENT_SK))
            .await?
        {
            Some(item) => Ok(Some((doc(&item)?, get_n(&item, REV)?))),
            None => Ok(None),
        }
    }

    /// The write of the parent's own item: an update of its document and revision while the
    /// revision is as read (an update, not a put: its count changes beside it), or a new item
    /// with a count of zero.
    fn parent_write(
        &self,
        parent: &Parent,
        old: Option<&Stored>,
    ) -> StoreResult<TransactWriteItem> {
        let key = key_item(parent_pk(&parent.tenant, &parent.key), PARENT_SK);
        let body = to_json(parent)?;
        match old {
            Some((_, rev)) => self.update(
                key,
                "SET #doc = :doc, #rev = :next",
                Some("#rev = :rev"),
                &Expr::new()
                    .name("#doc", DOC)
                    .name("#rev", REV)
                    .value(":doc", s(body))
                    .value(":next", n(rev + 1))
                    .value(":rev", n(*rev)),
            ),
            None => {
                let mut item = key;
                item.insert(DOC.into(), s(body));
                item.insert(REV.into(), n(1));
                item.insert(COUNT.into(), n(0));
                self.put(
                    item,
                    Some("attribute_not_exists(#pk)"),
                    &Expr::new().name("#pk", PK),
                )
            }
        }
    }

    /// Appends the look-up writes of `parent` to `items`: a put of each value it now claims
    /// (free, or already its own), a delete of each value it gave up. Returns the positions of
    /// the claims, whose failed condition means another parent holds the value.
    fn lookup_writes(
        &self,
        parent: &Parent,
        old: Option<&Parent>,
        items: &mut Vec<TransactWriteItem>,
    ) -> StoreResult<Vec<usize>> {
        let (tenant, kind) = (&parent.tenant, &parent.key.kind);
        let ours = mine(&parent.key.id);
        let mut claims = Vec::new();
        let values = [
            (
                'R',
                parent.reference.as_deref(),
                old.and_then(|p| p.reference.as_deref()),
            ),
            (
                'E',
                parent.email.as_deref(),
                old.and_then(|p| p.email.as_deref()),
            ),
        ];
        for (what, new_value, old_value) in values {
            let src = parent.source.as_deref().unwrap_or("");
            let new_key = new_value.map(|v| lookup_pk(tenant, what, kind, src, v));
            let old_src = old.and_then(|p| p.source.as_deref()).unwrap_or("");
            let old_key = old_value.map(|v| lookup_pk(tenant, what, kind, old_src, v));
            if let Some(k) = &new_key {
                let mut claim = key_item(k.clone(), LOOKUP_SK);
                claim.insert(PARENT_ID.into(), s(parent.key.id.as_str()));
                items.push(self.put(claim, Some(MINE), &ours)?);
                claims.push(items.len() - 1);
            }
            if let Some(k) = old_key.filter(|k| Some(k) != new_key.as_ref()) {
                items.push(self.delete(key_item(k, LOOKUP_SK), Some(MINE), &ours)?);
            }
        }
        Ok(claims)
    }

    pub(super) async fn read_parent(
        &self,
        tenant: &TenantId,
        k: &ParentRef,
    ) -> StoreResult<Option<Parent>> {
        match self
            .get_item(key_item(parent_pk(tenant, k), PARENT_SK))
            .await?
        {
            Some(item) => doc(&item).map(Some),
            None => Ok(None),
        }
    }

    /// Many parents in one BatchGetItem (duplicates once); those that do not exist are absent.
    pub(super) async fn read_parents(
        &self,
        tenant: &TenantId,
        keys: &[ParentRef],
    ) -> StoreResult<Vec<Parent>> {
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
                    .map(|k| key_item(parent_pk(tenant, k), PARENT_SK))
                    .collect(),
            )
            .await?;
        items.iter().map(doc).collect()
    }

    /// The parent that holds a reference or an e-mail: its look-up item, then the parent.
    pub(super) async fn parent_by_lookup(
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
        let claim = key_item(
            lookup_pk(tenant, what, kind, source.unwrap_or(""), value),
            LOOKUP_SK,
        );
        let Some(item) = self.get_item(claim).await? else {
            return Ok(None);
        };
        let id = ParentId::parse(get_s(&item, PARENT_ID)?)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let parent = self
            .read_parent(tenant, &ParentRef::new(kind.clone(), id))
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

    /// Deletes the parent's item, its look-ups (while still its own), its marker and the index
    /// item of a table from before counts existed: one transaction of at most five items,
    /// whatever the parent held (its attachments are removed before, one by one).
    pub(super) async fn remove_parent(
        &self,
        tenant: &TenantId,
        k: &ParentRef,
    ) -> StoreResult<bool> {
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                backoff(attempt).await;
            }
            let Some((parent, rev)) = self.stored_parent(tenant, k).await? else {
                return Ok(false);
            };
            let mut items = vec![self.delete(
                key_item(parent_pk(tenant, k), PARENT_SK),
                Some("#rev = :rev"),
                &Expr::new().name("#rev", REV).value(":rev", n(rev)),
            )?];
            let ours = mine(&k.id);
            let src = parent.source.as_deref().unwrap_or("");
            for (what, value) in [('R', &parent.reference), ('E', &parent.email)] {
                if let Some(v) = value {
                    items.push(self.delete(
                        key_item(lookup_pk(tenant, what, &k.kind, src, v), LOOKUP_SK),
                        Some(MINE),
                        &ours,
                    )?);
                }
            }
            // Its marker goes with it (whatever its count, since nothing lists a parent that is
            // gone), and the index item of a table from before counts existed.
            items.push(self.delete(marker_key(tenant, k), None, &Expr::new())?);
            items.push(self.delete(legacy_index_key(tenant, k), None, &Expr::new())?);
            match self.transact(items).await? {
                Ok(()) => return Ok(true),
                Err(_) => continue,
            }
        }
        Err(StoreError::Unavailable(
            "the parent kept changing during its deletion".into(),
        ))
    }
}
