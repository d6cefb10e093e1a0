//! The behaviour suite of the native API. Each function takes a running [`Harness`], so the
//! same tests run on every backend (see `embedded.rs` and `aws.rs`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod assets;
pub mod contract;
pub mod crafter;
pub mod hrflow;
pub mod records;

use bytes::Bytes;
use serde_json::Value;

use crate::support::*;

pub mod direct;

/// Everything tenant a has under a parent, with links stripped (they carry a changing expiry),
/// and the bytes behind every link: what "stored data unchanged" means.
pub async fn snapshot(h: &Harness, key: &str, kind: &str, id: &str) -> Vec<(Value, Bytes)> {
    let r = h
        .get(
            &format!("/v1/parents/{kind}/{id}/attachments?limit=1000"),
            key,
        )
        .await;
    if r.status.as_u16() == 404 {
        return vec![];
    }
    let mut out = vec![];
    for mut item in r.expect(200).json()["items"].as_array().unwrap().clone() {
        let url = item["download_url"].as_str().unwrap_or_default().to_owned();
        item.as_object_mut().unwrap().remove("download_url");
        item.as_object_mut().unwrap().remove("thumbnail_url");
        let bytes = if url.is_empty() {
            Bytes::new()
        } else {
            fetch(&url).await.expect(200).body
        };
        out.push((item, bytes));
    }
    out
}

