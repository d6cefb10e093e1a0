//! Failures between the steps of an upload and of a delete leave no ready attachment without its
//! file and no file that nothing points to, once the sweep has run. Faults are injected by
//! decorators around the real embedded adapters (SQLite and the file store).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use attachments::domain::{
    ApiKey, Attachment, AttachmentId, FileName, Parent, ParentId, ParentKind, ParentRef, Principal,
    TenantId, Version, VersionId,
};
use attachments::service::{
    AttachmentFields, Limits, NewFile, ParentFields, UploadRules, UploadTarget,
};
use attachments::signing::Signer;
use attachments::store::fs_blob::FsBlobStore;
use attachments::store::sqlite::SqliteStore;
use attachments::store::{
    BlobInfo, BlobStore, Expected, LinkOptions, MetadataStore, Page, ParentLookup, PartInfo,
    PostPolicy, PresignedPost, PutOutcome, StoreError, StoreResult,
};
use attachments::App;
use bytes::Bytes;

/// Switches that make the next matching call fail.
#[derive(Default)]
struct Faults {
    blob_put: AtomicBool,
    blob_delete: AtomicBool,
    put_version: AtomicBool,
    update_attachment: AtomicBool,
    delete_attachment: AtomicBool,
}

fn trip(flag: &AtomicBool) -> StoreResult<()> {
    if flag.load(Ordering::SeqCst) {
        Err(StoreError::Unavailable("injected fault".into()))
    } else {
        Ok(())
    }
}

struct FaultyBlobs(Arc<FsBlobStore>, Arc<Faults>);

#[async_trait]
impl BlobStore for FaultyBlobs {
    async fn put(&self, key: &str, data: Bytes, ct: &str, sha: &[u8; 32]) -> StoreResult<()> {
        trip(&self.1.blob_put)?;
        self.0.put(key, data, ct, sha).await
    }
    async fn head(&self, key: &str) -> StoreResult<Option<BlobInfo>> {
        self.0.head(key).await
    }
    async fn get_range(&self, key: &str, offset: u64, len: u64) -> StoreResult<Bytes> {
        self.0.get_range(key, offset, len).await
    }
    async fn delete(&self, key: &str) -> StoreResult<()> {
        trip(&self.1.blob_delete)?;
        self.0.delete(key).await
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
        ttl: std::time::Duration,
    ) -> StoreResult<String> {
        self.0.presign_part(key, upload_id, n, ttl).await
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

struct FaultyMeta(Arc<SqliteStore>, Arc<Faults>);

#[async_trait]
impl MetadataStore for FaultyMeta {
    async fn put_api_key(&self, key: &ApiKey) -> StoreResult<()> {
        self.0.put_api_key(key).await
    }
    async fn get_api_key(&self, hash: &str) -> StoreResult<Option<ApiKey>> {
        self.0.get_api_key(hash).await
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
    ) -> StoreResult<Vec<ParentRef>> {
        self.0.parents_with_attachments(tenant, kind).await
    }
    async fn create_attachment(&self, att: &Attachment) -> StoreResult<()> {
        self.0.create_attachment(att).await
    }
    async fn update_attachment(&self, att: &Attachment, expected: Expected) -> StoreResult<()> {
        trip(&self.1.update_attachment)?;
        self.0.update_attachment(att, expected).await
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
    ) -> StoreResult<Page> {
        self.0
            .list_attachments(tenant, parent, after, limit, include_hidden)
            .await
    }
    async fn list_attachments_of_many(
        &self,
        tenant: &TenantId,
        parents: &[ParentRef],
    ) -> StoreResult<Vec<Attachment>> {
        self.0.list_attachments_of_many(tenant, parents).await
    }
    async fn delete_attachment(&self, tenant: &TenantId, id: AttachmentId) -> StoreResult<bool> {
        trip(&self.1.delete_attachment)?;
        self.0.delete_attachment(tenant, id).await
    }
    async fn put_version(
        &self,
        tenant: &TenantId,
        att: AttachmentId,
        v: &Version,
    ) -> StoreResult<()> {
        trip(&self.1.put_version)?;
        self.0.put_version(tenant, att, v).await
    }
    async fn list_versions(
        &self,
        tenant: &TenantId,
        att: AttachmentId,
    ) -> StoreResult<Vec<Version>> {
        self.0.list_versions(tenant, att).await
    }
    async fn delete_version(
        &self,
        tenant: &TenantId,
        att: AttachmentId,
        version: VersionId,
    ) -> StoreResult<()> {
        self.0.delete_version(tenant, att, version).await
    }
    async fn expired_pending(&self, before: i64, limit: usize) -> StoreResult<Vec<Attachment>> {
        self.0.expired_pending(before, limit).await
    }
}

struct World {
    app: App,
    meta: Arc<SqliteStore>,
    faults: Arc<Faults>,
    who: Principal,
    parent: ParentRef,
    blob_dir: std::path::PathBuf,
    _tmp: tempfile::TempDir,
}

async fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let meta = Arc::new(SqliteStore::open(&tmp.path().join("db")).unwrap());
    let blob_dir = tmp.path().join("blobs");
    let blobs = Arc::new(FsBlobStore::new(
        blob_dir.clone(),
        "http://127.0.0.1:1",
        Signer::new([5; 32]),
    ));
    let faults = Arc::new(Faults::default());
    let app = App::new(
        Arc::new(FaultyMeta(meta.clone(), faults.clone())),
        Arc::new(FaultyBlobs(blobs, faults.clone())),
        Signer::new([5; 32]),
        Limits::default(),
    );
    let who = Principal {
        tenant: TenantId::parse("t").unwrap(),
        owner: "o".into(),
    };
    let parent = ParentRef::new(
        ParentKind::parse("profile").unwrap(),
        ParentId::parse("p").unwrap(),
    );
    app.put_parent(&who, parent.clone(), ParentFields::default())
        .await
        .unwrap();
    World {
        app,
        meta,
        faults,
        who,
        parent,
        blob_dir,
        _tmp: tmp,
    }
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut out = vec![];
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out.sort();
    out
}

impl World {
    async fn upload(&self, name: &str) -> Result<Attachment, attachments::service::ServiceError> {
        self.app
            .upload(
                &self.who,
                &self.parent,
                NewFile {
                    file_name: FileName::parse(name).unwrap(),
                    bytes: Bytes::from_static(b"content"),
                },
                AttachmentFields::default(),
                UploadTarget::New,
                UploadRules::default(),
            )
            .await
    }

