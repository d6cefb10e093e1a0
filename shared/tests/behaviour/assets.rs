//! The asset and project attachments dialect: the documentation's requests and answers field by
//! field and type by type, placeholders getting content through the native route, every error
//! row, tenants kept apart, stored data unchanged by refused requests.

use bytes::Bytes;
use serde_json::{json, Value};

use super::crafter::assert_shape;
use crate::support::*;

const ASSET: &str = "bDzHAAxLXsSmhL4lax8D";
const EMPTY_ASSET: &str = "UqFkJDWdw7Sdg7TQZS-J";
const PROJECT: &str = "If8_aXgtMF4ggxOPqvKM";
const EMPTY_PROJECT: &str = "MKEejlgPARb7pJp8JrD4";

/// The documentation's attachment of asset bDzHAAxLXsSmhL4lax8D.
fn seed_asset_item() -> Value {
    json!({
        "id": "S3kQqTTXTFMLBhsY8XeY",
        "external_id": null,
        "parent_id": "bDzHAAxLXsSmhL4lax8D",
        "project_id": null,
        "owner": "admin-user-66@example.com",
        "title": "sample attachment",
        "description": null,
        "category": null,
        "tags": [],
        "ai_tags": [],
        "status": "open",
        "media_type": "placeholder",
        "original_filename": null,
        "drop_folder_id": null,
        "md5_sum": null,
        "created_date": "2023-11-27T09:42:52.099Z",
        "modification_date": "2023-11-27T09:42:52.099Z",
        "deleted": null
    })
}

/// The documentation's attachment of project If8_aXgtMF4ggxOPqvKM.
fn seed_project_item() -> Value {
    json!({
        "id": "Z4xvirg6hr4hi9C7tiby",
        "external_id": null,
        "parent_id": "If8_aXgtMF4ggxOPqvKM",
        "project_id": null,
        "owner": "admin-user-72@example.com",
        "title": "sample attachment",
        "description": null,
        "category": null,
        "tags": [],
        "ai_tags": [],
        "status": "open",
        "media_type": "placeholder",
        "original_filename": null,
        "drop_folder_id": null,
        "md5_sum": null,
        "created_date": "2023-11-27T09:42:53.904Z",
        "modification_date": "2023-11-27T09:42:53.904Z",
        "deleted": null
    })
}

/// The documentation's 280-character title.
fn seed_long_title() -> String {
    format!("Testing too long title: {}", "X".repeat(256))
}

/// `2023-11-27T09:42:52.099Z`: UTC, milliseconds, and a real instant.
fn assert_iso_millis(s: &str) {
    let b = s.as_bytes();
    assert_eq!(b.len(), 24, "{s}");
    for (i, c) in b.iter().enumerate() {
        let expected_sep = match i {
            4 | 7 => Some(b'-'),
            10 => Some(b'T'),
            13 | 16 => Some(b':'),
            19 => Some(b'.'),
            23 => Some(b'Z'),
            _ => None,
        };
        match expected_sep {
            Some(sep) => assert_eq!(*c, sep, "{s}"),
            None => assert!(c.is_ascii_digit(), "{s}"),
        }
    }
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{s}: {e}"));
}

/// Compares an answer's item with the documentation's: shape and types, then every value but the id,
/// owner and dates, which are checked for their form.
fn assert_like_seed(got: &Value, seed: &Value) {
    assert_shape(got, seed);
    for (k, v) in seed.as_object().unwrap() {
        match k.as_str() {
            "id" => assert!(
                uuid::Uuid::try_parse(got[k].as_str().unwrap()).is_ok(),
                "{got}"
            ),
            "owner" => assert_eq!(got[k], OWNER_A),
            "created_date" | "modification_date" => assert_iso_millis(got[k].as_str().unwrap()),
            _ => assert_eq!(&got[k], v, "{k}"),
        }
    }
    assert_eq!(got["created_date"], got["modification_date"]);
}

fn json_headers(key: &str) -> Vec<(&'static str, String)> {
    vec![
        ("x-api-key", key.to_string()),
        ("content-type", "application/json".to_string()),
    ]
}