/// The README walk-through: register, upload, list, metadata, download, compare, delete.
pub async fn walkthrough(h: &Harness) {
    let created = h
        .call(
            "PUT",
            "/v1/parents/profile/59284659d4c650213cc2f3fc",
            Some(KEY_A),
            r#"{"source":"crm","reference":"ref-1","email":"Jane@Example.com"}"#,
        )
        .await
        .expect(201)
        .json();
    assert_eq!(created["kind"], "profile");
    assert_eq!(created["email"], "jane@example.com");
    let again = h
        .call(
            "PUT",
            "/v1/parents/profile/59284659d4c650213cc2f3fc",
            Some(KEY_A),
            r#"{"source":"crm","reference":"ref-1"}"#,
        )
        .await
        .expect(200)
        .json();
    assert_eq!(again["created_at"], created["created_at"]);
    assert_eq!(again["email"], Value::Null);
    let got = h
        .get("/v1/parents/profile/59284659d4c650213cc2f3fc", KEY_A)
        .await
        .expect(200)
        .json();
    assert_eq!(got["reference"], "ref-1");

    let pdf = b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\ntrailer\n%%EOF\n".to_vec();
    let txt = "naïve café notes\n".as_bytes().to_vec();
    let form = Form::new()
        .file("file", "résumé 2024.pdf", &pdf)
        .file("file", "notes.txt", &txt)
        .text("type", "resume")
        .text("title", "CV")
        .text("description", "latest")
        .text("category", "hr")
        .text("tags", "a, b,,a")
        .text("external_id", "ext-9");
    let up = h
        .post_form(
            "/v1/parents/profile/59284659d4c650213cc2f3fc/attachments",
            KEY_A,
            &form,
        )
        .await
        .expect(201)
        .json();
    let items = up["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    let a = &items[0];
    assert_eq!(a["file_name"], "résumé 2024.pdf");
    assert_eq!(a["original_file_name"], "résumé 2024");
    assert_eq!(a["extension"], "pdf");
    assert_eq!(a["content_type"], "application/pdf");
    assert_eq!(a["size"], pdf.len());
    assert_eq!(a["md5"], md5_hex(&pdf));
    assert_eq!(a["sha256"], sha256_hex(&pdf));
    assert_eq!(a["type"], "resume");
    assert_eq!(a["title"], "CV");
    assert_eq!(a["description"], "latest");
    assert_eq!(a["category"], "hr");
    assert_eq!(a["tags"], serde_json::json!(["a", "b"]));
    assert_eq!(a["external_id"], "ext-9");
    assert_eq!(a["status"], "ready");
    assert_eq!(a["owner"], OWNER_A);
    assert_eq!(
        a["parent"],
        serde_json::json!({"kind":"profile","id":"59284659d4c650213cc2f3fc"})
    );
    for f in [
        "id",
        "version_id",
        "created_at",
        "updated_at",
        "download_url",
        "thumbnail_url",
    ] {
        assert!(a[f].is_string(), "{f}");
    }
    let expected_keys = [
        "id",
        "parent",
        "file_name",
        "original_file_name",
        "extension",
        "content_type",
        "size",
        "md5",
        "sha256",
        "type",
        "title",
        "description",
        "category",
        "tags",
        "status",
        "owner",
        "external_id",
        "version_id",
        "created_at",
        "updated_at",
        "download_url",
        "thumbnail_url",
    ];
    let keys: Vec<&str> = a.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, expected_keys);
    assert_eq!(items[1]["content_type"], "text/plain");

    // List: oldest first, then pages of one with a cursor.
    let list = h
        .get(
            "/v1/parents/profile/59284659d4c650213cc2f3fc/attachments",
            KEY_A,
        )
        .await
        .expect(200)
        .json();
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    assert_eq!(list["items"][0]["id"], a["id"]);
    assert_eq!(list["next_cursor"], Value::Null);
    let p1 = h
        .get(
            "/v1/parents/profile/59284659d4c650213cc2f3fc/attachments?limit=1",
            KEY_A,
        )
        .await
        .expect(200)
        .json();
    assert_eq!(p1["items"][0]["id"], a["id"]);
    let cursor = p1["next_cursor"].as_str().unwrap().to_owned();
    let p2 = h
        .get(
            &format!(
                "/v1/parents/profile/59284659d4c650213cc2f3fc/attachments?limit=1&cursor={cursor}"
            ),
            KEY_A,
        )
        .await
        .expect(200)
        .json();
    assert_eq!(p2["items"][0]["id"], items[1]["id"]);
    assert_eq!(p2["next_cursor"], Value::Null);

    // Metadata, then the bytes through the link, with the stored type and disposition.
    let id = a["id"].as_str().unwrap();
    let meta = h
        .get(&format!("/v1/attachments/{id}"), KEY_A)
        .await
        .expect(200)
        .json();
    let dl = fetch(meta["download_url"].as_str().unwrap())
        .await
        .expect(200);
    assert_eq!(&dl.body[..], &pdf[..]);
    assert_eq!(dl.header("content-type"), "application/pdf");
    assert_eq!(
        dl.header("content-disposition"),
        "attachment; filename*=UTF-8''r%C3%A9sum%C3%A9%202024.pdf"
    );
    // Its thumbnail: a PNG (a PDF gets its family's icon), never the file itself.
    let thumb = fetch(meta["thumbnail_url"].as_str().unwrap())
        .await
        .expect(200);
    assert_eq!(thumb.header("content-type"), "image/png");
    assert!(thumb.body.starts_with(b"\x89PNG"), "a PNG");
    assert_ne!(&thumb.body[..], &pdf[..]);
    let redirect = h
        .get(&format!("/v1/attachments/{id}/content"), KEY_A)
        .await
        .expect(302);
    let again = fetch(redirect.header("location")).await.expect(200);
    assert_eq!(&again.body[..], &pdf[..]);

    // Delete: gone from metadata, list and storage.
    h.call("DELETE", &format!("/v1/attachments/{id}"), Some(KEY_A), "")
        .await
        .expect(204);
    h.get(&format!("/v1/attachments/{id}"), KEY_A)
        .await
        .expect(404);
    let gone = fetch(meta["download_url"].as_str().unwrap()).await;
    assert!(gone.status.is_client_error(), "{:?}", gone.status);
    let list = h
        .get(
            "/v1/parents/profile/59284659d4c650213cc2f3fc/attachments",
            KEY_A,
        )
        .await
        .expect(200)
        .json();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    h.call("DELETE", &format!("/v1/attachments/{id}"), Some(KEY_A), "")
        .await
        .expect(404);
}

