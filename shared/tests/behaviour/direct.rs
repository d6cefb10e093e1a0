//! Direct-to-storage uploads (large files): form POST, resumable multipart, verified completion.
//! Backend-agnostic: links point at the local server's file store or at S3.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use serde_json::{json, Value};

use crate::support::*;

const MIB: usize = 1024 * 1024;

/// Deterministic bytes that no sniffer mistakes for a known format.
pub fn payload(len: usize, seed: u8) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9 ^ u32::from(seed);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x % 251) as u8
        })
        .collect()
}

async fn begin(h: &Harness, parent: &str, body: Value) -> Resp {
    h.call(
        "POST",
        &format!("/v1/parents/{parent}/uploads"),
        Some(KEY_A),
        body.to_string(),
    )
    .await
}

/// Sends the form a begin answer describes, with `file` as the file.
pub async fn post_form(upload: &Value, file: &[u8]) -> Resp {
    let mut form = Form::new();
    for (k, v) in upload["fields"].as_object().unwrap() {
        form = form.text(k, v.as_str().unwrap());
    }
    let form = form.file("file", "upload.bin", file);
    let (ct, body) = form.encode();
    request(
        "POST",
        upload["url"].as_str().unwrap(),
        &[("content-type", ct)],
        body,
    )
    .await
}

async fn put_part(url: &str, bytes: &[u8]) -> Resp {
    request("PUT", url, &[], Bytes::copy_from_slice(bytes)).await
}

async fn complete(h: &Harness, id: &str) -> Resp {
    h.call(
        "POST",
        &format!("/v1/attachments/{id}/complete"),
        Some(KEY_A),
        "",
    )
    .await
}

