//! The one-off migration of a table from before parents had counts: the parent each per-kind
//! index item (`T#<t>#I#<kind>`, sort key the parent id) names is counted, and the item deleted.
//! The store's one Scan; it can be stopped and run again.

use super::*;

/// What a migration did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Migrated {
    /// Index items found and deleted.
    pub index_items: usize,
    /// Parents given their count (the others were counted already, or are gone).
    pub counted: usize,
}

/// The tenant and parent of an index item's key, `None` for any other item.
fn indexed_parent(item: &Item) -> Option<(TenantId, ParentRef)> {
    let (pk, sk) = key_strings(item)?;
    // Neither a tenant nor a kind may hold a `#`.
    let (tenant, kind) = pk.strip_prefix("T#")?.split_once("#I#")?;
    Some((
        TenantId::parse(tenant).ok()?,
        ParentRef::new(ParentKind::parse(kind).ok()?, ParentId::parse(sk).ok()?),
    ))
}

impl DynamoStore {
    /// Counts the parents the index items of an older table name, and deletes those items.
    pub async fn migrate_legacy(&self) -> StoreResult<Migrated> {
        let mut done = Migrated::default();
        // Index items are the only items with neither a document nor a parent id, and a `#I#`
        // in their partition key (ids never contain `#`).
        let e = Expr::of([PK, SK, DOC, PARENT_ID], [(":index", s("#I#"))]);
        let missing = "attribute_not_exists(#doc) AND attribute_not_exists(#pid)";
        let scan = self.client.scan().table_name(&self.table);
        let scan = scan.filter_expression(format!("contains(#pk, :index) AND {missing}"));
        let scan = scan.projection_expression("#pk, #sk").consistent_read(true);
        let scan = scan.set_expression_attribute_names(e.names);
        let scan = scan.set_expression_attribute_values(e.values);
        let mut pages = scan.into_paginator().send();
        while let Some(page) = pages.try_next().await.map_err(|e| dyn_err("Scan", e))? {
            for item in page.items.unwrap_or_default() {
                let Some((tenant, parent)) = indexed_parent(&item) else {
                    continue;
                };
                done.counted += usize::from(self.settle_count(&tenant, &parent).await?);
                // Read with only its key, so the item is its key.
                self.delete_item(item).await?;
                done.index_items += 1;
            }
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pk: &str, sk: &str) -> Item {
        key_item(pk.to_owned(), sk)
    }

    #[test]
    fn only_index_keys_name_a_parent() {
        let (t, p) = indexed_parent(&item("T#acme#I#profile", "p-1")).unwrap();
        assert_eq!(
            (t.as_str(), p.kind.as_str(), p.id.as_str()),
            ("acme", "profile", "p-1")
        );
        for (pk, sk) in [
            ("T#acme#P#profile#p-1", "P"),
            ("T#acme#R#I#src#ref", "LOOKUP"),
            ("T#acme#I#profile#extra", "p-1"),
            ("KEYS", "k1"),
        ] {
            assert!(indexed_parent(&item(pk, sk)).is_none(), "{pk}");
        }
    }
}