/// Look-up fields are unique per tenant, kind and source; deleting a parent removes everything.
pub async fn parents(h: &Harness) {
    h.call(
        "PUT",
        "/v1/parents/profile/p1",
        Some(KEY_A),
        r#"{"source":"s1","reference":"r","email":"x@y.z"}"#,
    )
    .await
    .expect(201);
    let clash = h
        .call(
            "PUT",
            "/v1/parents/profile/p2",
            Some(KEY_A),
            r#"{"source":"s1","reference":"r"}"#,
        )
        .await
        .expect(409)
        .json();
    assert_eq!(clash["error"]["code"], "conflict");
    h.call(
        "PUT",
        "/v1/parents/profile/p2",
        Some(KEY_A),
        r#"{"source":"s1","email":"X@y.z"}"#,
    )
    .await
    .expect(409);
    // Another source, another kind, another tenant: no clash.
    h.call(
        "PUT",
        "/v1/parents/profile/p2",
        Some(KEY_A),
        r#"{"source":"s2","reference":"r","email":"x@y.z"}"#,
    )
    .await
    .expect(201);
    h.call(
        "PUT",
        "/v1/parents/asset/p3",
        Some(KEY_A),
        r#"{"source":"s1","reference":"r"}"#,
    )
    .await
    .expect(201);
    h.call(
        "PUT",
        "/v1/parents/profile/p1",
        Some(KEY_B),
        r#"{"source":"s1","reference":"r"}"#,
    )
    .await
    .expect(201);
    // A parent may take its own values again, and give them up for another to take.
    h.call(
        "PUT",
        "/v1/parents/profile/p1",
        Some(KEY_A),
        r#"{"source":"s1","reference":"r"}"#,
    )
    .await
    .expect(200);
    h.call(
        "PUT",
        "/v1/parents/profile/p1",
        Some(KEY_A),
        r#"{"source":"s1","reference":"r-new"}"#,
    )
    .await
    .expect(200);
    h.call(
        "PUT",
        "/v1/parents/profile/p4",
        Some(KEY_A),
        r#"{"source":"s1","reference":"r"}"#,
    )
    .await
    .expect(201);

    let form = Form::new()
        .file("file", "a.txt", b"first")
        .file("file", "b.txt", b"second");
    let up = h
        .post_form("/v1/parents/profile/p1/attachments", KEY_A, &form)
        .await
        .expect(201)
        .json();
    let url = up["items"][0]["download_url"].as_str().unwrap().to_owned();
    fetch(&url).await.expect(200);
    h.call("DELETE", "/v1/parents/profile/p1", Some(KEY_A), "")
        .await
        .expect(204);
    h.get("/v1/parents/profile/p1", KEY_A).await.expect(404);
    h.get(
        &format!("/v1/attachments/{}", up["items"][0]["id"].as_str().unwrap()),
        KEY_A,
    )
    .await
    .expect(404);
    assert!(fetch(&url).await.status.is_client_error());
    // Tenant b's parent of the same name is untouched.
    h.get("/v1/parents/profile/p1", KEY_B).await.expect(200);
    // The freed look-up can be taken again.
    h.call(
        "PUT",
        "/v1/parents/profile/p5",
        Some(KEY_A),
        r#"{"source":"s1","email":"x@y.z"}"#,
    )
    .await
    .expect(201);
}

/// Every way of presenting a key, and every way of not having one.
pub async fn auth(h: &Harness) {
    h.parent(KEY_A, "profile", "p1").await;
    let path = "/v1/parents/profile/p1";
    let none = h.call("GET", path, None, "").await.expect(401).json();
    assert_eq!(none["error"]["code"], "unauthorized");
    h.call("GET", path, Some("not-a-key-at-all-000000"), "")
        .await
        .expect(401);
    h.send(
        "GET",
        path,
        &[("authorization", format!("Bearer {KEY_A}"))],
        Bytes::new(),
    )
    .await
    .expect(200);
    // A key in the URL ends up in logs and histories: only Crafter's routes take one, since
    // Crafter's clients send it so.
    let in_url = h
        .send(
            "GET",
            &format!("{path}?accessTokenId={KEY_A}"),
            &[],
            Bytes::new(),
        )
        .await
        .expect(401);
    assert_eq!(in_url.header("x-content-type-options"), "nosniff");
    let r = h
        .call("GET", path, Some("wrong-key-but-long-enough"), "")
        .await;
    assert!(
        !String::from_utf8_lossy(&r.body).contains("wrong-key"),
        "the key is never echoed"
    );
    // Revoked keys stop working at once.
    let t = attachments::domain::TenantId::parse("a").unwrap();
    let k = h.app.create_key(&t, Some("tmp")).await.unwrap();
    h.call("GET", path, Some(&k.secret), "").await.expect(200);
    h.app.revoke_key(&k.record.id).await.unwrap();
    h.call("GET", path, Some(&k.secret), "").await.expect(401);
    // Every route wants a key.
    for (method, p) in [
        ("PUT", "/v1/parents/profile/p1"),
        ("DELETE", "/v1/parents/profile/p1"),
        ("POST", "/v1/parents/profile/p1/attachments"),
        ("GET", "/v1/parents/profile/p1/attachments"),
        (
            "GET",
            "/v1/attachments/01a2088c-5cf6-7bb1-9e84-4d3aa2c3f1e0",
        ),
        (
            "GET",
            "/v1/attachments/01a2088c-5cf6-7bb1-9e84-4d3aa2c3f1e0/content",
        ),
        (
            "DELETE",
            "/v1/attachments/01a2088c-5cf6-7bb1-9e84-4d3aa2c3f1e0",
        ),
    ] {
        h.call(method, p, None, "").await.expect(401);
    }
    h.get(path, KEY_A).await.expect(200);
}