    /// Every attachment record (hidden ones too) and every stored content file. Thumbnails
    /// (`{version}_thumb`) must sit beside their content file; they are left out of the list.
    async fn state(&self) -> (Vec<Attachment>, Vec<String>) {
        let page = self
            .meta
            .list_attachments(&self.who.tenant, &self.parent, None, 1000, true)
            .await
            .unwrap();
        let all = files_under(&self.blob_dir);
        for t in all.iter().filter(|f| f.ends_with("_thumb")) {
            let file = t.trim_end_matches("_thumb");
            assert!(
                all.iter().any(|f| f == file),
                "thumbnail {t} without its file"
            );
        }
        let files = all.into_iter().filter(|f| !f.ends_with("_thumb")).collect();
        (page.items, files)
    }

    /// The invariant: every ready attachment has its file, and every file belongs to a record.
    async fn assert_consistent(&self) {
        let (records, files) = self.state().await;
        for a in &records {
            if let (attachments::domain::AttachmentStatus::Ready, Some(v)) = (a.status, &a.content)
            {
                let key = a.blob_key(v.id);
                assert!(
                    files.iter().any(|f| f.ends_with(&key)),
                    "ready {} has no file",
                    a.id
                );
            }
        }
        for f in &files {
            assert!(
                records.iter().any(|a| f.contains(&a.id.to_string())),
                "file {f} belongs to no record"
            );
        }
    }