pub async fn create(h: &Harness, kinds: &str, id: &str, key: &str, body: &str) -> Resp {
    h.send(
        "POST",
        &format!("/api/v2/{kinds}/{id}/attachments"),
        &json_headers(key),
        Bytes::from(body.to_owned()),
    )
    .await
}

/// A GET as the documentation sends it (with its `Content-Type: application/json` header).
pub async fn list(h: &Harness, kinds: &str, id: &str, key: &str) -> Resp {
    h.send(
        "GET",
        &format!("/api/v2/{kinds}/{id}/attachments"),
        &json_headers(key),
        Bytes::new(),
    )
    .await
}

async fn register_seed_parents(h: &Harness, key: &str) {
    for (kind, id) in [
        ("asset", ASSET),
        ("asset", EMPTY_ASSET),
        ("project", PROJECT),
        ("project", EMPTY_PROJECT),
    ] {
        h.parent(key, kind, id).await;
    }
}

/// Every example request of the documentation, for assets and projects.
pub async fn seed_examples(h: &Harness) {
    register_seed_parents(h, KEY_A).await;
    for (kinds, id, empty_id, seed_item) in [
        ("assets", ASSET, EMPTY_ASSET, seed_asset_item()),
        ("projects", PROJECT, EMPTY_PROJECT, seed_project_item()),
    ] {
        // The successful creation: 200, keyed `asset` for projects too.
        let r = create(h, kinds, id, KEY_A, r#"{"title": "sample attachment"}"#)
            .await
            .expect(200);
        assert!(r.header("content-type").starts_with("application/json"));
        let created = r.json();
        let keys: Vec<&String> = created.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["asset"]);
        assert_like_seed(&created["asset"], &seed_item);

        // The successful lists: the empty parent, then the one with the placeholder.
        let empty = list(h, kinds, empty_id, KEY_A).await.expect(200).json();
        assert_eq!(empty, json!({"attachments": []}));
        let full = list(h, kinds, id, KEY_A).await.expect(200).json();
        let keys: Vec<&String> = full.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["attachments"]);
        let items = full["attachments"].as_array().unwrap();
        assert_eq!(items.len(), 1);
        assert_like_seed(&items[0], &seed_item);
        assert_eq!(items[0], created["asset"]);
    }
}