/// Tenant b's key on tenant a's parents, attachments and cursors, on every route: answered
/// exactly as unknown ids are, and nothing of a's changes.
pub async fn cross_tenant(h: &Harness) {
    h.parent(KEY_A, "profile", "pa").await;
    let form = Form::new()
        .file("file", "a.txt", b"secret of a")
        .file("file", "b.txt", b"more");
    let up = h
        .post_form("/v1/parents/profile/pa/attachments", KEY_A, &form)
        .await
        .expect(201)
        .json();
    let id = up["items"][0]["id"].as_str().unwrap().to_owned();
    let cursor = h
        .get("/v1/parents/profile/pa/attachments?limit=1", KEY_A)
        .await
        .json()["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = snapshot(h, KEY_A, "profile", "pa").await;

    let unknown = "01a2088c-5cf6-7bb1-9e84-4d3aa2c3f1e0";
    for (method, other, missing) in [
        (
            "GET",
            format!("/v1/attachments/{id}"),
            format!("/v1/attachments/{unknown}"),
        ),
        (
            "GET",
            format!("/v1/attachments/{id}/content"),
            format!("/v1/attachments/{unknown}/content"),
        ),
        (
            "DELETE",
            format!("/v1/attachments/{id}"),
            format!("/v1/attachments/{unknown}"),
        ),
        (
            "GET",
            "/v1/parents/profile/pa".into(),
            "/v1/parents/profile/nobody".into(),
        ),
        (
            "GET",
            "/v1/parents/profile/pa/attachments".into(),
            "/v1/parents/profile/nobody/attachments".into(),
        ),
        (
            "DELETE",
            "/v1/parents/profile/pa".into(),
            "/v1/parents/profile/nobody".into(),
        ),
    ] {
        let a = h.call(method, &other, Some(KEY_B), "").await;
        let b = h.call(method, &missing, Some(KEY_B), "").await;
        assert_eq!(a.status.as_u16(), 404, "{method} {other}");
        assert_eq!(
            a.body, b.body,
            "{method} {other} answers as an unknown id does"
        );
    }
    let up_b = h
        .post_form(
            "/v1/parents/profile/pa/attachments",
            KEY_B,
            &Form::new().file("file", "x.txt", b"x"),
        )
        .await;
    up_b.expect(404);
    // b's cursor use: even on b's own parent of the same name, a's cursor is refused.
    h.parent(KEY_B, "profile", "pa").await;
    let r = h
        .get(
            &format!("/v1/parents/profile/pa/attachments?cursor={cursor}"),
            KEY_B,
        )
        .await
        .expect(400)
        .json();
    assert_eq!(r["error"]["code"], "bad_request");
    // b registering a parent of the same name creates b's own, it does not touch a's.
    assert_eq!(snapshot(h, KEY_A, "profile", "pa").await, before);
    assert_eq!(
        h.get("/v1/parents/profile/pa/attachments", KEY_B)
            .await
            .expect(200)
            .json()["items"],
        serde_json::json!([])
    );
}

/// Bad input on every route: a 4xx in the envelope, and stored data unchanged afterwards.
pub async fn bad_input(h: &Harness) {
    h.parent(KEY_A, "profile", "p1").await;
    let up = h
        .post_form(
            "/v1/parents/profile/p1/attachments",
            KEY_A,
            &Form::new().file("file", "keep.txt", b"keep me"),
        )
        .await
        .expect(201)
        .json();
    let id = up["items"][0]["id"].as_str().unwrap().to_owned();
    let before = snapshot(h, KEY_A, "profile", "p1").await;
    let upload = "/v1/parents/profile/p1/attachments";
    let key = || ("x-api-key", KEY_A.to_string());
    let mp = |b: &str| ("content-type", format!("multipart/form-data; boundary={b}"));

    let mut cases: Vec<(u16, Resp)> = vec![];
    // Multipart: no boundary, not multipart at all, no closing boundary, huge preamble,
    // thousands of parts, oversized part headers, no file part, no filename.
    cases.push((
        400,
        h.send(
            "POST",
            upload,
            &[key(), ("content-type", "multipart/form-data".into())],
            Bytes::from_static(b"x"),
        )
        .await,
    ));
    cases.push((
        400,
        h.send(
            "POST",
            upload,
            &[key(), ("content-type", "application/json".into())],
            Bytes::from_static(b"{}"),
        )
        .await,
    ));
    cases.push((400, h.send("POST", upload, &[key()], Bytes::new()).await));
    let unclosed =
        "--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\nabc";
    cases.push((
        400,
        h.send("POST", upload, &[key(), mp("XX")], Bytes::from(unclosed))
            .await,
    ));
    let mut preamble = "p".repeat(1_000_000);
    preamble.push_str("\r\n--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\nabc\r\n--XX--\r\n");
    let pre = h
        .send("POST", upload, &[key(), mp("XX")], Bytes::from(preamble))
        .await;
    let mut thousands = String::new();
    for i in 0..5000 {
        thousands.push_str(&format!(
            "--XX\r\nContent-Disposition: form-data; name=\"f{i}\"\r\n\r\nx\r\n"
        ));
    }
    thousands.push_str("--XX--\r\n");
    cases.push((
        400,
        h.send("POST", upload, &[key(), mp("XX")], Bytes::from(thousands))
            .await,
    ));
    let big_header = format!(
        "--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\nX-Pad: {}\r\n\r\nabc\r\n--XX--\r\n",
        "h".repeat(200_000)
    );
    cases.push((
        400,
        h.send("POST", upload, &[key(), mp("XX")], Bytes::from(big_header))
            .await,
    ));
    let many_headers: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let many = format!("--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n{many_headers}\r\nabc\r\n--XX--\r\n");
    cases.push((
        400,
        h.send("POST", upload, &[key(), mp("XX")], Bytes::from(many))
            .await,
    ));
    cases.push((
        400,
        h.post_form(upload, KEY_A, &Form::new().text("title", "no file"))
            .await,
    ));
    let nofilename =
        "--XX\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc\r\n--XX--\r\n";
    cases.push((
        400,
        h.send("POST", upload, &[key(), mp("XX")], Bytes::from(nofilename))
            .await,
    ));
    // A name that hides a right-to-left override, to pass an .exe off as a .jpg.
    cases.push((
        400,
        h.post_form(
            upload,
            KEY_A,
            &Form::new().file("file", "invoice\u{202E}gpj.exe", b"MZ not really"),
        )
        .await,
    ));
    // Content: empty file, body over the limit, bytes that contradict the extension.
    cases.push((
        422,
        h.post_form(upload, KEY_A, &Form::new().file("file", "empty.txt", b""))
            .await,
    ));
    let limit = h.app.limits.max_upload_bytes;
    cases.push((
        413,
        h.post_form(
            upload,
            KEY_A,
            &Form::new().file("file", "big.bin", &vec![7u8; limit + 1]),
        )
        .await,
    ));
    cases.push((
        415,
        h.post_form(
            upload,
            KEY_A,
            &Form::new().file(
                "file",
                "evil.png",
                b"<!DOCTYPE html><script>alert(1)</script>",
            ),
        )
        .await,
    ));
    // A bad label, and a good file beside a bad one: neither is stored.
    cases.push((
        400,
        h.post_form(
            upload,
            KEY_A,
            &Form::new()
                .file("file", "a.txt", b"a")
                .text("type", "no spaces"),
        )
        .await,
    ));
    cases.push((
        415,
        h.post_form(
            upload,
            KEY_A,
            &Form::new()
                .file("file", "ok.txt", b"fine")
                .file("file", "bad.jpg", b"GIF89a...."),
        )
        .await,
    ));
    // Unknown parent, malformed ids, bad cursor and limit, bad JSON, unknown fields.
    cases.push((
        404,
        h.post_form(
            "/v1/parents/profile/nobody/attachments",
            KEY_A,
            &Form::new().file("file", "a.txt", b"a"),
        )
        .await,
    ));
    cases.push((400, h.get("/v1/parents/profile/bad%20id", KEY_A).await));
    cases.push((400, h.get("/v1/parents/pro%2Ffile/p1", KEY_A).await));
    cases.push((
        400,
        h.call(
            "PUT",
            &format!("/v1/parents/profile/{}", "x".repeat(300)),
            Some(KEY_A),
            "",
        )
        .await,
    ));
    cases.push((404, h.get("/v1/attachments/not-a-uuid", KEY_A).await));
    cases.push((
        404,
        h.get("/v1/attachments/not-a-uuid/content", KEY_A).await,
    ));
    cases.push((
        404,
        h.call("DELETE", "/v1/attachments/../../etc", Some(KEY_A), "")
            .await,
    ));
    cases.push((
        400,
        h.get("/v1/parents/profile/p1/attachments?cursor=forged", KEY_A)
            .await,
    ));
    cases.push((
        400,
        h.get("/v1/parents/profile/p1/attachments?limit=0", KEY_A)
            .await,
    ));
    cases.push((
        400,
        h.get("/v1/parents/profile/p1/attachments?limit=1001", KEY_A)
            .await,
    ));
    cases.push((
        400,
        h.get("/v1/parents/profile/p1/attachments?limit=ten", KEY_A)
            .await,
    ));
    cases.push((
        400,
        h.call("PUT", "/v1/parents/profile/p1", Some(KEY_A), "{not json")
            .await,
    ));
    cases.push((
        400,
        h.call(
            "PUT",
            "/v1/parents/profile/p1",
            Some(KEY_A),
            r#"{"email":5}"#,
        )
        .await,
    ));
    cases.push((
        400,
        h.call(
            "PUT",
            "/v1/parents/profile/p1",
            Some(KEY_A),
            r#"{"emial":"x@y.z"}"#,
        )
        .await,
    ));
    cases.push((
        400,
        h.call(
            "PUT",
            "/v1/parents/profile/p1",
            Some(KEY_A),
            r#"{"email":"not-an-email"}"#,
        )
        .await,
    ));
    cases.push((
        400,
        h.call("PUT", "/v1/parents/profile/p1", Some(KEY_A), "[1,2]")
            .await,
    ));
    // Unsupported methods and unknown routes.
    cases.push((
        405,
        h.call("PATCH", &format!("/v1/attachments/{id}"), Some(KEY_A), "")
            .await,
    ));
    cases.push((
        405,
        h.call("POST", "/v1/parents/profile/p1", Some(KEY_A), "")
            .await,
    ));
    cases.push((404, h.get("/v1/nothing-here", KEY_A).await));

    for (i, (status, r)) in cases.iter().enumerate() {
        assert_eq!(
            r.status.as_u16(),
            *status,
            "case {i}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let err = r.json();
        assert!(
            err["error"]["code"].is_string() && err["error"]["message"].is_string(),
            "case {i}: {err}"
        );
    }
    assert_eq!(cases[cases.len() - 3].1.header("allow"), "GET, DELETE");
    let pre = pre.expect(400).json();
    assert!(
        pre["error"]["message"]
            .as_str()
            .unwrap()
            .contains("before its first boundary"),
        "{pre}"
    );
    assert_eq!(
        snapshot(h, KEY_A, "profile", "p1").await,
        before,
        "stored data changed"
    );
    h.get(&format!("/v1/attachments/{id}"), KEY_A)
        .await
        .expect(200);
}

/// Links refuse tampering; an expired link is refused (needs a harness with a short TTL).
pub async fn tampered_links(h: &Harness) {
    h.parent(KEY_A, "profile", "p1").await;
    let up = h
        .post_form(
            "/v1/parents/profile/p1/attachments",
            KEY_A,
            &Form::new().file("file", "a.txt", b"abc"),
        )
        .await
        .expect(201)
        .json();
    let url = up["items"][0]["download_url"].as_str().unwrap().to_owned();
    fetch(&url).await.expect(200);
    let flipped = if url.ends_with('0') {
        format!("{}1", &url[..url.len() - 1])
    } else {
        format!("{}0", &url[..url.len() - 1])
    };
    assert_eq!(fetch(&flipped).await.status.as_u16(), 403);
    let retyped = url.replace("text%2Fplain", "text%2Fhtml");
    assert_ne!(retyped, url);
    assert_eq!(fetch(&retyped).await.status.as_u16(), 403);
}

pub async fn expired_links(h: &Harness) {
    h.parent(KEY_A, "profile", "p1").await;
    let up = h
        .post_form(
            "/v1/parents/profile/p1/attachments",
            KEY_A,
            &Form::new().file("file", "a.txt", b"abc"),
        )
        .await
        .expect(201)
        .json();
    let url = up["items"][0]["download_url"].as_str().unwrap().to_owned();
    fetch(&url).await.expect(200);
    tokio::time::sleep(std::time::Duration::from_millis(2600)).await;
    assert_eq!(fetch(&url).await.status.as_u16(), 403);
}

/// A GET with `If-None-Match`: the answer `304` when the tag still names the answer.
pub async fn get_if_none_match(h: &Harness, path: &str, key: &str, etag: &str) -> Resp {
    h.send(
        "GET",
        path,
        &[
            ("x-api-key", key.to_string()),
            ("if-none-match", etag.to_string()),
        ],
        Bytes::new(),
    )
    .await
}

/// A read answered `200` with its tag, then `304` with the same tag and no body when asked with
/// it; the tag is returned.
pub async fn tagged_then_not_modified(h: &Harness, path: &str, key: &str) -> (Resp, String) {
    let first = h.get(path, key).await.expect(200);
    let etag = first.header("etag").to_owned();
    assert!(
        etag.starts_with('"') && etag.len() > 2,
        "{path}: tag {etag:?}"
    );
    assert_eq!(first.header("cache-control"), "private, no-cache", "{path}");
    let again = get_if_none_match(h, path, key, &etag).await.expect(304);
    assert!(again.body.is_empty(), "{path}");
    assert_eq!(again.header("etag"), etag, "{path}");
    (first, etag)
}

/// Listings and metadata answer with a strong `ETag` and honour `If-None-Match` with `304`; any
/// change to what they show (an upload, a deletion) changes the tag, errors carry none, and a
/// tag never crosses tenants.
pub async fn conditional_listings(h: &Harness) {
    let path = "/v1/parents/profile/tagged/attachments";
    let names = |r: &Resp| -> Vec<String> {
        r.json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["file_name"].as_str().unwrap().to_owned())
            .collect()
    };
    let upload = |key: &'static str, name: &'static str| async move {
        let form = Form::new().file("file", name, name.as_bytes());
        h.post_form(path, key, &form).await.expect(201).json()["items"][0]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    // An error is not tagged.
    let missing = h.get(path, KEY_A).await.expect(404);
    assert_eq!(missing.header("etag"), "");

    h.parent(KEY_A, "profile", "tagged").await;
    let (_, empty_tag) = tagged_then_not_modified(h, path, KEY_A).await;
    let first = upload(KEY_A, "a1.txt").await;
    let listed = get_if_none_match(h, path, KEY_A, &empty_tag)
        .await
        .expect(200);
    assert_eq!(names(&listed), ["a1.txt"]);
    let (_, one_tag) = tagged_then_not_modified(h, path, KEY_A).await;
    assert_ne!(one_tag, empty_tag);

    // Other parameters, another answer.
    let (_, page_tag) = tagged_then_not_modified(h, &format!("{path}?limit=1"), KEY_A).await;
    upload(KEY_A, "a2.txt").await;
    let after = get_if_none_match(h, path, KEY_A, &one_tag)
        .await
        .expect(200);
    assert_eq!(names(&after), ["a1.txt", "a2.txt"]);
    assert_ne!(after.header("etag"), one_tag);
    // The first page shows the same item, but now with a cursor to the second: a new answer.
    let page = get_if_none_match(h, &format!("{path}?limit=1"), KEY_A, &page_tag).await;
    assert_eq!(page.expect(200).json()["items"][0]["file_name"], "a1.txt");

    // The metadata of one attachment, and its change by a deletion.
    let one = format!("/v1/attachments/{first}");
    let (meta, _) = tagged_then_not_modified(h, &one, KEY_A).await;
    assert_eq!(meta.json()["file_name"], "a1.txt");
    let (_, two_tag) = tagged_then_not_modified(h, path, KEY_A).await;
    h.call("DELETE", &one, Some(KEY_A), "").await.expect(204);
    let after = get_if_none_match(h, path, KEY_A, &two_tag)
        .await
        .expect(200);
    assert_eq!(names(&after), ["a2.txt"]);

    // The other tenant's parent of the same kind and id: its own answer, whatever tag it sends.
    h.parent(KEY_B, "profile", "tagged").await;
    upload(KEY_B, "b1.txt").await;
    let (_, a_tag) = tagged_then_not_modified(h, path, KEY_A).await;
    let b = get_if_none_match(h, path, KEY_B, &a_tag).await.expect(200);
    assert_eq!(names(&b), ["b1.txt"]);
    // A tag of tenant a names nothing of tenant b, and an unknown id is still a 404.
    get_if_none_match(h, &one, KEY_B, "*").await.expect(404);
}

/// When the window of the links turns, the links change and so does the tag, while the links
/// handed out before still have half their lifetime left. `ttl` is the link lifetime the harness
/// was started with (a few seconds).
pub async fn conditional_link_windows(h: &Harness, ttl: u64) {
    h.parent(KEY_A, "profile", "windows").await;
    let path = "/v1/parents/profile/windows/attachments";
    let form = Form::new().file("file", "w.txt", b"window");
    h.post_form(path, KEY_A, &form).await.expect(201);
    let (first, tag) = tagged_then_not_modified(h, path, KEY_A).await;
    let link = first.json()["items"][0]["download_url"]
        .as_str()
        .unwrap()
        .to_owned();
    // Within the window the tag holds; past it, a new answer with new links.
    let mut turned = None;
    for _ in 0..(ttl * 10 + 20) {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let r = get_if_none_match(h, path, KEY_A, &tag).await;
        if r.status.as_u16() == 200 {
            turned = Some(r);
            break;
        }
        assert_eq!(r.status.as_u16(), 304);
    }
    let turned = turned.expect("the link window never turned");
    assert_ne!(turned.header("etag"), tag);
    let new_link = turned.json()["items"][0]["download_url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_link, link);
    // The link the old answer carried still works: it had at least half its life left.
    fetch(&link).await.expect(200);
}

/// Every API's listing and metadata read is conditional like the native one (see
/// [`conditional_listings`]): asked again with its tag it is a `304`, and an upload to the
/// parent, by any API, changes the answer.
pub async fn conditional_dialect_listings(h: &Harness) {
    const RECORD: &str = "7d3f1e2a-9b4c-4d5e-8f6a-1b2c3d4e5f60";
    const PROFILE: &str = "5f0c1ee3a2f8b7c2e4d6a8b1";
    let count = |v: &Value| v.as_array().map_or(usize::MAX, Vec::len);
    // Each listing: its URL, the parent it lists (native kind/id), and where its items are.
    type Items = fn(&Value) -> &Value;
    let listings: [(String, String, Items); 6] = [
        (
            format!("/api/1/profile/{PROFILE}/attachments"),
            format!("profile/{PROFILE}"),
            |v| v,
        ),
        (
            format!("/v1/profile/attachments?source_id=src-k&profile_id={PROFILE}"),
            format!("profile/{PROFILE}"),
            |v| &v["data"],
        ),
        (
            format!("/v1/profile/indexing/attachments?source_key=src-k&key={PROFILE}"),
            format!("profile/{PROFILE}"),
            |v| &v["data"],
        ),
        (
            format!("/v2/deal/{RECORD}/attachments"),
            format!("deal/{RECORD}"),
            |v| v,
        ),
        (
            format!("/v2/deal/attachments?uuids={RECORD}"),
            format!("deal/{RECORD}"),
            |v| &v[RECORD],
        ),
        (
            "/api/v2/assets/kept-asset/attachments".into(),
            "asset/kept-asset".into(),
            |v| &v["attachments"],
        ),
    ];
    for parent in [
        format!("profile/{PROFILE}"),
        format!("deal/{RECORD}"),
        "asset/kept-asset".into(),
    ] {
        let r = h
            .call(
                "PUT",
                &format!("/v1/parents/{parent}"),
                Some(KEY_A),
                r#"{"source":"src-k"}"#,
            )
            .await;
        assert!(r.status.is_success(), "{:?}", r.body);
    }
    for (round, (url, parent, items)) in listings.iter().enumerate() {
        let (before, tag) = tagged_then_not_modified(h, url, KEY_A).await;
        let n = count(items(&before.json()));
        assert_ne!(
            n,
            usize::MAX,
            "{url}: {}",
            String::from_utf8_lossy(&before.body)
        );
        let name = format!("tagged-{round}.png");
        let up = h
            .post_form(
                &format!("/v1/parents/{parent}/attachments"),
                KEY_A,
                &Form::new().file("file", &name, &png_1x1()),
            )
            .await
            .expect(201);
        let after = get_if_none_match(h, url, KEY_A, &tag).await.expect(200);
        assert_eq!(count(items(&after.json())), n + 1, "{url} after an upload");
        assert_ne!(after.header("etag"), tag, "{url}");
        // The other tenant has no such parent: never a 304 on tenant a's tag.
        assert_ne!(
            get_if_none_match(h, url, KEY_B, &tag).await.status.as_u16(),
            304,
            "{url} for tenant b"
        );
        if round == 0 {
            // Crafter's details of the file just uploaded: a metadata read of its own.
            let id = up.json()["items"][0]["id"].as_str().unwrap().to_owned();
            tagged_then_not_modified(
                h,
                &format!("/api/1/profile/{PROFILE}/attachment/{id}/details?accessTokenId={KEY_A}"),
                KEY_A,
            )
            .await;
        }
    }
}
