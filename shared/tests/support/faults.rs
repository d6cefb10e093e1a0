//! Fault injection for the consistency tests of every backend: decorators around real storage
//! adapters that fail a chosen call (before it reaches storage, after it did its work, or from
//! then on), and a hook that lets "another request" change an item just before an update.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use attachments::domain::{
    ApiKey, Attachment, AttachmentId, AttachmentStatus, Parent, ParentId, ParentKind, ParentRef,
    TenantId, Version, VersionId,
};
use attachments::store::{
    BlobInfo, BlobStore, Expected, LinkOptions, ManyListing, MetadataStore, Page, ParentLookup,
    PartInfo, PostPolicy, PresignedPost, PutOutcome, StagedUpload, StoreError, StoreResult,
};
use bytes::Bytes;

// ---- fault plan --------------------------------------------------------------------------------

/// How a planned failure happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The call never reaches the peer.
    Before,
    /// The peer does the work, but the answer is lost.
    After,
    /// This call and every later call of the same operation fail before reaching the peer (an
    /// outage), until the plan is cleared.
    Down,
}

pub struct Rule {
    op: &'static str,
    nth: usize,
    seen: usize,
    mode: Mode,
}

pub type Hook = Box<dyn FnOnce(Attachment) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// Which calls fail, and what another writer does just before an attachment update.
#[derive(Default)]
pub struct Plan {
    rules: Mutex<Vec<Rule>>,
    before_update: Mutex<Option<(AttachmentStatus, Hook)>>,
}

impl Plan {
    /// The `nth` call (from 1) of `op` from now on fails as `mode` says.
    pub fn fail(&self, op: &'static str, nth: usize, mode: Mode) {
        self.rules.lock().unwrap().push(Rule {
            op,
            nth,
            seen: 0,
            mode,
        });
    }

    pub fn clear(&self) {
        self.rules.lock().unwrap().clear();
    }

    pub fn check(&self, op: &str) -> Option<Mode> {
        let mut rules = self.rules.lock().unwrap();
        let mut hit = None;
        for r in rules.iter_mut().filter(|r| r.op == op) {
            r.seen += 1;
            if r.seen == r.nth || (r.mode == Mode::Down && r.seen >= r.nth) {
                hit = Some(r.mode);
            }
        }
        hit
    }

    /// Runs `hook` (another request's work) right before the next update of an attachment that
    /// leaves `status`, so the update meets a changed item at the peer.
    pub fn race(&self, status: AttachmentStatus, hook: Hook) {
        *self.before_update.lock().unwrap() = Some((status, hook));
    }
}

pub fn injected(op: &str) -> StoreError {
    StoreError::Unavailable(format!("injected fault in {op}"))
}

pub async fn guard<T>(
    plan: &Plan,
    op: &'static str,
    call: impl Future<Output = StoreResult<T>>,
) -> StoreResult<T> {
    match plan.check(op) {
        None => call.await,
        Some(Mode::Before | Mode::Down) => Err(injected(op)),
        Some(Mode::After) => {
            let _ = call.await;
            Err(injected(op))
        }
    }
}

pub struct FaultyBlobs(pub Arc<dyn BlobStore>, pub Arc<Plan>);

#[async_trait]
impl BlobStore for FaultyBlobs {
    async fn put(&self, key: &str, data: Bytes, ct: &str, sha: &[u8; 32]) -> StoreResult<()> {
        guard(&self.1, "put", self.0.put(key, data, ct, sha)).await
    }
    /// The path uploads take; faults planned for "put" apply to it too.
    async fn put_while_hashing(
        &self,
        key: &str,
        data: Bytes,
        ct: &str,
        sha: tokio::sync::oneshot::Receiver<[u8; 32]>,
    ) -> StoreResult<()> {
        guard(&self.1, "put", self.0.put_while_hashing(key, data, ct, sha)).await
    }
    async fn head(&self, key: &str) -> StoreResult<Option<BlobInfo>> {
        guard(&self.1, "head", self.0.head(key)).await
    }
    async fn get_range(
        &self,
        key: &str,
        etag: Option<&str>,
        offset: u64,
        len: u64,
    ) -> StoreResult<Bytes> {
        guard(
            &self.1,
            "get_range",
            self.0.get_range(key, etag, offset, len),
        )
        .await
    }
    async fn promote(&self, staged: &str, etag: &str, size: u64, key: &str) -> StoreResult<()> {
        guard(&self.1, "promote", self.0.promote(staged, etag, size, key)).await
    }
    async fn list_staged(&self, after: Option<String>) -> StoreResult<Page<String>> {
        self.0.list_staged(after).await
    }
    async fn list_staged_uploads(&self, after: Option<String>) -> StoreResult<Page<StagedUpload>> {
        self.0.list_staged_uploads(after).await
    }
    async fn delete(&self, key: &str) -> StoreResult<()> {
        guard(&self.1, "delete", self.0.delete(key)).await
    }
    async fn presign_get(&self, key: &str, opts: &LinkOptions<'_>) -> StoreResult<String> {
        self.0.presign_get(key, opts).await
    }
    async fn presign_post(&self, key: &str, policy: &PostPolicy<'_>) -> StoreResult<PresignedPost> {
        self.0.presign_post(key, policy).await
    }
    async fn create_multipart(&self, key: &str, content_type: &str) -> StoreResult<String> {
        self.0.create_multipart(key, content_type).await
    }
    async fn presign_part(
        &self,
        key: &str,
        upload_id: &str,
        n: u32,
        size: u64,
        ttl: Duration,
    ) -> StoreResult<String> {
        self.0.presign_part(key, upload_id, n, size, ttl).await
    }
    async fn list_parts(&self, key: &str, upload_id: &str) -> StoreResult<Vec<PartInfo>> {
        self.0.list_parts(key, upload_id).await
    }
    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[PartInfo],
    ) -> StoreResult<()> {
        self.0.complete_multipart(key, upload_id, parts).await
    }
    async fn abort_multipart(&self, key: &str, upload_id: &str) -> StoreResult<()> {
        self.0.abort_multipart(key, upload_id).await
    }
}

