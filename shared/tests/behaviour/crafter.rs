//! The Crafter Profile dialect: its documentation's requests and their answers field by field,
//! same-name replacement, the size formatting, every error row, tenants, and stored data staying
//! as it was after every refused request.

use bytes::Bytes;
use serde_json::{json, Value};

use crate::support::*;

const PROFILE: &str = "59284659d4c650213cc2f3fc";

/// The item of the documentation pages' answers (000 and 001 show the same one).
fn seed_item() -> Value {
    json!({
        "md5": "498a1e16be56873ef53a1a61295d1781",
        "contentType": "image/jpeg",
        "fileSize": "22.6 KB",
        "fileName": "picture1",
        "fileSizeBytes": 23193,
        "id": "59285cd3d4c650213cc2f3fd"
    })
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_u64() => "unsigned",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Same keys in the same order, each of the same JSON type as the documentation's.
pub fn assert_shape(got: &Value, seed: &Value) {
    let g = got
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {got}"));
    let s = seed.as_object().unwrap();
    let gk: Vec<&String> = g.keys().collect();
    let sk: Vec<&String> = s.keys().collect();
    assert_eq!(gk, sk, "fields and their order");
    for (k, sv) in s {
        assert_eq!(json_type(&g[k]), json_type(sv), "type of {k} in {got}");
    }
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36 && uuid::Uuid::try_parse(s).is_ok()
}

fn is_md5_hex(s: &str) -> bool {
    s.len() == 32
        && s.chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
}

fn upload_path(profile: &str, key: &str) -> String {
    format!("/api/1/profile/{profile}/uploadAttachment?accessTokenId={key}")
}

/// Sends a Crafter upload: the key only in `accessTokenId`, as Crafter's clients send it.
pub async fn upload(h: &Harness, profile: &str, key: &str, form: &Form) -> Resp {
    let (ct, body) = form.encode();
    h.send(
        "POST",
        &upload_path(profile, key),
        &[("content-type", ct)],
        body,
    )
    .await
}

pub async fn get(h: &Harness, path: &str, key: &str) -> Resp {
    let sep = if path.contains('?') { '&' } else { '?' };
    h.send(
        "GET",
        &format!("{path}{sep}accessTokenId={key}"),
        &[],
        Bytes::new(),
    )
    .await
}

fn list_path(profile: &str) -> String {
    format!("/api/1/profile/{profile}/attachments")
}

/// The profile's attachments through Crafter's list, each with the bytes behind its content
/// route: what "stored data unchanged" means for this API.
pub async fn snapshot(h: &Harness, profile: &str, key: &str) -> Vec<(Value, Bytes)> {
    let r = get(h, &list_path(profile), key).await;
    if r.status.as_u16() == 404 {
        return vec![];
    }
    let mut out = vec![];
    for item in r.expect(200).json().as_array().unwrap().clone() {
        let id = item["id"].as_str().unwrap().to_owned();
        let bytes = download(h, profile, &id, key).await;
        out.push((item, bytes));
    }
    out
}

/// The content route's redirect, followed; the link must download, never display.
pub async fn download(h: &Harness, profile: &str, attachment: &str, key: &str) -> Bytes {
    let r = get(
        h,
        &format!("/api/1/profile/{profile}/attachment/{attachment}"),
        key,
    )
    .await
    .expect(302);
    let dl = fetch(r.header("location")).await.expect(200);
    assert!(
        dl.header("content-disposition").starts_with("attachment;"),
        "{}",
        dl.header("content-disposition")
    );
    dl.body
}

fn assert_error(r: Resp, status: u16, code: &str, message_has: &str) -> Value {
    let v = r.expect(status).json();
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["errorCode", "message"], "{v}");
    assert_eq!(v["errorCode"], code, "{v}");
    let msg = v["message"].as_str().unwrap();
    assert!(
        msg.contains(message_has),
        "{msg:?} should contain {message_has:?}"
    );
    v
}

