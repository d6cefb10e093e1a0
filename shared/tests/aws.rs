//! The behaviour suite on the AWS backend: DynamoDB served by moto and S3 served by s3s-fs with
//! SigV4 verification (see `support/aws.rs`), every function `embedded.rs` runs, plus what only
//! S3 links show: a link is a real presigned URL, refused with 403 once changed or expired.
//!
//! Run through `scripts/aws-peers.sh run -- cargo test -p attachments-shared --features
//! aws-tests --test aws --test aws_faults`; without the script's moto the tests fail, they
//! never skip.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod behaviour;
mod capacity;
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
    parts_cannot_hold_more_than_declared,
    verified_content_is_immutable,
    orphans_after_a_delete_are_swept,
);

/// Uploads over 4 MiB are verified in the background.
#[tokio::test]
async fn large_uploads_verify_in_the_background() {
    let h = Harness::aws_with(Opts {
        vars: vec![
            (
                "ATTACHMENTS_DIRECT_POST_MAX_BYTES",
                (4 * 1024 * 1024).to_string(),
            ),
            (
                "ATTACHMENTS_INLINE_VERIFY_MAX_BYTES",
                (4 * 1024 * 1024).to_string(),
            ),
        ],
        ..Opts::default()
    })
    .await;
    behaviour::direct::large_uploads_verify_in_the_background(&h).await;
}

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

dialect_on_aws!(contract: unknown_form_fields, records_map_keys_are_uuids);

