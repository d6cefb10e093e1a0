//! Failures between the steps of an upload and of a delete, on the AWS backend: the real
//! DynamoDB and S3 adapters against moto and s3s-fs, wrapped in decorators that fail a chosen
//! call (before it reaches the peer, or after, as when an answer is lost), plus the failures
//! the peers produce themselves: a DynamoDB conditional write refused because another request
//! changed the item, an S3 endpoint that does not answer at all, and a DynamoDB that leaves
//! BatchGetItem keys unprocessed (moto never does; a proxy in front of it does, as a throttled
//! table would). After each, and after
//! `App::sweep`, the table and the bucket are read through the peers: no ready attachment lacks
//! its file, and no file is left that nothing points to.
//!
//! Run through `scripts/aws-peers.sh run -- cargo test -p attachments-shared --features
//! aws-tests --test aws_faults`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use attachments::domain::{
    Attachment, AttachmentId, AttachmentStatus, FileName, ParentId, ParentKind, ParentRef,
    Principal, TenantId,
};
use attachments::service::{
    AttachmentFields, Limits, NewFile, ParentFields, ServiceError, UploadTarget,
};
use attachments::signing::Signer;
use attachments::store::{BlobStore, MetadataStore};
use attachments::App;
use aws_sdk_dynamodb::types::AttributeValue;
use bytes::Bytes;
use support::aws::{attr, Peers, S3Peer};
use support::faults::{FaultyBlobs, FaultyMeta, Mode, Plan};
use support::AbortOnDrop;

// ---- the world ---------------------------------------------------------------------------------

/// Real adapters on a fresh table and bucket; `app` goes through the fault plan, `clean` (the
/// other requests, and the sweep) does not.
struct World {
    peers: Peers,
    plan: Arc<Plan>,
    app: Arc<App>,
    clean: Arc<App>,
    /// The real blob store, to read files back.
    blobs: Arc<dyn BlobStore>,
    who: Principal,
    parent: ParentRef,
    _s3_task: AbortOnDrop<std::io::Result<()>>,
    _tmp: tempfile::TempDir,
}

fn config(peers: &Peers) -> attachments::Config {
    let vars = peers.service_vars();
    attachments::Config::from_lookup(|k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
        .unwrap()
}

async fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let s3 = S3Peer::bind(&tmp.path().join("s3")).await;
    let peers = Peers::new(&s3.endpoint);
    let s3_task = AbortOnDrop(tokio::spawn(s3.serve()));
    peers.create().await;
    let (meta, blobs) =
        attachments::setup::aws_stores(&config(&peers), &peers.sdk(&[]).await, None)
            .await
            .unwrap();
    let meta: Arc<dyn MetadataStore> = Arc::new(meta);
    let blobs: Arc<dyn BlobStore> = Arc::new(blobs);
    let plan = Arc::new(Plan::default());
    let signer = Signer::new([7; 32]);
    let app = Arc::new(App::new(
        Arc::new(FaultyMeta(meta.clone(), plan.clone())),
        Arc::new(FaultyBlobs(blobs.clone(), plan.clone())),
        signer.clone(),
        Limits::default(),
    ));
    let clean = Arc::new(App::new(meta, blobs.clone(), signer, Limits::default()));
    let who = Principal {
        tenant: TenantId::parse("t1").unwrap(),
        owner: "owner".into(),
    };
    let parent = ParentRef::new(
        ParentKind::parse("profile").unwrap(),
        ParentId::parse("p1").unwrap(),
    );
    clean
        .put_parent(&who, parent.clone(), ParentFields::default())
        .await
        .unwrap();
    World {
        peers,
        plan,
        app,
        clean,
        blobs,
        who,
        parent,
        _s3_task: s3_task,
        _tmp: tmp,
    }
}

fn file(name: &str, body: &str) -> NewFile {
    NewFile {
        file_name: FileName::parse(name).unwrap(),
        bytes: Bytes::from(body.to_owned()),
    }
}

