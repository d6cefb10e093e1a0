//! Bounded answers, on every backend: the listings that are not paged (Crafter's, HrFlow's, the
//! asset API's, the records API's, and the look-ups by file name behind uploads, details and
//! deletions) answer at most 1,000 attachments and are a 409 in their API's envelope past it,
//! while the native API pages through any number and a parent takes any number of uploads; the
//! records listing without `uuids` pages; and a parent too big for one request is deleted over
//! several.

use serde_json::Value;

use crate::support::*;

/// The cap on answers that are not paged.
const CAP: usize = 1000;
const RECORD: &str = "0b5c3f4e-1d2a-4e6f-8a9b-1c2d3e4f5a6b";

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("f{i:04}.txt")).collect()
}

/// Registers `kind/id` for tenant a (with `body`) and loads `n` ready attachments into it,
/// oldest first; returns them.
async fn big_parent(
    h: &Harness,
    kind: &str,
    id: &str,
    body: &str,
    n: usize,
) -> Vec<attachments::domain::Attachment> {
    let r = h
        .call(
            "PUT",
            &format!("/v1/parents/{kind}/{id}"),
            Some(KEY_A),
            body.to_owned(),
        )
        .await;
    assert!(r.status.is_success(), "{:?}", r.body);
    let parent = attachments::domain::ParentRef::new(
        attachments::domain::ParentKind::parse(kind).unwrap(),
        attachments::domain::ParentId::parse(id).unwrap(),
    );
    let atts: Vec<_> = names(n)
        .iter()
        .map(|name| ready_attachment("a", &parent, name))
        .collect();
    h.load_attachments("a", &parent, &atts).await;
    atts
}

/// A 409 whose body is `envelope` with a message that names the cap.
fn too_many(r: Resp, message_at: &str) -> Value {
    let body = r.expect(409).json();
    let message = body
        .pointer(message_at)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no message at {message_at}: {body}"));
    assert!(message.contains("1000"), "{message}");
    body
}

/// Crafter's list, its look-ups by name and its upload of a name it has, HrFlow's list and the
/// asset API's list: a 409 in each API's envelope, past the cap.
async fn dialects_refuse_past_the_cap(h: &Harness) {
    let crafter = |path: &str| format!("/api/1/profile/big/{path}?accessTokenId={KEY_A}");

    // Crafter: the list, the look-up by name of details and content, and the upload that
    // replaces a file of the same name.
    let body = too_many(
        h.call("GET", &crafter("attachments"), None, "").await,
        "/message",
    );
    assert_eq!(body["errorCode"], "OTHER");
    too_many(
        h.call("GET", &crafter("attachment/f0001/details"), None, "")
            .await,
        "/message",
    );
    too_many(
        h.call("GET", &crafter("attachment/f0001"), None, "").await,
        "/message",
    );
    let png = png_1x1();
    let (ct, form) = Form::new().file("attachment", "f0001.png", &png).encode();
    too_many(
        h.send(
            "POST",
            &crafter("uploadAttachment"),
            &[("content-type", ct)],
            form,
        )
        .await,
        "/message",
    );
    // HrFlow.
    let body = too_many(
        h.get(
            "/v1/profile/attachments?source_id=src&profile_reference=ref-big",
            KEY_A,
        )
        .await,
        "/message",
    );
    assert_eq!(body["code"], 409);
    // The asset API.
    too_many(
        h.get("/api/v2/assets/big-asset/attachments", KEY_A).await,
        "/error",
    );
}

/// The records API: the record's list, the many-records listing with and without uuids, an
/// upload of a name it has (a new version, found by name), a deletion by name.
async fn records_refuse_past_the_cap(h: &Harness) {
    let body = too_many(
        h.get(&format!("/v2/io_bounds/{RECORD}/attachments"), KEY_A)
            .await,
        "/error/message",
    );
    assert_eq!(body["error"]["status"], 409);
    too_many(
        h.get(&format!("/v2/io_bounds/attachments?uuids={RECORD}"), KEY_A)
            .await,
        "/error/message",
    );
    too_many(
        h.get("/v2/io_bounds/attachments", KEY_A).await,
        "/error/message",
    );
    too_many(
        h.post_form(
            &format!("/v2/io_bounds/{RECORD}/attachments"),
            KEY_A,
            &Form::new().file("file", "f0001.txt", b"new"),
        )
        .await,
        "/error/message",
    );
    too_many(
        h.call(
            "DELETE",
            &format!("/v2/io_bounds/{RECORD}/attachments?names=f0001.txt"),
            Some(KEY_A),
            "",
        )
        .await,
        "/error/message",
    );
}

