//! The behaviour suite on the embedded backend (SQLite and files), plus what only it has: a
//! restart keeps everything.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod behaviour;
mod support;

use support::*;

macro_rules! on_embedded {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            behaviour::$name(&Harness::embedded().await).await;
        }
    )*};
}

on_embedded!(
    walkthrough,
    parents,
    auth,
    cross_tenant,
    bad_input,
    tampered_links
);

macro_rules! direct_on_embedded {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            // A form threshold below 50 MiB, so that the multipart path is taken.
            let h = Harness::embedded_with(Opts::var(
                "ATTACHMENTS_DIRECT_POST_MAX_BYTES",
                (4 * 1024 * 1024).to_string(),
            ))
            .await;
            behaviour::direct::$name(&h).await;
        }
    )*};
}

direct_on_embedded!(
    form_upload,
    form_policy_is_enforced,
    multipart_resume,
    multipart_refused_at_completion,
    type_checked_at_completion,
    concurrent_completion_and_events,
    expired_uploads_are_swept,
    placeholder_gets_its_file,
    direct_bad_input,
);

/// The records API on the embedded backend.
macro_rules! records_on_embedded {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            behaviour::records::$name(&Harness::embedded().await).await;
        }
    )*};
}

records_on_embedded!(
    records_seed_many,
    records_seed_all,
    records_errors,
    records_versions,
    records_delete,
    records_thumbnails,
    records_bomb
);

#[tokio::test]
async fn expired_links() {
    let h = Harness::embedded_with(Opts::var("ATTACHMENTS_LINK_TTL_SECONDS", "1")).await;
    behaviour::expired_links(&h).await;
}

#[tokio::test]
async fn conditional_link_windows() {
    let h = Harness::embedded_with(Opts::var("ATTACHMENTS_LINK_TTL_SECONDS", "2")).await;
    behaviour::conditional_link_windows(&h, 2).await;
}

/// Processes may share one data folder (the local server, functions, the admin command): a
/// write made by one (here, a second server on the same folder) reaches the others at once.
#[tokio::test]
async fn two_servers_on_one_folder_see_each_others_writes_at_once() {
    let a = Harness::embedded().await;
    let b = Harness::embedded_with(Opts {
        data_dir: Some(a.data_dir.clone()),
        ..Opts::default()
    })
    .await;
    a.parent(KEY_A, "profile", "p1").await;
    let up = a
        .post_form(
            "/v1/parents/profile/p1/attachments",
            KEY_A,
            &Form::new().file("file", "a.txt", b"first"),
        )
        .await
        .expect(201)
        .json();
    let id = up["items"][0]["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/attachments/{id}");
    let list = "/v1/parents/profile/p1/attachments";
    for _ in 0..2 {
        let seen = b.get(&path, KEY_A).await.expect(200).json();
        assert_eq!(seen["size"], 5);
        let listed = b.get(list, KEY_A).await.expect(200).json();
        assert_eq!(listed["items"][0]["size"], 5);
    }
    // Another tenant's key never reaches it.
    b.get(&path, KEY_B).await.expect(404);

    let put = a
        .post_form(
            &format!("{path}/content"),
            KEY_A,
            &Form::new().file("file", "a.txt", b"second version"),
        )
        .await
        .expect(200)
        .json();
    let listed = b.get(list, KEY_A).await.expect(200).json();
    assert_eq!(listed["items"][0]["size"], 14);
    let seen = b.get(&path, KEY_A).await.expect(200).json();
    assert_eq!(seen["size"], 14);
    assert_eq!(seen["version_id"], put["version_id"]);
    assert_ne!(seen["version_id"], up["items"][0]["version_id"]);

    a.call("DELETE", &path, Some(KEY_A), "").await.expect(204);
    b.get(&path, KEY_A).await.expect(404);
    let listed = b.get(list, KEY_A).await.expect(200).json();
    assert_eq!(listed["items"], serde_json::json!([]));
}

