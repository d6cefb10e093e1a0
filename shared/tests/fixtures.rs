//! Every API Gateway event in `events/` goes through lambda_http's event parsing into the real
//! handler of its route, against one prepared store, and must answer what its `.expect.json`
//! says. A broken or stale fixture fails the build.
//!
//! Layout: `events/<route-name>/<case>.json` (the event, usable with `sam local invoke -e`) and
//! `events/<route-name>/<case>.expect.json` (`status`, optional `json` subset, optional
//! `headers`; the string "*" matches any present value). Cases named `zz-…` may change the
//! seeded data and run last.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use attachments::domain::{
    Attachment, AttachmentId, AttachmentStatus, Digests, FileName, Parent, ParentId, ParentKind,
    ParentRef, TenantId, Version, VersionId,
};
use attachments::http::routes;
use attachments::service::Limits;
use attachments::signing::Signer;
use attachments::store::fs_blob::FsBlobStore;
use attachments::store::sqlite::SqliteStore;
use attachments::store::{BlobStore, MetadataStore};
use attachments::App;
use bytes::Bytes;
use serde_json::Value;

const KEY: &str = "fixture-key-0123456789abcdef";
const OWNER: &str = "admin-user-66@example.com";

fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../events")
}

fn parent_ref(kind: &str, id: &str) -> ParentRef {
    ParentRef::new(
        ParentKind::parse(kind).unwrap(),
        ParentId::parse(id).unwrap(),
    )
}

/// The store every fixture runs against (documented in `events/README.md`).
async fn prepared_app(dir: &Path) -> Arc<App> {
    let meta: Arc<dyn MetadataStore> = Arc::new(SqliteStore::open(&dir.join("db.sqlite")).unwrap());
    let signer = Signer::new([9; 32]);
    let blobs = Arc::new(FsBlobStore::new(
        dir.join("blobs"),
        "http://127.0.0.1:3000",
        signer.clone(),
    ));
    let app = Arc::new(App::new(
        meta.clone(),
        blobs.clone(),
        signer,
        Limits::default(),
    ));
    let tenant = TenantId::parse("fixtures").unwrap();
    app.register_key(&tenant, KEY, Some(OWNER)).await.unwrap();
    let t = time::OffsetDateTime::now_utc();
    for (kind, id) in [
        ("profile", "59284659d4c650213cc2f3fc"),
        ("asset", "bDzHAAxLXsSmhL4lax8D"),
        ("asset", "UqFkJDWdw7Sdg7TQZS-J"),
        ("project", "If8_aXgtMF4ggxOPqvKM"),
        ("project", "MKEejlgPARb7pJp8JrD4"),
        ("io_showcase", "41f19ff6-2738-4000-8bfd-a18950caa1d1"),
        ("io_showcase", "42f64596-c42f-4ba2-8138-cc40188d2a88"),
    ] {
        let profile = kind == "profile";
        meta.put_parent(&Parent {
            tenant: tenant.clone(),
            key: parent_ref(kind, id),
            source: profile.then(|| "src-1".into()),
            reference: profile.then(|| "ref-1".into()),
            email: profile.then(|| "jane@example.com".into()),
            created_at: t,
            updated_at: t,
        })
        .await
        .unwrap();
    }
    let files: [(&str, &str, &str, Vec<u8>, &str); 2] = [
        (
            "01a20000-0000-7000-8000-000000000001",
            "profile/59284659d4c650213cc2f3fc",
            "picture1.jpg",
            support::jpeg_bytes(23193),
            "resume",
        ),
        (
            "01a20000-0000-7000-8000-000000000002",
            "io_showcase/41f19ff6-2738-4000-8bfd-a18950caa1d1",
            "file1.txt",
            b"hello fixtures\n".to_vec(),
            "file",
        ),
    ];
    for (id, parent, name, bytes, label) in files {
        let (kind, pid) = parent.split_once('/').unwrap();
        let name = FileName::parse(name).unwrap();
        let d = Digests::of(&bytes);
        let version = Version {
            id: VersionId::parse("01a20000-0000-7000-8000-0000000000f0").unwrap(),
            content_type: attachments::domain::decide_content_type(
                name.as_str(),
                name.extension(),
                &bytes,
            )
            .unwrap()
            .to_owned(),
            file_name: name,
            size: d.size,
            md5: d.md5_hex(),
            sha256: d.sha256_hex(),
            created_at: t,
        };
        let att = Attachment {
            tenant: tenant.clone(),
            id: AttachmentId::parse(id).unwrap(),
            parent: parent_ref(kind, pid),
            label: label.into(),
            title: None,
            description: None,
            category: None,
            tags: vec![],
            status: AttachmentStatus::Ready,
            owner: OWNER.into(),
            external_id: None,
            content: Some(version.clone()),
            created_at: t,
            updated_at: t,
            expires_at: None,
            upload: None,
            problem: None,
        };
        blobs
            .put(
                &att.blob_key(version.id),
                Bytes::from(bytes),
                &version.content_type,
                &d.sha256,
            )
            .await
            .unwrap();
        meta.create_attachment(&att).await.unwrap();
        meta.put_version(&tenant, att.id, &version).await.unwrap();
    }
    for (id, parent) in [
        (
            "01a20000-0000-7000-8000-000000000003",
            "asset/bDzHAAxLXsSmhL4lax8D",
        ),
        (
            "01a20000-0000-7000-8000-000000000004",
            "project/If8_aXgtMF4ggxOPqvKM",
        ),
    ] {
        let (kind, pid) = parent.split_once('/').unwrap();
        meta.create_attachment(&Attachment {
            tenant: tenant.clone(),
            id: AttachmentId::parse(id).unwrap(),
            parent: parent_ref(kind, pid),
            label: "file".into(),
            title: Some("sample attachment".into()),
            description: None,
            category: None,
            tags: vec![],
            status: AttachmentStatus::Placeholder,
            owner: OWNER.into(),
            external_id: None,
            content: None,
            created_at: t,
            updated_at: t,
            expires_at: None,
            upload: None,
            problem: None,
        })
        .await
        .unwrap();
    }
    app
}

