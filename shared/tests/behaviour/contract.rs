//! What `openapi.yaml` promises where schemathesis, run against the server, found it answered
//! otherwise: each test pins one such answer, on every backend.

use serde_json::Value;

use super::snapshot;
use crate::support::*;

/// The native API's forms take only the fields the document lists, as its JSON bodies do: a
/// misspelled label is a 400 that names it, and nothing is stored.
pub async fn unknown_form_fields(h: &Harness) {
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

    let refused = h
        .post_form(
            "/v1/parents/profile/p1/attachments",
            KEY_A,
            &Form::new()
                .file("file", "new.txt", b"new")
                .text("title", "ok")
                .text("titel", "misspelled"),
        )
        .await
        .expect(400)
        .json();
    assert_eq!(refused["error"]["code"], "bad_request");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("\"titel\""), "{message}");
    assert!(message.contains("title"), "{message}");

    let refused = h
        .post_form(
            &format!("/v1/attachments/{id}/content"),
            KEY_A,
            &Form::new()
                .file("file", "keep.txt", b"replaced")
                .text("type", "cover"),
        )
        .await
        .expect(400)
        .json();
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"type\""),
        "{refused}"
    );
    assert_eq!(snapshot(h, KEY_A, "profile", "p1").await, before);

    // Every field the document lists is taken.
    let ok = h
        .post_form(
            "/v1/parents/profile/p1/attachments",
            KEY_A,
            &Form::new()
                .file("file", "all.txt", b"all")
                .text("type", "note")
                .text("title", "T")
                .text("description", "D")
                .text("category", "C")
                .text("tags", "a,b")
                .text("external_id", "E"),
        )
        .await
        .expect(201)
        .json();
    assert_eq!(ok["items"][0]["tags"], serde_json::json!(["a", "b"]));
    assert_eq!(ok["items"][0]["external_id"], Value::from("E"));
}

/// The records API's map is keyed by record UUIDs: without `uuids`, a parent of the object's
/// kind registered (through the native API) under an id that is not a UUID is left out, even
/// with files, rather than listed under a key no records client can use.
pub async fn records_map_keys_are_uuids(h: &Harness) {
    let record = "41f19ff6-2738-4000-8bfd-a18950caa1d1";
    for id in [record, "not-a-uuid"] {
        h.parent(KEY_A, "io_showcase", id).await;
        h.post_form(
            &format!("/v1/parents/io_showcase/{id}/attachments"),
            KEY_A,
            &Form::new().file("file", "a.txt", b"abc"),
        )
        .await
        .expect(201);
    }
    let all = h
        .get("/v2/io_showcase/attachments", KEY_A)
        .await
        .expect(200)
        .json();
    let keys: Vec<&String> = all.as_object().unwrap().keys().collect();
    assert_eq!(keys, [record], "{all}");
    assert_eq!(all[record][0]["name"], "a.txt");
    // The parent itself is still there for the native API.
    let native = h
        .get("/v1/parents/io_showcase/not-a-uuid/attachments", KEY_A)
        .await
        .expect(200)
        .json();
    assert_eq!(native["items"][0]["file_name"], "a.txt");
}
