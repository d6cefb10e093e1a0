//! What a parent's writes are made of: its item and its unique look-ups (references, e-mails) in
//! one transaction, conditioned on the revision `rev` it read, so the look-ups stay in step with
//! the document when two writers race. Its count (`n`, see `counts.rs`) is set only on creation.

use aws_sdk_dynamodb::types::TransactWriteItem;

use super::*;
use crate::store::MAX_BATCH_KEYS;

/// A parent as stored: its document and its revision.
pub(super) type Stored = (Parent, i64);

/// A look-up item that this parent may write or remove: free, or its own.
pub(super) fn mine(id: &ParentId) -> Expr {
    Expr::of([PK, PARENT_ID], [(":pid", s(id.as_str()))])
        .when("attribute_not_exists(#pk) OR #pid = :pid")
}

/// The key of a parent's look-up item for its reference (`R`) or its e-mail (`E`), if it has one.
pub(super) fn lookup_of(p: &Parent, what: char) -> Option<Item> {
    let value = if what == 'R' { &p.reference } else { &p.email };
    let source = p.source.as_deref().unwrap_or("");
    let key = |v| lookup_key(&p.tenant, what, &p.key.kind, source, v);
    value.as_deref().map(key)
}

impl DynamoStore {
    /// The parent as stored now (consistent), with its revision.
    pub(super) async fn stored_parent(
        &self,
        tenant: &TenantId,
        k: &ParentRef,
    ) -> StoreResult<Option<Stored>> {
        let item = self.get_item(parent_key(tenant, k)).await?;
        item.map(|i| Ok((doc(&i)?, get_n(&i, REV)?))).transpose()
    }

    /// Each of the distinct `keys` (BatchGetItem refuses repeats), in no particular order, with
    /// its item or `None`, in one BatchGetItem; more than [`MAX_BATCH_KEYS`] distinct keys are
    /// refused, saying so in `too_many`.
    pub(super) async fn parent_items<'a>(
        &self,
        tenant: &TenantId,
        keys: &'a [ParentRef],
        too_many: &str,
    ) -> StoreResult<Vec<(&'a ParentRef, Option<Item>)>> {
        let unique: HashSet<&ParentRef> = keys.iter().collect();
        if unique.len() > MAX_BATCH_KEYS {
            return Err(StoreError::Unavailable(format!(
                "{too_many} takes at most {MAX_BATCH_KEYS} keys"
            )));
        }
        let batch = unique.iter().map(|k| parent_key(tenant, k)).collect();
        let mut by_pk: HashMap<String, Item> = self
            .batch_get(batch)
            .await?
            .into_iter()
            .filter_map(|item| Some((key_strings(&item)?.0.to_owned(), item)))
            .collect();
        let found = unique
            .into_iter()
            .map(|k| (k, by_pk.remove(&parent_pk(tenant, k))));
        Ok(found.collect())
    }

    /// The writes of a parent, `old` as read: its item, new or updated while its revision is as
    /// read (an update: its count changes beside it); a put of each look-up it claims and a delete
    /// of each it gave up. With the claims' positions (a failed claim: another parent holds it).
    pub(super) fn parent_writes(
        &self,
        parent: &Parent,
        old: Option<&Stored>,
    ) -> StoreResult<(Vec<TransactWriteItem>, Vec<usize>)> {
        let mut items = vec![match old {
            None => self.put(parent_item(parent, 0)?, &Expr::absent())?,
            Some((_, rev)) => {
                let body = serde_json::to_string(parent).map_err(super::corrupt)?;
                let values = [(":doc", s(body)), (":next", n(rev + 1)), (":rev", n(*rev))];
                let e = Expr::of([DOC, REV], values).when("#rev = :rev");
                let key = parent_key(&parent.tenant, &parent.key);
                self.update(key, "SET #doc = :doc, #rev = :next", &e)?
            }
        }];
        let ours = mine(&parent.key.id);
        let mut claims = Vec::new();
        for what in ['R', 'E'] {
            let new_key = lookup_of(parent, what);
            let old_key = old.and_then(|(p, _)| lookup_of(p, what));
            if let Some(mut claim) = new_key.clone() {
                claim.insert(PARENT_ID.into(), s(parent.key.id.as_str()));
                claims.push(items.len());
                items.push(self.put(claim, &ours)?);
            }
            if let Some(k) = old_key.filter(|k| Some(k) != new_key.as_ref()) {
                items.push(self.delete(k, &ours)?);
            }
        }
        Ok((items, claims))
    }
}
