//! The HrFlow dialect: each look-up (id, reference, e-mail, and the indexing API's
//! spelling), the documentation's answer field by field, every `public_url` downloaded and compared, every
//! error row, tenants and sources kept apart, stored data unchanged by refused requests.

use bytes::Bytes;
use serde_json::{json, Value};

use super::crafter::assert_shape;
use crate::support::*;

const PROFILE: &str = "5f0c1ee3a2f8b7c2e4d6a8b0";
const SOURCE: &str = "src-hr-1";

/// The first item of the documentation's answer.
fn seed_item() -> Value {
    json!({
        "type": "resume",
        "alt": "id",
        "file_name": "resume.pdf",
        "original_file_name": "resume",
        "file_size": 194094,
        "extension": "pdf",
        "public_url": "http://www.hrflow.ai/profile/attachment?key=key_value&type=resume",
        "timestamp": 1579252136
    })
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Registers a profile with its look-up fields (native API).
pub async fn profile(h: &Harness, key: &str, id: &str, source: &str, reference: &str, email: &str) {
    let body = json!({"source": source, "reference": reference, "email": email}).to_string();
    let r = h
        .call("PUT", &format!("/v1/parents/profile/{id}"), Some(key), body)
        .await;
    assert!(r.status.is_success(), "{:?}", r.body);
}

/// Uploads one file with a type label through the native API.
pub async fn native_upload(
    h: &Harness,
    key: &str,
    id: &str,
    name: &str,
    bytes: &[u8],
    label: &str,
) {
    h.post_form(
        &format!("/v1/parents/profile/{id}/attachments"),
        key,
        &Form::new().file("file", name, bytes).text("type", label),
    )
    .await
    .expect(201);
}

pub async fn list(h: &Harness, query: &str, key: &str) -> Resp {
    h.get(&format!("/v1/profile/attachments?{query}"), key)
        .await
}

fn pdf(text: &str) -> Vec<u8> {
    format!("%PDF-1.7\n% {text}\n1 0 obj\n<<>>\nendobj\n%%EOF\n").into_bytes()
}

/// The answer's data, each item's link fetched: what "stored data unchanged" means here.
pub async fn snapshot(h: &Harness, query: &str, key: &str) -> Vec<(Value, Bytes)> {
    let r = list(h, query, key).await.expect(200).json();
    let mut out = vec![];
    for mut item in r["data"].as_array().unwrap().clone() {
        let url = item["public_url"].as_str().unwrap().to_owned();
        item.as_object_mut().unwrap().remove("public_url");
        out.push((item, fetch(&url).await.expect(200).body));
    }
    out
}

fn assert_hrflow_error(r: Resp, status: u16, message: &str) -> Value {
    let v = r.expect(status).json();
    assert_eq!(v, json!({"code": status, "message": message}));
    v
}

/// Each look-up and both spellings answer the documentation's shape, with the right bytes behind links.
pub async fn lookups(h: &Harness) {
    profile(h, KEY_A, PROFILE, SOURCE, "ref-1", "Jane@Example.com").await;
    let resume = pdf("resume");
    let original = pdf("original, longer than the resume");
    let before = now_unix();
    native_upload(h, KEY_A, PROFILE, "resume.pdf", &resume, "resume").await;
    native_upload(h, KEY_A, PROFILE, "Original.PDF", &original, "original").await;
    let after = now_unix();

    let queries = [
        format!("source_id={SOURCE}&profile_id={PROFILE}"),
        format!("source_id={SOURCE}&profile_reference=ref-1"),
        format!("source_id={SOURCE}&profile_email=jane%40example.com"),
        format!("source_id={SOURCE}&profile_email=JANE@example.com"),
        format!(
            "source_id={SOURCE}&profile_id={PROFILE}&profile_reference=ref-1&profile_email=jane@example.com"
        ),
    ];
    let mut answers = vec![];
    for q in &queries {
        answers.push((
            "/v1/profile/attachments",
            q.clone(),
            list(h, q, KEY_A).await.expect(200),
        ));
    }
    for q in [
        format!("source_key={SOURCE}&key={PROFILE}"),
        format!("source_key={SOURCE}&reference=ref-1"),
        format!("source_key={SOURCE}&email=jane@example.com"),
    ] {
        let r = h
            .get(&format!("/v1/profile/indexing/attachments?{q}"), KEY_A)
            .await
            .expect(200);
        answers.push(("/v1/profile/indexing/attachments", q, r));
    }
    let mut first: Option<Vec<(Value, Bytes)>> = None;
    for (path, q, r) in answers {
        assert!(r.header("content-type").starts_with("application/json"));
        let v = r.json();
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["code", "message", "data"], "{path}?{q}");
        assert_eq!(v["code"], 200);
        assert_eq!(v["message"], "Profile attachment list");
        let data = v["data"].as_array().unwrap();
        assert_eq!(data.len(), 2, "{path}?{q}");
        let expected = [
            ("resume", &resume, "resume.pdf", "resume"),
            ("original", &original, "Original.PDF", "Original"),
        ];
        let mut seen = vec![];
        for (item, (label, bytes, name, stem)) in data.iter().zip(expected) {
            assert_shape(item, &seed_item());
            assert_eq!(item["type"], label);
            assert_eq!(item["alt"], sha256_hex(bytes));
            assert_eq!(item["file_name"], name);
            assert_eq!(item["original_file_name"], stem);
            assert_eq!(item["file_size"], bytes.len());
            assert_eq!(item["extension"], "pdf");
            let ts = item["timestamp"].as_i64().unwrap();
            assert!(
                (before..=after).contains(&ts),
                "{ts} not in {before}..={after}"
            );
            let dl = fetch(item["public_url"].as_str().unwrap())
                .await
                .expect(200);
            assert_eq!(&dl.body[..], &bytes[..], "{path}?{q}");
            assert_eq!(dl.header("content-type"), "application/pdf");
            assert!(dl.header("content-disposition").starts_with("attachment;"));
            let mut without_link = item.clone();
            without_link.as_object_mut().unwrap().remove("public_url");
            seen.push((without_link, dl.body));
        }
        match &first {
            None => first = Some(seen),
            Some(f) => assert_eq!(&seen, f, "{path}?{q} answers as the others"),
        }
    }

    // A profile without attachments, and placeholders, list nothing.
    profile(
        h,
        KEY_A,
        "empty-profile",
        SOURCE,
        "ref-2",
        "empty@example.com",
    )
    .await;
    let who = attachments::domain::Principal {
        tenant: attachments::domain::TenantId::parse("a").unwrap(),
        owner: OWNER_A.into(),
    };
    let parent = attachments::domain::ParentRef::new(
        attachments::domain::ParentKind::parse("profile").unwrap(),
        attachments::domain::ParentId::parse("empty-profile").unwrap(),
    );
    h.app
        .create_placeholder(&who, &parent, Default::default())
        .await
        .unwrap();
    let v = list(
        h,
        &format!("source_id={SOURCE}&profile_id=empty-profile"),
        KEY_A,
    )
    .await
    .expect(200)
    .json();
    assert_eq!(
        v,
        json!({"code": 200, "message": "Profile attachment list", "data": []})
    );
}