/// Everything the table and the bucket hold, read through the peers.
struct Stored {
    attachments: Vec<Attachment>,
    /// Blob keys of version records (`tenant/attachment/version`).
    versions: BTreeSet<String>,
    /// Attachment ids with a pointer item.
    pointers: BTreeSet<String>,
    /// Parents' counts of listed attachments, by parent id.
    counts: HashMap<String, i64>,
    /// Ids of the parents with a marker (they have listed attachments).
    markers: BTreeSet<String>,
    blobs: BTreeSet<String>,
}

impl Stored {
    /// The stored files, without the thumbnails beside them.
    fn files(&self) -> Vec<&String> {
        self.blobs
            .iter()
            .filter(|k| !k.ends_with("_thumb"))
            .collect()
    }
}

impl World {
    async fn upload(&self, app: &App, name: &str, body: &str) -> Result<Attachment, ServiceError> {
        app.upload(
            &self.who,
            &self.parent,
            file(name, body),
            AttachmentFields::default(),
            UploadTarget::New,
            None,
        )
        .await
    }

    async fn new_version(
        &self,
        app: &App,
        id: AttachmentId,
        body: &str,
    ) -> Result<Attachment, ServiceError> {
        app.upload(
            &self.who,
            &self.parent,
            file("v.txt", body),
            AttachmentFields::default(),
            UploadTarget::Existing(id),
            None,
        )
        .await
    }

    async fn stored(&self) -> Stored {
        let mut s = Stored {
            attachments: vec![],
            versions: BTreeSet::new(),
            pointers: BTreeSet::new(),
            counts: HashMap::new(),
            markers: BTreeSet::new(),
            blobs: self.peers.bucket_keys().await.into_iter().collect(),
        };
        for item in self.peers.table_items().await {
            let pk = attr(&item, "pk").unwrap();
            let sk = attr(&item, "sk").unwrap();
            let parts: Vec<&str> = pk.split('#').collect();
            if let Some(_id) = sk.strip_prefix("A#") {
                s.attachments
                    .push(serde_json::from_str(attr(&item, "doc").unwrap()).unwrap());
            } else if let Some(v) = sk.strip_prefix("V#") {
                s.versions.insert(format!("{}/{}/{v}", parts[1], parts[3]));
            } else if sk == "A" {
                s.pointers.insert(parts[3].to_owned());
            } else if sk == "P" {
                let n = match item.get("n") {
                    Some(AttributeValue::N(n)) => n.parse().unwrap(),
                    other => panic!("a parent without its count: {other:?}"),
                };
                s.counts.insert(parts[4].to_owned(), n);
            } else if parts.get(2) == Some(&"L") {
                s.markers.insert(sk.to_owned());
            }
        }
        s
    }

    /// The invariants, checked on what the peers hold.
    async fn assert_consistent(&self) -> Stored {
        let s = self.stored().await;
        let mut referenced = BTreeSet::new();
        for att in &s.attachments {
            assert!(
                matches!(
                    att.status,
                    AttachmentStatus::Ready | AttachmentStatus::Placeholder
                ),
                "a leftover survived the sweep: {:?} {}",
                att.status,
                att.id
            );
            assert!(
                s.pointers.contains(&att.id.to_string()),
                "attachment {} has no pointer",
                att.id
            );
            if let Some(v) = &att.content {
                let key = att.blob_key(v.id);
                assert!(s.blobs.contains(&key), "ready attachment without its file");
                let bytes = self
                    .blobs
                    .get_range(&key, None, 0, v.size + 1)
                    .await
                    .unwrap();
                assert_eq!(
                    attachments_sha256(&bytes),
                    v.sha256,
                    "the file is not the recorded content"
                );
                referenced.insert(key);
            }
        }
        // Each parent's count is exactly its listed attachments, and it has a marker exactly
        // when that is more than none.
        for (parent, n) in &s.counts {
            let listed = s
                .attachments
                .iter()
                .filter(|a| a.parent.id.as_str() == parent && a.status.is_listed())
                .count();
            assert_eq!(*n, listed as i64, "the count of parent {parent}");
            assert_eq!(s.markers.contains(parent), listed > 0, "marker of {parent}");
        }
        for parent in &s.markers {
            assert!(
                s.counts.contains_key(parent),
                "marker of a parent that is gone"
            );
        }
        for key in &s.versions {
            assert!(
                s.attachments
                    .iter()
                    .any(|a| key.starts_with(&format!("{}/{}/", a.tenant, a.id))),
                "version record {key} of a missing attachment"
            );
            referenced.insert(key.clone());
        }
        for key in &s.blobs {
            let file = key.strip_suffix("_thumb").unwrap_or(key);
            assert!(
                referenced.contains(file),
                "file {key} that nothing points to"
            );
        }
        for id in &s.pointers {
            assert!(
                s.attachments.iter().any(|a| &a.id.to_string() == id),
                "pointer {id} without its attachment"
            );
        }
        s
    }