/// The documented upload and list, then the details and content routes, all compared with the
/// documentation field by field.
pub async fn seed_examples(h: &Harness) {
    h.parent(KEY_A, "profile", PROFILE).await;
    let jpeg = jpeg_bytes(23193);
    let up = upload(
        h,
        PROFILE,
        KEY_A,
        &Form::new().file("attachment", "picture1.jpg", &jpeg),
    )
    .await
    .expect(200);
    assert!(up.header("content-type").starts_with("application/json"));
    let item = up.json();
    assert_shape(&item, &seed_item());
    assert_eq!(item["md5"], md5_hex(&jpeg));
    assert!(is_md5_hex(item["md5"].as_str().unwrap()));
    assert_eq!(item["contentType"], "image/jpeg");
    assert_eq!(item["fileSize"], "22.6 KB");
    assert_eq!(item["fileName"], "picture1");
    assert_eq!(item["fileSizeBytes"], 23193);
    let id = item["id"].as_str().unwrap().to_owned();
    assert!(is_uuid(&id), "{id}");
    for (k, v) in seed_item().as_object().unwrap() {
        if k != "md5" && k != "id" {
            assert_eq!(&item[k], v, "{k} as the documentation shows it");
        }
    }

    // The documented list, with and without the trailing slash.
    for path in [list_path(PROFILE), format!("{}/", list_path(PROFILE))] {
        let list = get(h, &path, KEY_A).await.expect(200).json();
        let arr = list.as_array().unwrap();
        assert_eq!(arr.len(), 1, "{path}");
        assert_shape(&arr[0], &seed_item());
        assert_eq!(arr[0], item, "{path}");
    }

    // Details and content, by our id and by the name Crafter's clients use.
    for name in [id.as_str(), "picture1"] {
        let d = get(
            h,
            &format!("/api/1/profile/{PROFILE}/attachment/{name}/details"),
            KEY_A,
        )
        .await
        .expect(200)
        .json();
        assert_eq!(d, item, "details of {name}");
        let r = get(
            h,
            &format!("/api/1/profile/{PROFILE}/attachment/{name}"),
            KEY_A,
        )
        .await
        .expect(302);
        let dl = fetch(r.header("location")).await.expect(200);
        assert_eq!(&dl.body[..], &jpeg[..]);
        assert_eq!(dl.header("content-type"), "image/jpeg");
        assert_eq!(
            dl.header("content-disposition"),
            "attachment; filename*=UTF-8''picture1.jpg"
        );
        assert_eq!(md5_hex(&dl.body), item["md5"].as_str().unwrap());
    }

    // The other ways of presenting the key work too (the native API's).
    h.get(&list_path(PROFILE), KEY_A).await.expect(200);
}

/// An upload whose name without extension exists replaces that attachment's content, same id;
/// a `filename` field or parameter renames the file.
pub async fn same_name_replaces(h: &Harness) {
    h.parent(KEY_A, "profile", PROFILE).await;
    let jpeg = jpeg_bytes(5000);
    let first = upload(
        h,
        PROFILE,
        KEY_A,
        &Form::new().file("attachment", "avatar.jpg", &jpeg),
    )
    .await
    .expect(200)
    .json();
    let png = png_1x1();
    let second = upload(
        h,
        PROFILE,
        KEY_A,
        &Form::new().file("attachment", "avatar.png", &png),
    )
    .await
    .expect(200)
    .json();
    assert_eq!(second["id"], first["id"], "same stem keeps the id");
    assert_eq!(second["contentType"], "image/png");
    assert_eq!(second["md5"], md5_hex(&png));
    assert_eq!(second["fileSizeBytes"], png.len());
    assert_eq!(second["fileSize"], format!("{} B", png.len()));
    assert_eq!(second["fileName"], "avatar");
    let list = get(h, &list_path(PROFILE), KEY_A).await.expect(200).json();
    assert_eq!(list, json!([second.clone()]));
    let id = second["id"].as_str().unwrap();
    assert_eq!(&download(h, PROFILE, id, KEY_A).await[..], &png[..]);

    // The `filename` field wins over the part's name; so does the query parameter.
    let renamed = upload(
        h,
        PROFILE,
        KEY_A,
        &Form::new()
            .file("attachment", "upload.tmp", &jpeg)
            .text("filename", "portrait.jpg"),
    )
    .await
    .expect(200)
    .json();
    assert_eq!(renamed["fileName"], "portrait");
    assert_eq!(renamed["contentType"], "image/jpeg");
    assert_ne!(renamed["id"], second["id"]);
    let (ct, body) = Form::new().file("attachment", "blob", &png).encode();
    let by_param = h
        .send(
            "POST",
            &format!("{}&filename=avatar.png", upload_path(PROFILE, KEY_A)),
            &[("content-type", ct)],
            body,
        )
        .await
        .expect(200)
        .json();
    assert_eq!(by_param["id"], second["id"]);
    let list = get(h, &list_path(PROFILE), KEY_A).await.expect(200).json();
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[0]["id"], second["id"], "oldest first");
    assert_eq!(list[1], renamed);
}