/// A placeholder gets its file through the native route; the asset API then shows the file's
/// type, name and MD5, and a second file is a new version.
pub async fn placeholder_content(h: &Harness) {
    register_seed_parents(h, KEY_A).await;
    let created = create(h, "assets", ASSET, KEY_A, r#"{"title":"photo"}"#)
        .await
        .expect(200)
        .json()["asset"]
        .clone();
    let id = created["id"].as_str().unwrap().to_owned();
    // Native view of a placeholder: no content yet.
    let meta = h
        .get(&format!("/v1/attachments/{id}"), KEY_A)
        .await
        .expect(200)
        .json();
    assert_eq!(meta["status"], "placeholder");
    h.get(&format!("/v1/attachments/{id}/content"), KEY_A)
        .await
        .expect(409);

    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let png = png_1x1();
    let put = h
        .post_form(
            &format!("/v1/attachments/{id}/content"),
            KEY_A,
            &Form::new().file("file", "photo.png", &png),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(put["id"], id.as_str());
    assert_eq!(put["status"], "ready");
    assert_eq!(put["title"], "photo");
    assert_eq!(put["md5"], md5_hex(&png));
    let dl = fetch(put["download_url"].as_str().unwrap())
        .await
        .expect(200);
    assert_eq!(&dl.body[..], &png[..]);

    let items = list(h, "assets", ASSET, KEY_A).await.expect(200).json()["attachments"].clone();
    assert_eq!(items.as_array().unwrap().len(), 1);
    let item = &items[0];
    let mut with_content = seed_asset_item();
    for (k, v) in [
        ("title", json!("photo")),
        ("media_type", json!("image/png")),
        ("original_filename", json!("photo.png")),
        ("md5_sum", json!(md5_hex(&png))),
    ] {
        with_content[k] = v;
    }
    assert_shape(item, &with_content);
    for (k, v) in with_content.as_object().unwrap() {
        if !["id", "owner", "created_date", "modification_date"].contains(&k.as_str()) {
            assert_eq!(&item[k], v, "{k}");
        }
    }
    assert_eq!(item["id"], created["id"]);
    assert_eq!(item["created_date"], created["created_date"]);
    assert_iso_millis(item["modification_date"].as_str().unwrap());
    assert!(
        item["modification_date"].as_str().unwrap()
            > created["modification_date"].as_str().unwrap(),
        "modification_date moves with the content"
    );

    // A second file: a new version of the same attachment.
    let jpeg = jpeg_bytes(4000);
    h.post_form(
        &format!("/v1/attachments/{id}/content"),
        KEY_A,
        &Form::new().file("file", "photo.jpg", &jpeg),
    )
    .await
    .expect(200);
    let item = list(h, "assets", ASSET, KEY_A).await.expect(200).json()["attachments"][0].clone();
    assert_eq!(item["media_type"], "image/jpeg");
    assert_eq!(item["original_filename"], "photo.jpg");
    assert_eq!(item["md5_sum"], md5_hex(&jpeg));
    let r = h
        .get(&format!("/v1/attachments/{id}/content"), KEY_A)
        .await
        .expect(302);
    assert_eq!(
        &fetch(r.header("location")).await.expect(200).body[..],
        &jpeg[..]
    );

    // The route's own errors: unknown or malformed id, no file, two files, no filename, bad bytes.
    let before = snapshot(h, "assets", ASSET, KEY_A).await;
    let content = format!("/v1/attachments/{id}/content");
    for (status, r) in [
        (
            404,
            h.post_form(
                "/v1/attachments/01a2088c-5cf6-7bb1-9e84-4d3aa2c3f1e0/content",
                KEY_A,
                &Form::new().file("file", "a.png", &png),
            )
            .await,
        ),
        (
            404,
            h.post_form(
                "/v1/attachments/nope/content",
                KEY_A,
                &Form::new().file("file", "a.png", &png),
            )
            .await,
        ),
        (
            401,
            h.send("POST", &content, &[], Bytes::new()).await,
        ),
        (
            400,
            h.post_form(&content, KEY_A, &Form::new().text("title", "x")).await,
        ),
        (
            400,
            h.post_form(
                &content,
                KEY_A,
                &Form::new()
                    .file("file", "a.png", &png)
                    .file("file", "b.png", &png),
            )
            .await,
        ),
        (
            400,
            h.send(
                "POST",
                &content,
                &[
                    ("x-api-key", KEY_A.into()),
                    ("content-type", "multipart/form-data; boundary=XX".into()),
                ],
                Bytes::from_static(
                    b"--XX\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc\r\n--XX--\r\n",
                ),
            )
            .await,
        ),
        (
            415,
            h.post_form(
                &content,
                KEY_A,
                &Form::new().file("file", "evil.png", b"<html><script>1</script>"),
            )
            .await,
        ),
    ] {
        let v = r.expect(status).json();
        assert!(v["error"]["code"].is_string(), "{v}");
    }
    assert_eq!(snapshot(h, "assets", ASSET, KEY_A).await, before);
}

/// The list of a parent: what "stored data unchanged" means here, with the bytes of each file.
pub async fn snapshot(h: &Harness, kinds: &str, id: &str, key: &str) -> Vec<(Value, Bytes)> {
    let r = list(h, kinds, id, key).await;
    if r.status.as_u16() == 404 {
        return vec![];
    }
    let mut out = vec![];
    for item in r.expect(200).json()["attachments"]
        .as_array()
        .unwrap()
        .clone()
    {
        let bytes = if item["media_type"] == "placeholder" {
            Bytes::new()
        } else {
            let att = item["id"].as_str().unwrap();
            let r = h
                .get(&format!("/v1/attachments/{att}/content"), key)
                .await
                .expect(302);
            fetch(r.header("location")).await.expect(200).body
        };
        out.push((item, bytes));
    }
    out
}

fn assert_asset_error(r: Resp, status: u16, message: &str) {
    let v = r.expect(status).json();
    assert_eq!(v, json!({ "error": message }));
}

/// Every error this API answers, for assets and projects, with stored data unchanged.
pub async fn errors(h: &Harness) {
    register_seed_parents(h, KEY_A).await;
    // An asset id that is registered as a project only, and the reverse.
    h.parent(KEY_A, "project", "only-a-project").await;
    h.parent(KEY_A, "asset", "only-an-asset").await;
    for (kinds, id) in [("assets", ASSET), ("projects", PROJECT)] {
        create(h, kinds, id, KEY_A, r#"{"title":"kept"}"#)
            .await
            .expect(200);
    }
    let before_a = snapshot(h, "assets", ASSET, KEY_A).await;
    let before_p = snapshot(h, "projects", PROJECT, KEY_A).await;

    for (kinds, id, kind, other) in [
        ("assets", ASSET, "asset", "only-a-project"),
        ("projects", PROJECT, "project", "only-an-asset"),
    ] {
        let path = format!("/api/v2/{kinds}/{id}/attachments");
        let body = Bytes::from_static(br#"{"title":"sample attachment"}"#);
        // 401: missing, unknown, revoked key, on both methods.
        let t = attachments::domain::TenantId::parse("a").unwrap();
        let revoked = h.app.create_key(&t, Some("tmp")).await.unwrap();
        h.app.revoke_key(&revoked.record.id).await.unwrap();
        for method in ["GET", "POST"] {
            let ct = ("content-type", "application/json".to_string());
            for headers in [
                vec![ct.clone()],
                vec![ct.clone(), ("x-api-key", "unknown-key-0123456789".into())],
                vec![ct.clone(), ("x-api-key", revoked.secret.clone())],
            ] {
                let r = h.send(method, &path, &headers, body.clone()).await;
                assert_asset_error(r, 401, "Unauthorized");
            }
        }
        // 404: unknown parent, a parent of the other kind, a malformed id.
        let not_found = format!("{kind} not found");
        for missing in ["nothing-here", other, "bad%20id"] {
            assert_asset_error(list(h, kinds, missing, KEY_A).await, 404, &not_found);
            assert_asset_error(
                create(h, kinds, missing, KEY_A, r#"{"title":"sample attachment"}"#).await,
                404,
                &not_found,
            );
        }
        // 422: the title missing (the documentation's request has no body), null or blank.
        let r = h
            .send("POST", &path, &[("x-api-key", KEY_A.into())], Bytes::new())
            .await;
        assert_asset_error(r, 422, "Missing parameter title");
        for body in [
            "",
            "{}",
            r#"{"title":null}"#,
            r#"{"title":"   "}"#,
            r#"{"name":"x"}"#,
        ] {
            assert_asset_error(
                create(h, kinds, id, KEY_A, body).await,
                422,
                "Missing parameter title",
            );
        }
        // 400: the documentation's long title, 256 multi-byte characters, a title that is not a string,
        // a body that is not JSON or not an object.
        let too_long = "Title is too long (maximum is 255 characters)";
        assert_asset_error(
            create(
                h,
                kinds,
                id,
                KEY_A,
                &json!({ "title": seed_long_title() }).to_string(),
            )
            .await,
            400,
            too_long,
        );
        assert_asset_error(
            create(
                h,
                kinds,
                id,
                KEY_A,
                &json!({ "title": "é".repeat(256) }).to_string(),
            )
            .await,
            400,
            too_long,
        );
        for body in [
            r#"{"title":5}"#,
            r#"{"title":true}"#,
            r#"{"title":["a"]}"#,
            r#"{"title":{"a":1}}"#,
        ] {
            assert_asset_error(
                create(h, kinds, id, KEY_A, body).await,
                400,
                "Title must be a String",
            );
        }
        let r = create(h, kinds, id, KEY_A, "{\"title\": \"x\"")
            .await
            .expect(400)
            .json();
        assert!(
            r["error"]
                .as_str()
                .unwrap()
                .starts_with("The body is not valid JSON"),
            "{r}"
        );
        assert_asset_error(
            create(h, kinds, id, KEY_A, r#"["title"]"#).await,
            400,
            "The body must be a JSON object",
        );
        // 415: a body of another type.
        for ct in ["text/plain", "application/x-www-form-urlencoded"] {
            let r = h
                .send(
                    "POST",
                    &path,
                    &[("x-api-key", KEY_A.into()), ("content-type", ct.into())],
                    Bytes::from_static(b"title=sample"),
                )
                .await;
            assert_asset_error(r, 415, "Content-Type must be application/json");
        }
        // 405 in this envelope.
        let r = h.call("DELETE", &path, Some(KEY_A), "").await;
        assert_eq!(r.header("allow"), "GET, POST");
        assert_asset_error(r, 405, "method not allowed on this path");
    }
    // A body over the request limit: 413 in this envelope.
    let limit = h.app.limits.max_upload_bytes;
    let big = json!({ "title": "x".repeat(limit) }).to_string();
    let r = create(h, "assets", ASSET, KEY_A, &big).await;
    let v = r.expect(413).json();
    assert!(v["error"]
        .as_str()
        .unwrap()
        .contains("larger than the limit"));

    assert_eq!(snapshot(h, "assets", ASSET, KEY_A).await, before_a);
    assert_eq!(snapshot(h, "projects", PROJECT, KEY_A).await, before_p);
}

/// Titles are counted in characters: 255 multi-byte characters (510 bytes) are accepted.
pub async fn title_in_characters(h: &Harness) {
    register_seed_parents(h, KEY_A).await;
    for (title, kinds, id) in [
        ("é".repeat(255), "assets", ASSET),
        ("😀".repeat(255), "projects", PROJECT),
        ("X".repeat(255), "assets", ASSET),
    ] {
        let r = create(h, kinds, id, KEY_A, &json!({ "title": title }).to_string())
            .await
            .expect(200)
            .json();
        assert_eq!(r["asset"]["title"], title.as_str());
    }
    let all = list(h, "assets", ASSET, KEY_A).await.expect(200).json();
    assert_eq!(all["attachments"].as_array().unwrap().len(), 2);
    assert_eq!(all["attachments"][0]["title"], "é".repeat(255));
}

/// Tenant b on tenant a's assets and projects: answered as unknown ones are, nothing created;
/// b's own parent of the same id shows only b's attachments.
pub async fn cross_tenant(h: &Harness) {
    register_seed_parents(h, KEY_A).await;
    for (kinds, id) in [("assets", ASSET), ("projects", PROJECT)] {
        create(h, kinds, id, KEY_A, r#"{"title":"a's"}"#)
            .await
            .expect(200);
        let before = snapshot(h, kinds, id, KEY_A).await;
        for (theirs, unknown) in [
            (
                list(h, kinds, id, KEY_B).await,
                list(h, kinds, "nothing-here", KEY_B).await,
            ),
            (
                create(h, kinds, id, KEY_B, r#"{"title":"b's"}"#).await,
                create(h, kinds, "nothing-here", KEY_B, r#"{"title":"b's"}"#).await,
            ),
        ] {
            assert_eq!(theirs.status.as_u16(), 404);
            assert_eq!(theirs.body, unknown.body);
        }
        assert_eq!(snapshot(h, kinds, id, KEY_A).await, before);
    }
    // b's own asset of the same id.
    h.parent(KEY_B, "asset", ASSET).await;
    assert_eq!(
        list(h, "assets", ASSET, KEY_B).await.expect(200).json(),
        json!({"attachments": []})
    );
    let b = create(h, "assets", ASSET, KEY_B, r#"{"title":"b's"}"#)
        .await
        .expect(200)
        .json();
    assert_eq!(
        b["asset"]["owner"], "b",
        "b's key has no owner label: the tenant"
    );
    // a's placeholder cannot get content through b's key.
    let a_item = list(h, "assets", ASSET, KEY_A).await.expect(200).json()["attachments"][0].clone();
    let a_id = a_item["id"].as_str().unwrap();
    h.post_form(
        &format!("/v1/attachments/{a_id}/content"),
        KEY_B,
        &Form::new().file("file", "x.png", &png_1x1()),
    )
    .await
    .expect(404);
    assert_eq!(
        list(h, "assets", ASSET, KEY_A).await.expect(200).json()["attachments"],
        json!([a_item])
    );
}