/// Every error this API answers, with stored data unchanged.
pub async fn errors(h: &Harness) {
    profile(h, KEY_A, PROFILE, SOURCE, "ref-1", "jane@example.com").await;
    profile(
        h,
        KEY_A,
        "other-profile",
        SOURCE,
        "ref-2",
        "john@example.com",
    )
    .await;
    profile(
        h,
        KEY_A,
        "elsewhere",
        "src-other",
        "ref-3",
        "ann@example.com",
    )
    .await;
    native_upload(h, KEY_A, PROFILE, "resume.pdf", &pdf("cv"), "resume").await;
    let ok = format!("source_id={SOURCE}&profile_id={PROFILE}");
    let before = snapshot(h, &ok, KEY_A).await;
    assert_eq!(before.len(), 1);

    // Missing, unknown and revoked keys: 401, the key masked.
    for path in [
        "/v1/profile/attachments",
        "/v1/profile/indexing/attachments",
    ] {
        let r = h.call("GET", &format!("{path}?{ok}"), None, "").await;
        assert_hrflow_error(r, 401, "Unauthorized. Invalid secret key: none given");
        let unknown = "wxyz-unknown-secret-key-0123456789";
        let r = h
            .call("GET", &format!("{path}?{ok}"), Some(unknown), "")
            .await;
        assert!(!String::from_utf8_lossy(&r.body).contains("unknown-secret"));
        assert_hrflow_error(r, 401, "Unauthorized. Invalid secret key: wxyz…");
        let r = h
            .call("GET", &format!("{path}?{ok}"), Some("tiny"), "")
            .await;
        assert_hrflow_error(r, 401, "Unauthorized. Invalid secret key: …");
    }
    let t = attachments::domain::TenantId::parse("a").unwrap();
    let k = h.app.create_key(&t, Some("tmp")).await.unwrap();
    list(h, &ok, &k.secret).await.expect(200);
    h.app.revoke_key(&k.record.id).await.unwrap();
    let r = list(h, &ok, &k.secret).await;
    assert!(!String::from_utf8_lossy(&r.body).contains(&k.secret[4..]));
    let masked = format!("Unauthorized. Invalid secret key: {}…", &k.secret[..4]);
    assert_hrflow_error(r, 401, &masked);

    // Missing parameters, named.
    for (path, query, message) in [
        (
            "/v1/profile/attachments",
            format!("profile_id={PROFILE}"),
            "Missing parameter source_id",
        ),
        (
            "/v1/profile/attachments",
            format!("source_id=&profile_id={PROFILE}"),
            "Missing parameter source_id",
        ),
        (
            "/v1/profile/indexing/attachments",
            format!("key={PROFILE}"),
            "Missing parameter source_key",
        ),
        (
            "/v1/profile/attachments",
            format!("source_id={SOURCE}"),
            "Missing parameter: one of profile_id, profile_reference or profile_email is required",
        ),
        (
            "/v1/profile/attachments",
            format!("source_id={SOURCE}&profile_id=&profile_email="),
            "Missing parameter: one of profile_id, profile_reference or profile_email is required",
        ),
        (
            "/v1/profile/indexing/attachments",
            format!("source_key={SOURCE}"),
            "Missing parameter: one of key, reference or email is required",
        ),
    ] {
        let r = h.get(&format!("{path}?{query}"), KEY_A).await;
        assert_hrflow_error(r, 400, message);
    }
    // No profile matching the query in that source: unknown id, reference, e-mail; a profile of
    // another source; an unknown source; a malformed id.
    for query in [
        format!("source_id={SOURCE}&profile_id=nobody"),
        format!("source_id={SOURCE}&profile_reference=nothing"),
        format!("source_id={SOURCE}&profile_email=nobody@example.com"),
        format!("source_id={SOURCE}&profile_id=elsewhere"),
        format!("source_id={SOURCE}&profile_reference=ref-3"),
        format!("source_id={SOURCE}&profile_email=ann@example.com"),
        format!("source_id=src-other&profile_id={PROFILE}"),
        format!("source_id=no-such-source&profile_id={PROFILE}"),
        format!("source_id={SOURCE}&profile_id=bad%20id"),
        format!("source_id={SOURCE}&profile_id={PROFILE}&profile_reference=nothing"),
    ] {
        let r = list(h, &query, KEY_A).await;
        assert_hrflow_error(r, 400, "Invalid profile array");
    }
    // Several look-ups that name different profiles.
    for query in [
        format!("source_id={SOURCE}&profile_id={PROFILE}&profile_reference=ref-2"),
        format!("source_id={SOURCE}&profile_reference=ref-1&profile_email=john@example.com"),
    ] {
        let r = list(h, &query, KEY_A).await;
        assert_hrflow_error(
            r,
            400,
            "The profile id, reference and email given do not designate the same profile",
        );
    }
    // Methods the route does not have, in this envelope.
    let r = h
        .call(
            "POST",
            &format!("/v1/profile/attachments?{ok}"),
            Some(KEY_A),
            "",
        )
        .await;
    assert_eq!(r.header("allow"), "GET");
    assert_hrflow_error(r, 405, "method not allowed on this path");

    assert_eq!(snapshot(h, &ok, KEY_A).await, before, "stored data changed");
}

