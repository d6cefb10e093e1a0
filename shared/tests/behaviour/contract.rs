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