    /// The sweep, as the scheduled function runs it, after every upload window has closed.
    async fn sweep_later(&self) {
        self.plan.clear();
        let later = time::OffsetDateTime::now_utc().unix_timestamp() + 2 * 86_400;
        self.clean.sweep(later).await.unwrap();
    }

    /// An attachment as the API sees it (hidden ones are not found).
    async fn visible(&self, id: AttachmentId) -> Option<Attachment> {
        self.clean
            .get_of_parent(&self.who, &self.parent, id)
            .await
            .ok()
    }
}

fn attachments_sha256(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

// ---- uploads ------------------------------------------------------------------------------

/// Each step of a new upload fails in turn, before and after reaching its peer: the upload is
/// refused, nothing is visible, and once the sweep has run nothing is left.
#[tokio::test]
async fn every_step_of_an_upload_failing_leaves_nothing() {
    for (op, mode) in [
        ("create_attachment", Mode::Before),
        ("create_attachment", Mode::After),
        ("put", Mode::Before),
        ("put_version", Mode::Before),
        ("put_version", Mode::After),
        ("update_attachment", Mode::Before),
        ("update_attachment", Mode::After),
    ] {
        let w = world().await;
        let kept = w.upload(&w.clean, "kept.txt", "kept").await.unwrap();
        w.plan.fail(op, 1, mode);
        let r = w.upload(&w.app, "a.txt", "fails").await;
        if op == "update_attachment" && mode == Mode::After {
            // The attachment turned ready at the peer; the lost answer made the service undo it.
            assert!(r.is_err(), "{op} {mode:?}");
        } else {
            assert!(r.is_err(), "{op} {mode:?}: {r:?}");
        }
        w.sweep_later().await;
        let s = w.assert_consistent().await;
        assert_eq!(
            s.attachments.iter().map(|a| a.id).collect::<Vec<_>>(),
            vec![kept.id],
            "{op} {mode:?}"
        );
        assert_eq!(s.files().len(), 1, "{op} {mode:?}: {:?}", s.blobs);
    }
}

/// S3 goes down after the file is stored: the clean-up cannot remove the file, so the pending
/// attachment stays (hidden) with it, and the sweep removes both.
#[tokio::test]
async fn a_clean_up_that_fails_is_finished_by_the_sweep() {
    let w = world().await;
    w.plan.fail("update_attachment", 1, Mode::Before);
    w.plan.fail("delete", 1, Mode::Down);
    assert!(w.upload(&w.app, "a.txt", "stuck").await.is_err());
    let s = w.stored().await;
    assert_eq!(s.attachments.len(), 1);
    assert_eq!(s.attachments[0].status, AttachmentStatus::Pending);
    assert!(w.visible(s.attachments[0].id).await.is_none());
    assert_eq!(
        s.files().len(),
        1,
        "the file is still there before the sweep"
    );
    w.sweep_later().await;
    let s = w.assert_consistent().await;
    assert!(s.attachments.is_empty() && s.blobs.is_empty() && s.versions.is_empty());
}

/// The bytes reached S3 but the answer was lost: the upload is refused, and nothing may keep
/// the file once the sweep has run.
#[tokio::test]
async fn a_lost_answer_from_s3_leaves_no_file_behind() {
    let w = world().await;
    w.plan.fail("put", 1, Mode::After);
    assert!(w.upload(&w.app, "a.txt", "landed anyway").await.is_err());
    w.sweep_later().await;
    let s = w.assert_consistent().await;
    assert!(s.attachments.is_empty(), "{:?}", s.attachments);
    assert!(s.blobs.is_empty(), "orphaned file: {:?}", s.blobs);
}

/// Another request deletes the pending attachment while its file is being stored: the upload's
/// conditional pending-to-ready write is refused by DynamoDB itself, and nothing is left.
#[tokio::test]
async fn a_concurrent_delete_refuses_the_ready_write() {
    let w = world().await;
    let clean = w.clean.clone();
    let who = w.who.clone();
    w.plan.race(
        AttachmentStatus::Pending,
        Box::new(move |att: Attachment| {
            Box::pin(async move {
                clean.delete(&who, att.id).await.unwrap();
            })
        }),
    );
    let r = w.upload(&w.app, "a.txt", "raced").await;
    assert!(r.is_err(), "{r:?}");
    let s = w.assert_consistent().await;
    assert!(s.attachments.is_empty() && s.blobs.is_empty());
    w.sweep_later().await;
    w.assert_consistent().await;
}

// ---- new versions ---------------------------------------------------------------------------

/// Each step of a new version failing keeps the previous content, its file and its record.
#[tokio::test]
async fn a_new_version_that_fails_keeps_the_previous_content() {
    for (op, mode) in [
        ("put", Mode::Before),
        ("put_version", Mode::Before),
        ("update_attachment", Mode::Before),
    ] {
        let w = world().await;
        let first = w.upload(&w.clean, "a.txt", "first").await.unwrap();
        w.plan.fail(op, 1, mode);
        assert!(w.new_version(&w.app, first.id, "second").await.is_err());
        w.sweep_later().await;
        let s = w.assert_consistent().await;
        assert_eq!(s.attachments.len(), 1);
        assert_eq!(s.attachments[0].content, first.content, "{op} {mode:?}");
        assert_eq!(s.files().len(), 1, "{op} {mode:?}: {:?}", s.blobs);
        assert_eq!(s.versions.len(), 1, "{op} {mode:?}");
    }
}

/// S3 goes down after a new version's file is stored and its ready write fails: the clean-up
/// cannot delete that file, and nothing records it for the sweep.
#[tokio::test]
async fn a_new_version_whose_clean_up_fails_leaves_no_file_behind() {
    let w = world().await;
    let first = w.upload(&w.clean, "a.txt", "first").await.unwrap();
    w.plan.fail("update_attachment", 1, Mode::Before);
    w.plan.fail("delete", 1, Mode::Down);
    assert!(w.new_version(&w.app, first.id, "second").await.is_err());
    w.sweep_later().await;
    let s = w.assert_consistent().await;
    assert_eq!(s.files().len(), 1, "{:?}", s.blobs);
}

/// Two versions at once: the one whose conditional write DynamoDB refuses (the current
/// version changed under it) removes its file and record; the other is current.
#[tokio::test]
async fn concurrent_versions_do_not_overwrite_each_other() {
    let w = world().await;
    let first = w.upload(&w.clean, "a.txt", "first").await.unwrap();
    let clean = w.clean.clone();
    let (who, parent) = (w.who.clone(), w.parent.clone());
    let winner: Arc<Mutex<Option<Attachment>>> = Arc::default();
    let slot = winner.clone();
    w.plan.race(
        AttachmentStatus::Ready,
        Box::new(move |att: Attachment| {
            Box::pin(async move {
                let won = clean
                    .upload(
                        &who,
                        &parent,
                        file("w.txt", "winner"),
                        AttachmentFields::default(),
                        UploadTarget::Existing(att.id),
                        None,
                    )
                    .await
                    .unwrap();
                *slot.lock().unwrap() = Some(won);
            })
        }),
    );
    let lost = w.new_version(&w.app, first.id, "loser").await;
    assert!(matches!(lost, Err(ServiceError::Conflict(_))), "{lost:?}");
    let won = winner.lock().unwrap().clone().unwrap();
    let s = w.assert_consistent().await;
    assert_eq!(s.attachments.len(), 1);
    assert_eq!(s.attachments[0].content, won.content);
    assert_eq!(s.versions.len(), 2, "first and winner");
    assert_eq!(s.files().len(), 2, "{:?}", s.blobs);
    w.sweep_later().await;
    w.assert_consistent().await;
}

// ---- deletes --------------------------------------------------------------------------------

/// Each step of a delete failing: the attachment is hidden at once (or untouched when the very
/// first step failed), and the sweep finishes the job.
#[tokio::test]
async fn a_delete_that_fails_half_way_is_hidden_then_finished_by_the_sweep() {
    for (op, mode, hidden) in [
        ("update_attachment", Mode::Before, false),
        ("list_versions", Mode::Before, true),
        ("delete", Mode::Before, true),
        ("delete", Mode::After, true),
        ("delete_attachment", Mode::Before, true),
        ("delete_attachment", Mode::After, true),
    ] {
        let w = world().await;
        let kept = w.upload(&w.clean, "kept.txt", "kept").await.unwrap();
        let att = w.upload(&w.clean, "a.txt", "to delete").await.unwrap();
        w.new_version(&w.clean, att.id, "second").await.unwrap();
        w.plan.fail(op, 1, mode);
        let r = w.app.delete(&w.who, att.id).await;
        if mode == Mode::After && op == "delete_attachment" {
            // Gone at the peer; only the answer was lost.
            assert!(r.is_err());
        } else {
            assert!(r.is_err(), "{op} {mode:?}");
        }
        assert_eq!(w.visible(att.id).await.is_none(), hidden, "{op} {mode:?}");
        let listed = w
            .clean
            .list_all(&w.who, &w.parent)
            .await
            .unwrap()
            .iter()
            .map(|a| a.id)
            .collect::<Vec<_>>();
        if hidden {
            assert_eq!(listed, vec![kept.id], "{op} {mode:?}");
        }
        w.sweep_later().await;
        let s = w.assert_consistent().await;
        if hidden {
            assert_eq!(
                s.attachments.iter().map(|a| a.id).collect::<Vec<_>>(),
                vec![kept.id],
                "{op} {mode:?}"
            );
            assert_eq!(s.files().len(), 1, "{op} {mode:?}: {:?}", s.blobs);
        } else {
            assert_eq!(s.attachments.len(), 2, "{op} {mode:?}");
            w.clean.delete(&w.who, att.id).await.unwrap();
            w.assert_consistent().await;
        }
    }
}

// ---- a dead S3 endpoint ---------------------------------------------------------------------

/// The service's own wiring, with S3 pointing at a port nobody listens on (a real connection
/// failure, not a decorator): an upload fails and leaves only a hidden pending record; a delete
/// fails half-way and hides the attachment; the sweep, once S3 is back, leaves the table and bucket clean.
#[tokio::test]
async fn s3_unreachable_during_upload_and_delete() {
    let w = world().await;
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        format!("http://{addr}")
    };
    let sdk = w.peers.sdk(&[("AWS_ENDPOINT_URL_S3", dead)]).await;
    let down = attachments::setup::build_aws(&config(&w.peers), &sdk, None)
        .await
        .unwrap()
        .app;
    let kept = w.upload(&w.clean, "kept.txt", "kept").await.unwrap();
    let r = w.upload(&down, "a.txt", "never stored").await;
    assert!(matches!(r, Err(ServiceError::Internal(_))), "{r:?}");
    // S3 is down, so the clean-up cannot make sure no byte landed: the record stays pending
    // (never listed, never visible) for the sweep to finish once S3 is back.
    let s = w.stored().await;
    let leftovers: Vec<_> = s.attachments.iter().filter(|a| a.id != kept.id).collect();
    assert_eq!(leftovers.len(), 1, "{:?}", s.attachments);
    assert_eq!(leftovers[0].status, AttachmentStatus::Pending);
    assert!(
        w.visible(leftovers[0].id).await.is_none(),
        "a pending upload is never visible"
    );
    let r = down.delete(&w.who, kept.id).await;
    assert!(matches!(r, Err(ServiceError::Internal(_))), "{r:?}");
    assert!(w.visible(kept.id).await.is_none(), "hidden at once");
    assert_eq!(w.stored().await.files().len(), 1, "the file is still there");
    w.sweep_later().await;
    let s = w.assert_consistent().await;
    assert!(s.attachments.is_empty() && s.blobs.is_empty() && s.pointers.is_empty());
}

