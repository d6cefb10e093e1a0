//! The behaviour suite on the AWS backend: DynamoDB served by moto and S3 served by s3s-fs with
//! SigV4 verification (see `support/aws.rs`), every function `embedded.rs` runs, plus what only
//! S3 links show: a link is a real presigned URL, refused with 403 once changed or expired.
//!
//! Run through `scripts/aws-peers.sh run -- cargo test -p attachments-shared --features
//! aws-tests --test aws --test aws_faults`; without the script's moto the tests fail, they
//! never skip.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod behaviour;
mod support;

use support::*;

macro_rules! on_aws {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            behaviour::$name(&Harness::aws().await).await;
        }
    )*};
}

on_aws!(
    walkthrough,
    parents,
    auth,
    cross_tenant,
    bad_input,
    tampered_links
);

#[tokio::test]
async fn expired_links() {
    // S3 dates a signature to the second: a 1 s link signed late in a second can expire before
    // the first fetch. 2 s is still well inside the suite's 2.6 s wait.
    let h = Harness::aws_with(Opts::var("ATTACHMENTS_LINK_TTL_SECONDS", "2")).await;
    behaviour::expired_links(&h).await;
}

/// Direct uploads go to s3s: form POSTs under a SigV4 POST policy, presigned multipart parts.
macro_rules! direct_on_aws {
    ($($name:ident),* $(,)?) => {
        mod direct {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    // A form threshold below 50 MiB, so that the multipart path is taken.
                    let h = Harness::aws_with(Opts::var(
                        "ATTACHMENTS_DIRECT_POST_MAX_BYTES",
                        (4 * 1024 * 1024).to_string(),
                    ))
                    .await;
                    behaviour::direct::$name(&h).await;
                }
            )*
        }
    };
}

direct_on_aws!(
    form_upload,
    form_policy_is_enforced,
    multipart_resume,
    multipart_refused_at_completion,
    type_checked_at_completion,
    concurrent_completion_and_events,
    expired_uploads_are_swept,
    oldest_unverified_upload,
    placeholder_gets_its_file,
    direct_bad_input,
);

/// A suite of another API, in a module named after it (`--test aws crafter::`).
macro_rules! dialect_on_aws {
    ($dialect:ident: $($name:ident),* $(,)?) => {
        mod $dialect {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    behaviour::$dialect::$name(&Harness::aws().await).await;
                }
            )*
        }
    };
}

dialect_on_aws!(
    records: records_seed_many,
    records_seed_all,
    records_errors,
    records_versions,
    records_delete,
    records_thumbnails,
    records_bomb
);

// Not here: `svg_downloads` also wants `X-Content-Type-Options: nosniff`, which only the local
// server's links add (a presigned S3 GET cannot ask for it; S3 links serve from S3's own origin
// and always as an attachment); `internal_error` breaks the embedded data folder on purpose.
dialect_on_aws!(
    crafter: seed_examples,
    same_name_replaces,
    file_sizes,
    unknown_attachment,
    errors,
    cross_tenant
);

dialect_on_aws!(hrflow: lookups, errors, cross_tenant);

dialect_on_aws!(
    assets: seed_examples,
    placeholder_content,
    errors,
    title_in_characters,
    cross_tenant
);

#[tokio::test]
async fn crafter_file_limit() {
    let h = Harness::aws_with(Opts::var("ATTACHMENTS_CRAFTER_MAX_FILE_BYTES", "3000")).await;
    behaviour::crafter::file_limit(&h).await;
}

#[tokio::test]
async fn crafter_configured_types() {
    let h = Harness::aws_with(Opts::var(
        "ATTACHMENTS_CRAFTER_ALLOWED_TYPES",
        "application/pdf",
    ))
    .await;
    behaviour::crafter::configured_types(&h).await;
}

