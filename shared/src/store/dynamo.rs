//! The DynamoDB metadata store: one table, string keys `PK`/`SK`, one sparse index. The key
//! design, with every access pattern, the items it reads and writes and what they cost, is in
//! `docs/dynamodb.md`; [`create_table`] makes a table of that shape (tests and local emulators;
//! the SAM template declares the same for AWS).
//!
//! No partition key is written by more than one parent's uploads, except two sharded ones: the
//! markers of parents with listed attachments (written only when a parent's first attachment
//! is listed or its last one goes, see `counts.rs`) and the leftovers index. What a write costs
//! never depends on how many attachments a parent or a tenant has.
//!
//! Every read is a GetItem, a Query or a BatchGetItem, never a Scan (the one-off migration of
//! `migrate.rs` aside). Every state change is a conditional write; where items must change
//! together (a parent and its unique look-ups, an attachment and its parent's count) it is one
//! TransactWriteItems. Documents are stored as JSON in a `doc` attribute beside the few
//! attributes that keys, conditions and filters need; the service bounds every free-text
//! field, so an item stays far below DynamoDB's 400 KB.

mod api_keys;
mod attachments;
mod calls;
mod counts;
mod items;
mod listing;
mod migrate;
mod parents;
mod table;

pub use items::{
    DEFAULT_LEFTOVER_SHARDS, LEFTOVERS_INDEX, MARKER_SHARDS, MAX_LEFTOVER_SHARDS, TTL_ATTRIBUTE,
};
pub use migrate::Migrated;
pub use table::{bulk_attachment_items, bulk_parent_items, create_table, table_exists};

// The submodules share the keys, attribute names and calls through this module.
use calls::*;
use items::*;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;

use super::{
    Expected, ManyListing, MetadataStore, Page, ParentLookup, ParentPage, PutOutcome, StoreResult,
};
use crate::domain::{
    ApiKey, Attachment, AttachmentId, Parent, ParentId, ParentKind, ParentRef, TenantId, Version,
    VersionId,
};

/// DynamoDB-backed [`MetadataStore`].
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    /// Partitions of the leftovers index that attachments are spread over.
    leftover_shards: u32,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            leftover_shards: DEFAULT_LEFTOVER_SHARDS,
        }
    }

    /// Spreads leftovers over `shards` partitions of the index (1 to [`MAX_LEFTOVER_SHARDS`]).
    /// The sweep reads every one of them, and the one partition of tables from before.
    pub fn with_leftover_shards(mut self, shards: u32) -> Self {
        self.leftover_shards = shards.clamp(1, MAX_LEFTOVER_SHARDS);
        self
    }

    fn attachment_item(&self, att: &Attachment) -> StoreResult<Item> {
        attachment_item(att, self.leftover_shards)
    }
}

/// Each method is one use of the table, written in the submodule named for what it stores.
#[async_trait]
impl MetadataStore for DynamoStore {
    async fn put_api_key(&self, key_rec: &ApiKey) -> StoreResult<()> {
        self.write_api_key(key_rec).await
    }

    async fn get_api_key(&self, hash: &str) -> StoreResult<Option<ApiKey>> {
        self.api_key_by_hash(hash).await
    }

    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKey>> {
        self.all_api_keys().await
    }

    async fn revoke_api_key(&self, id: &str) -> StoreResult<bool> {
        self.revoke_key(id).await
    }

    async fn put_parent(&self, parent: &Parent) -> StoreResult<PutOutcome> {
        self.write_parent(parent).await
    }

    async fn get_parent(&self, tenant: &TenantId, k: &ParentRef) -> StoreResult<Option<Parent>> {
        self.read_parent(tenant, k).await
    }

    async fn get_parents(&self, tenant: &TenantId, keys: &[ParentRef]) -> StoreResult<Vec<Parent>> {
        self.read_parents(tenant, keys).await
    }

    async fn find_parent(
        &self,
        tenant: &TenantId,
        kind: &ParentKind,
        source: Option<&str>,
        lookup: ParentLookup<'_>,
    ) -> StoreResult<Option<Parent>> {
        self.parent_by_lookup(tenant, kind, source, lookup).await
    }

    async fn delete_parent(&self, tenant: &TenantId, k: &ParentRef) -> StoreResult<bool> {
        self.remove_parent(tenant, k).await
    }

    async fn parents_with_attachments(
        &self,
        tenant: &TenantId,
        kind: &ParentKind,
        after: Option<&ParentId>,
        limit: usize,
    ) -> StoreResult<ParentPage> {
        self.marked_parents(tenant, kind, after, limit).await
    }

    async fn create_attachment(&self, att: &Attachment) -> StoreResult<()> {
        self.insert_attachment(att).await
    }

    async fn update_attachment(&self, att: &Attachment, expected: Expected) -> StoreResult<()> {
        self.change_attachment(att, expected).await
    }

    async fn get_attachment(
        &self,
        tenant: &TenantId,
        id: AttachmentId,
    ) -> StoreResult<Option<Attachment>> {
        self.read_attachment(tenant, id).await
    }

    async fn list_attachments(
        &self,
        tenant: &TenantId,
        parent: &ParentRef,
        after: Option<AttachmentId>,
        limit: usize,
        include_hidden: bool,
    ) -> StoreResult<Page> {
        self.page_of(tenant, parent, after, limit, include_hidden)
            .await
    }

    async fn list_attachments_of_many(
        &self,
        tenant: &TenantId,
        parents: &[ParentRef],
        limit: usize,
    ) -> StoreResult<ManyListing> {
        self.listed_of_many(tenant, parents, limit).await
    }

    async fn delete_attachment(&self, tenant: &TenantId, id: AttachmentId) -> StoreResult<bool> {
        self.remove_attachment(tenant, id).await
    }

    async fn put_version(
        &self,
        tenant: &TenantId,
        att: AttachmentId,
        v: &Version,
    ) -> StoreResult<()> {
        self.write_version(tenant, att, v).await
    }

    async fn list_versions(
        &self,
        tenant: &TenantId,
        att: AttachmentId,
    ) -> StoreResult<Vec<Version>> {
        self.read_versions(tenant, att).await
    }

    async fn delete_version(
        &self,
        tenant: &TenantId,
        att: AttachmentId,
        version: VersionId,
    ) -> StoreResult<()> {
        self.remove_version(tenant, att, version).await
    }

    async fn expired_pending(&self, before: i64, limit: usize) -> StoreResult<Vec<Attachment>> {
        self.leftovers(before, limit).await
    }

    async fn oldest_upload_under_way(&self) -> StoreResult<Option<Attachment>> {
        self.oldest_upload().await
    }
}
