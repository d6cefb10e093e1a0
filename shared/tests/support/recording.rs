//! What a request does to storage, as the capabilities of `attachments::access`: decorators
//! around real stores that note, for each port call, what the AWS adapter's requests for that
//! call need (`store/dynamo.rs`, `store/s3.rs`). The fixture test runs every event through them
//! and checks that its route declares all of it, so a handler that starts doing more than its
//! function's IAM policy allows fails the build rather than a deployment.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use attachments::access::Capability::{self, *};
use attachments::domain::{
    ApiKey, Attachment, AttachmentId, Parent, ParentId, ParentKind, ParentRef, TenantId, Version,
    VersionId,
};
use attachments::store::{
    BlobInfo, BlobStore, Expected, LinkOptions, ManyListing, MetadataStore, Page, ParentLookup,
    PartInfo, PostPolicy, PresignedPost, PutOutcome, StagedUpload, StoreResult,
};
use bytes::Bytes;

/// The capabilities used since the last [`Used::take`].
#[derive(Default)]
pub struct Used(Mutex<BTreeSet<Capability>>);

impl Used {
    fn note(&self, caps: &[Capability]) {
        self.0.lock().unwrap().extend(caps.iter().copied());
    }

    /// What was used since the last call, and starts over.
    pub fn take(&self) -> BTreeSet<Capability> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// Records, per call, what the S3 adapter's requests need.
pub struct RecordingBlobs(pub Arc<dyn BlobStore>, pub Arc<Used>);

#[async_trait]
impl BlobStore for RecordingBlobs {
    async fn put(&self, key: &str, data: Bytes, ct: &str, sha: &[u8; 32]) -> StoreResult<()> {
        self.1.note(&[ObjectWrite]);
        self.0.put(key, data, ct, sha).await
    }
    async fn put_while_hashing(
        &self,
        key: &str,
        data: Bytes,
        ct: &str,
        sha: tokio::sync::oneshot::Receiver<[u8; 32]>,
    ) -> StoreResult<()> {
        self.1.note(&[ObjectWrite]);
        self.0.put_while_hashing(key, data, ct, sha).await
    }
    /// HeadObject; a missing object is an expected answer, which S3 gives as 404 only to a
    /// caller that may list the bucket.
    async fn head(&self, key: &str) -> StoreResult<Option<BlobInfo>> {
        self.1.note(&[ObjectRead, BucketList]);
        self.0.head(key).await
    }
    /// GetObject, which also expects missing objects (NoSuchKey).
    async fn get_range(
        &self,
        key: &str,
        etag: Option<&str>,
        offset: u64,
        len: u64,
    ) -> StoreResult<Bytes> {
        self.1.note(&[ObjectRead, BucketList]);
        self.0.get_range(key, etag, offset, len).await
    }
    /// CopyObject (GetObject on the source, PutObject on the copy) or a multipart copy (a
    /// HeadObject, then parts copied as PutObject, aborted on failure), then DeleteObject.
    async fn promote(&self, staged: &str, etag: &str, size: u64, key: &str) -> StoreResult<()> {
        self.1
            .note(&[ObjectRead, ObjectWrite, ObjectDelete, MultipartAbort]);
        self.0.promote(staged, etag, size, key).await
    }
    /// ListObjectsV2 of the staging prefix.
    async fn list_staged(&self, after: Option<String>) -> StoreResult<Page<String>> {
        self.1.note(&[BucketList]);
        self.0.list_staged(after).await
    }
    /// ListMultipartUploads of the staging prefix.
    async fn list_staged_uploads(&self, after: Option<String>) -> StoreResult<Page<StagedUpload>> {
        self.1.note(&[UploadsList]);
        self.0.list_staged_uploads(after).await
    }
    async fn delete(&self, key: &str) -> StoreResult<()> {
        self.1.note(&[ObjectDelete]);
        self.0.delete(key).await
    }
    /// A link S3 checks against the signer's GetObject permission when it is followed.
    async fn presign_get(&self, key: &str, opts: &LinkOptions<'_>) -> StoreResult<String> {
        self.1.note(&[ObjectRead]);
        self.0.presign_get(key, opts).await
    }
    /// A form upload S3 checks against the signer's PutObject permission.
    async fn presign_post(&self, key: &str, policy: &PostPolicy<'_>) -> StoreResult<PresignedPost> {
        self.1.note(&[ObjectWrite]);
        self.0.presign_post(key, policy).await
    }
    async fn create_multipart(&self, key: &str, content_type: &str) -> StoreResult<String> {
        self.1.note(&[ObjectWrite]);
        self.0.create_multipart(key, content_type).await
    }
    /// UploadPart, which S3 checks as PutObject.
    async fn presign_part(
        &self,
        key: &str,
        upload_id: &str,
        n: u32,
        size: u64,
        ttl: Duration,
    ) -> StoreResult<String> {
        self.1.note(&[ObjectWrite]);
        self.0.presign_part(key, upload_id, n, size, ttl).await
    }
    async fn list_parts(&self, key: &str, upload_id: &str) -> StoreResult<Vec<PartInfo>> {
        self.1.note(&[MultipartList]);
        self.0.list_parts(key, upload_id).await
    }
    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[PartInfo],
    ) -> StoreResult<()> {
        self.1.note(&[ObjectWrite]);
        self.0.complete_multipart(key, upload_id, parts).await
    }
    async fn abort_multipart(&self, key: &str, upload_id: &str) -> StoreResult<()> {
        self.1.note(&[MultipartAbort]);
        self.0.abort_multipart(key, upload_id).await
    }
}

