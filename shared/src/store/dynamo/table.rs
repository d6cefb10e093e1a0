//! The table itself: creating it in the shape the store needs (tests and local emulators), and
//! the items of a parent and its attachments for loading a table in bulk.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};

use super::*;

/// The items `parent` (when given, counting the listed ones among `atts`) and `atts` are stored
/// as, for loading a table in bulk where a transaction per attachment would take too long (the
/// tests that need a parent with thousands of attachments).
pub fn bulk_items(
    parent: Option<&Parent>,
    atts: &[Attachment],
    leftover_shards: u32,
) -> StoreResult<Vec<Item>> {
    let mut out = Vec::with_capacity(atts.len() * 2 + 2);
    if let Some(parent) = parent {
        let listed: i64 = atts.iter().map(|a| i64::from(a.status.is_listed())).sum();
        out.push(parent_item(parent, listed)?);
        if listed > 0 {
            out.push(marker_key(&parent.tenant, &parent.key));
        }
    }
    for att in atts {
        out.extend([attachment_item(att, leftover_shards)?, pointer_item(att)]);
    }
    Ok(out)
}

/// Creates a table of this store's shape, as `template.yaml` declares it: on-demand, `pk`/`sk`,
/// the sparse leftovers index `gsi1` and TTL on [`TTL_ATTRIBUTE`]. For tests and local
/// emulators. The index projects every attribute: the oldest upload under way is read from it
/// (see [`crate::store::MetadataStore::oldest_upload_under_way`]).
pub async fn create_table(client: &Client, table: &str) -> StoreResult<()> {
    let attr = |name| {
        let attr = AttributeDefinition::builder().attribute_name(name);
        attr.attribute_type(ScalarAttributeType::S).build()
    };
    let key = |name, t| KeySchemaElement::builder().attribute_name(name).key_type(t);
    let all = Projection::builder().projection_type(ProjectionType::All);
    let index = GlobalSecondaryIndex::builder()
        .index_name(LEFTOVERS_INDEX)
        .key_schema(key(LEFTOVER_PK, KeyType::Hash).build()?)
        .key_schema(key(LEFTOVER_SK, KeyType::Range).build()?)
        .projection(all.build());
    let attrs = [PK, SK, LEFTOVER_PK, LEFTOVER_SK].map(attr).into_iter();
    client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(attrs.collect::<Result<_, _>>()?))
        .key_schema(key(PK, KeyType::Hash).build()?)
        .key_schema(key(SK, KeyType::Range).build()?)
        .global_secondary_indexes(index.build()?)
        .send()
        .await
        .map_err(|e| dyn_err("CreateTable", e))?;
    let ttl = TimeToLiveSpecification::builder().attribute_name(TTL_ATTRIBUTE);
    let ttl = ttl.enabled(true).build()?;
    let update = client.update_time_to_live().table_name(table);
    let done = update.time_to_live_specification(ttl).send().await;
    done.map(drop).map_err(|e| dyn_err("UpdateTimeToLive", e))
}

/// Whether the table exists (`init` of the local emulators).
pub async fn table_exists(client: &Client, table: &str) -> StoreResult<bool> {
    match client.describe_table().table_name(table).send().await {
        Ok(_) => Ok(true),
        Err(e) => match e.as_service_error() {
            Some(answer) if answer.is_resource_not_found_exception() => Ok(false),
            _ => Err(dyn_err("DescribeTable", e)),
        },
    }
}