/// The native API has no cap: it pages through them all, and takes one more upload.
async fn native_pages_past_the_cap(h: &Harness, profile: &[attachments::domain::Attachment]) {
    let first = h
        .get("/v1/parents/profile/big/attachments?limit=1000", KEY_A)
        .await
        .expect(200)
        .json();
    assert_eq!(first["items"].as_array().unwrap().len(), CAP);
    let cursor = first["next_cursor"].as_str().unwrap();
    let rest = h
        .get(
            &format!("/v1/parents/profile/big/attachments?limit=1000&cursor={cursor}"),
            KEY_A,
        )
        .await
        .expect(200)
        .json();
    assert_eq!(rest["items"][0]["id"], profile[CAP].id.to_string());
    assert_eq!(rest["next_cursor"], Value::Null);
    h.post_form(
        "/v1/parents/profile/big/attachments",
        KEY_A,
        &Form::new().file("file", "one more.txt", b"one more"),
    )
    .await
    .expect(201);
}

pub async fn unpaged_listings_are_capped(h: &Harness) {
    let profile = big_parent(
        h,
        "profile",
        "big",
        r#"{"source":"src","reference":"ref-big"}"#,
        CAP + 1,
    )
    .await;
    big_parent(h, "asset", "big-asset", "", CAP + 1).await;
    let record = big_parent(h, "io_bounds", RECORD, "", CAP + 1).await;
    let crafter = |path: &str| format!("/api/1/profile/big/{path}?accessTokenId={KEY_A}");
    dialects_refuse_past_the_cap(h).await;
    records_refuse_past_the_cap(h).await;

    native_pages_past_the_cap(h, &profile).await;

    // At the cap, every list answers.
    for a in [&profile[0], &profile[1]] {
        h.call(
            "DELETE",
            &format!("/v1/attachments/{}", a.id),
            Some(KEY_A),
            "",
        )
        .await
        .expect(204);
    }
    let listed = h
        .call("GET", &crafter("attachments"), None, "")
        .await
        .expect(200)
        .json();
    assert_eq!(listed.as_array().unwrap().len(), CAP);
    let hr = h
        .get(
            "/v1/profile/attachments?source_id=src&profile_reference=ref-big",
            KEY_A,
        )
        .await
        .expect(200)
        .json();
    assert_eq!(hr["data"].as_array().unwrap().len(), CAP);
    h.call(
        "DELETE",
        &format!("/v1/attachments/{}", record[0].id),
        Some(KEY_A),
        "",
    )
    .await
    .expect(204);
    let one = h
        .get(&format!("/v2/io_bounds/{RECORD}/attachments"), KEY_A)
        .await
        .expect(200)
        .json();
    assert_eq!(one.as_array().unwrap().len(), CAP);
    let all = h
        .get("/v2/io_bounds/attachments", KEY_A)
        .await
        .expect(200)
        .json();
    assert_eq!(all[RECORD].as_array().unwrap().len(), CAP);
}