// ---- DynamoDB leaving keys unprocessed ------------------------------------------------------

/// How the DynamoDB in front of moto throttles.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stingy {
    /// On BatchGetItem, half the items found go back as unprocessed keys, as DynamoDB does when
    /// throttled (the last one of a call is always answered, so every retry makes progress).
    Half,
    /// On BatchGetItem, every key goes back unprocessed: the table stays throttled.
    Nothing,
    /// The first this many TransactWriteItems are cancelled, one item throttled
    /// (`ThrottlingError`), the others `None`, as DynamoDB cancels a transaction one of whose
    /// items' partitions is throttled; moto never sees them.
    Transactions(usize),
}

/// DynamoDB's answer to a transaction cancelled because one of its items was throttled.
fn throttled_transaction(request: &[u8]) -> Bytes {
    use serde_json::{json, Value};
    let asked: Value = serde_json::from_slice(request).unwrap();
    let n = asked["TransactItems"].as_array().map_or(1, Vec::len);
    let reasons: Vec<Value> = (0..n)
        .map(|i| {
            if i == 0 {
                json!({"Code": "ThrottlingError", "Message": "Throughput exceeds the current capacity for one or more global secondary indexes. DynamoDB is automatically scaling your index so please try again shortly."})
            } else {
                json!({"Code": "None"})
            }
        })
        .collect();
    let codes: Vec<&str> = (0..n)
        .map(|i| if i == 0 { "ThrottlingError" } else { "None" })
        .collect();
    Bytes::from(
        serde_json::to_vec(&json!({
            "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
            "Message": format!("Transaction cancelled, please refer cancellation reasons for specific reasons [{}]", codes.join(", ")),
            "CancellationReasons": reasons,
        }))
        .unwrap(),
    )
}