    async fn sweep_later(&self) {
        let far = time::OffsetDateTime::now_utc().unix_timestamp() + 365 * 24 * 3600;
        self.app.sweep(far).await.unwrap();
    }
}

#[tokio::test]
async fn storage_down_during_upload_leaves_nothing() {
    let w = world().await;
    w.faults.blob_put.store(true, Ordering::SeqCst);
    assert!(w.upload("a.txt").await.is_err());
    let (records, files) = w.state().await;
    assert!(records.is_empty(), "{records:?}");
    assert!(files.is_empty(), "{files:?}");
}

#[tokio::test]
async fn metadata_failing_after_the_file_is_stored_removes_the_file() {
    for fault in ["put_version", "update_attachment"] {
        let w = world().await;
        let flag = match fault {
            "put_version" => &w.faults.put_version,
            _ => &w.faults.update_attachment,
        };
        flag.store(true, Ordering::SeqCst);
        assert!(w.upload("a.txt").await.is_err(), "{fault}");
        let (records, files) = w.state().await;
        assert!(records.is_empty(), "{fault}: {records:?}");
        assert!(files.is_empty(), "{fault}: {files:?}");
    }
}

#[tokio::test]
async fn a_failed_clean_up_is_finished_by_the_sweep() {
    // The upload fails after storing its file, and the clean-up cannot delete the file either:
    // the pending record stays (never listed) until the sweep removes record and file.
    let w = world().await;
    w.faults.update_attachment.store(true, Ordering::SeqCst);
    w.faults.blob_delete.store(true, Ordering::SeqCst);
    assert!(w.upload("a.txt").await.is_err());
    let (records, files) = w.state().await;
    assert_eq!(records.len(), 1);
    assert_eq!(
        records[0].status,
        attachments::domain::AttachmentStatus::Pending
    );
    assert_eq!(files.len(), 1);
    assert!(
        w.app.list_all(&w.who, &w.parent).await.unwrap().is_empty(),
        "pending is never listed"
    );
    w.faults.update_attachment.store(false, Ordering::SeqCst);
    w.faults.blob_delete.store(false, Ordering::SeqCst);
    w.sweep_later().await;
    let (records, files) = w.state().await;
    assert!(
        records.is_empty() && files.is_empty(),
        "{records:?} {files:?}"
    );
}

#[tokio::test]
async fn a_delete_that_fails_half_way_is_hidden_then_finished_by_the_sweep() {
    for fault in ["blob_delete", "delete_attachment"] {
        let w = world().await;
        let att = w.upload("a.txt").await.unwrap();
        let flag = match fault {
            "blob_delete" => &w.faults.blob_delete,
            _ => &w.faults.delete_attachment,
        };
        flag.store(true, Ordering::SeqCst);
        assert!(w.app.delete(&w.who, att.id).await.is_err(), "{fault}");
        // Whatever is left is a tombstone: not listed, not fetchable.
        assert!(
            w.app.list_all(&w.who, &w.parent).await.unwrap().is_empty(),
            "{fault}"
        );
        assert!(w.app.get(&w.who, att.id).await.is_err(), "{fault}");
        w.assert_consistent().await;
        flag.store(false, Ordering::SeqCst);
        w.sweep_later().await;
        let (records, files) = w.state().await;
        assert!(
            records.is_empty() && files.is_empty(),
            "{fault}: {records:?} {files:?}"
        );
    }
}

#[tokio::test]
async fn a_new_version_that_fails_keeps_the_previous_content() {
    let w = world().await;
    let first = w.upload("a.txt").await.unwrap();
    w.faults.update_attachment.store(true, Ordering::SeqCst);
    let second = w
        .app
        .upload(
            &w.who,
            &w.parent,
            NewFile {
                file_name: FileName::parse("a.txt").unwrap(),
                bytes: Bytes::from_static(b"newer"),
            },
            AttachmentFields::default(),
            UploadTarget::SameName,
            UploadRules::default(),
        )
        .await;
    assert!(second.is_err());
    w.faults.update_attachment.store(false, Ordering::SeqCst);
    let now = w.app.get(&w.who, first.id).await.unwrap();
    assert_eq!(now.content, first.content);
    let versions = w.meta.list_versions(&w.who.tenant, first.id).await.unwrap();
    assert_eq!(versions.len(), 1);
    w.assert_consistent().await;
    let (_, files) = w.state().await;
    assert_eq!(files.len(), 1, "the new version's file was removed");
}

#[tokio::test]
async fn concurrent_versions_do_not_overwrite_each_other() {
    let w = world().await;
    let first = w.upload("a.txt").await.unwrap();
    let up = |body: &'static [u8]| {
        w.app.upload(
            &w.who,
            &w.parent,
            NewFile {
                file_name: FileName::parse("a.txt").unwrap(),
                bytes: Bytes::from_static(body),
            },
            AttachmentFields::default(),
            UploadTarget::Existing(first.id),
            UploadRules::default(),
        )
    };
    let (a, b) = tokio::join!(up(b"one"), up(b"two"));
    // Both may succeed one after the other, or one loses the race with a conflict; either way
    // the attachment shows one of them and every stored file is a recorded version.
    assert!(a.is_ok() || b.is_ok());
    let now = w.app.get(&w.who, first.id).await.unwrap();
    let versions = w.meta.list_versions(&w.who.tenant, first.id).await.unwrap();
    assert!(versions.iter().any(|v| Some(v) == now.content.as_ref()));
    let (_, files) = w.state().await;
    assert_eq!(files.len(), versions.len());
    w.assert_consistent().await;
}