/// `expected` is a subset of `actual`: objects by key, arrays element-wise with equal length,
/// "*" for any present value.
fn subset(expected: &Value, actual: &Value, path: &str) -> Result<(), String> {
    match (expected, actual) {
        (Value::String(s), a) if s == "*" => {
            if a.is_null() {
                Err(format!("{path}: expected a value, got null"))
            } else {
                Ok(())
            }
        }
        (Value::Object(e), Value::Object(a)) => {
            for (k, v) in e {
                let av = a.get(k).ok_or_else(|| format!("{path}.{k}: missing"))?;
                subset(v, av, &format!("{path}.{k}"))?;
            }
            Ok(())
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                return Err(format!(
                    "{path}: expected {} items, got {}",
                    e.len(),
                    a.len()
                ));
            }
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                subset(ev, av, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        (e, a) if e == a => Ok(()),
        (e, a) => Err(format!("{path}: expected {e}, got {a}")),
    }
}

#[tokio::test]
async fn every_fixture_answers_as_expected() {
    let tmp = tempfile::tempdir().unwrap();
    let app = prepared_app(tmp.path()).await;
    let mut cases: Vec<(String, PathBuf)> = vec![];
    let mut dirs: Vec<_> = std::fs::read_dir(events_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    for dir in dirs.into_iter().filter(|d| d.is_dir()) {
        let route = dir.file_name().unwrap().to_string_lossy().into_owned();
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for f in files {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".json") && !name.ends_with(".expect.json") {
                cases.push((route.clone(), f));
            }
        }
    }
    // Cases named `zz-…` change the seeded data (deletions): they run after all the others.
    cases.sort_by_key(|(route, f)| {
        (
            f.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("zz-")),
            route.clone(),
            f.clone(),
        )
    });
    let mut covered = std::collections::BTreeSet::new();
    let mut failures = vec![];
    for (route_name, file) in &cases {
        if route_name == "finalize" {
            // Storage events for the finalize function, not API Gateway events.
            let event: Value =
                serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
            let expect: Value = serde_json::from_str(
                &std::fs::read_to_string(file.with_extension("expect.json")).unwrap(),
            )
            .unwrap();
            let n = attachments::storage_events::handle(&app, &event)
                .await
                .unwrap();
            assert_eq!(
                serde_json::json!({ "verified": n }),
                expect["json"],
                "{}",
                file.display()
            );
            continue;
        }
        let route = routes::by_name(route_name)
            .unwrap_or_else(|| panic!("{}: no route named {route_name}", file.display()));
        covered.insert(route_name.clone());
        let text = std::fs::read_to_string(file).unwrap();
        let event = lambda_http::request::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: not an API Gateway event: {e}", file.display()));
        let expect_path = file.with_extension("expect.json");
        let expect: Value = serde_json::from_str(
            &std::fs::read_to_string(&expect_path)
                .unwrap_or_else(|_| panic!("{} is missing", expect_path.display())),
        )
        .unwrap();
        let resp = attachments::lambda::handle(&app, route, event).await;
        let status = resp.status().as_u16();
        let body: &[u8] = resp.body().as_ref();
        let label = file
            .strip_prefix(events_dir())
            .unwrap_or(file)
            .display()
            .to_string();
        if Some(status as u64) != expect["status"].as_u64() {
            failures.push(format!(
                "{label}: status {status}, expected {}; body {}",
                expect["status"],
                String::from_utf8_lossy(body)
            ));
            continue;
        }
        if let Some(e) = expect.get("json") {
            match serde_json::from_slice::<Value>(body) {
                Ok(actual) => {
                    if let Err(why) = subset(e, &actual, "$") {
                        failures.push(format!("{label}: {why}; body {actual}"));
                    }
                }
                Err(_) => failures.push(format!(
                    "{label}: body is not JSON: {}",
                    String::from_utf8_lossy(body)
                )),
            }
        }
        if let Some(hs) = expect.get("headers").and_then(Value::as_object) {
            for (k, v) in hs {
                let actual = resp.headers().get(k.as_str()).and_then(|h| h.to_str().ok());
                let ok = match (v.as_str(), actual) {
                    (Some("*"), Some(_)) => true,
                    (Some(want), Some(got)) => want == got,
                    _ => false,
                };
                if !ok {
                    failures.push(format!("{label}: header {k} is {actual:?}, expected {v}"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "fixtures failed:\n{}",
        failures.join("\n")
    );
    let missing: Vec<&str> = routes::ROUTES
        .iter()
        .map(|r| r.name)
        .filter(|n| !covered.contains(*n))
        .collect();
    assert!(
        missing.is_empty(),
        "routes without a fixture in events/: {missing:?}"
    );
}

#[test]
fn subset_matching_is_strict_where_it_should_be() {
    let a: Value = serde_json::json!({"x": [1, {"y": "z", "w": 2}], "n": null});
    assert!(subset(&serde_json::json!({"x": [1, {"y": "*"}]}), &a, "$").is_ok());
    assert!(subset(&serde_json::json!({"x": [1]}), &a, "$").is_err());
    assert!(subset(&serde_json::json!({"n": "*"}), &a, "$").is_err());
    assert!(subset(&serde_json::json!({"q": 1}), &a, "$").is_err());
    assert!(subset(&serde_json::json!({"x": [2, {}]}), &a, "$").is_err());
}