/// `fileSize` of real uploads, against the issue's examples and the formatter's rules.
pub async fn file_sizes(h: &Harness) {
    h.parent(KEY_A, "profile", PROFILE).await;
    for (i, (size, shown)) in [
        (1023usize, "1,023 B"),
        (1024, "1 KB"),
        (1280, "1.2 KB"),
        (1536, "1.5 KB"),
        (23193, "22.6 KB"),
        (1_048_575, "1,024 KB"),
        (1_048_576, "1 MB"),
    ]
    .into_iter()
    .enumerate()
    {
        let bytes = jpeg_bytes(size);
        let item = upload(
            h,
            PROFILE,
            KEY_A,
            &Form::new().file("attachment", &format!("f{i}.jpg"), &bytes),
        )
        .await
        .expect(200)
        .json();
        assert_eq!(item["fileSize"], shown, "{size}");
        assert_eq!(item["fileSizeBytes"], size);
        assert_eq!(item["md5"], md5_hex(&bytes));
    }
    assert_eq!(
        get(h, &list_path(PROFILE), KEY_A)
            .await
            .expect(200)
            .json()
            .as_array()
            .unwrap()
            .len(),
        7
    );
}

/// SVG is on Crafter's allow-list, and is only ever served as a download.
pub async fn svg_downloads(h: &Harness) {
    h.parent(KEY_A, "profile", PROFILE).await;
    let svg = br#"<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>"#;
    let item = upload(
        h,
        PROFILE,
        KEY_A,
        &Form::new().file("attachment", "logo.svg", svg),
    )
    .await
    .expect(200)
    .json();
    assert_eq!(item["contentType"], "image/svg+xml");
    let r = get(
        h,
        &format!("/api/1/profile/{PROFILE}/attachment/logo"),
        KEY_A,
    )
    .await
    .expect(302);
    let dl = fetch(r.header("location")).await.expect(200);
    assert_eq!(&dl.body[..], &svg[..]);
    assert_eq!(dl.header("content-type"), "image/svg+xml");
    assert_eq!(
        dl.header("content-disposition"),
        "attachment; filename*=UTF-8''logo.svg"
    );
    assert_eq!(dl.header("x-content-type-options"), "nosniff");
}

/// Details and content of something the profile does not have answer as Crafter does: an empty
/// record, an empty body.
pub async fn unknown_attachment(h: &Harness) {
    h.parent(KEY_A, "profile", PROFILE).await;
    for name in [
        "nothing",
        "01a2088c-5cf6-7bb1-9e84-4d3aa2c3f1e0",
        "..",
        "a%2Fb",
    ] {
        let d = get(
            h,
            &format!("/api/1/profile/{PROFILE}/attachment/{name}/details"),
            KEY_A,
        )
        .await
        .expect(200)
        .json();
        assert_eq!(
            d,
            json!({"md5":null,"contentType":null,"fileSize":null,"fileName":null,"fileSizeBytes":0,"id":null}),
            "{name}"
        );
        let c = get(
            h,
            &format!("/api/1/profile/{PROFILE}/attachment/{name}"),
            KEY_A,
        )
        .await
        .expect(200);
        assert!(c.body.is_empty(), "{name}");
    }
    // A placeholder made through the asset-style use case has no content: not listed here.
    let t = attachments::domain::TenantId::parse("a").unwrap();
    let who = attachments::domain::Principal {
        tenant: t,
        owner: OWNER_A.into(),
    };
    let parent = attachments::domain::ParentRef::new(
        attachments::domain::ParentKind::parse("profile").unwrap(),
        attachments::domain::ParentId::parse(PROFILE).unwrap(),
    );
    let ph = h
        .app
        .create_placeholder(&who, &parent, Default::default())
        .await
        .unwrap();
    assert_eq!(
        get(h, &list_path(PROFILE), KEY_A).await.expect(200).json(),
        json!([])
    );
    let d = get(
        h,
        &format!("/api/1/profile/{PROFILE}/attachment/{}/details", ph.id),
        KEY_A,
    )
    .await
    .expect(200)
    .json();
    assert_eq!(d["id"], Value::Null);
}