dialect_on_aws!(
    bounds: unpaged_listings_are_capped,
    records_listing_pages,
    parent_deletion_in_pages
);

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
    use attachments::store::{BlobStore, Expected, ManyListing, MetadataStore, StoreError};
    use aws_sdk_dynamodb::types::AttributeValue as A;
    use bytes::Bytes;
    use std::collections::HashMap;

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
        let (dynamo, s3) = attachments::setup::aws_stores(&cfg, &peers.sdk(&[]).await, None)
            .await
            .unwrap();
        (
            dynamo,
            SqliteStore::in_memory().unwrap(),
            s3,
            S3Task(task, tmp, peers),
        )
    }

    /// The S3 server's task and folder, kept for as long as the test runs, and the peers' table.
    struct S3Task(
        tokio::task::JoinHandle<std::io::Result<()>>,
        #[allow(dead_code)] tempfile::TempDir,
        Peers,
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
                    verifying_since: None,
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

    /// Every page of `p`'s attachments, with hidden ones and without, at every limit up to 10,
    /// is the same on both stores.
    async fn pages_match(stores: [&dyn MetadataStore; 2], t: &TenantId, p: &ParentRef) {
        for hidden in [false, true] {
            for limit in 1..=10 {
                let mut pages: Vec<Vec<(Vec<AttachmentId>, Option<AttachmentId>)>> = vec![];
                for s in stores {
                    let mut after = None;
                    let mut seen = vec![];
                    loop {
                        let page = s
                            .list_attachments(t, p, after, limit, hidden)
                            .await
                            .unwrap();
                        seen.push((page.items.iter().map(|a| a.id).collect(), page.next));
                        match page.next {
                            Some(a) => after = Some(a),
                            None => break,
                        }
                    }
                    pages.push(seen);
                }
                assert_eq!(pages[0], pages[1], "limit {limit}, hidden {hidden}");
            }
        }
    }

    /// The listing of many parents (`many`: q, empty, p, unknown) and the parents with listed
    /// attachments, page by page, are the same on both stores.
    async fn many_and_marked_match(
        dynamo: &DynamoStore,
        sqlite: &SqliteStore,
        t: &TenantId,
        many: &[ParentRef],
    ) {
        let (q, p) = (&many[0], &many[2]);
        let (a, b) = (
            dynamo
                .list_attachments_of_many(t, many, 1000)
                .await
                .unwrap(),
            sqlite
                .list_attachments_of_many(t, many, 1000)
                .await
                .unwrap(),
        );
        assert_eq!(a, b);
        let ManyListing::Parents(lists) = a else {
            panic!("{a:?}")
        };
        assert_eq!(
            lists
                .iter()
                .map(|l| l.as_ref().map(Vec::len))
                .collect::<Vec<_>>(),
            [Some(2), Some(0), Some(4), None]
        );
        // What they hold together, and one fewer: the limit is all of them, or too many.
        for (limit, fits) in [(6, true), (5, false)] {
            let (a, b) = (
                dynamo
                    .list_attachments_of_many(t, many, limit)
                    .await
                    .unwrap(),
                sqlite
                    .list_attachments_of_many(t, many, limit)
                    .await
                    .unwrap(),
            );
            assert_eq!(a, b, "limit {limit}");
            assert_eq!(a != ManyListing::TooMany, fits, "limit {limit}");
        }
        let kind = ParentKind::parse("profile").unwrap();
        for (after, limit) in [(None, 10), (None, 1), (Some(&p.id), 1), (Some(&q.id), 5)] {
            let (a, b) = (
                dynamo
                    .parents_with_attachments(t, &kind, after, limit)
                    .await
                    .unwrap(),
                sqlite
                    .parents_with_attachments(t, &kind, after, limit)
                    .await
                    .unwrap(),
            );
            assert_eq!(a, b, "after {after:?}, limit {limit}");
        }
        let all = dynamo
            .parents_with_attachments(t, &kind, None, 10)
            .await
            .unwrap();
        assert_eq!(all.items, vec![p.clone(), q.clone()]);
        assert_eq!(all.next, None);
        let first = dynamo
            .parents_with_attachments(t, &kind, None, 1)
            .await
            .unwrap();
        assert_eq!(
            (first.items, first.next),
            (vec![p.clone()], Some(p.id.clone()))
        );
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
        pages_match(stores, &t, &p).await;
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
        let kind = ParentKind::parse("profile").unwrap();
        many_and_marked_match(&dynamo, &sqlite, &t, &many).await;
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
        assert_eq!(
            dynamo
                .list_attachments_of_many(&other, &many, 1000)
                .await
                .unwrap(),
            ManyListing::Parents(vec![None; 4])
        );
        assert!(dynamo
            .parents_with_attachments(&other, &kind, None, 10)
            .await
            .unwrap()
            .items
            .is_empty());
    }

    /// Leftovers go to as many partitions of the index as `ATTACHMENTS_LEFTOVER_SHARDS` says,
    /// and the sweep reads every one: it finds them all, the earliest first, and the earliest
    /// `limit` of them whichever shards they are in.
    #[tokio::test]
    async fn leftovers_spread_over_the_configured_shards_are_all_swept() {
        let (_dynamo, _sqlite, _s3, task) = stores().await;
        let peers = &task.2;
        let mut vars = peers.service_vars();
        vars.push(("ATTACHMENTS_LEFTOVER_SHARDS".into(), "3".into()));
        let cfg = attachments::Config::from_lookup(|k| {
            vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })
        .unwrap();
        let (dynamo, _s3) = attachments::setup::aws_stores(&cfg, &peers.sdk(&[]).await, None)
            .await
            .unwrap();
        let t = TenantId::parse("a").unwrap();
        let p = parent("uploads");
        put_parent(&dynamo, &t, &p).await;
        // Direct uploads under way, each in whichever shard its id gives.
        let mut pending: Vec<Attachment> = (1..=30)
            .map(|i| {
                let mut a = attachment(&t, &p, AttachmentStatus::Pending, Some(100 + i));
                a.upload = a.content.take().map(|version| PendingUpload {
                    version,
                    declared_sha256: None,
                    multipart: None,
                    expires_at: 100 + i,
                    verifying_since: None,
                });
                a
            })
            .collect();
        // Created in another order than they expire.
        pending.reverse();
        for a in &pending {
            dynamo.create_attachment(a).await.unwrap();
        }
        pending.reverse();
        let shards: std::collections::BTreeSet<String> = peers
            .table_items()
            .await
            .iter()
            .filter_map(|i| match i.get("gsi1pk") {
                Some(A::S(pk)) => Some(pk.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(
            shards.into_iter().collect::<Vec<_>>(),
            ["leftover#0", "leftover#1", "leftover#2"]
        );
        let ids = |v: Vec<Attachment>| v.into_iter().map(|a| a.id).collect::<Vec<_>>();
        let all = ids(pending.clone());
        assert_eq!(ids(dynamo.expired_pending(1_000, 100).await.unwrap()), all);
        assert_eq!(
            ids(dynamo.expired_pending(1_000, 7).await.unwrap()),
            all[..7]
        );
        assert_eq!(
            ids(dynamo.expired_pending(111, 100).await.unwrap()),
            all[..10]
        );
        // The oldest upload under way is the earliest of every shard's, wherever it is.
        for gone in &all[..3] {
            let oldest = dynamo.oldest_upload_under_way().await.unwrap();
            assert_eq!(oldest.map(|a| a.id), Some(*gone));
            assert!(dynamo.delete_attachment(&t, *gone).await.unwrap());
        }
    }

    /// A parent whose listed attachments are separated by more hidden ones (abandoned uploads)
    /// than a listing steps over: a page ends early with a cursor that goes on from there, and a
    /// listing that is not paged refuses; the same on both stores.
    #[tokio::test]
    async fn hidden_attachments_are_stepped_over_within_a_bound() {
        use attachments::store::dynamo::bulk_items;
        use attachments::store::MAX_HIDDEN_SKIPPED;
        let (dynamo, sqlite, _s3, task) = stores().await;
        let t = TenantId::parse("a").unwrap();
        let p = parent("crowded");
        let mut atts = vec![attachment(&t, &p, AttachmentStatus::Ready, None)];
        // More hidden ones than a page of 10 may step over (11 wanted, 1,000 besides).
        for _ in 0..MAX_HIDDEN_SKIPPED + 20 {
            atts.push(attachment(
                &t,
                &p,
                AttachmentStatus::Pending,
                Some(2_000_000_000),
            ));
        }
        atts.push(attachment(&t, &p, AttachmentStatus::Ready, None));
        put_parent(&sqlite, &t, &p).await;
        for a in &atts {
            sqlite.create_attachment(a).await.unwrap();
        }
        // DynamoDB: loaded in bulk, as the store writes them.
        let stored = sqlite.get_parent(&t, &p).await.unwrap().unwrap();
        task.2
            .load(bulk_items(Some(&stored), &atts, 16).unwrap())
            .await;

        let (ready, last) = (atts[0].id, atts[atts.len() - 1].id);
        for (name, s) in [
            ("dynamodb", &dynamo as &dyn MetadataStore),
            ("sqlite", &sqlite),
        ] {
            let first = s.list_attachments(&t, &p, None, 10, false).await.unwrap();
            assert_eq!(
                first.items.iter().map(|a| a.id).collect::<Vec<_>>(),
                [ready],
                "{name}"
            );
            // The page stopped on the last hidden attachment it read: 11 wanted, 1,000 more.
            assert_eq!(first.next, Some(atts[MAX_HIDDEN_SKIPPED + 10].id));
            let second = s
                .list_attachments(&t, &p, first.next, 10, false)
                .await
                .unwrap();
            assert_eq!(
                (
                    second.items.iter().map(|a| a.id).collect::<Vec<_>>(),
                    second.next
                ),
                (vec![last], None)
            );
            // Hidden ones included (the deletion of a parent reads so), nothing is skipped.
            let all = s.list_attachments(&t, &p, None, 2000, true).await.unwrap();
            assert_eq!(all.items.len(), atts.len());
            assert_eq!(
                s.list_attachments_of_many(&t, std::slice::from_ref(&p), 1000)
                    .await
                    .unwrap(),
                ManyListing::TooMany
            );
        }
        // Hidden ones after the last listed one are never read: with the newest listed
        // attachment deleted, the parent lists again.
        for s in [&dynamo as &dyn MetadataStore, &sqlite] {
            assert!(s.delete_attachment(&t, last).await.unwrap());
            let ManyListing::Parents(lists) = s
                .list_attachments_of_many(&t, std::slice::from_ref(&p), 1000)
                .await
                .unwrap()
            else {
                panic!("refused");
            };
            assert_eq!(lists[0].as_ref().unwrap().len(), 1);
        }
    }

    /// A parent's item as tables from before counts hold it: no `n`.
    fn uncounted_parent_item(p: &ParentRef) -> HashMap<String, A> {
        let now = time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let doc = serde_json::to_string(&Parent {
            tenant: TenantId::parse("a").unwrap(),
            key: p.clone(),
            source: None,
            reference: None,
            email: None,
            created_at: now,
            updated_at: now,
        })
        .unwrap();
        HashMap::from([
            ("pk".into(), A::S(format!("T#a#P#profile#{}", p.id))),
            ("sk".into(), A::S("P".into())),
            ("doc".into(), A::S(doc)),
            ("rev".into(), A::N("1".into())),
        ])
    }

    /// The per-kind index item of an older table naming `p` and the ids it lists.
    fn index_item(p: &ParentRef, ids: &[&Attachment]) -> HashMap<String, A> {
        let mut item = HashMap::from([
            ("pk".into(), A::S("T#a#I#profile".into())),
            ("sk".into(), A::S(p.id.to_string())),
        ]);
        if !ids.is_empty() {
            item.insert(
                "ids".into(),
                A::Ss(ids.iter().map(|a| a.id.to_string()).collect()),
            );
        }
        item
    }

    /// The count on tenant a's profile `p`, as stored.
    async fn count_of(peers: &Peers, p: &ParentRef) -> Option<String> {
        let pk = A::S(format!("T#a#P#profile#{}", p.id));
        let items = peers.table_items().await;
        let item = items
            .iter()
            .find(|i| i.get("pk") == Some(&pk) && i.get("sk") == Some(&A::S("P".into())))
            .unwrap();
        item.get("n").and_then(|n| n.as_n().ok()).cloned()
    }

    /// Loads a table as older versions wrote it: `old` with three listed attachments and an
    /// abandoned upload in the old leftovers partition, `empty` with an empty index item, and
    /// `touched` with a pending upload and no index item. Returns the attachments.
    async fn load_old_table(
        peers: &Peers,
        old: &ParentRef,
        empty: &ParentRef,
        touched: &ParentRef,
    ) -> (Vec<Attachment>, Attachment, Attachment) {
        use attachments::store::dynamo::bulk_items;
        let t = TenantId::parse("a").unwrap();
        let listed: Vec<Attachment> = (0..3)
            .map(|_| attachment(&t, old, AttachmentStatus::Ready, None))
            .collect();
        let abandoned = attachment(&t, old, AttachmentStatus::Pending, Some(100));
        let pending = attachment(&t, touched, AttachmentStatus::Pending, Some(2_000_000_000));
        let mut items = vec![
            uncounted_parent_item(old),
            uncounted_parent_item(empty),
            uncounted_parent_item(touched),
            index_item(old, &listed.iter().collect::<Vec<_>>()),
            index_item(empty, &[]),
        ];
        let atts: Vec<Attachment> = listed
            .iter()
            .chain([&abandoned, &pending])
            .cloned()
            .collect();
        items.extend(bulk_items(None, &atts, 16).unwrap());
        // The abandoned upload sits where the old code put every leftover.
        for item in &mut items {
            if item.get("gsi1sk") == Some(&A::S("00000000000000000100".into())) {
                item.insert("gsi1pk".into(), A::S("leftover".into()));
            }
        }
        peers.load(items).await;
        (listed, abandoned, pending)
    }

    /// A table written before parents had counts: parents without a count, the per-kind index
    /// items, and leftovers in the index's one old partition. Listings work at once; the sweep
    /// finds the old leftovers; the first change of a parent counts it; the migration counts
    /// the others and removes the index items, and finds nothing to do a second time.
    #[tokio::test]
    async fn a_table_from_before_counts_is_migrated() {
        let (dynamo, _sqlite, _s3, task) = stores().await;
        let peers = &task.2;
        let t = TenantId::parse("a").unwrap();
        let kind = ParentKind::parse("profile").unwrap();
        let (old, empty, touched) = (parent("old"), parent("empty"), parent("touched"));
        let (listed, abandoned, pending) = load_old_table(peers, &old, &empty, &touched).await;

        // Listings work before the migration: the count is unknown, so the parent is read.
        let ManyListing::Parents(lists) = dynamo
            .list_attachments_of_many(&t, &[old.clone(), empty.clone()], 1000)
            .await
            .unwrap()
        else {
            panic!("refused");
        };
        assert_eq!(lists[0].as_ref().unwrap().len(), 3);
        assert_eq!(lists[1].as_ref().unwrap().len(), 0);
        // The sweep still finds the old leftover.
        let swept = dynamo.expired_pending(1_000, 10).await.unwrap();
        assert_eq!(
            swept.iter().map(|a| a.id).collect::<Vec<_>>(),
            [abandoned.id]
        );
        // A parent changed before the migration is counted by that change.
        let mut ready = pending.clone();
        ready.status = AttachmentStatus::Ready;
        ready.expires_at = None;
        dynamo
            .update_attachment(&ready, Expected::of(&pending))
            .await
            .unwrap();
        let marked = |dynamo: &DynamoStore| {
            let (dynamo, kind) = (dynamo.clone(), kind.clone());
            async move {
                let t = TenantId::parse("a").unwrap();
                let page = dynamo.parents_with_attachments(&t, &kind, None, 10);
                page.await.unwrap().items
            }
        };
        assert_eq!(marked(&dynamo).await, vec![touched.clone()]);
        assert_eq!(count_of(peers, &touched).await.as_deref(), Some("1"));
        assert_eq!(count_of(peers, &old).await, None);

        let done = dynamo.migrate_legacy().await.unwrap();
        assert_eq!((done.index_items, done.counted), (2, 2));
        assert_eq!(count_of(peers, &old).await.as_deref(), Some("3"));
        assert_eq!(count_of(peers, &empty).await.as_deref(), Some("0"));
        assert_eq!(marked(&dynamo).await, vec![old.clone(), touched.clone()]);
        assert!(!peers
            .table_items()
            .await
            .iter()
            .any(|i| i.get("pk") == Some(&A::S("T#a#I#profile".into()))));
        let again = dynamo.migrate_legacy().await.unwrap();
        assert_eq!((again.index_items, again.counted), (0, 0));
        // Counted, the parent's last listed attachment takes its marker with it.
        for a in &listed {
            assert!(dynamo.delete_attachment(&t, a.id).await.unwrap());
        }
        assert_eq!(marked(&dynamo).await, vec![touched]);
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
        assert_eq!(
            &s3.get_range(key, None, 6, 100).await.unwrap()[..],
            b"world"
        );
        assert_eq!(&s3.get_range(key, None, 0, 5).await.unwrap()[..], b"hello");
        assert!(s3.get_range(key, None, 50, 5).await.unwrap().is_empty());
        assert!(s3.get_range(key, None, 3, 0).await.unwrap().is_empty());
        s3.delete(key).await.unwrap();
        s3.delete(key).await.unwrap();
        assert_eq!(s3.head(key).await.unwrap(), None);
        assert!(matches!(
            s3.get_range(key, None, 0, 5).await,
            Err(StoreError::NotFound)
        ));
    }

    fn sha(data: &[u8]) -> [u8; 32] {
        use sha2::Digest;
        sha2::Sha256::digest(data).into()
    }

    /// Reads pinned to an ETag, and the promotion of a staged object (one CopyObject, or a
    /// multipart copy past the part size), copy exactly the object that was read.
    #[tokio::test]
    async fn promotion_copies_exactly_the_verified_object() {
        let (_d, _s, s3, _task) = stores().await;
        let s3 = s3.with_copy_part_bytes(5 * 1024 * 1024);
        for (n, len) in [(0, 1000usize), (1, 12 * 1024 * 1024 + 7)] {
            let (staged, key) = (format!("staging/t/a/v{n}"), format!("t/a/v{n}"));
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let other: Vec<u8> = data.iter().map(|b| b ^ 0x55).collect();
            s3.put(
                &staged,
                Bytes::from(data.clone()),
                "application/pdf",
                &sha(&data),
            )
            .await
            .unwrap();
            let verified = s3.head(&staged).await.unwrap().unwrap();
            assert_eq!(
                &s3.get_range(&staged, Some(&verified.etag), 0, 10)
                    .await
                    .unwrap()[..],
                &data[..10]
            );
            // Replaced after it was read: neither read nor promoted.
            s3.put(
                &staged,
                Bytes::from(other.clone()),
                "application/pdf",
                &sha(&other),
            )
            .await
            .unwrap();
            assert!(matches!(
                s3.get_range(&staged, Some(&verified.etag), 0, 10).await,
                Err(StoreError::Conflict(_))
            ));
            let stale = s3.promote(&staged, &verified.etag, len as u64, &key).await;
            assert!(
                matches!(stale, Err(StoreError::Conflict(_))),
                "{len}: {stale:?}"
            );
            assert_eq!(s3.head(&key).await.unwrap(), None, "{len}");
            let replacement = s3.head(&staged).await.unwrap().unwrap();
            s3.promote(&staged, &replacement.etag, len as u64, &key)
                .await
                .unwrap();
            assert_eq!(s3.head(&staged).await.unwrap(), None);
            let copied = s3.get_range(&key, None, 0, len as u64).await.unwrap();
            assert_eq!(copied.len(), len);
            assert!(
                copied[..] == other[..],
                "{len}: the copy is the object verified"
            );
        }
        assert!(matches!(
            s3.promote("staging/t/a/x", "\"nope\"", 1, "t/a/x").await,
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
/// daemon as a subsegment of the function's segment, with its operation, status, bucket and
/// request id; a call the service refuses is marked with its error code.
#[tokio::test]
async fn aws_calls_are_xray_subsegments() {
    use attachments::domain::{FileName, ParentId, ParentKind, ParentRef, Principal, TenantId};
    use attachments::service::{AttachmentFields, NewFile, ParentFields, UploadTarget};
    use attachments::telemetry::xray;

    let h = Harness::aws().await;
    let daemon = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    daemon
        .set_read_timeout(Some(std::time::Duration::from_millis(500)))
        .unwrap();
    let header = "Root=1-65dfb5a1-0123456789abcdef01234567;Parent=0123456789abcdef;Sampled=1";
    let who = Principal {
        tenant: TenantId::parse("a").unwrap(),
        owner: "o".into(),
    };
    let parent = ParentRef::new(
        ParentKind::parse("profile").unwrap(),
        ParentId::parse("traced").unwrap(),
    );
    let invocation = async {
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
                None,
            )
            .await
            .unwrap();
        // A client of the same kind, on a table that does not exist.
        let sdk = support::aws::sdk_from(&[
            ("AWS_ACCESS_KEY_ID", support::aws::ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", support::aws::SECRET_KEY.into()),
            ("AWS_REGION", support::aws::REGION.into()),
            ("AWS_ENDPOINT_URL_DYNAMODB", support::aws::moto_endpoint()),
            (
                "AWS_CONFIG_FILE",
                "/nonexistent/attachments-tests/config".into(),
            ),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/attachments-tests/credentials".into(),
            ),
        ])
        .await;
        attachments::store::sdk::dynamodb_client(&sdk)
            .describe_table()
            .table_name("no-such-table")
            .send()
            .await
            .unwrap_err();
    };
    let daemon_at = xray::connect(daemon.local_addr().unwrap());
    xray::traced(daemon_at, Some(header), invocation).await;
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
    let (failed, docs): (Vec<_>, Vec<_>) = docs
        .into_iter()
        .partition(|d| d["aws"]["operation"] == "DescribeTable");
    let [failed] = failed.as_slice() else {
        panic!("one DescribeTable: {failed:?}");
    };
    assert_eq!(failed["error"], true, "{failed}");
    assert_eq!(failed["http"]["response"]["status"], 400, "{failed}");
    assert_eq!(
        failed["cause"]["exceptions"][0]["type"], "ResourceNotFoundException",
        "{failed}"
    );
    for d in &docs {
        assert!(d.get("error").is_none() && d.get("fault").is_none(), "{d}");
        assert_eq!(d["aws"]["retries"], 0, "{d}");
        if d["name"] == "S3" {
            assert!(
                d["aws"]["bucket_name"]
                    .as_str()
                    .is_some_and(|b| b.starts_with("attachments-")),
                "{d}"
            );
        }
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
    use functions::admin::dead_letters::DeadLetterQueue;

    let h = Harness::aws().await;
    // moto's SQS, reached as the admin command reaches the queue: the AWS configuration the
    // SDK loads from the environment (with no SQS endpoint: the queue's URL names its server).
    use support::aws::{ACCESS_KEY, REGION, SECRET_KEY};
    let sdk = support::aws::sdk_from(&[
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
        ("AWS_REGION", REGION.into()),
        (
            "AWS_CONFIG_FILE",
            "/nonexistent/attachments-tests/config".into(),
        ),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/attachments-tests/credentials".into(),
        ),
    ])
    .await;
    let moto = support::aws::moto_endpoint();
    let sqs =
        attachments::store::sdk::sqs_client(&sdk, &format!("{moto}/000000000000/any")).unwrap();
    let name = format!("dlq-{}", uuid::Uuid::new_v4().simple());
    let url = sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let queue = DeadLetterQueue::new(&sdk, &url).unwrap();

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
        sqs.send_message()
            .queue_url(&url)
            .message_body(record(event))
            .send()
            .await
            .unwrap();
    }
    let report = functions::admin::dead_letters::redrive(&h.app, &queue)
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
    let left = functions::admin::dead_letters::list(&queue).await.unwrap();
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

/// What the finalize function counts as it verifies direct uploads (its EMF metrics): a
/// verified upload and its bytes; a refused one by its reason (here, bytes that are not the
/// declared type: S3 itself refuses a form whose bytes are not its declared SHA-256); and what
/// the sweep then removes.
#[tokio::test]
async fn verification_metrics_count_uploads_and_refusals_by_reason() {
    use attachments::telemetry::emf::{Metric, Sample};
    use attachments::telemetry::request;

    let h = Harness::aws().await;
    h.parent(KEY_A, "profile", "p1").await;
    let data = behaviour::direct::payload(3000, 7);
    let uploads = [
        (
            serde_json::json!({"file_name": "good.bin", "content_type": "application/octet-stream", "size": data.len()}),
            None,
        ),
        (
            serde_json::json!({"file_name": "fake.png", "content_type": "image/png", "size": data.len()}),
            Some("type_mismatch"),
        ),
    ];
    for (body, refusal) in uploads {
        let up = h
            .call(
                "POST",
                "/v1/parents/profile/p1/uploads",
                Some(KEY_A),
                body.to_string(),
            )
            .await
            .expect(201)
            .json();
        assert!(behaviour::direct::post_form(&up["upload"], &data)
            .await
            .status
            .is_success());
        let key = up["upload"]["fields"]["key"].as_str().unwrap();
        let event = serde_json::json!({"detail-type": "Object Created", "source": "aws.s3", "detail": {"object": {"key": key}}});
        let (handled, record) =
            request::scope(attachments::storage_events::handle(&h.app, &event)).await;
        handled.unwrap();
        let expected = match refusal {
            None => vec![
                Sample {
                    metric: Metric::Uploads,
                    value: 1.0,
                    reason: None,
                },
                Sample {
                    metric: Metric::UploadedBytes,
                    value: data.len() as f64,
                    reason: None,
                },
            ],
            Some(reason) => vec![Sample {
                metric: Metric::VerificationFailures,
                value: 1.0,
                reason: Some(reason),
            }],
        };
        assert_eq!(record.samples, expected, "{body}");
    }
    // Two days on, the refused uploads have said why long enough: the sweep removes them.
    let later = time::OffsetDateTime::now_utc().unix_timestamp() + 2 * 86_400;
    let (swept, record) = request::scope(h.app.sweep(later)).await;
    let swept = swept.unwrap();
    assert!(swept >= 1, "{swept}");
    assert_eq!(
        record.samples,
        vec![Sample {
            metric: Metric::SweptUploads,
            value: swept as f64,
            reason: None
        }]
    );
}

/// Credentials from a profile whose `credential_process` is a script (it prints the JSON
/// credential document, as `aws configure export-credentials` or a vault helper would) reach
/// both adapters, through the SDK's default chain, with no key in the environment: s3s-fs
/// checks every signature against its one key pair, so an upload, a presigned link and a
/// form's policy only pass when signed with the script's keys, and a script that prints a wrong
/// secret is refused. The SDK caches them (the script runs once for many calls), and a link
/// never claims to outlive them: asked for 15 minutes, it lives until their expiry, 10.
mod credential_process {
    use std::time::Duration;

    use super::support::aws::{sdk_from, Peers, S3Peer, ACCESS_KEY, SECRET_KEY};
    use super::support::{fetch, AbortOnDrop};
    use attachments::domain::{Parent, ParentId, ParentKind, ParentRef, TenantId};
    use attachments::store::{BlobStore, LinkOptions, MetadataStore, PostPolicy, StoreError};
    use bytes::Bytes;

    /// A profile `attachments-test` in a config file of `dir`, whose `credential_process` prints
    /// `secret`'s credentials expiring `valid` from now, and appends a line to `dir/runs` each
    /// time it runs.
    fn profile(dir: &std::path::Path, secret: &str, valid: Duration) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let expiry = (time::OffsetDateTime::now_utc() + valid)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        let script = dir.join("credentials.sh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\necho run >> '{runs}'\nprintf '%s' '{{\"Version\": 1, \"AccessKeyId\": \"{ACCESS_KEY}\", \"SecretAccessKey\": \"{secret}\", \"Expiration\": \"{expiry}\"}}'\n",
                runs = dir.join("runs").display(),
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let config = dir.join("config");
        std::fs::write(
            &config,
            format!(
                "[profile attachments-test]\ncredential_process = {}\n",
                script.display()
            ),
        )
        .unwrap();
        config
    }

    /// The peers' environment without keys, naming the profile instead.
    async fn sdk_with_profile(peers: &Peers, config: &std::path::Path) -> aws_config::SdkConfig {
        let mut vars = peers.env();
        vars.retain(|(k, _)| {
            !matches!(
                *k,
                "AWS_ACCESS_KEY_ID" | "AWS_SECRET_ACCESS_KEY" | "AWS_CONFIG_FILE"
            )
        });
        vars.push(("AWS_CONFIG_FILE", config.display().to_string()));
        vars.push(("AWS_PROFILE", "attachments-test".into()));
        sdk_from(&vars).await
    }

    fn sha256(b: &[u8]) -> [u8; 32] {
        use sha2::Digest;
        sha2::Sha256::digest(b).into()
    }

    #[tokio::test]
    async fn credentials_from_a_profiles_process_reach_both_adapters() {
        let tmp = tempfile::tempdir().unwrap();
        let s3 = S3Peer::bind(&tmp.path().join("s3")).await;
        let peers = Peers::new(&s3.endpoint);
        let _s3 = AbortOnDrop(tokio::spawn(s3.serve()));
        peers.create().await;
        let dir = tmp.path().join("profile");
        std::fs::create_dir_all(&dir).unwrap();
        let config = profile(&dir, SECRET_KEY, Duration::from_secs(600));
        let sdk = sdk_with_profile(&peers, &config).await;
        let (meta, blobs) = attachments::setup::aws_stores(&peers.config(), &sdk, None)
            .await
            .unwrap();

        let data = Bytes::from_static(b"signed by the profile's process");
        blobs
            .put("t/a/v", data.clone(), "text/plain", &sha256(&data))
            .await
            .unwrap();
        let tenant = TenantId::parse("t").unwrap();
        let parent = ParentRef::new(
            ParentKind::parse("profile").unwrap(),
            ParentId::parse("p1").unwrap(),
        );
        let now = time::OffsetDateTime::now_utc();
        meta.put_parent(&Parent {
            tenant: tenant.clone(),
            key: parent.clone(),
            source: None,
            reference: None,
            email: None,
            created_at: now,
            updated_at: now,
        })
        .await
        .unwrap();
        assert!(meta.get_parent(&tenant, &parent).await.unwrap().is_some());

        let link = blobs
            .presign_get(
                "t/a/v",
                &LinkOptions {
                    content_type: "text/plain",
                    file_name: "a.txt",
                    // Signed now for 900 s.
                    valid: attachments::store::LinkWindow {
                        signed_at: now.unix_timestamp(),
                        expires_at: now.unix_timestamp() + 900,
                    },
                },
            )
            .await
            .unwrap();
        assert!(
            link.contains(&format!("X-Amz-Credential={ACCESS_KEY}%2F")),
            "{link}"
        );
        let expires: u64 = link
            .split(['?', '&'])
            .find_map(|p| p.strip_prefix("X-Amz-Expires="))
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            (590..=600).contains(&expires),
            "the link lives until the credentials expire, not 900 s: {expires}"
        );
        let got = fetch(&link).await.expect(200);
        assert_eq!(got.body, data);

        let form = blobs
            .presign_post(
                "t/a/w",
                &PostPolicy {
                    content_type: "text/plain",
                    size: 3,
                    sha256: None,
                    ttl: Duration::from_secs(3600),
                },
            )
            .await
            .unwrap();
        let field = |name: &str| {
            form.fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert!(field("x-amz-credential").starts_with(&format!("{ACCESS_KEY}/")));
        let policy =
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, field("policy"))
                .unwrap();
        let policy: serde_json::Value = serde_json::from_slice(&policy).unwrap();
        let expiration = time::OffsetDateTime::parse(
            policy["expiration"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        let left = expiration - time::OffsetDateTime::now_utc();
        assert!(
            left <= time::Duration::seconds(600) && left > time::Duration::seconds(580),
            "the policy expires with the credentials, not in an hour: {left}"
        );

        let runs = std::fs::read_to_string(dir.join("runs")).unwrap();
        assert_eq!(
            runs.lines().count(),
            1,
            "the SDK caches what the process gave"
        );
    }

    #[tokio::test]
    async fn a_process_that_prints_a_wrong_secret_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let s3 = S3Peer::bind(&tmp.path().join("s3")).await;
        let peers = Peers::new(&s3.endpoint);
        let _s3 = AbortOnDrop(tokio::spawn(s3.serve()));
        peers.create().await;
        let dir = tmp.path().join("profile");
        std::fs::create_dir_all(&dir).unwrap();
        let config = profile(&dir, "not/the/secret/s3s/knows", Duration::from_secs(600));
        let sdk = sdk_with_profile(&peers, &config).await;
        let (_, blobs) = attachments::setup::aws_stores(&peers.config(), &sdk, None)
            .await
            .unwrap();
        let data = Bytes::from_static(b"x");
        let e = blobs
            .put("t/a/v", data.clone(), "text/plain", &sha256(&data))
            .await
            .unwrap_err();
        assert!(
            matches!(e, StoreError::Unavailable(ref m) if m.contains("SignatureDoesNotMatch")),
            "{e}"
        );
    }
}
