//! The table itself: creating it in the shape the store needs (tests and local emulators), and
//! the items of parents and attachments for loading a table in bulk.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};

use super::*;

/// The items a parent holding `listed` listed attachments is stored as: its item with that
/// count, and its marker when it has any. With [`bulk_attachment_items`], for loading a table
/// in bulk (BatchWriteItem) where the store's one transaction per attachment would take too
/// long: the tests that need a parent with thousands of attachments load them so.
pub fn bulk_parent_items(parent: &Parent, listed: i64) -> StoreResult<Vec<Item>> {
    let mut out = vec![parent_item(parent, listed)?];
    if listed > 0 {
        out.push(marker_key(&parent.tenant, &parent.key));
    }
    Ok(out)
}

/// The items an attachment is stored as: its item (in one of `leftover_shards` partitions of
/// the leftovers index when it has an expiry) and its pointer. See [`bulk_parent_items`].
pub fn bulk_attachment_items(att: &Attachment, leftover_shards: u32) -> StoreResult<Vec<Item>> {
    Ok(vec![
        attachment_item(att, leftover_shards)?,
        pointer_item(att),
    ])
}

/// Creates a table of this store's shape, as `template.yaml` declares it: on-demand, `pk`/`sk`,
/// the sparse leftovers index `gsi1` and TTL on [`TTL_ATTRIBUTE`]. For tests and local
/// emulators. The index projects every attribute: the oldest upload under way is read from it
/// (see [`crate::store::MetadataStore::oldest_upload_under_way`]).
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
