//! The behaviour suite on the embedded backend (SQLite and files), plus what only it has: a
//! restart keeps everything.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod behaviour;
mod support;

use bytes::Bytes;
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
    let h = Harness::embedded_with(Opts {
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

/// Bounded answers and deletion in pages (`behaviour/bounds.rs`).
macro_rules! bounds_on_embedded {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            behaviour::bounds::$name(&Harness::embedded().await).await;
        }
    )*};
}

bounds_on_embedded!(
    unpaged_listings_are_capped,
    records_listing_pages,
    parent_deletion_in_pages
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

dialect_on_embedded!(contract: unknown_form_fields, records_map_keys_are_uuids);

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

/// The console is served from the API's own origin, with a policy that keeps it there.
#[tokio::test]
async fn console_is_served_with_a_strict_policy() {
    let h = Harness::embedded().await;
    for path in [
        "/console",
        "/console/",
        "/console/app.js",
        "/console/upload.js",
    ] {
        let r = h.send("GET", path, &[], Bytes::new()).await.expect(200);
        assert!(!r.body.is_empty(), "{path}");
        let csp = r.header("content-security-policy");
        assert!(csp.starts_with("default-src 'none'"), "{csp}");
        assert!(
            csp.contains(&format!("connect-src 'self' {};", h.base)),
            "{csp}"
        );
    }
    let page = h.send("GET", "/console", &[], Bytes::new()).await;
    assert!(page.header("content-type").starts_with("text/html"));
    let types = h
        .send("GET", "/console/content-types.json", &[], Bytes::new())
        .await
        .expect(200)
        .json();
    assert_eq!(types["jpg"], "image/jpeg");
    // Anything else under it is the API's 404, and it takes no writes.
    h.send("GET", "/console/secret", &[], Bytes::new())
        .await
        .expect(404);
    h.send("POST", "/console/", &[], Bytes::new())
        .await
        .expect(405);
}

/// The API's description and its browser page are served without a key, the document byte for
/// byte as committed, the page with a policy that keeps it on this origin.
#[tokio::test]
async fn api_description_is_served_without_a_key() {
    let h = Harness::embedded().await;
    let doc = h
        .send("GET", "/openapi.yaml", &[], Bytes::new())
        .await
        .expect(200);
    assert_eq!(doc.header("content-type"), "application/yaml");
    let committed = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi.yaml")).unwrap();
    assert_eq!(&doc.body[..], &committed[..]);
    for path in [
        "/api-docs",
        "/api-docs/init.js",
        "/api-docs/swagger-ui-bundle.js",
    ] {
        let r = h.send("GET", path, &[], Bytes::new()).await.expect(200);
        let csp = r.header("content-security-policy");
        assert!(csp.starts_with("default-src 'none'"), "{path}: {csp}");
        assert!(csp.contains("connect-src 'self';"), "{path}: {csp}");
        assert_eq!(r.header("x-content-type-options"), "nosniff");
    }
    let page = h.send("GET", "/api-docs", &[], Bytes::new()).await;
    assert!(page.header("content-type").starts_with("text/html"));
    assert!(String::from_utf8_lossy(&page.body).contains("/api-docs/init.js"));
    h.send("POST", "/openapi.yaml", &[], Bytes::new())
        .await
        .expect(405);
    // Nothing else under the page, and no route of the API, is served without a key.
    h.send("GET", "/api-docs/nope.js", &[], Bytes::new())
        .await
        .expect(404);
    h.send("GET", "/v1/parents/profile/x", &[], Bytes::new())
        .await
        .expect(401);
}

fn origin(o: &str) -> (&'static str, String) {
    ("origin", o.to_owned())
}

/// Without `ATTACHMENTS_CORS_ORIGINS`, the API answers no other origin: no CORS header, and a
/// preflight gets the router's 405.
#[tokio::test]
async fn api_cors_is_off_by_default() {
    let h = Harness::embedded().await;
    let r = h
        .send(
            "GET",
            "/v1/parents/profile/x",
            &[origin("https://app.example"), ("x-api-key", KEY_A.into())],
            Bytes::new(),
        )
        .await
        .expect(404);
    assert_eq!(r.header("access-control-allow-origin"), "");
    let pre = h
        .send(
            "OPTIONS",
            "/v1/parents/profile/x",
            &[
                origin("https://app.example"),
                ("access-control-request-method", "PUT".into()),
            ],
            Bytes::new(),
        )
        .await
        .expect(405);
    assert_eq!(pre.header("access-control-allow-origin"), "");
}

/// With `ATTACHMENTS_CORS_ORIGINS`, the API answers the preflight and the calls of the listed
/// origins, and of no other.
#[tokio::test]
async fn api_cors_answers_the_configured_origins() {
    let h = Harness::embedded_with(Opts::var(
        "ATTACHMENTS_CORS_ORIGINS",
        "https://app.example,http://localhost:5173",
    ))
    .await;
    let pre = h
        .send(
            "OPTIONS",
            "/v1/parents/profile/x/uploads",
            &[
                origin("http://localhost:5173"),
                ("access-control-request-method", "POST".into()),
                (
                    "access-control-request-headers",
                    "x-api-key,content-type".into(),
                ),
            ],
            Bytes::new(),
        )
        .await
        .expect(204);
    assert_eq!(
        pre.header("access-control-allow-origin"),
        "http://localhost:5173"
    );
    assert!(pre.header("access-control-allow-methods").contains("POST"));
    let allowed = pre.header("access-control-allow-headers");
    assert!(
        allowed.contains("x-api-key") && allowed.contains("content-type"),
        "{allowed}"
    );
    assert_eq!(pre.header("access-control-allow-credentials"), "");
    let r = h
        .send(
            "PUT",
            "/v1/parents/profile/x",
            &[origin("https://app.example"), ("x-api-key", KEY_A.into())],
            Bytes::new(),
        )
        .await
        .expect(201);
    assert_eq!(
        r.header("access-control-allow-origin"),
        "https://app.example"
    );
    assert!(r.headers.get_all("vary").iter().any(|v| v == "Origin"));
    // Errors carry it too, so a browser can read why.
    let e = h
        .send(
            "GET",
            "/v1/parents/profile/x",
            &[origin("https://app.example")],
            Bytes::new(),
        )
        .await
        .expect(401);
    assert_eq!(
        e.header("access-control-allow-origin"),
        "https://app.example"
    );
    let other = h
        .send(
            "GET",
            "/v1/parents/profile/x",
            &[origin("https://evil.example"), ("x-api-key", KEY_A.into())],
            Bytes::new(),
        )
        .await
        .expect(200);
    assert_eq!(other.header("access-control-allow-origin"), "");
    h.send(
        "OPTIONS",
        "/v1/parents/profile/x",
        &[
            origin("https://evil.example"),
            ("access-control-request-method", "DELETE".into()),
        ],
        Bytes::new(),
    )
    .await
    .expect(405);
}

/// The store's links answer any origin, as the bucket's CORS rule: the preflight of a part PUT
/// and of the form POST, and the part's `ETag` readable by the page.
#[tokio::test]
async fn blob_links_answer_browsers_of_any_origin() {
    let h = Harness::embedded_with(Opts::var("ATTACHMENTS_DIRECT_POST_MAX_BYTES", "1")).await;
    h.parent(KEY_A, "profile", "p1").await;
    let size = 9 * 1024 * 1024;
    let up = h
        .call(
            "POST",
            "/v1/parents/profile/p1/uploads",
            Some(KEY_A),
            format!(r#"{{"file_name":"big.bin","content_type":"application/octet-stream","size":{size}}}"#),
        )
        .await
        .expect(201)
        .json();
    let part_size = up["upload"]["part_size"].as_u64().unwrap() as usize;
    let url = up["upload"]["parts"][0]["url"].as_str().unwrap().to_owned();
    let page = origin("https://app.example");
    let pre = request(
        "OPTIONS",
        &url,
        &[
            page.clone(),
            ("access-control-request-method", "PUT".into()),
            ("access-control-request-headers", "content-type".into()),
        ],
        Bytes::new(),
    )
    .await;
    assert!(pre.status.is_success(), "{:?}", pre.status);
    assert_eq!(pre.header("access-control-allow-origin"), "*");
    assert!(pre.header("access-control-allow-methods").contains("PUT"));
    assert_eq!(pre.header("access-control-allow-headers"), "content-type");
    let put = request(
        "PUT",
        &url,
        std::slice::from_ref(&page),
        Bytes::from(vec![7u8; part_size]),
    )
    .await;
    assert!(put.status.is_success(), "{:?}", put.status);
    assert_eq!(put.header("access-control-allow-origin"), "*");
    assert_eq!(put.header("access-control-expose-headers"), "ETag");
    assert!(put.header("etag").starts_with('"'));
    // The form POST's preflight, and a method the rule does not allow.
    let pre = request(
        "OPTIONS",
        &format!("{}/_blobs/upload", h.base),
        &[
            page.clone(),
            ("access-control-request-method", "POST".into()),
        ],
        Bytes::new(),
    )
    .await;
    assert!(pre.status.is_success(), "{:?}", pre.status);
    assert_eq!(pre.header("access-control-allow-origin"), "*");
    let refused = request(
        "OPTIONS",
        &url,
        &[page, ("access-control-request-method", "DELETE".into())],
        Bytes::new(),
    )
    .await;
    assert_eq!(refused.status.as_u16(), 403);
    assert_eq!(refused.header("access-control-allow-origin"), "");
}