/// A DynamoDB endpoint that forwards every call to moto, throttling some as `mode` says: on
/// BatchGetItem it moves items of moto's answer into `UnprocessedKeys`; a TransactWriteItems it
/// cancels is answered without reaching moto. Returns its endpoint and the count of keys moved
/// or transactions cancelled.
async fn stingy_dynamodb(
    moto: String,
    mode: Stingy,
) -> (String, Arc<AtomicUsize>, AbortOnDrop<()>) {
    use http_body_util::{BodyExt, Full};
    use hyper::service::service_fn;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use serde_json::{json, Value};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let moved = Arc::new(AtomicUsize::new(0));
    let counter = moved.clone();
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (client, moto, moved) = (client.clone(), moto.clone(), counter.clone());
            let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let (client, moto, moved) = (client.clone(), moto.clone(), moved.clone());
                async move {
                    let (parts, body) = req.into_parts();
                    let body = body.collect().await?.to_bytes();
                    let target = |op: &str| {
                        parts
                            .headers
                            .get("x-amz-target")
                            .is_some_and(|t| t == format!("DynamoDB_20120810.{op}").as_str())
                    };
                    let batch_get = target("BatchGetItem");
                    if let Stingy::Transactions(times) = mode {
                        if target("TransactWriteItems")
                            && moved.fetch_add(1, Ordering::SeqCst) < times
                        {
                            return Ok(http::Response::builder()
                                .status(400)
                                .header("content-type", "application/x-amz-json-1.0")
                                .body(Full::new(throttled_transaction(&body)))
                                .unwrap());
                        }
                    }
                    let mut forward = http::Request::builder()
                        .method(parts.method.clone())
                        .uri(format!("{moto}{}", parts.uri.path()));
                    for (k, v) in &parts.headers {
                        forward = forward.header(k, v);
                    }
                    let resp = client
                        .request(forward.body(Full::new(body.clone())).unwrap())
                        .await
                        .unwrap();
                    let (mut rparts, rbody) = resp.into_parts();
                    let mut rbody = rbody.collect().await?.to_bytes();
                    if batch_get && rparts.status.is_success() {
                        let asked: Value = serde_json::from_slice(&body).unwrap();
                        let mut answer: Value = serde_json::from_slice(&rbody).unwrap();
                        let mut unprocessed = serde_json::Map::new();
                        for (table, request) in asked["RequestItems"].as_object().unwrap() {
                            let items = answer["Responses"][table].as_array_mut().unwrap();
                            let keys: Vec<Value> = match mode {
                                Stingy::Transactions(_) => Vec::new(),
                                Stingy::Nothing => {
                                    items.clear();
                                    request["Keys"].as_array().unwrap().clone()
                                }
                                Stingy::Half => items
                                    .split_off(items.len().div_ceil(2))
                                    .iter()
                                    .map(|i| json!({"pk": i["pk"], "sk": i["sk"]}))
                                    .collect(),
                            };
                            if !keys.is_empty() {
                                moved.fetch_add(keys.len(), Ordering::Relaxed);
                                unprocessed.insert(
                                    table.clone(),
                                    json!({"Keys": keys, "ConsistentRead": true}),
                                );
                            }
                        }
                        answer["UnprocessedKeys"] = Value::Object(unprocessed);
                        rbody = Bytes::from(serde_json::to_vec(&answer).unwrap());
                        rparts.headers.remove(http::header::CONTENT_LENGTH);
                        rparts.headers.remove("x-amz-crc32");
                    }
                    Ok::<_, hyper::Error>(http::Response::from_parts(rparts, Full::new(rbody)))
                }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (endpoint, moved, AbortOnDrop(task))
}

