//! Failures between the steps of an upload and of a delete leave no ready attachment without its
//! file and no file that nothing points to, once the sweep has run. Faults are injected by
//! decorators around the real embedded adapters (SQLite and the file store).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use attachments::domain::{
    Attachment, FileName, ParentId, ParentKind, ParentRef, Principal, TenantId,
};
use attachments::service::{AttachmentFields, Limits, NewFile, ParentFields, UploadTarget};
use attachments::signing::Signer;
use attachments::store::fs_blob::FsBlobStore;
use attachments::store::sqlite::SqliteStore;
use attachments::store::MetadataStore;
use attachments::App;
use bytes::Bytes;

mod support;

use support::faults::{FaultyBlobs, FaultyMeta, Mode, Plan};

struct World {
    app: App,
    meta: Arc<SqliteStore>,
    plan: Arc<Plan>,
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
    let plan = Arc::new(Plan::default());
    let app = App::new(
        Arc::new(FaultyMeta(meta.clone(), plan.clone())),
        Arc::new(FaultyBlobs(blobs, plan.clone())),
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
        plan,
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
                None,
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
    w.plan.fail("put", 1, Mode::Down);
    assert!(w.upload("a.txt").await.is_err());
    let (records, files) = w.state().await;
    assert!(records.is_empty(), "{records:?}");
    assert!(files.is_empty(), "{files:?}");
}

#[tokio::test]
async fn metadata_failing_after_the_file_is_stored_removes_the_file() {
    for fault in ["put_version", "update_attachment"] {
        let w = world().await;
        w.plan.fail(fault, 1, Mode::Down);
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
    w.plan.fail("update_attachment", 1, Mode::Down);
    w.plan.fail("delete", 1, Mode::Down);
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
    w.plan.clear();
    w.plan.clear();
    w.sweep_later().await;
    let (records, files) = w.state().await;
    assert!(
        records.is_empty() && files.is_empty(),
        "{records:?} {files:?}"
    );
}

#[tokio::test]
async fn a_delete_that_fails_half_way_is_hidden_then_finished_by_the_sweep() {
    for fault in ["delete", "delete_attachment"] {
        let w = world().await;
        let att = w.upload("a.txt").await.unwrap();
        w.plan.fail(fault, 1, Mode::Down);
        assert!(w.app.delete(&w.who, att.id).await.is_err(), "{fault}");
        // Whatever is left is a tombstone: not listed, not fetchable.
        assert!(
            w.app.list_all(&w.who, &w.parent).await.unwrap().is_empty(),
            "{fault}"
        );
        assert!(w.app.get(&w.who, att.id).await.is_err(), "{fault}");
        w.assert_consistent().await;
        w.plan.clear();
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
    w.plan.fail("update_attachment", 1, Mode::Down);
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
            None,
        )
        .await;
    assert!(second.is_err());
    w.plan.clear();
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
            None,
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

/// The local server's health check says whether storage answers, without a key: 200, then 503
/// while the metadata store is down, then 200 again.
#[tokio::test]
async fn the_health_check_follows_storage() {
    let w = world().await;
    let app = App::new(
        Arc::new(FaultyMeta(w.meta.clone(), w.plan.clone())),
        Arc::new(FsBlobStore::new(
            w.blob_dir.clone(),
            "http://127.0.0.1:1",
            Signer::new([5; 32]),
        )),
        Signer::new([5; 32]),
        Limits::default(),
    );
    let cfg = attachments::Config::from_lookup(|_| None).unwrap();
    let built = attachments::setup::Built {
        app: Arc::new(app),
        fs_blobs: None,
    };
    let server = functions::local::Server::new(built, &cfg);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/healthz", listener.local_addr().unwrap());
    let _task = support::AbortOnDrop(tokio::spawn(functions::local::serve(server, listener)));

    let ok = support::fetch(&url).await.expect(200);
    assert_eq!(ok.json(), serde_json::json!({"status": "ok"}));
    assert_eq!(ok.header("cache-control"), "no-store");
    w.plan.fail("get_api_key", 1, Mode::Down);
    let down = support::fetch(&url).await.expect(503);
    assert_eq!(down.json(), serde_json::json!({"status": "unavailable"}));
    w.plan.clear();
    support::fetch(&url).await.expect(200);
    let post = support::request("POST", &url, &[], Bytes::new()).await;
    assert_eq!(post.status, 405);
}

/// A storage failure fails the finalize function's invocation (the error Lambda retries, then
/// hands to the dead-letter queue), rather than being swallowed.
#[tokio::test]
async fn a_storage_failure_fails_the_storage_event() {
    let w = world().await;
    w.plan.fail("expired_pending", 1, Mode::Down);
    let sweep = serde_json::json!({"detail-type": "Scheduled Event", "source": "aws.events"});
    let e = attachments::storage_events::handle(&w.app, &sweep)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("injected"), "{e}");
    w.plan.clear();
    assert_eq!(
        attachments::storage_events::handle(&w.app, &sweep)
            .await
            .unwrap(),
        0
    );
}