#[tokio::test]
async fn data_survives_a_restart() {
    let h = Harness::embedded().await;
    h.parent(KEY_A, "profile", "p1").await;
    let up = h
        .post_form(
            "/v1/parents/profile/p1/attachments",
            KEY_A,
            &Form::new().file("file", "a.txt", b"persist"),
        )
        .await
        .expect(201)
        .json();
    let id = up["items"][0]["id"].as_str().unwrap().to_owned();
    let old_link = up["items"][0]["download_url"].as_str().unwrap().to_owned();
    let (dir, tmp) = h.stop_keep_data();

    let h2 = Harness::embedded_with(Opts {
        data_dir: Some(dir),
        ..Opts::default()
    })
    .await;
    let meta = h2
        .get(&format!("/v1/attachments/{id}"), KEY_A)
        .await
        .expect(200)
        .json();
    assert_eq!(meta["file_name"], "a.txt");
    let body = fetch(meta["download_url"].as_str().unwrap())
        .await
        .expect(200)
        .body;
    assert_eq!(&body[..], b"persist");
    // The signing secret is kept too: a link from before the restart still verifies (its
    // port differs, so rebuild it on the new server's address).
    let path = old_link.split_once("/_blobs/").unwrap().1;
    fetch(&format!("{}/_blobs/{path}", h2.base))
        .await
        .expect(200);
    drop(tmp);
}

#[tokio::test]
async fn first_start_creates_and_prints_one_key_only_once() {
    let tmp = tempfile::tempdir().unwrap();
    let vars = [("ATTACHMENTS_DATA_DIR", tmp.path().display().to_string())];
    let cfg = attachments::Config::from_lookup(|k| {
        vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
    })
    .unwrap();
    let built = attachments::setup::build(&cfg).await.unwrap();
    let key = attachments::setup::seed_keys(&built.app, &cfg)
        .await
        .unwrap()
        .expect("a first key");
    let who = built.app.authenticate(Some(&key)).await.unwrap();
    assert_eq!(who.tenant.as_str(), "default");
    assert_eq!(
        attachments::setup::seed_keys(&built.app, &cfg)
            .await
            .unwrap(),
        None
    );
    let keys = built.app.list_keys().await.unwrap();
    assert_eq!(keys.len(), 1);
    assert!(
        !format!("{keys:?}").contains(&key),
        "only the hash is stored"
    );
}

/// A compatible API's suite, in a module named after it (`cargo test --test embedded crafter::`).
macro_rules! dialect_on_embedded {
    ($dialect:ident: $($name:ident),* $(,)?) => {
        mod $dialect {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    behaviour::$dialect::$name(&Harness::embedded().await).await;
                }
            )*
        }
    };
}

dialect_on_embedded!(
    crafter: seed_examples,
    same_name_replaces,
    file_sizes,
    svg_downloads,
    unknown_attachment,
    errors,
    cross_tenant,
    internal_error
);

dialect_on_embedded!(hrflow: lookups, errors, cross_tenant);

dialect_on_embedded!(
    assets: seed_examples,
    placeholder_content,
    errors,
    title_in_characters,
    cross_tenant
);

#[tokio::test]
async fn crafter_file_limit() {
    let h = Harness::embedded_with(Opts::var("ATTACHMENTS_CRAFTER_MAX_FILE_BYTES", "3000")).await;
    behaviour::crafter::file_limit(&h).await;
}

#[tokio::test]
async fn crafter_configured_types() {
    let h = Harness::embedded_with(Opts::var(
        "ATTACHMENTS_CRAFTER_ALLOWED_TYPES",
        "application/pdf",
    ))
    .await;
    behaviour::crafter::configured_types(&h).await;
}

/// Conditional reads: `ETag` and `304` on the native listing and metadata.
#[tokio::test]
async fn conditional_listings() {
    behaviour::conditional_listings(&Harness::embedded().await).await;
}

/// Conditional reads in every API's listing.
#[tokio::test]
async fn conditional_dialect_listings() {
    behaviour::conditional_dialect_listings(&Harness::embedded().await).await;
}