/// Records, per call, what the DynamoDB adapter's requests need: reads are GetItem,
/// BatchGetItem and Query; writes are TransactWriteItems (checked item by item as PutItem,
/// UpdateItem, DeleteItem), PutItem, DeleteItem and BatchWriteItem.
pub struct RecordingMeta(pub Arc<dyn MetadataStore>, pub Arc<Used>);

#[async_trait]
impl MetadataStore for RecordingMeta {
    async fn put_api_key(&self, key: &ApiKey) -> StoreResult<()> {
        self.1.note(&[TableWrite]);
        self.0.put_api_key(key).await
    }
    async fn get_api_key(&self, hash: &str) -> StoreResult<Option<ApiKey>> {
        self.1.note(&[TableRead]);
        self.0.get_api_key(hash).await
    }
    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKey>> {
        self.1.note(&[TableRead]);
        self.0.list_api_keys().await
    }
    async fn revoke_api_key(&self, id: &str) -> StoreResult<bool> {
        self.1.note(&[TableRead, TableWrite]);
        self.0.revoke_api_key(id).await
    }
    /// Reads the stored parent and its look-up claims, then writes in a transaction.
    async fn put_parent(&self, parent: &Parent) -> StoreResult<PutOutcome> {
        self.1.note(&[TableRead, TableWrite]);
        self.0.put_parent(parent).await
    }
    async fn get_parent(&self, tenant: &TenantId, key: &ParentRef) -> StoreResult<Option<Parent>> {
        self.1.note(&[TableRead]);
        self.0.get_parent(tenant, key).await
    }
    async fn get_parents(&self, tenant: &TenantId, keys: &[ParentRef]) -> StoreResult<Vec<Parent>> {
        self.1.note(&[TableRead]);
        self.0.get_parents(tenant, keys).await
    }
    async fn find_parent(
        &self,
        tenant: &TenantId,
        kind: &ParentKind,
        source: Option<&str>,
        lookup: ParentLookup<'_>,
    ) -> StoreResult<Option<Parent>> {
        self.1.note(&[TableRead]);
        self.0.find_parent(tenant, kind, source, lookup).await
    }
    async fn delete_parent(&self, tenant: &TenantId, key: &ParentRef) -> StoreResult<bool> {
        self.1.note(&[TableRead, TableWrite]);
        self.0.delete_parent(tenant, key).await
    }
    async fn parents_with_attachments(
        &self,
        tenant: &TenantId,
        kind: &ParentKind,
        after: Option<&ParentId>,
        limit: usize,
    ) -> StoreResult<Page<ParentRef, ParentId>> {
        self.1.note(&[TableRead]);
        self.0
            .parents_with_attachments(tenant, kind, after, limit)
            .await
    }
    /// Reads the parent's count when the attachment is listed from the start.
    async fn create_attachment(&self, att: &Attachment) -> StoreResult<()> {
        self.1.note(&[TableRead, TableWrite]);
        self.0.create_attachment(att).await
    }
    /// Reads the parent's count when the attachment enters or leaves the lists.
    async fn update_attachment(&self, att: &Attachment, expected: Expected) -> StoreResult<()> {
        self.1.note(&[TableRead, TableWrite]);
        self.0.update_attachment(att, expected).await
    }
    async fn get_attachment(
        &self,
        tenant: &TenantId,
        id: AttachmentId,
    ) -> StoreResult<Option<Attachment>> {
        self.1.note(&[TableRead]);
        self.0.get_attachment(tenant, id).await
    }
    async fn list_attachments(
        &self,
        tenant: &TenantId,
        parent: &ParentRef,
        after: Option<AttachmentId>,
        limit: usize,
        include_hidden: bool,
    ) -> StoreResult<Page<Attachment, AttachmentId>> {
        self.1.note(&[TableRead]);
        self.0
            .list_attachments(tenant, parent, after, limit, include_hidden)
            .await
    }
    async fn list_attachments_of_many(
        &self,
        tenant: &TenantId,
        parents: &[ParentRef],
        limit: usize,
    ) -> StoreResult<ManyListing> {
        self.1.note(&[TableRead]);
        self.0
            .list_attachments_of_many(tenant, parents, limit)
            .await
    }
    /// Queries the versions, batch-deletes them, reads the item, then a transaction.
    async fn delete_attachment(&self, tenant: &TenantId, id: AttachmentId) -> StoreResult<bool> {
        self.1.note(&[TableRead, TableWrite]);
        self.0.delete_attachment(tenant, id).await
    }
    async fn put_version(
        &self,
        tenant: &TenantId,
        att: AttachmentId,
        v: &Version,
    ) -> StoreResult<()> {
        self.1.note(&[TableWrite]);
        self.0.put_version(tenant, att, v).await
    }
    async fn list_versions(
        &self,
        tenant: &TenantId,
        att: AttachmentId,
    ) -> StoreResult<Vec<Version>> {
        self.1.note(&[TableRead]);
        self.0.list_versions(tenant, att).await
    }
    async fn delete_version(
        &self,
        tenant: &TenantId,
        att: AttachmentId,
        version: VersionId,
    ) -> StoreResult<()> {
        self.1.note(&[TableWrite]);
        self.0.delete_version(tenant, att, version).await
    }
    /// Queries the leftovers index, then reads each candidate again from the table.
    async fn expired_pending(&self, before: i64, limit: usize) -> StoreResult<Vec<Attachment>> {
        self.1.note(&[IndexRead, TableRead]);
        self.0.expired_pending(before, limit).await
    }
    async fn oldest_upload_under_way(&self) -> StoreResult<Option<Attachment>> {
        self.1.note(&[IndexRead]);
        self.0.oldest_upload_under_way().await
    }
}