/// Every error this API answers, on every route where it applies, with stored data unchanged.
pub async fn errors(h: &Harness) {
    h.parent(KEY_A, "profile", PROFILE).await;
    let jpeg = jpeg_bytes(2048);
    let kept = upload(
        h,
        PROFILE,
        KEY_A,
        &Form::new().file("attachment", "kept.jpg", &jpeg),
    )
    .await
    .expect(200)
    .json();
    let kept_id = kept["id"].as_str().unwrap().to_owned();
    let before = snapshot(h, PROFILE, KEY_A).await;
    assert_eq!(before.len(), 1);

    let routes = [
        ("POST", format!("/api/1/profile/{PROFILE}/uploadAttachment")),
        ("GET", format!("/api/1/profile/{PROFILE}/attachments")),
        (
            "GET",
            format!("/api/1/profile/{PROFILE}/attachment/{kept_id}/details"),
        ),
        (
            "GET",
            format!("/api/1/profile/{PROFILE}/attachment/{kept_id}"),
        ),
    ];
    let (ct, body) = Form::new().file("attachment", "new.jpg", &jpeg).encode();
    // Missing, unknown and revoked accessTokenId: 403 ACCESS_DENIED, the key never echoed.
    let t = attachments::domain::TenantId::parse("a").unwrap();
    let revoked = h.app.create_key(&t, Some("tmp")).await.unwrap();
    h.app.revoke_key(&revoked.record.id).await.unwrap();
    for (method, path) in &routes {
        for query in [
            String::new(),
            "?accessTokenId=".into(),
            "?accessTokenId=unknown-token-0123456789".into(),
            format!("?accessTokenId={}", revoked.secret),
        ] {
            let r = h
                .send(
                    method,
                    &format!("{path}{query}"),
                    &[("content-type", ct.clone())],
                    body.clone(),
                )
                .await;
            assert!(!String::from_utf8_lossy(&r.body).contains("unknown-token"));
            assert_error(r, 403, "ACCESS_DENIED", "accessTokenId");
        }
    }
    // Unknown profile (and malformed ids, which name no profile): 404 NO_SUCH_PROFILE.
    for profile in ["nobody", "bad%20id"] {
        let shown = if profile == "nobody" {
            "nobody"
        } else {
            "bad id"
        };
        for (method, path) in &routes {
            let path = path.replace(PROFILE, profile);
            let r = h
                .send(
                    method,
                    &format!("{path}?accessTokenId={KEY_A}"),
                    &[("content-type", ct.clone())],
                    body.clone(),
                )
                .await;
            let v = assert_error(r, 404, "NO_SUCH_PROFILE", "");
            assert_eq!(
                v["message"],
                format!("No profile with ID \"{shown}\" found")
            );
        }
    }

    // Content refused: type not on the allow-list, bytes that contradict the extension, empty.
    let pdf = b"%PDF-1.7\n%%EOF\n";
    let r = upload(
        h,
        PROFILE,
        KEY_A,
        &Form::new().file("attachment", "cv.pdf", pdf),
    )
    .await;
    assert_error(
        r,
        415,
        "OTHER",
        "application/pdf, which is not an allowed type",
    );
    let r = upload(
        h,
        PROFILE,
        KEY_A,
        &Form::new().file("attachment", "notes.txt", b"hello"),
    )
    .await;
    assert_error(r, 415, "OTHER", "not an allowed type");
    let r = upload(
        h,
        PROFILE,
        KEY_A,
        &Form::new().file(
            "attachment",
            "kept.png",
            b"<!DOCTYPE html><script>alert(1)</script>",
        ),
    )
    .await;
    assert_error(r, 415, "OTHER", "does not match its extension");
    let r = upload(
        h,
        PROFILE,
        KEY_A,
        &Form::new().file("attachment", "kept.jpg", b"GIF89a......"),
    )
    .await;
    assert_error(r, 415, "OTHER", "does not match its extension");
    // Image bytes under a name whose extension names no type (or none): the type comes from
    // the extension, as in Crafter.
    for name in ["picture.xyz", "picture"] {
        let r = upload(
            h,
            PROFILE,
            KEY_A,
            &Form::new().file("attachment", name, &png_1x1()),
        )
        .await;
        assert_error(r, 415, "OTHER", "cannot be told from its extension");
    }
    let r = upload(
        h,
        PROFILE,
        KEY_A,
        &Form::new().file("attachment", "empty.png", b""),
    )
    .await;
    assert_error(r, 422, "OTHER", "empty");
    // The form: no attachment part, two of them, no file name, not multipart, malformed.
    let r = upload(h, PROFILE, KEY_A, &Form::new().text("filename", "a.jpg")).await;
    assert_error(r, 400, "OTHER", "no file part named attachment");
    let r = upload(h, PROFILE, KEY_A, &Form::new().file("file", "a.jpg", &jpeg)).await;
    assert_error(
        r,
        400,
        "OTHER",
        "the file must be sent in the part named attachment",
    );
    let r = upload(
        h,
        PROFILE,
        KEY_A,
        &Form::new()
            .file("attachment", "a.jpg", &jpeg)
            .file("attachment", "b.jpg", &jpeg),
    )
    .await;
    assert_error(r, 400, "OTHER", "more than one part named attachment");
    let nofilename =
        "--XX\r\nContent-Disposition: form-data; name=\"attachment\"\r\n\r\nabc\r\n--XX--\r\n";
    let mp = (
        "content-type",
        "multipart/form-data; boundary=XX".to_string(),
    );
    let r = h
        .send(
            "POST",
            &upload_path(PROFILE, KEY_A),
            std::slice::from_ref(&mp),
            Bytes::from(nofilename),
        )
        .await;
    assert_error(r, 400, "OTHER", "no filename");
    let r = h
        .send(
            "POST",
            &upload_path(PROFILE, KEY_A),
            &[("content-type", "application/json".into())],
            Bytes::from_static(b"{}"),
        )
        .await;
    assert_error(r, 400, "OTHER", "multipart/form-data");
    let unclosed =
        "--XX\r\nContent-Disposition: form-data; name=\"attachment\"; filename=\"a.jpg\"\r\n\r\nabc";
    let r = h
        .send(
            "POST",
            &upload_path(PROFILE, KEY_A),
            std::slice::from_ref(&mp),
            Bytes::from(unclosed),
        )
        .await;
    assert_error(r, 400, "OTHER", "malformed");
    let r = upload(
        h,
        PROFILE,
        KEY_A,
        &Form::new().file("attachment", "../", &jpeg),
    )
    .await;
    assert_error(r, 400, "OTHER", "file name");
    // Too large: over the request limit, answered before the handler, still in this envelope.
    let limit = h.app.limits.max_upload_bytes;
    let r = upload(
        h,
        PROFILE,
        KEY_A,
        &Form::new().file("attachment", "huge.jpg", &jpeg_bytes(limit + 1)),
    )
    .await;
    assert_error(r, 413, "OTHER", "larger than the limit");
    // Methods the routes do not have: 405 in this envelope.
    let r = h
        .send(
            "DELETE",
            &format!("{}?accessTokenId={KEY_A}", list_path(PROFILE)),
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.header("allow"), "GET");
    assert_error(r, 405, "OTHER", "method");

    assert_eq!(
        snapshot(h, PROFILE, KEY_A).await,
        before,
        "stored data changed"
    );
}