/// An app whose DynamoDB is moto behind [`stingy_dynamodb`], and the count of keys it moved.
async fn throttled_app(w: &World, mode: Stingy) -> (Arc<App>, Arc<AtomicUsize>, AbortOnDrop<()>) {
    let (endpoint, moved, proxy) = stingy_dynamodb(w.peers.dynamodb_endpoint.clone(), mode).await;
    let sdk = w
        .peers
        .sdk(&[("AWS_ENDPOINT_URL_DYNAMODB", endpoint)])
        .await;
    let app = attachments::setup::build_aws(&config(&w.peers), &sdk, None)
        .await
        .unwrap()
        .app;
    (app, moved, proxy)
}

/// Records of the records API, each with files, stored through the clean app.
async fn records_with_files(w: &World, n: usize, files: usize) -> (ParentKind, Vec<ParentId>) {
    let kind = ParentKind::parse("deal").unwrap();
    let mut ids = Vec::new();
    for r in 0..n {
        let id = ParentId::parse(&format!("7d3f1e2a-9b4c-4d5e-8f6a-{r:012}")).unwrap();
        let parent = ParentRef::new(kind.clone(), id.clone());
        w.clean
            .put_parent(&w.who, parent.clone(), ParentFields::default())
            .await
            .unwrap();
        for f in 0..files {
            w.clean
                .upload(
                    &w.who,
                    &parent,
                    file(&format!("f{f}.txt"), &format!("record {r} file {f}")),
                    AttachmentFields::default(),
                    UploadTarget::New,
                    None,
                )
                .await
                .unwrap();
        }
        ids.push(id);
    }
    (kind, ids)
}