/// Tenant b asking for tenant a's profile (same source, id, reference, e-mail) gets what an
/// unknown profile gets; b's own profile of the same names shows only b's attachments.
pub async fn cross_tenant(h: &Harness) {
    profile(h, KEY_A, PROFILE, SOURCE, "ref-1", "jane@example.com").await;
    native_upload(
        h,
        KEY_A,
        PROFILE,
        "resume.pdf",
        &pdf("a's secret"),
        "resume",
    )
    .await;
    let ok = format!("source_id={SOURCE}&profile_id={PROFILE}");
    let before = snapshot(h, &ok, KEY_A).await;
    for query in [
        ok.clone(),
        format!("source_id={SOURCE}&profile_reference=ref-1"),
        format!("source_id={SOURCE}&profile_email=jane@example.com"),
    ] {
        let theirs = list(h, &query, KEY_B).await;
        let unknown = list(h, &format!("source_id={SOURCE}&profile_id=nobody"), KEY_B).await;
        assert_eq!(theirs.status, unknown.status);
        assert_eq!(theirs.body, unknown.body, "{query}");
        assert_hrflow_error(theirs, 400, "Invalid profile array");
    }
    profile(h, KEY_B, PROFILE, SOURCE, "ref-1", "jane@example.com").await;
    let b = pdf("b's own");
    native_upload(h, KEY_B, PROFILE, "resume.pdf", &b, "resume").await;
    let mine = snapshot(h, &ok, KEY_B).await;
    assert_eq!(mine.len(), 1);
    assert_eq!(&mine[0].1[..], &b[..]);
    assert_eq!(snapshot(h, &ok, KEY_A).await, before);
}