/// Crafter's own file limit (configurable, here 3000 bytes) applies below the request limit.
pub async fn file_limit(h: &Harness) {
    assert!(h.app.crafter.max_file_bytes < h.app.limits.max_upload_bytes);
    h.parent(KEY_A, "profile", PROFILE).await;
    let max = h.app.crafter.max_file_bytes;
    upload(
        h,
        PROFILE,
        KEY_A,
        &Form::new().file("attachment", "fits.jpg", &jpeg_bytes(max)),
    )
    .await
    .expect(200);
    let before = snapshot(h, PROFILE, KEY_A).await;
    let r = upload(
        h,
        PROFILE,
        KEY_A,
        &Form::new().file("attachment", "fits.jpg", &jpeg_bytes(max + 1)),
    )
    .await;
    assert_error(r, 413, "OTHER", &format!("limit of {max} bytes"));
    assert_eq!(snapshot(h, PROFILE, KEY_A).await, before);
}

/// A configured allow-list replaces Crafter's (here `application/pdf` only).
pub async fn configured_types(h: &Harness) {
    h.parent(KEY_A, "profile", PROFILE).await;
    let pdf = b"%PDF-1.7\n%%EOF\n";
    let item = upload(
        h,
        PROFILE,
        KEY_A,
        &Form::new().file("attachment", "cv.pdf", pdf),
    )
    .await
    .expect(200)
    .json();
    assert_eq!(item["contentType"], "application/pdf");
    let r = upload(
        h,
        PROFILE,
        KEY_A,
        &Form::new().file("attachment", "p.png", &png_1x1()),
    )
    .await;
    assert_error(r, 415, "OTHER", "allowed: application/pdf");
}