#[tokio::test]
async fn keys_left_unprocessed_are_read_again_until_every_record_is_there() {
    let w = world().await;
    let (kind, ids) = records_with_files(&w, 10, 3).await;
    let (throttled, moved, _proxy) = throttled_app(&w, Stingy::Half).await;
    let records = throttled
        .attachments_of_records(&w.who, &kind, &ids)
        .await
        .unwrap();
    assert!(
        moved.load(Ordering::Relaxed) > 0,
        "no key was left unprocessed"
    );
    assert_eq!(records.len(), 10);
    for (id, atts) in &records {
        let mut names: Vec<&str> = atts
            .iter()
            .map(|a| a.content.as_ref().unwrap().file_name.as_str())
            .collect();
        names.sort_unstable();
        assert_eq!(names, ["f0.txt", "f1.txt", "f2.txt"], "record {id}");
    }
    // The same answer as without throttling.
    let direct = w
        .clean
        .attachments_of_records(&w.who, &kind, &ids)
        .await
        .unwrap();
    let ids_of = |r: &[(ParentId, Vec<Attachment>)]| {
        r.iter()
            .map(|(p, a)| (p.clone(), a.iter().map(|a| a.id).collect::<BTreeSet<_>>()))
            .collect::<Vec<_>>()
    };
    assert_eq!(ids_of(&records), ids_of(&direct));
}

