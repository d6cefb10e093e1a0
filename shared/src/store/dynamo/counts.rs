//! A parent's count of listed attachments (`n` on its item), moved in the transaction of every
//! write that lists or unlists one, and its marker, put or deleted when `n` leaves or returns to
//! zero. A parent from before counts existed is counted at its first change.

use aws_sdk_dynamodb::types::{Select, TransactWriteItem};

use super::*;

/// What a parent's item says of its listed attachments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Listed {
    /// There is no parent item.
    NoParent,
    /// A parent written before counts existed.
    Uncounted,
    Count(i64),
}

/// What a parent's item says, from the item (or its absence).
pub(super) fn listed_of_item(item: Option<&Item>) -> StoreResult<Listed> {
    Ok(match item {
        None => Listed::NoParent,
        Some(item) if !item.contains_key(COUNT) => Listed::Uncounted,
        Some(item) => Listed::Count(get_n(item, COUNT)?),
    })
}

impl DynamoStore {
    /// The parent's count as it is now (a consistent read of its item).
    async fn listed_count(&self, tenant: &TenantId, parent: &ParentRef) -> StoreResult<Listed> {
        listed_of_item(self.get_item(parent_key(tenant, parent)).await?.as_ref())
    }

    /// Runs a transaction of attachment writes (`items`) that list one more (`delta` 1), one
    /// fewer (-1) or as many (0) of the parent's attachments, moving its count in the same
    /// transaction. `Ok(Err(codes))` when a condition of `items` failed; a count that changed
    /// meanwhile is read again and the transaction tried anew.
    pub(super) async fn transact_counted(
        &self,
        items: Vec<TransactWriteItem>,
        tenant: &TenantId,
        parent: &ParentRef,
        delta: i64,
    ) -> StoreResult<Result<(), Cancelled>> {
        if delta == 0 {
            return self.transact(items).await;
        }
        let items = &items;
        let gave_up = "the parent's count of listed attachments kept changing";
        optimistic(gave_up, move || async move {
            let seen = self.listed_count(tenant, parent).await?;
            let mut all = items.clone();
            all.extend(self.count_change(tenant, parent, seen, delta).await?);
            Ok(match self.transact(all).await? {
                Ok(()) => Some(Ok(())),
                Err(codes) if (0..items.len()).any(|i| failed_at(&codes, i)) => Some(Err(codes)),
                // Another change of the same parent came first.
                Err(_) => None,
            })
        })
        .await
    }

    /// The writes that move the count from `seen` by `delta`, each conditioned on what was
    /// seen, with the marker's put or delete when the count leaves or reaches zero.
    async fn count_change(
        &self,
        tenant: &TenantId,
        parent: &ParentRef,
        seen: Listed,
        delta: i64,
    ) -> StoreResult<Vec<TransactWriteItem>> {
        let key = parent_key(tenant, parent);
        let add = |cond: &str, bound: i64| {
            let values = [(":delta", n(delta)), (":bound", n(bound))];
            let e = Expr::of([COUNT], values).when(cond);
            self.update(key.clone(), "ADD #n :delta", &e)
        };
        let marker = |put: bool| {
            let write = if put { Self::put } else { Self::delete };
            write(self, marker_key(tenant, parent), &Expr::default())
        };
        Ok(match seen {
            // An attachment whose parent is gone (its deletion raced an upload): nothing to
            // count, as long as no parent appears meanwhile.
            Listed::NoParent => vec![self.condition_check(key, &Expr::absent())?],
            Listed::Count(k) if delta > 0 && k >= 1 => vec![add("#n >= :bound", 1)?],
            Listed::Count(0) if delta > 0 => vec![add("#n = :bound", 0)?, marker(true)?],
            Listed::Count(k) if delta < 0 && k >= 2 => vec![add("#n >= :bound", 2)?],
            Listed::Count(1) if delta < 0 => vec![add("#n = :bound", 1)?, marker(false)?],
            // No count yet, or one that cannot be right (below zero, or zero with one to take
            // away): its listed attachments counted now in its partition (consistent), plus
            // `delta`, on condition that the count is still as seen.
            other => {
                let q = self.attachments_query(parent_pk(tenant, parent), false);
                let pages = q.select(Select::Count).into_paginator().send();
                let pages = pages.try_collect().await.map_err(|e| dyn_err("Query", e))?;
                let counted: i64 = pages.iter().map(|page| i64::from(page.count)).sum();
                let next = counted.saturating_add(delta).max(0);
                let e = match other {
                    Listed::Count(k) => Expr::of([], [(":seen", n(k))]).when("#n = :seen"),
                    _ => Expr::of([PK], [])
                        .when("attribute_exists(#pk) AND attribute_not_exists(#n)"),
                };
                let e = e.name(COUNT).value(":next", n(next));
                vec![self.update(key, "SET #n = :next", &e)?, marker(next > 0)?]
            }
        })
    }

    /// Gives a parent written before counts existed its count and marker, unless a change of
    /// its attachments already did; nothing for a parent that is gone. Returns whether it
    /// counted.
    pub(super) async fn settle_count(
        &self,
        tenant: &TenantId,
        parent: &ParentRef,
    ) -> StoreResult<bool> {
        let gave_up = "the parent's attachments kept changing while they were counted";
        optimistic(gave_up, move || async move {
            let seen = self.listed_count(tenant, parent).await?;
            if seen != Listed::Uncounted {
                return Ok(Some(false));
            }
            let items = self.count_change(tenant, parent, seen, 0).await?;
            Ok(self.transact(items).await?.ok().map(|()| true))
        })
        .await
    }
}