/// A record id of the paging test: UUIDs in the order of `i`.
fn record_id(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

pub async fn records_listing_pages(h: &Harness) {
    let n = 101;
    for i in 0..n {
        big_parent(h, "io_pages", &record_id(i), "", 1).await;
    }
    // A record with no attachment is never listed.
    h.parent(KEY_A, "io_pages", &record_id(n)).await;
    // Asked for all at once, they do not fit: a 409 that says how to ask instead.
    let body = h
        .get("/v2/io_pages/attachments", KEY_A)
        .await
        .expect(409)
        .json();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("uuids") && message.contains("limit"),
        "{message}"
    );
    // Pages: in record order, each with a link to the next.
    let mut seen: Vec<String> = Vec::new();
    let mut path = "/v2/io_pages/attachments?limit=60".to_owned();
    let mut pages = 0;
    loop {
        let r = h.get(&path, KEY_A).await.expect(200);
        pages += 1;
        let link = r.header("link").to_owned();
        let body = r.json();
        for (id, items) in body.as_object().unwrap() {
            assert_eq!(items.as_array().unwrap().len(), 1, "{id}");
            seen.push(id.clone());
        }
        if link.is_empty() {
            break;
        }
        let next = link
            .strip_prefix("<?")
            .and_then(|l| l.strip_suffix(">; rel=\"next\""))
            .unwrap_or_else(|| panic!("{link}"));
        path = format!("/v2/io_pages/attachments?{next}");
    }
    assert_eq!(pages, 2);
    assert_eq!(seen, (0..n).map(record_id).collect::<Vec<_>>());

    // The cursor is the caller's: another tenant's key cannot use it, an edited one is refused.
    let r = h
        .get("/v2/io_pages/attachments?limit=60", KEY_A)
        .await
        .expect(200);
    let link = r.header("link").to_owned();
    let next = &link[2..link.find('>').unwrap()];
    h.get(&format!("/v2/io_pages/attachments?{next}"), KEY_B)
        .await
        .expect(400);
    let tampered = next.replace("cursor=", "cursor=AA");
    h.get(&format!("/v2/io_pages/attachments?{tampered}"), KEY_A)
        .await
        .expect(400);
    for bad in [
        "limit=0",
        "limit=101",
        "limit=x",
        &format!("uuids={}&limit=5", record_id(0)),
    ] {
        let body = h
            .get(&format!("/v2/io_pages/attachments?{bad}"), KEY_A)
            .await
            .expect(400)
            .json();
        assert_eq!(body["error"]["status"], 400, "{bad}");
    }
    // Another tenant has none.
    let other = h.get("/v2/io_pages/attachments", KEY_B).await.expect(200);
    assert_eq!(other.json(), serde_json::json!({}));
}

pub async fn parent_deletion_in_pages(h: &Harness) {
    let loaded = big_parent(h, "profile", "many", "", 120).await;
    // One real file too, which must be gone with the rest.
    let up = h
        .post_form(
            "/v1/parents/profile/many/attachments",
            KEY_A,
            &Form::new().file("file", "real.txt", b"a real file"),
        )
        .await
        .expect(201)
        .json();
    let link = up["items"][0]["download_url"].as_str().unwrap().to_owned();
    fetch(&link).await.expect(200);

    let mut answers = Vec::new();
    for _ in 0..10 {
        let r = h
            .call("DELETE", "/v1/parents/profile/many", Some(KEY_A), "")
            .await;
        let status = r.status.as_u16();
        if status == 204 {
            answers.push((204, 0));
            break;
        }
        let body = r.expect(202).json();
        assert_eq!(body["status"], "deleting");
        let removed = body["removed"].as_u64().unwrap();
        assert!((1..=100).contains(&removed), "{body}");
        answers.push((202, removed));
        // Until the last page, the parent is there, with what is left.
        h.get("/v1/parents/profile/many", KEY_A).await.expect(200);
    }
    assert_eq!(answers.last(), Some(&(204, 0)), "{answers:?}");
    assert!(
        answers.len() >= 2,
        "121 attachments take two requests at least: {answers:?}"
    );
    let removed: u64 = answers.iter().map(|(_, n)| n).sum();
    assert!(removed <= 121, "{answers:?}");
    h.get("/v1/parents/profile/many", KEY_A).await.expect(404);
    h.get(&format!("/v1/attachments/{}", loaded[0].id), KEY_A)
        .await
        .expect(404);
    assert_ne!(fetch(&link).await.status.as_u16(), 200, "the file is gone");
    // Registered again, it is a new, empty parent.
    h.parent(KEY_A, "profile", "many").await;
    let list = h
        .get("/v1/parents/profile/many/attachments", KEY_A)
        .await
        .expect(200)
        .json();
    assert_eq!(list["items"], serde_json::json!([]));
}