#[tokio::test]
async fn keys_that_stay_unprocessed_are_an_error_not_a_shorter_answer() {
    let w = world().await;
    let (kind, ids) = records_with_files(&w, 3, 1).await;
    let (throttled, moved, _proxy) = throttled_app(&w, Stingy::Nothing).await;
    let r = throttled.attachments_of_records(&w.who, &kind, &ids).await;
    assert!(matches!(r, Err(ServiceError::Internal(_))), "{r:?}");
    assert!(
        moved.load(Ordering::Relaxed) >= 3 * 12,
        "every attempt was refused"
    );
}

// ---- DynamoDB cancelling throttled transactions ---------------------------------------------

/// A transaction one of whose items is throttled comes back cancelled (the SDK does not retry
/// that): the store tries again, with backoff, until DynamoDB takes it. An upload (two
/// transactions) and a deletion go through, and the table is as without throttling.
#[tokio::test]
async fn throttled_transactions_are_retried_until_they_succeed() {
    let w = world().await;
    let (throttled, cancelled, _proxy) = throttled_app(&w, Stingy::Transactions(3)).await;
    let att = w.upload(&throttled, "a.txt", "throttled").await.unwrap();
    assert_eq!(
        cancelled.load(Ordering::SeqCst),
        3 + 2,
        "3 cancelled, then 2 taken"
    );
    assert_eq!(att.status, AttachmentStatus::Ready);
    assert!(w.visible(att.id).await.is_some());
    let s = w.assert_consistent().await;
    assert_eq!(s.attachments.len(), 1);
    assert_eq!(s.files().len(), 1);
    throttled.delete(&w.who, att.id).await.unwrap();
    let s = w.assert_consistent().await;
    assert!(s.attachments.is_empty() && s.files().is_empty());
}

/// A table that stays throttled: the transaction is tried a bounded number of times, then the
/// upload fails (500, never a hang) and leaves nothing the sweep cannot finish.
#[tokio::test]
async fn transactions_throttled_for_good_fail_after_bounded_attempts() {
    let w = world().await;
    let (throttled, cancelled, _proxy) = throttled_app(&w, Stingy::Transactions(usize::MAX)).await;
    let r = w.upload(&throttled, "a.txt", "never").await;
    assert!(matches!(r, Err(ServiceError::Internal(_))), "{r:?}");
    let tries = cancelled.load(Ordering::SeqCst);
    assert!((2..=12).contains(&tries), "{tries} attempts");
    w.sweep_later().await;
    let s = w.assert_consistent().await;
    assert!(s.attachments.is_empty() && s.blobs.is_empty());
}
