//! What the listings read, a bounded number of items each: a parent's attachments in Queries
//! that grow past hidden ones within a budget, and the partitions of the leftovers index.

use super::*;
use crate::domain::AttachmentStatus::{Placeholder, Ready};

/// A few items more than wanted per Query of a counted parent, so that a hidden attachment or
/// two among its listed ones cost no second round trip.
pub(super) const SLACK: usize = 4;

/// The attachments `q` reads from its start key in strongly consistent pages, each limited to
/// what is still wanted (plus `extra`, grown where hidden ones were stepped over), until
/// `target` are found or the partition ends. When `budget` items have been read before
/// either, the read stops and says at which key.
pub(super) async fn read_attachments(
    q: QueryFluentBuilder,
    target: usize,
    budget: usize,
    mut extra: usize,
) -> StoreResult<(Vec<Attachment>, Option<Item>)> {
    let (mut found, mut read) = (Vec::<Attachment>::new(), 0usize);
    let first = target.saturating_add(extra).min(budget);
    let stopped = pages(q, first, |resp| {
        read = read.saturating_add(usize::try_from(resp.scanned_count).unwrap_or(0));
        // Beyond what is still wanted, the next Query reads twice as many as before plus the
        // hidden ones this one stepped over, so that a run of hidden attachments (abandoned
        // uploads) costs a few round trips, not one per page's worth; what a listing reads
        // in all stays within its budget.
        let hidden = usize::try_from(resp.scanned_count - resp.count).unwrap_or(0);
        if hidden > 0 {
            extra = extra.saturating_add(hidden).saturating_mul(2);
        }
        let page = resp.items().iter().map(doc);
        found.extend(page.collect::<StoreResult<Vec<_>>>()?);
        let wanted = target.saturating_sub(found.len()).saturating_add(extra);
        let next = wanted.min(budget.saturating_sub(read));
        Ok((found.len() < target && read < budget).then_some(next))
    })
    .await?;
    // With `target` found, the read is complete wherever it stopped.
    let over = stopped.filter(|_| found.len() < target);
    Ok((found, over))
}

impl DynamoStore {
    /// The Query of a parent's attachments, oldest first; only listed ones unless `hidden`.
    pub(super) fn attachments_query(&self, pk: String, hidden: bool) -> QueryFluentBuilder {
        let e = Expr::of([PK, SK], [(":pk", s(pk)), (":a", s("A#"))]);
        let key = "#pk = :pk AND begins_with(#sk, :a)";
        if hidden {
            return self.query(key, &e);
        }
        let [ready, placeholder] = [Ready, Placeholder].map(|st| s(st.as_str()));
        let e = e.name(STATUS).value(":ready", ready);
        let e = e.value(":placeholder", placeholder);
        self.query(key, &e)
            .filter_expression("#st IN (:ready, :placeholder)")
    }

    /// A Query of every partition of the leftovers index the sweep reads (the `N` shards and
    /// the one partition of tables from before they were sharded), with the partition: `#gsi1pk =
    /// :l` and `more` of the key condition, with the names and values of `e`.
    pub(super) fn leftover_queries<'a>(
        &'a self,
        more: &'a str,
        e: &'a Expr,
    ) -> impl Iterator<Item = (String, QueryFluentBuilder)> + 'a {
        let shards = (0..self.leftover_shards).map(|i| format!("{LEFTOVER}#{i}"));
        shards.chain([LEFTOVER.to_owned()]).map(move |l| {
            let e = e.clone().name(LEFTOVER_PK).value(":l", s(&l));
            let q = self.query(&format!("#gsi1pk = :l{more}"), &e);
            (l, q.index_name(LEFTOVERS_INDEX).set_consistent_read(None))
        })
    }
}