/// A file up to the form threshold: one POST, then `complete`, twice, and the bytes come back.
pub async fn form_upload(h: &Harness) {
    h.parent(KEY_A, "profile", "p1").await;
    let data = payload(300_000, 1);
    let up = begin(h, "profile/p1", json!({"file_name": "scan.bin", "content_type": "application/octet-stream", "size": data.len(), "sha256": sha256_hex(&data), "type": "scan", "title": "Big scan"}))
        .await
        .expect(201)
        .json();
    assert_eq!(up["upload"]["method"], "POST");
    assert_eq!(up["upload"]["file_field"], "file");
    let att = &up["attachment"];
    assert_eq!(att["status"], "pending");
    assert_eq!(att["type"], "scan");
    let id = att["id"].as_str().unwrap().to_owned();
    // Pending uploads are never listed, and have no link yet.
    let list = h
        .get("/v1/parents/profile/p1/attachments", KEY_A)
        .await
        .expect(200)
        .json();
    assert_eq!(list["items"], json!([]));
    complete(h, &id).await.expect(409);
    let sent = post_form(&up["upload"], &data).await;
    assert!(
        sent.status.is_success(),
        "{:?} {}",
        sent.status,
        String::from_utf8_lossy(&sent.body)
    );
    let done = complete(h, &id).await.expect(200).json();
    assert_eq!(done["status"], "ready");
    assert_eq!(done["size"], data.len());
    assert_eq!(done["md5"], md5_hex(&data));
    assert_eq!(done["sha256"], sha256_hex(&data));
    assert_eq!(done["file_name"], "scan.bin");
    assert_eq!(done["title"], "Big scan");
    let again = complete(h, &id).await.expect(200).json();
    assert_eq!(again["version_id"], done["version_id"]);
    let got = fetch(done["download_url"].as_str().unwrap())
        .await
        .expect(200);
    assert_eq!(&got.body[..], &data[..]);
    let list = h
        .get("/v1/parents/profile/p1/attachments", KEY_A)
        .await
        .expect(200)
        .json();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

/// Storage enforces the form's policy: a larger or smaller file, or other bytes than the
/// declared checksum, are refused, and the attachment never turns ready.
pub async fn form_policy_is_enforced(h: &Harness) {
    h.parent(KEY_A, "profile", "p1").await;
    let data = payload(10_000, 2);
    let up = begin(h, "profile/p1", json!({"file_name": "a.bin", "content_type": "application/octet-stream", "size": data.len(), "sha256": sha256_hex(&data)}))
        .await
        .expect(201)
        .json();
    let id = up["attachment"]["id"].as_str().unwrap().to_owned();
    let mut bigger = data.clone();
    bigger.push(0);
    assert!(
        post_form(&up["upload"], &bigger)
            .await
            .status
            .is_client_error(),
        "over the declared size"
    );
    assert!(
        post_form(&up["upload"], &data[..9_999])
            .await
            .status
            .is_client_error(),
        "under the declared size"
    );
    let mut other = data.clone();
    other[0] ^= 1;
    assert!(
        post_form(&up["upload"], &other)
            .await
            .status
            .is_client_error(),
        "checksum mismatch"
    );
    complete(h, &id).await.expect(409);
    // A tampered policy is refused too.
    let mut forged = up["upload"].clone();
    let fields = forged["fields"].as_object_mut().unwrap();
    let pol_key = fields
        .keys()
        .find(|k| k.eq_ignore_ascii_case("policy"))
        .unwrap()
        .clone();
    fields.insert(pol_key, Value::String("e30=".into()));
    assert!(post_form(&forged, &data).await.status.is_client_error());
    // The right file goes through.
    assert!(post_form(&up["upload"], &data).await.status.is_success());
    complete(h, &id).await.expect(200);
}

/// 50 MiB through presigned multipart, interrupted after a few parts, then resumed from the
/// parts storage reports; complete verifies the whole file. (Needs a form threshold below 50 MiB.)
pub async fn multipart_resume(h: &Harness) {
    h.parent(KEY_A, "profile", "p1").await;
    let data = payload(50 * MIB, 3);
    let up = begin(h, "profile/p1", json!({"file_name": "video.bin", "content_type": "application/octet-stream", "size": data.len(), "sha256": sha256_hex(&data)}))
        .await
        .expect(201)
        .json();
    let u = &up["upload"];
    assert_eq!(u["method"], "multipart");
    let part_size = u["part_size"].as_u64().unwrap() as usize;
    let count = u["part_count"].as_u64().unwrap() as usize;
    assert_eq!(count, data.len().div_ceil(part_size));
    assert!(count > 3 && count <= 10_000);
    let id = up["attachment"]["id"].as_str().unwrap().to_owned();
    let parts = u["parts"].as_array().unwrap();
    assert_eq!(parts.len(), count);
    // The first three parts, then the client goes away.
    for p in &parts[..3] {
        let n = p["part_number"].as_u64().unwrap() as usize;
        let chunk = &data[(n - 1) * part_size..(n * part_size).min(data.len())];
        let r = put_part(p["url"].as_str().unwrap(), chunk).await;
        assert!(r.status.is_success(), "{:?}", r.status);
    }
    let early = complete(h, &id).await.expect(409).json();
    assert!(
        early["error"]["message"]
            .as_str()
            .unwrap()
            .contains("incomplete"),
        "{early}"
    );
    // Later: ask where it stands, and upload only what is missing, with the fresh links.
    let status = h
        .get(&format!("/v1/attachments/{id}/upload"), KEY_A)
        .await
        .expect(200)
        .json();
    let received: Vec<u64> = status["upload"]["parts_received"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["part_number"].as_u64().unwrap())
        .collect();
    assert_eq!(received, vec![1, 2, 3]);
    let missing = status["upload"]["parts"].as_array().unwrap();
    assert_eq!(missing.len(), count - 3);
    for p in missing {
        let n = p["part_number"].as_u64().unwrap() as usize;
        assert!(n > 3);
        let chunk = &data[(n - 1) * part_size..(n * part_size).min(data.len())];
        let r = put_part(p["url"].as_str().unwrap(), chunk).await;
        assert!(r.status.is_success(), "{:?}", r.status);
    }
    let done = complete(h, &id).await.expect(200).json();
    assert_eq!(done["status"], "ready");
    assert_eq!(done["size"], data.len());
    assert_eq!(done["sha256"], sha256_hex(&data));
    assert_eq!(done["md5"], md5_hex(&data));
    let got = fetch(done["download_url"].as_str().unwrap())
        .await
        .expect(200);
    assert!(got.body == data[..], "downloaded bytes differ");
}

/// A part link binds its part's size: storage refuses a part with a byte more or a byte less,
/// keeps nothing of it, and the upload completes once the right bytes come.
pub async fn parts_cannot_hold_more_than_declared(h: &Harness) {
    h.parent(KEY_A, "profile", "p1").await;
    let data = payload(9 * MIB, 3);
    let body = json!({"file_name": "v.bin", "content_type": "application/octet-stream", "size": data.len()});
    let up = begin(h, "profile/p1", body).await.expect(201).json();
    let u = &up["upload"];
    let part_size = u["part_size"].as_u64().unwrap() as usize;
    let id = up["attachment"]["id"].as_str().unwrap().to_owned();
    let parts = u["parts"].as_array().unwrap().clone();
    assert_eq!(parts.len(), 2);
    let chunk = |n: usize| &data[(n - 1) * part_size..(n * part_size).min(data.len())];
    let last = parts[1]["url"].as_str().unwrap();
    let more = [chunk(2), b"one byte too many"].concat();
    assert!(put_part(last, &more).await.status.is_client_error());
    assert!(put_part(last, &chunk(2)[1..])
        .await
        .status
        .is_client_error());
    let status = h
        .get(&format!("/v1/attachments/{id}/upload"), KEY_A)
        .await
        .expect(200)
        .json();
    assert_eq!(
        status["upload"]["parts_received"],
        json!([]),
        "nothing kept"
    );
    for (n, p) in parts.iter().enumerate() {
        let r = put_part(p["url"].as_str().unwrap(), chunk(n + 1)).await;
        assert!(r.status.is_success(), "{:?}", r.status);
    }
    let done = complete(h, &id).await.expect(200).json();
    assert_eq!(done["size"], data.len());
    assert_eq!(done["sha256"], sha256_hex(&data));
}

/// A multipart upload whose bytes contradict the declared checksum is refused at completion:
/// the staged file is deleted, and the attachment says why.
pub async fn multipart_refused_at_completion(h: &Harness) {
    h.parent(KEY_A, "profile", "p1").await;
    let data = payload(20 * MIB, 4);
    let body = json!({"file_name": "v.bin", "content_type": "application/octet-stream", "size": data.len(), "sha256": sha256_hex(b"other")});
    let up = begin(h, "profile/p1", body).await.expect(201).json();
    let u = &up["upload"];
    let part_size = u["part_size"].as_u64().unwrap() as usize;
    let id = up["attachment"]["id"].as_str().unwrap().to_owned();
    for p in u["parts"].as_array().unwrap() {
        let n = p["part_number"].as_u64().unwrap() as usize;
        let chunk = &data[(n - 1) * part_size..(n * part_size).min(data.len())];
        assert!(put_part(p["url"].as_str().unwrap(), chunk)
            .await
            .status
            .is_success());
    }
    let refused = complete(h, &id).await.expect(422).json();
    assert_eq!(refused["error"]["code"], "unprocessable_entity");
    let att = h
        .get(&format!("/v1/attachments/{id}"), KEY_A)
        .await
        .expect(200)
        .json();
    assert_eq!(att["status"], "rejected");
    assert!(att["problem"].is_string(), "{att}");
    assert!(att.get("download_url").is_none());
    assert!(att.get("thumbnail_url").is_none());
    // Asking again gives the same answer; nothing is listed.
    complete(h, &id).await.expect(422);
    let list = h
        .get("/v1/parents/profile/p1/attachments", KEY_A)
        .await
        .expect(200)
        .json();
    assert_eq!(list["items"], json!([]));
}

/// Once an upload is verified, its form can neither replace nor destroy the content: a replay
/// with other bytes of the same size lands in staging, which nothing serves; one of another
/// size is refused and deletes nothing. The sweep then removes what the replay left.
pub async fn verified_content_is_immutable(h: &Harness) {
    h.parent(KEY_A, "profile", "p1").await;
    let png = png_1x1();
    let up = begin(
        h,
        "profile/p1",
        json!({"file_name": "a.png", "content_type": "image/png", "size": png.len()}),
    )
    .await
    .expect(201)
    .json();
    let id = up["attachment"]["id"].as_str().unwrap().to_owned();
    assert!(post_form(&up["upload"], &png).await.status.is_success());
    let ready = complete(h, &id).await.expect(200).json();
    assert_eq!(ready["sha256"], sha256_hex(&png));
    let served = || async {
        let att = h
            .get(&format!("/v1/attachments/{id}"), KEY_A)
            .await
            .expect(200)
            .json();
        assert_eq!(att["status"], "ready");
        assert_eq!(att["sha256"], sha256_hex(&png));
        fetch(att["download_url"].as_str().unwrap())
            .await
            .expect(200)
            .body
    };
    // The same fields, an HTML page of the same size.
    let mut html = b"<!DOCTYPE html><html><script>alert(1)</script>".to_vec();
    html.resize(png.len(), b' ');
    let replay = post_form(&up["upload"], &html).await;
    assert!(replay.status.is_success() || replay.status.is_client_error());
    assert_eq!(
        &served().await[..],
        &png[..],
        "the content is still the PNG"
    );
    complete(h, &id).await.expect(200);
    // The same fields, bytes of another size: refused, and nothing is deleted.
    let replay = post_form(&up["upload"], &[0u8; 10]).await;
    assert!(replay.status.is_client_error(), "{:?}", replay.status);
    assert_eq!(&served().await[..], &png[..]);
    // Whatever the replay left under the staging prefix is an orphan: the sweep removes it.
    assert_eq!(staged_count(h).await, 1, "the replay landed in staging");
    h.app.sweep(0).await.unwrap();
    assert_eq!(staged_count(h).await, 0, "the sweep removed the orphan");
    assert_eq!(&served().await[..], &png[..]);
}

/// An upload larger than what `complete` verifies within its request answers `202` with status
/// `verifying`, and becomes ready through the background verification: a task of the local
/// server on the embedded backend, the finalize function's storage event on AWS.
pub async fn large_uploads_verify_in_the_background(h: &Harness) {
    h.parent(KEY_A, "profile", "p1").await;
    let data = payload(9 * MIB, 5);
    let body = json!({"file_name": "big.bin", "content_type": "application/octet-stream", "size": data.len()});
    let up = begin(h, "profile/p1", body).await.expect(201).json();
    let u = &up["upload"];
    let part_size = u["part_size"].as_u64().unwrap() as usize;
    let id = up["attachment"]["id"].as_str().unwrap().to_owned();
    for p in u["parts"].as_array().unwrap() {
        let n = p["part_number"].as_u64().unwrap() as usize;
        let chunk = &data[(n - 1) * part_size..(n * part_size).min(data.len())];
        assert!(put_part(p["url"].as_str().unwrap(), chunk)
            .await
            .status
            .is_success());
    }
    let accepted = complete(h, &id).await.expect(202).json();
    assert_eq!(accepted["status"], "verifying");
    if !h.app.limits.verify_in_process {
        // What S3 sends the finalize function once the parts are joined.
        let listed = h.app.staged_objects().await.unwrap();
        let key = listed
            .iter()
            .find(|k| k.contains(&id))
            .unwrap_or_else(|| panic!("not staged: {listed:?}"));
        let event = json!({"detail-type": "Object Created", "detail": {"object": {"key": key}}});
        attachments::storage_events::handle(&h.app, &event)
            .await
            .unwrap();
    }
    let mut att = Value::Null;
    for _ in 0..200 {
        att = h
            .get(&format!("/v1/attachments/{id}"), KEY_A)
            .await
            .expect(200)
            .json();
        if att["status"] != "verifying" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(att["status"], "ready", "{att}");
    assert_eq!(att["sha256"], sha256_hex(&data));
    let got = fetch(att["download_url"].as_str().unwrap())
        .await
        .expect(200);
    assert!(got.body == data[..]);
    // Completing again says it is done.
    complete(h, &id).await.expect(200);
}

/// What lies under the staging prefix, as the sweep sees it.
async fn staged_count(h: &Harness) -> usize {
    h.app.staged_objects().await.unwrap().len()
}

/// An upload deleted before it was verified leaves nothing behind: what its links still
/// upload afterwards is removed by the sweep.
pub async fn orphans_after_a_delete_are_swept(h: &Harness) {
    h.parent(KEY_A, "profile", "p1").await;
    let data = payload(1000, 9);
    let up = begin(
        h,
        "profile/p1",
        json!({"file_name": "o.bin", "content_type": "application/octet-stream", "size": data.len()}),
    )
    .await
    .expect(201)
    .json();
    let id = up["attachment"]["id"].as_str().unwrap().to_owned();
    h.call("DELETE", &format!("/v1/attachments/{id}"), Some(KEY_A), "")
        .await
        .expect(204);
    // The link outlives the attachment: the upload lands, and nobody waits for it.
    assert!(post_form(&up["upload"], &data).await.status.is_success());
    assert_eq!(staged_count(h).await, 1);
    h.app.sweep(0).await.unwrap();
    assert_eq!(staged_count(h).await, 0);
    h.get(&format!("/v1/attachments/{id}"), KEY_A)
        .await
        .expect(404);
}

/// A declared type that the bytes contradict is refused at completion.
pub async fn type_checked_at_completion(h: &Harness) {
    h.parent(KEY_A, "profile", "p1").await;
    let html = b"<!DOCTYPE html><html><script>alert(1)</script></html>".to_vec();
    let up = begin(
        h,
        "profile/p1",
        json!({"file_name": "x.png", "content_type": "image/png", "size": html.len()}),
    )
    .await
    .expect(201)
    .json();
    assert!(post_form(&up["upload"], &html).await.status.is_success());
    let id = up["attachment"]["id"].as_str().unwrap();
    complete(h, id).await.expect(422);
    // And a declared type that contradicts the extension is refused at once.
    begin(
        h,
        "profile/p1",
        json!({"file_name": "x.png", "content_type": "text/html", "size": 10}),
    )
    .await
    .expect(415);
}

/// Complete called concurrently gives one ready attachment; the storage event arriving twice
/// (without any complete) changes nothing after the first.
pub async fn concurrent_completion_and_events(h: &Harness) {
    h.parent(KEY_A, "profile", "p1").await;
    let data = payload(200_000, 5);
    let up = begin(h, "profile/p1", json!({"file_name": "c.bin", "content_type": "application/octet-stream", "size": data.len()})).await.expect(201).json();
    let id = up["attachment"]["id"].as_str().unwrap().to_owned();
    assert!(post_form(&up["upload"], &data).await.status.is_success());
    let (a, b, c) = tokio::join!(complete(h, &id), complete(h, &id), complete(h, &id));
    let versions: Vec<Value> = [a, b, c]
        .into_iter()
        .map(|r| r.expect(200).json()["version_id"].clone())
        .collect();
    assert!(versions.iter().all(|v| v == &versions[0] && v.is_string()));

    let up = begin(h, "profile/p1", json!({"file_name": "d.bin", "content_type": "application/octet-stream", "size": data.len()})).await.expect(201).json();
    let id = up["attachment"]["id"].as_str().unwrap().to_owned();
    assert!(post_form(&up["upload"], &data).await.status.is_success());
    let key = up["upload"]["fields"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(k, _)| k.as_str() == "key")
        .unwrap()
        .1
        .as_str()
        .unwrap()
        .to_owned();
    // The finalize function's event (EventBridge "Object Created"), arriving twice.
    let event = json!({"detail-type": "Object Created", "source": "aws.s3", "detail": {"object": {"key": key}}});
    let first = attachments::storage_events::handle(&h.app, &event)
        .await
        .unwrap();
    let second = attachments::storage_events::handle(&h.app, &event)
        .await
        .unwrap();
    let now = h
        .get(&format!("/v1/attachments/{id}"), KEY_A)
        .await
        .expect(200)
        .json();
    assert_eq!(now["status"], "ready");
    assert_eq!(now["sha256"], sha256_hex(&data));
    // Once verified (by the first event, or by the local server's own after-upload check),
    // a repeated event verifies nothing more.
    assert!(first <= 1);
    assert_eq!(second, 0);
    assert_eq!(
        h.get("/v1/parents/profile/p1/attachments", KEY_A)
            .await
            .json()["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // Events for keys that name nothing are ignored.
    assert!(h
        .app
        .finalize_received("a/not-an-id/x", None)
        .await
        .unwrap()
        .is_none());
}

/// An upload that never comes is swept once its window closes: nothing is left.
pub async fn expired_uploads_are_swept(h: &Harness) {
    h.parent(KEY_A, "profile", "p1").await;
    let up = begin(h, "profile/p1", json!({"file_name": "never.bin", "content_type": "application/octet-stream", "size": 60 * MIB})).await.expect(201).json();
    let id = up["attachment"]["id"].as_str().unwrap().to_owned();
    let first = &up["upload"]["parts"][0];
    if first.is_object() {
        assert!(put_part(
            first["url"].as_str().unwrap(),
            &payload(up["upload"]["part_size"].as_u64().unwrap() as usize, 6)
        )
        .await
        .status
        .is_success());
    }
    let later = time::OffsetDateTime::now_utc().unix_timestamp() + 3 * 24 * 3600;
    assert!(h.app.sweep(later).await.unwrap() >= 1);
    h.get(&format!("/v1/attachments/{id}"), KEY_A)
        .await
        .expect(404);
    complete(h, &id).await.expect(404);
}

/// A placeholder (the asset API's attachment with a title only) gets its file this way.
pub async fn placeholder_gets_its_file(h: &Harness) {
    h.parent(KEY_A, "asset", "bDzHAAxLXsSmhL4lax8D").await;
    // The placeholder, created through the asset API as its clients do.
    let created = h
        .send(
            "POST",
            "/api/v2/assets/bDzHAAxLXsSmhL4lax8D/attachments",
            &[
                ("x-api-key", KEY_A.to_string()),
                ("content-type", "application/json".to_string()),
            ],
            Bytes::from(r#"{"title":"sample attachment"}"#),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(created["asset"]["media_type"], "placeholder");
    let ph_id = created["asset"]["id"].as_str().unwrap().to_owned();
    let png = png_1x1();
    let up = begin(h, "asset/bDzHAAxLXsSmhL4lax8D", json!({"file_name": "cover.png", "content_type": "image/png", "size": png.len(), "attachment_id": ph_id.clone()}))
        .await
        .expect(201)
        .json();
    assert_eq!(up["attachment"]["id"], ph_id);
    assert_eq!(up["attachment"]["status"], "placeholder");
    assert!(post_form(&up["upload"], &png).await.status.is_success());
    let done = complete(h, &ph_id).await.expect(200).json();
    assert_eq!(done["id"], ph_id);
    assert_eq!(done["status"], "ready");
    assert_eq!(done["title"], "sample attachment");
    assert_eq!(done["content_type"], "image/png");
    assert_eq!(done["md5"], md5_hex(&png));
    assert_eq!(
        &fetch(done["download_url"].as_str().unwrap())
            .await
            .expect(200)
            .body[..],
        &png[..]
    );
    // Another tenant cannot start an upload to it.
    let r = h
        .call("POST", "/v1/parents/asset/bDzHAAxLXsSmhL4lax8D/uploads", Some(KEY_B), json!({"file_name": "x.png", "content_type": "image/png", "size": 3, "attachment_id": ph_id.clone()}).to_string())
        .await;
    assert_eq!(r.status.as_u16(), 404);
}

/// Bad requests to the upload routes: 4xx in the envelope, nothing recorded.
pub async fn direct_bad_input(h: &Harness) {
    h.parent(KEY_A, "profile", "p1").await;
    let cases = [
        (400, json!({"file_name": "a.bin"}).to_string()),
        (400, "not json".to_string()),
        (400, json!({"file_name": "a.bin", "content_type": "application/octet-stream", "size": -1}).to_string()),
        (422, json!({"file_name": "a.bin", "content_type": "application/octet-stream", "size": 0}).to_string()),
        (413, json!({"file_name": "a.bin", "content_type": "application/octet-stream", "size": 6u64 * 1024 * 1024 * 1024 * 1024}).to_string()),
        (400, json!({"file_name": "a.bin", "content_type": "not a type", "size": 5}).to_string()),
        (400, json!({"file_name": "a.bin", "content_type": "application/octet-stream", "size": 5, "sha256": "xyz"}).to_string()),
        (400, json!({"file_name": "a.bin", "content_type": "application/octet-stream", "size": 5, "surprise": 1}).to_string()),
        (404, json!({"file_name": "a.bin", "content_type": "application/octet-stream", "size": 5, "attachment_id": "01a2088c-5cf6-7bb1-9e84-4d3aa2c3f1e0"}).to_string()),
    ];
    for (i, (status, body)) in cases.iter().enumerate() {
        let r = h
            .call(
                "POST",
                "/v1/parents/profile/p1/uploads",
                Some(KEY_A),
                body.clone(),
            )
            .await;
        assert_eq!(
            r.status.as_u16(),
            *status,
            "case {i}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert!(r.json()["error"]["message"].is_string());
    }
    h.call(
        "POST",
        "/v1/parents/profile/nobody/uploads",
        Some(KEY_A),
        json!({"file_name": "a.bin", "content_type": "application/octet-stream", "size": 5})
            .to_string(),
    )
    .await
    .expect(404);
    h.call("POST", "/v1/parents/profile/p1/uploads", None, "{}")
        .await
        .expect(401);
    h.get(
        "/v1/attachments/01a2088c-5cf6-7bb1-9e84-4d3aa2c3f1e0/upload",
        KEY_A,
    )
    .await
    .expect(404);
    let who = h.app.authenticate(Some(KEY_A)).await.unwrap();
    let hidden = h
        .app
        .list_all(
            &who,
            &attachments::domain::ParentRef::new(
                attachments::domain::ParentKind::parse("profile").unwrap(),
                attachments::domain::ParentId::parse("p1").unwrap(),
            ),
        )
        .await
        .unwrap();
    assert!(hidden.is_empty());
}

/// The hourly sweep's view of the oldest upload under way (the metric its alarm watches): the
/// first one begun, until it is verified; refused and finished uploads do not count.
pub async fn oldest_unverified_upload(h: &Harness) {
    assert_eq!(h.app.oldest_unverified_upload().await.unwrap(), None);
    h.parent(KEY_A, "profile", "p1").await;
    let data = payload(1000, 9);
    let first = begin(h, "profile/p1", json!({"file_name": "a.bin", "content_type": "application/octet-stream", "size": data.len()}))
        .await
        .expect(201)
        .json();
    let started = h
        .app
        .oldest_unverified_upload()
        .await
        .unwrap()
        .expect("one under way");
    let age = time::OffsetDateTime::now_utc() - started;
    assert!(
        age.whole_seconds() >= 0 && age.whole_seconds() < 60,
        "{age}"
    );
    // A later upload, and one refused at verification (not a PNG), change nothing meanwhile.
    let second = begin(
        h,
        "profile/p1",
        json!({"file_name": "b.bin", "content_type": "application/octet-stream", "size": 5}),
    )
    .await
    .expect(201)
    .json();
    let not_png = payload(64, 3);
    let refused = begin(
        h,
        "profile/p1",
        json!({"file_name": "c.png", "content_type": "image/png", "size": not_png.len()}),
    )
    .await
    .expect(201)
    .json();
    assert!(post_form(&refused["upload"], &not_png)
        .await
        .status
        .is_success());
    complete(h, refused["attachment"]["id"].as_str().unwrap())
        .await
        .expect(422);
    assert_eq!(
        h.app.oldest_unverified_upload().await.unwrap(),
        Some(started)
    );
    // Once the first is verified, the second is the oldest; once both are, none is left.
    assert!(post_form(&first["upload"], &data).await.status.is_success());
    complete(h, first["attachment"]["id"].as_str().unwrap())
        .await
        .expect(200);
    let next = h.app.oldest_unverified_upload().await.unwrap().unwrap();
    assert!(next >= started, "{next} before {started}");
    assert_ne!(Some(next), None);
    assert!(post_form(&second["upload"], b"12345")
        .await
        .status
        .is_success());
    complete(h, second["attachment"]["id"].as_str().unwrap())
        .await
        .expect(200);
    assert_eq!(h.app.oldest_unverified_upload().await.unwrap(), None);
}