/// Tenant b on tenant a's profile and attachments: answered exactly as unknown ones are, and
/// nothing of a's changes.
pub async fn cross_tenant(h: &Harness) {
    h.parent(KEY_A, "profile", PROFILE).await;
    let jpeg = jpeg_bytes(3000);
    let item = upload(
        h,
        PROFILE,
        KEY_A,
        &Form::new().file("attachment", "secret.jpg", &jpeg),
    )
    .await
    .expect(200)
    .json();
    let id = item["id"].as_str().unwrap().to_owned();
    let before = snapshot(h, PROFILE, KEY_A).await;
    let (ct, body) = Form::new()
        .file("attachment", "secret.jpg", &png_1x1())
        .encode();
    let unknown = "5928aaaad4c650213cc2f3fc";
    for (method, path) in [
        ("POST", "/api/1/profile/{p}/uploadAttachment".to_string()),
        ("GET", "/api/1/profile/{p}/attachments".into()),
        (
            "GET",
            format!("/api/1/profile/{{p}}/attachment/{id}/details"),
        ),
        ("GET", format!("/api/1/profile/{{p}}/attachment/{id}")),
        ("GET", "/api/1/profile/{p}/attachment/secret/details".into()),
    ] {
        let send = |p: &str| {
            let path = format!("{}?accessTokenId={KEY_B}", path.replace("{p}", p));
            let ct = ct.clone();
            let body = body.clone();
            async move { h.send(method, &path, &[("content-type", ct)], body).await }
        };
        let theirs = send(PROFILE).await;
        let missing = send(unknown).await;
        assert_eq!(theirs.status.as_u16(), 404, "{method} {path}");
        assert_eq!(
            String::from_utf8_lossy(&theirs.body).replace(PROFILE, unknown),
            String::from_utf8_lossy(&missing.body),
            "{method} {path} answers as an unknown profile does"
        );
    }
    // b's own profile of the same id: a's attachment is unknown there, by id and by name.
    h.parent(KEY_B, "profile", PROFILE).await;
    assert_eq!(
        get(h, &list_path(PROFILE), KEY_B).await.expect(200).json(),
        json!([])
    );
    let empty = json!({"md5":null,"contentType":null,"fileSize":null,"fileName":null,"fileSizeBytes":0,"id":null});
    for name in [id.as_str(), "secret"] {
        assert_eq!(
            get(
                h,
                &format!("/api/1/profile/{PROFILE}/attachment/{name}/details"),
                KEY_B
            )
            .await
            .expect(200)
            .json(),
            empty
        );
        assert!(get(
            h,
            &format!("/api/1/profile/{PROFILE}/attachment/{name}"),
            KEY_B
        )
        .await
        .expect(200)
        .body
        .is_empty());
    }
    // b uploading the same name creates b's own attachment; a's is untouched.
    let b_item = upload(
        h,
        PROFILE,
        KEY_B,
        &Form::new().file("attachment", "secret.png", &png_1x1()),
    )
    .await
    .expect(200)
    .json();
    assert_ne!(b_item["id"], item["id"]);
    assert_eq!(snapshot(h, PROFILE, KEY_A).await, before);
}

/// An unexpected failure (the blob store unwritable) is a 500 with the documentation's body, and leaves
/// nothing behind. Embedded backend only: it breaks the data folder on purpose.
pub async fn internal_error(h: &Harness) {
    h.parent(KEY_A, "profile", PROFILE).await;
    let before = snapshot(h, PROFILE, KEY_A).await;
    let tenant_dir = h.data_dir.join("blobs").join("a");
    let _ = std::fs::remove_dir_all(&tenant_dir);
    std::fs::write(&tenant_dir, b"not a folder").unwrap();
    let r = upload(
        h,
        PROFILE,
        KEY_A,
        &Form::new().file("attachment", "x.jpg", &jpeg_bytes(100)),
    )
    .await
    .expect(500);
    assert_eq!(r.json(), json!({"message": "Internal server error"}));
    std::fs::remove_file(&tenant_dir).unwrap();
    assert_eq!(snapshot(h, PROFILE, KEY_A).await, before);
    assert_eq!(
        get(h, &list_path(PROFILE), KEY_A).await.expect(200).json(),
        json!([])
    );
}