/// A link is a real SigV4-presigned S3 URL, checked by s3s: fetched with a plain HTTP client it
/// gives the exact bytes with the signed type and disposition; any change to what was signed is
/// refused with 403 (expiry: `expired_links`).
#[tokio::test]
async fn presigned_links_are_verified_by_s3() {
    let h = Harness::aws().await;
    h.parent(KEY_A, "profile", "p1").await;
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let up = h
        .post_form(
            "/v1/parents/profile/p1/attachments",
            KEY_A,
            &Form::new().file("file", "data file.bin", &bytes),
        )
        .await
        .expect(201)
        .json();
    let item = &up["items"][0];
    let url = item["download_url"].as_str().unwrap().to_owned();
    assert!(
        !url.starts_with(&h.base),
        "served by S3, not the API: {url}"
    );
    for part in [
        "X-Amz-Algorithm=AWS4-HMAC-SHA256",
        "X-Amz-Expires=900",
        "X-Amz-SignedHeaders=host",
        "X-Amz-Signature=",
        "response-content-type=",
        "response-content-disposition=attachment",
    ] {
        assert!(url.contains(part), "{part} in {url}");
    }
    let ok = fetch(&url).await.expect(200);
    assert_eq!(ok.body.len(), bytes.len());
    assert_eq!(&ok.body[..], &bytes[..]);
    assert_eq!(
        ok.header("content-type"),
        item["content_type"].as_str().unwrap()
    );
    assert_eq!(
        ok.header("content-disposition"),
        "attachment; filename*=UTF-8''data%20file.bin"
    );

    let (base, sig) = url.split_once("&X-Amz-Signature=").unwrap();
    let flipped = {
        let mut s: Vec<char> = sig.chars().collect();
        s[10] = if s[10] == 'a' { 'b' } else { 'a' };
        s.into_iter().collect::<String>()
    };
    let ct = item["content_type"].as_str().unwrap().replace('/', "%2F");
    let tampered = [
        ("signature", format!("{base}&X-Amz-Signature={flipped}")),
        ("no signature", base.to_owned()),
        (
            "content type",
            url.replace(
                &format!("response-content-type={ct}"),
                "response-content-type=text%2Fhtml",
            ),
        ),
        (
            "disposition",
            url.replace(
                "response-content-disposition=attachment",
                "response-content-disposition=inline",
            ),
        ),
        (
            "lifetime",
            url.replace("X-Amz-Expires=900", "X-Amz-Expires=604800"),
        ),
    ];
    for (what, link) in tampered {
        assert_ne!(link, url, "{what}");
        let r = fetch(&link).await;
        assert_eq!(
            r.status.as_u16(),
            403,
            "{what}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    // Another object under the same signature.
    let other = url.replacen(
        item["id"].as_str().unwrap(),
        "01a2088c-5cf6-7bb1-9e84-4d3aa2c3f1e0",
        1,
    );
    assert_eq!(fetch(&other).await.status.as_u16(), 403);
}

/// The adapters themselves against the peers, beside SQLite: every listing, page by page, with
/// hidden items between listed ones, gives exactly what the SQLite store gives; the S3 store
/// refuses bytes that do not match their checksum.
mod adapters {
    use super::support::aws::{Peers, S3Peer};
    use attachments::domain::{
        Attachment, AttachmentId, AttachmentStatus, FileName, Parent, ParentId, ParentKind,
        ParentRef, PendingUpload, TenantId, Version, VersionId,
    };
    use attachments::store::dynamo::DynamoStore;
    use attachments::store::sqlite::SqliteStore;
    use attachments::store::{BlobStore, Expected, MetadataStore, StoreError};
    use bytes::Bytes;

    async fn stores() -> (
        DynamoStore,
        SqliteStore,
        attachments::store::s3::S3BlobStore,
        S3Task,
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let s3 = S3Peer::bind(&tmp.path().join("s3")).await;
        let peers = Peers::new(&s3.endpoint);
        let task = tokio::spawn(s3.serve());
        peers.create().await;
        let vars = peers.service_vars();
        let cfg = attachments::Config::from_lookup(|k| {
            vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })
        .unwrap();
        let (dynamo, s3) = attachments::setup::aws_stores(&cfg, &peers.settings(&[])).unwrap();
        (
            dynamo,
            SqliteStore::in_memory().unwrap(),
            s3,
            S3Task(task, tmp),
        )
    }

    /// The S3 server's task and folder, kept for as long as the test runs.
    struct S3Task(
        tokio::task::JoinHandle<std::io::Result<()>>,
        #[allow(dead_code)] tempfile::TempDir,
    );
    impl Drop for S3Task {
        fn drop(&mut self) {
            self.0.abort();
        }
    }

    fn parent(id: &str) -> ParentRef {
        ParentRef::new(
            ParentKind::parse("profile").unwrap(),
            ParentId::parse(id).unwrap(),
        )
    }

    async fn put_parent(s: &dyn MetadataStore, t: &TenantId, key: &ParentRef) {
        let now = time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        s.put_parent(&Parent {
            tenant: t.clone(),
            key: key.clone(),
            source: None,
            reference: None,
            email: None,
            created_at: now,
            updated_at: now,
        })
        .await
        .unwrap();
    }

    fn attachment(
        t: &TenantId,
        p: &ParentRef,
        status: AttachmentStatus,
        exp: Option<i64>,
    ) -> Attachment {
        let now = time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let content = (status != AttachmentStatus::Placeholder).then(|| Version {
            id: VersionId::new(),
            file_name: FileName::parse("a.txt").unwrap(),
            content_type: "text/plain".into(),
            size: 1,
            md5: "m".into(),
            sha256: "s".into(),
            created_at: now,
        });
        Attachment {
            tenant: t.clone(),
            id: AttachmentId::new(),
            parent: p.clone(),
            label: "file".into(),
            title: Some("# and % in a title".into()),
            description: None,
            category: None,
            tags: vec!["x".into()],
            status,
            owner: "o".into(),
            external_id: None,
            content,
            created_at: now,
            updated_at: now,
            expires_at: exp,
            upload: None,
            problem: None,
        }
    }

    /// Two new versions of one attachment started at once: each read the attachment before the
    /// other wrote its intent, so each expects the same status and content. Only the first may
    /// record its intent; the second must find a conflict, not overwrite it (which would leave
    /// the first one's file unknown to the sweep).
    #[tokio::test]
    async fn a_new_version_cannot_overwrite_another_under_way() {
        let (dynamo, sqlite, _s3, _task) = stores().await;
        let stores: [&dyn MetadataStore; 2] = [&dynamo, &sqlite];
        let t = TenantId::parse("a").unwrap();
        let p = parent("p");
        for s in stores {
            put_parent(s, &t, &p).await;
            let current = attachment(&t, &p, AttachmentStatus::Ready, None);
            s.create_attachment(&current).await.unwrap();
            let intent = || {
                let mut a = current.clone();
                let mut version = current.content.clone().unwrap();
                version.id = VersionId::new();
                a.upload = Some(PendingUpload {
                    version,
                    declared_sha256: None,
                    multipart: None,
                    expires_at: 1_700_000_600,
                });
                a.expires_at = Some(1_700_000_600);
                a
            };
            let (first, second) = (intent(), intent());
            s.update_attachment(&first, Expected::of(&current))
                .await
                .unwrap();
            assert!(matches!(
                s.update_attachment(&second, Expected::of(&current)).await,
                Err(StoreError::Conflict(_))
            ));
            // The first one finishes: its version becomes the content.
            let mut done = first.clone();
            done.content = first.upload.as_ref().map(|u| u.version.clone());
            done.upload = None;
            done.expires_at = None;
            s.update_attachment(&done, Expected::of(&first))
                .await
                .unwrap();
            assert_eq!(s.get_attachment(&t, current.id).await.unwrap(), Some(done));
            // The second, retried from what is stored now, records its intent.
            let stored = s.get_attachment(&t, current.id).await.unwrap().unwrap();
            let mut retry = stored.clone();
            retry.upload = second.upload.clone();
            s.update_attachment(&retry, Expected::of(&stored))
                .await
                .unwrap();
        }
    }

    #[tokio::test]
    async fn listings_match_the_sqlite_store_page_by_page() {
        let (dynamo, sqlite, _s3, _task) = stores().await;
        let stores: [&dyn MetadataStore; 2] = [&dynamo, &sqlite];
        let t = TenantId::parse("a").unwrap();
        let (p, q, empty) = (parent("p"), parent("q"), parent("empty"));
        use AttachmentStatus::*;
        let mut atts = vec![];
        for (par, status, exp) in [
            (&p, Ready, None),
            (&p, Pending, Some(100)),
            (&p, Placeholder, None),
            (&p, Pending, Some(300)),
            (&p, Ready, None),
            (&p, Deleted, Some(200)),
            (&p, Ready, Some(400)),
            (&p, Rejected, Some(50)),
            (&p, Ready, None),
            (&q, Ready, None),
            (&q, Placeholder, None),
            (&empty, Pending, Some(10)),
        ] {
            atts.push(attachment(&t, par, status, exp));
        }
        for s in stores {
            for key in [&p, &q, &empty] {
                put_parent(s, &t, key).await;
            }
            for a in &atts {
                s.create_attachment(a).await.unwrap();
            }
        }
        for hidden in [false, true] {
            for limit in 1..=10 {
                let mut pages: Vec<Vec<(Vec<AttachmentId>, Option<AttachmentId>)>> = vec![];
                for s in stores {
                    let mut after = None;
                    let mut seen = vec![];
                    loop {
                        let page = s
                            .list_attachments(&t, &p, after, limit, hidden)
                            .await
                            .unwrap();
                        seen.push((page.items.iter().map(|a| a.id).collect(), page.next_after));
                        match page.next_after {
                            Some(a) => after = Some(a),
                            None => break,
                        }
                    }
                    pages.push(seen);
                }
                assert_eq!(pages[0], pages[1], "limit {limit}, hidden {hidden}");
            }
        }
        // A cursor on an attachment that is gone still positions the listing.
        let gone = atts[4].id;
        for s in stores {
            assert!(s.delete_attachment(&t, gone).await.unwrap());
            assert!(!s.delete_attachment(&t, gone).await.unwrap());
        }
        let a = dynamo
            .list_attachments(&t, &p, Some(gone), 2, false)
            .await
            .unwrap();
        let b = sqlite
            .list_attachments(&t, &p, Some(gone), 2, false)
            .await
            .unwrap();
        assert_eq!(a, b);
        assert_eq!(a.items.len(), 2);

        let many = [q.clone(), empty.clone(), p.clone(), parent("unknown")];
        let (a, b) = (
            dynamo.list_attachments_of_many(&t, &many).await.unwrap(),
            sqlite.list_attachments_of_many(&t, &many).await.unwrap(),
        );
        assert_eq!(a, b);
        assert_eq!(a.len(), 2 + 4);
        let kind = ParentKind::parse("profile").unwrap();
        let (a, b) = (
            dynamo.parents_with_attachments(&t, &kind).await.unwrap(),
            sqlite.parents_with_attachments(&t, &kind).await.unwrap(),
        );
        assert_eq!(a, b);
        assert_eq!(a, vec![p.clone(), q.clone()]);
        for (before, limit) in [(0, 10), (60, 10), (250, 10), (1000, 2), (1000, 100)] {
            let (a, b) = (
                dynamo.expired_pending(before, limit).await.unwrap(),
                sqlite.expired_pending(before, limit).await.unwrap(),
            );
            assert_eq!(
                a.iter().map(|x| x.id).collect::<Vec<_>>(),
                b.iter().map(|x| x.id).collect::<Vec<_>>(),
                "before {before}, limit {limit}"
            );
        }
        let mut got = dynamo
            .get_parents(&t, &[q.clone(), parent("unknown"), p.clone()])
            .await
            .unwrap();
        got.sort_by(|x, y| x.key.id.cmp(&y.key.id));
        assert_eq!(
            got.iter().map(|x| x.key.clone()).collect::<Vec<_>>(),
            vec![p.clone(), q.clone()]
        );
        // Another tenant sees none of it.
        let other = TenantId::parse("b").unwrap();
        assert!(dynamo
            .get_attachment(&other, atts[0].id)
            .await
            .unwrap()
            .is_none());
        assert!(dynamo
            .list_attachments_of_many(&other, &many)
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn s3_refuses_bytes_that_do_not_match_their_checksum() {
        let (_d, _s, s3, _task) = stores().await;
        let key = "t/a-1/v-1";
        let data = Bytes::from_static(b"hello world");
        let sha: [u8; 32] = {
            use sha2::Digest;
            sha2::Sha256::digest(&data).into()
        };
        let mut wrong = sha;
        wrong[0] ^= 1;
        let e = s3
            .put(key, data.clone(), "text/plain", &wrong)
            .await
            .unwrap_err();
        assert!(
            matches!(e, StoreError::Unavailable(ref m) if m.contains("BadDigest")),
            "{e}"
        );
        assert_eq!(s3.head(key).await.unwrap(), None);
        s3.put(key, data.clone(), "text/plain", &sha).await.unwrap();
        assert_eq!(s3.head(key).await.unwrap().unwrap().size, 11);
        assert_eq!(&s3.get_range(key, 6, 100).await.unwrap()[..], b"world");
        assert_eq!(&s3.get_range(key, 0, 5).await.unwrap()[..], b"hello");
        assert!(s3.get_range(key, 50, 5).await.unwrap().is_empty());
        assert!(s3.get_range(key, 3, 0).await.unwrap().is_empty());
        s3.delete(key).await.unwrap();
        s3.delete(key).await.unwrap();
        assert_eq!(s3.head(key).await.unwrap(), None);
        assert!(matches!(
            s3.get_range(key, 0, 5).await,
            Err(StoreError::NotFound)
        ));
    }
}

/// Conditional reads: `ETag` and `304` on the native listing and metadata.
#[tokio::test]
async fn conditional_listings() {
    behaviour::conditional_listings(&Harness::aws().await).await;
}

/// Conditional reads in every API's listing.
#[tokio::test]
async fn conditional_dialect_listings() {
    behaviour::conditional_dialect_listings(&Harness::aws().await).await;
}

#[tokio::test]
async fn conditional_link_windows() {
    let h = Harness::aws_with(Opts::var("ATTACHMENTS_LINK_TTL_SECONDS", "4")).await;
    behaviour::conditional_link_windows(&h, 4).await;
}

/// Under a sampled Lambda invocation, every DynamoDB and S3 call of an upload reaches the X-Ray
/// daemon as a subsegment of the function's segment, with its operation and request id.
#[tokio::test]
async fn aws_calls_are_xray_subsegments() {
    use attachments::domain::{FileName, ParentId, ParentKind, ParentRef, Principal, TenantId};
    use attachments::service::{
        AttachmentFields, NewFile, ParentFields, UploadRules, UploadTarget,
    };
    use tracing::Instrument;
    use tracing_subscriber::prelude::*;

    let h = Harness::aws().await;
    let daemon = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    daemon
        .set_read_timeout(Some(std::time::Duration::from_millis(500)))
        .unwrap();
    let layer = attachments::telemetry::xray::XrayLayer::new(daemon.local_addr().unwrap())
        .unwrap()
        .with_filter(attachments::telemetry::xray::interest());
    let _subscriber = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    let header = "Root=1-65dfb5a1-0123456789abcdef01234567;Parent=0123456789abcdef;Sampled=1";
    let invoke = tracing::info_span!(
        "Lambda runtime invoke",
        requestId = "r",
        xrayTraceId = header
    );
    let who = Principal {
        tenant: TenantId::parse("a").unwrap(),
        owner: "o".into(),
    };
    let parent = ParentRef::new(
        ParentKind::parse("profile").unwrap(),
        ParentId::parse("traced").unwrap(),
    );
    async {
        h.app
            .put_parent(&who, parent.clone(), ParentFields::default())
            .await
            .unwrap();
        let file = NewFile {
            file_name: FileName::parse("traced.txt").unwrap(),
            bytes: bytes::Bytes::from_static(b"hello, traced world"),
        };
        h.app
            .upload(
                &who,
                &parent,
                file,
                AttachmentFields::default(),
                UploadTarget::New,
                UploadRules::default(),
            )
            .await
            .unwrap();
    }
    .instrument(invoke)
    .await;
    let mut docs = Vec::new();
    let mut buf = [0u8; 65_536];
    while let Ok(n) = daemon.recv(&mut buf) {
        let text = std::str::from_utf8(&buf[..n]).unwrap();
        let (head, doc) = text.split_once('\n').unwrap();
        assert_eq!(head, r#"{"format": "json", "version": 1}"#);
        docs.push(serde_json::from_str::<serde_json::Value>(doc).unwrap());
    }
    let ops: Vec<String> = docs
        .iter()
        .map(|d| {
            format!(
                "{} {}",
                d["name"].as_str().unwrap(),
                d["aws"]["operation"].as_str().unwrap()
            )
        })
        .collect();
    assert!(ops.iter().any(|o| o.starts_with("DynamoDB ")), "{ops:?}");
    assert!(ops.iter().any(|o| o == "S3 PutObject"), "{ops:?}");
    for d in &docs {
        assert_eq!(d["type"], "subsegment", "{d}");
        assert_eq!(d["namespace"], "aws");
        assert_eq!(d["trace_id"], "1-65dfb5a1-0123456789abcdef01234567");
        assert_eq!(d["parent_id"], "0123456789abcdef");
        assert_eq!(d["aws"]["region"], support::aws::REGION);
        assert!(d["http"]["response"]["status"].as_u64().is_some(), "{d}");
    }
    // The peers name their requests: moto (DynamoDB) does, and X-Ray shows the id.
    assert!(
        docs.iter()
            .any(|d| d["name"] == "DynamoDB" && d["aws"]["request_id"].is_string()),
        "{docs:?}"
    );
}

/// The finalize function's dead-letter queue (on moto's SQS): a redrive handles the storage
/// event that can now succeed (and deletes it) and leaves the one that still fails.
#[tokio::test]
async fn dead_letters_are_redriven() {
    use attachments::aws::sqs::SqsClient;
    use attachments::aws::{Http, RequestSigner};

    let h = Harness::aws().await;
    let settings = || {
        attachments::config::aws_settings(|k| match k {
            "AWS_ACCESS_KEY_ID" => Some(support::aws::ACCESS_KEY.into()),
            "AWS_SECRET_ACCESS_KEY" => Some(support::aws::SECRET_KEY.into()),
            "AWS_REGION" => Some(support::aws::REGION.into()),
            _ => None,
        })
        .unwrap()
    };
    let client = |url: &str| {
        let s = settings();
        SqsClient::new(
            Http::new(None).unwrap(),
            url,
            RequestSigner::new(s.credentials, s.region, "sqs"),
        )
        .unwrap()
    };
    // Queues are made through any queue URL of the server: the JSON protocol posts to its root.
    let moto = support::aws::moto_endpoint();
    let name = format!("dlq-{}", uuid::Uuid::new_v4().simple());
    let created: serde_json::Value = client(&format!("{moto}/000000000000/bootstrap"))
        .call("CreateQueue", &serde_json::json!({ "QueueName": name }))
        .await
        .unwrap();
    let queue = client(created["QueueUrl"].as_str().unwrap());

    // A direct upload whose bytes arrived but whose event the function failed on.
    h.parent(KEY_A, "profile", "p1").await;
    let data = behaviour::direct::payload(2000, 4);
    let up = h
        .call(
            "POST",
            "/v1/parents/profile/p1/uploads",
            Some(KEY_A),
            serde_json::json!({"file_name": "late.bin", "content_type": "application/octet-stream", "size": data.len()})
                .to_string(),
        )
        .await
        .expect(201)
        .json();
    assert!(behaviour::direct::post_form(&up["upload"], &data)
        .await
        .status
        .is_success());
    let key = up["upload"]["fields"]["key"].as_str().unwrap();
    let record = |event: serde_json::Value| {
        serde_json::json!({
            "version": "1.0",
            "timestamp": "2026-01-02T03:04:05.678Z",
            "requestContext": {"requestId": "x", "condition": "RetriesExhausted", "approximateInvokeCount": 3},
            "requestPayload": event,
            "responseContext": {"statusCode": 200, "functionError": "Unhandled"},
            "responsePayload": {"errorType": "EventError", "errorMessage": "storage unavailable: timed out"}
        })
        .to_string()
    };
    let created_event = serde_json::json!({"detail-type": "Object Created", "source": "aws.s3", "detail": {"object": {"key": key}}});
    let deleted_event = serde_json::json!({"detail-type": "Object Deleted", "source": "aws.s3", "detail": {"object": {"key": key}}});
    for event in [created_event, deleted_event] {
        let _: serde_json::Value = queue
            .call(
                "SendMessage",
                &serde_json::json!({ "QueueUrl": created["QueueUrl"], "MessageBody": record(event) }),
            )
            .await
            .unwrap();
    }
    let report = attachments::dead_letters::redrive(&h.app, &queue)
        .await
        .unwrap();
    assert_eq!(report.handled.len(), 1, "{report:?}");
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert!(report.failed[0].1.contains("Object Deleted"), "{report:?}");
    let id = up["attachment"]["id"].as_str().unwrap();
    let att = h
        .get(&format!("/v1/attachments/{id}"), KEY_A)
        .await
        .expect(200)
        .json();
    assert_eq!(att["status"], "ready");
    // The handled message is gone; the failed one waits, visible, for the next look.
    assert_eq!(queue.depth().await.unwrap(), (1, 0));
    let left = attachments::dead_letters::list(&queue).await.unwrap();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].condition.as_deref(), Some("RetriesExhausted"));
    assert!(
        left[0].describe().contains("Object Deleted"),
        "{}",
        left[0].describe()
    );
    assert_eq!(
        queue.depth().await.unwrap(),
        (1, 0),
        "listing leaves the queue as it was"
    );
}
