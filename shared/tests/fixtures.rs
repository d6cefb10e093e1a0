//! Every API Gateway event in `events/` goes through lambda_http's event parsing into the real
//! handler of its route, against one prepared store, and must answer what its `.expect.json`
//! says. A broken or stale fixture fails the build. Each event also goes through stores that
//! record what it did to them, and its route must declare all of it (`Route::needs`, from which
//! its function's IAM policy is made).
//!
//! Layout: `events/<route-name>/<case>.json` (the event, usable with `sam local invoke -e`) and
//! `events/<route-name>/<case>.expect.json` (`status`, optional `json` subset, optional
//! `headers`; the string "*" matches any present value; the finalize function's failures
//! `error`; `metrics`, the metric lines `scripts/lambda-fixtures.py` checks). Every case runs against freshly
//! prepared data (`attachments::fixtures`), as each `sam local invoke` runs in a new container;
//! cases named `zz-…` change it. `scripts/lambda-fixtures.py` runs the same events through the
//! built function binaries behind a Lambda Runtime API.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use attachments::access::{self, Capability};
use attachments::http::routes;
use attachments::service::Limits;
use attachments::signing::Signer;
use attachments::store::fs_blob::FsBlobStore;
use attachments::store::sqlite::SqliteStore;
use attachments::store::{BlobStore, MetadataStore};
use attachments::App;
use futures_util::StreamExt;
use serde_json::Value;
use support::recording::{RecordingBlobs, RecordingMeta, Used};

fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../events")
}

/// The app over the embedded stores of `dir`, behind recorders.
fn app_in(dir: &Path) -> (Arc<App>, Arc<Used>) {
    let used = Arc::new(Used::default());
    let sqlite: Arc<dyn MetadataStore> =
        Arc::new(SqliteStore::open(&dir.join("db.sqlite")).unwrap());
    let meta: Arc<dyn MetadataStore> = Arc::new(RecordingMeta(sqlite, used.clone()));
    let signer = Signer::new([9; 32]);
    let files: Arc<dyn BlobStore> = Arc::new(FsBlobStore::new(
        dir.join("blobs"),
        "http://127.0.0.1:3000",
        signer.clone(),
    ));
    let blobs: Arc<dyn BlobStore> = Arc::new(RecordingBlobs(files, used.clone()));
    (
        Arc::new(App::new(meta, blobs, signer, Limits::default())),
        used,
    )
}

/// A data folder with what every fixture expects (documented in `events/README.md`), prepared
/// once by the code `attachments-admin fixtures load` and the functions run; each case works on
/// a copy of it.
async fn prepared_data() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = app_in(dir.path());
    attachments::fixtures::load(&app).await.unwrap();
    // Closing the store leaves the database whole in its file, ready to be copied.
    assert_eq!(Arc::strong_count(&app), 1);
    drop(app);
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// What an event did beyond what its function may do.
fn undeclared(used: &BTreeSet<Capability>, declared: &[Capability]) -> Vec<Capability> {
    used.iter()
        .filter(|c| !declared.contains(c))
        .copied()
        .collect()
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

/// Runs one case against freshly prepared data, as every `sam local invoke` starts a new
/// container: no case depends on what another one did. Returns what went wrong.
async fn run_case(data: &Path, route_name: &str, file: &Path) -> Vec<String> {
    let label = file
        .strip_prefix(events_dir())
        .unwrap_or(file)
        .display()
        .to_string();
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(data, tmp.path());
    let (app, used) = app_in(tmp.path());
    let text = std::fs::read_to_string(file).unwrap();
    let expect_path = file.with_extension("expect.json");
    let expect: Value = serde_json::from_str(
        &std::fs::read_to_string(&expect_path)
            .unwrap_or_else(|_| panic!("{} is missing", expect_path.display())),
    )
    .unwrap();
    let mut failures = vec![];
    if route_name == "finalize" {
        // Storage events for the finalize function, not API Gateway events.
        let event: Value = serde_json::from_str(&text).unwrap();
        let outcome = attachments::storage_events::handle(&app, &event).await;
        let extra = undeclared(&used.take(), access::FINALIZE);
        if !extra.is_empty() {
            failures.push(format!(
                "{label}: the finalize function did {extra:?}, which access::FINALIZE does not grant"
            ));
        }
        // An event it must fail: the error Lambda hands to the on-failure destination.
        match (outcome, expect.get("error")) {
            (Ok(n), None) if serde_json::json!({ "verified": n }) == expect["json"] => {}
            (Ok(n), _) => failures.push(format!("{label}: verified {n}, expected {expect}")),
            (Err(e), Some(want)) if want["errorMessage"] == e.to_string().as_str() => {}
            (Err(e), _) => failures.push(format!("{label}: failed ({e}), expected {expect}")),
        }
        return failures;
    }
    let route = routes::by_name(route_name)
        .unwrap_or_else(|| panic!("{label}: no route named {route_name}"));
    let event = lambda_http::request::from_str(&text)
        .unwrap_or_else(|e| panic!("{label}: not an API Gateway event: {e}"));
    let resp = attachments::lambda::handle(&app, route, event).await;
    let extra = undeclared(&used.take(), route.needs);
    if !extra.is_empty() {
        failures.push(format!(
            "{label}: did {extra:?}, which route {} does not declare in its needs",
            route.name
        ));
    }
    // Every answer, whatever the route and outcome, forbids content sniffing.
    let nosniff = resp.headers().get("x-content-type-options");
    if nosniff.and_then(|v| v.to_str().ok()) != Some("nosniff") {
        failures.push(format!("{label}: X-Content-Type-Options is {nosniff:?}"));
    }
    let status = resp.status().as_u16();
    let body: &[u8] = resp.body().as_ref();
    if Some(status as u64) != expect["status"].as_u64() {
        failures.push(format!(
            "{label}: status {status}, expected {}; body {}",
            expect["status"],
            String::from_utf8_lossy(body)
        ));
        return failures;
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
    failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn every_fixture_answers_as_expected() {
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
    let covered: BTreeSet<&str> = cases.iter().map(|(r, _)| r.as_str()).collect();
    // Independent cases, each on its own copy of the data: several at a time (and as many
    // runtime threads, since the embedded store's calls block their thread), as the cases that
    // write mostly wait on the disk.
    let data = prepared_data().await;
    let failures: Vec<String> = futures_util::stream::iter(&cases)
        .map(|(route, file)| run_case(data.path(), route, file))
        .buffer_unordered(8)
        .concat()
        .await;
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