pub struct FaultyMeta(pub Arc<dyn MetadataStore>, pub Arc<Plan>);

#[async_trait]
impl MetadataStore for FaultyMeta {
    async fn put_api_key(&self, key: &ApiKey) -> StoreResult<()> {
        self.0.put_api_key(key).await
    }
    async fn get_api_key(&self, hash: &str) -> StoreResult<Option<ApiKey>> {
        guard(&self.1, "get_api_key", self.0.get_api_key(hash)).await
    }
    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKey>> {
        self.0.list_api_keys().await
    }
    async fn revoke_api_key(&self, id: &str) -> StoreResult<bool> {
        self.0.revoke_api_key(id).await
    }
    async fn put_parent(&self, parent: &Parent) -> StoreResult<PutOutcome> {
        self.0.put_parent(parent).await
    }
    async fn get_parent(&self, tenant: &TenantId, key: &ParentRef) -> StoreResult<Option<Parent>> {
        self.0.get_parent(tenant, key).await
    }
    async fn get_parents(&self, tenant: &TenantId, keys: &[ParentRef]) -> StoreResult<Vec<Parent>> {
        self.0.get_parents(tenant, keys).await
    }
    async fn find_parent(
        &self,
        tenant: &TenantId,
        kind: &ParentKind,
        source: Option<&str>,
        lookup: ParentLookup<'_>,
    ) -> StoreResult<Option<Parent>> {
        self.0.find_parent(tenant, kind, source, lookup).await
    }
    async fn delete_parent(&self, tenant: &TenantId, key: &ParentRef) -> StoreResult<bool> {
        self.0.delete_parent(tenant, key).await
    }
    async fn parents_with_attachments(
        &self,
        tenant: &TenantId,
        kind: &ParentKind,
        after: Option<&ParentId>,
        limit: usize,
    ) -> StoreResult<Page<ParentRef, ParentId>> {
        self.0
            .parents_with_attachments(tenant, kind, after, limit)
            .await
    }
    async fn create_attachment(&self, att: &Attachment) -> StoreResult<()> {
        guard(&self.1, "create_attachment", self.0.create_attachment(att)).await
    }
    async fn update_attachment(&self, att: &Attachment, expected: Expected) -> StoreResult<()> {
        let hook = {
            let mut slot = self.1.before_update.lock().unwrap();
            match slot.take() {
                Some((status, hook)) if status == expected.status => Some(hook),
                other => {
                    *slot = other;
                    None
                }
            }
        };
        if let Some(hook) = hook {
            hook(att.clone()).await;
        }
        guard(
            &self.1,
            "update_attachment",
            self.0.update_attachment(att, expected),
        )
        .await
    }
    async fn get_attachment(
        &self,
        tenant: &TenantId,
        id: AttachmentId,
    ) -> StoreResult<Option<Attachment>> {
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
        self.0
            .list_attachments_of_many(tenant, parents, limit)
            .await
    }
    async fn delete_attachment(&self, tenant: &TenantId, id: AttachmentId) -> StoreResult<bool> {
        guard(
            &self.1,
            "delete_attachment",
            self.0.delete_attachment(tenant, id),
        )
        .await
    }
    async fn put_version(
        &self,
        tenant: &TenantId,
        att: AttachmentId,
        v: &Version,
    ) -> StoreResult<()> {
        guard(&self.1, "put_version", self.0.put_version(tenant, att, v)).await
    }
    async fn list_versions(
        &self,
        tenant: &TenantId,
        att: AttachmentId,
    ) -> StoreResult<Vec<Version>> {
        guard(&self.1, "list_versions", self.0.list_versions(tenant, att)).await
    }
    async fn delete_version(
        &self,
        tenant: &TenantId,
        att: AttachmentId,
        version: VersionId,
    ) -> StoreResult<()> {
        guard(
            &self.1,
            "delete_version",
            self.0.delete_version(tenant, att, version),
        )
        .await
    }
    async fn expired_pending(&self, before: i64, limit: usize) -> StoreResult<Vec<Attachment>> {
        guard(
            &self.1,
            "expired_pending",
            self.0.expired_pending(before, limit),
        )
        .await
    }
    async fn oldest_upload_under_way(&self) -> StoreResult<Option<Attachment>> {
        self.0.oldest_upload_under_way().await
    }
}
