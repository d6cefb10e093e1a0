//! `openapi.yaml` and the route table describe one API: every route of the table is an operation
//! of the document with the same method and path, named by the route's function (its
//! `operationId`), and the document has no operation the table lacks. The local server's own
//! pages (`/openapi.yaml`, `/api-docs`, `/console`, the store's `/_blobs/` links) are not routes
//! and not operations: the document names them in its introduction.
//!
//! Beside that: each operation is under its API's tag, only Crafter's operations take the key
//! from the query (`accessTokenId`), every path parameter is declared, and every read that can
//! answer `200` documents its `ETag`, `Cache-Control` and `304` (see `http/conditional.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use attachments::http::routes::ROUTES;
use serde_yaml::Value;

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// One operation: method (upper case), path, operation id.
type Operation = (String, String, String);

fn document() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi.yaml");
    let text = std::fs::read_to_string(path).expect("openapi.yaml at the repository's root");
    assert_eq!(
        text,
        functions::api_docs::DOCUMENT,
        "the server serves the committed document"
    );
    serde_yaml::from_str(&text).expect("openapi.yaml is YAML")
}

/// Every operation of the document.
fn operations(doc: &Value) -> BTreeSet<Operation> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_mapping().expect("paths").iter() {
        let path = path.as_str().unwrap();
        for (method, op) in item.as_mapping().unwrap() {
            let method = method.as_str().unwrap();
            if !METHODS.contains(&method) {
                continue; // `parameters`, `summary`…
            }
            let id = op["operationId"].as_str().unwrap_or("(no operationId)");
            out.insert((method.to_uppercase(), path.to_owned(), id.to_owned()));
        }
    }
    out
}

/// Every route of the table, as an operation.
fn routes() -> BTreeSet<Operation> {
    ROUTES
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_owned(), r.name.to_owned()))
        .collect()
}

/// What one side has and the other lacks: (routes not in the document, operations not routes).
fn differences(
    table: &BTreeSet<Operation>,
    doc: &BTreeSet<Operation>,
) -> (Vec<Operation>, Vec<Operation>) {
    (
        table.difference(doc).cloned().collect(),
        doc.difference(table).cloned().collect(),
    )
}

fn show(ops: &[Operation]) -> String {
    ops.iter()
        .map(|(m, p, id)| format!("\n  {m} {p} ({id})"))
        .collect()
}

#[test]
fn the_document_has_every_route_and_nothing_else() {
    let (missing, extra) = differences(&routes(), &operations(&document()));
    assert!(
        missing.is_empty() && extra.is_empty(),
        "openapi.yaml and the route table (shared/src/http/routes.rs) differ.\n\
         Routes the document lacks:{}\nOperations the route table lacks:{}",
        show(&missing),
        show(&extra)
    );
    assert_eq!(routes().len(), ROUTES.len(), "one operation per route");
}

/// The comparison itself: a route added to either side alone is reported, on its side.
#[test]
fn a_route_on_one_side_only_is_reported() {
    let table = routes();
    let doc = operations(&document());

    let mut longer_table = table.clone();
    let added: Operation = (
        "PATCH".into(),
        "/v1/attachments/{id}".into(),
        "native-patch-attachment".into(),
    );
    longer_table.insert(added.clone());
    assert_eq!(
        differences(&longer_table, &doc),
        (vec![added.clone()], vec![])
    );

    let mut longer_doc = doc.clone();
    longer_doc.insert(added.clone());
    assert_eq!(differences(&table, &longer_doc), (vec![], vec![added]));

    // Same path and method under another name is a difference too.
    let mut renamed = doc.clone();
    let first = renamed.iter().next().cloned().unwrap();
    renamed.remove(&first);
    let other = (first.0.clone(), first.1.clone(), "renamed".to_owned());
    renamed.insert(other.clone());
    assert_eq!(differences(&table, &renamed), (vec![first], vec![other]));
}

/// `#/components/…` references, followed.
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let mut at = doc;
            for part in r.trim_start_matches("#/").split('/') {
                at = &at[part];
            }
            resolve(doc, at)
        }
        None => v,
    }
}

fn each_operation(doc: &Value, mut f: impl FnMut(&str, &str, &Value, &Value)) {
    for (path, item) in doc["paths"].as_mapping().unwrap() {
        for (method, op) in item.as_mapping().unwrap() {
            let method = method.as_str().unwrap();
            if METHODS.contains(&method) {
                f(path.as_str().unwrap(), method, item, op);
            }
        }
    }
}

#[test]
fn operations_are_under_their_apis_tag() {
    let doc = document();
    each_operation(&doc, |path, method, _, op| {
        let id = op["operationId"].as_str().unwrap();
        let tag = match id.split('-').next().unwrap() {
            "native" => "Native API",
            "crafter" => "Crafter Profile",
            "hrflow" => "HrFlow",
            "records" => "Records",
            "assets" | "projects" => "Assets and projects",
            other => panic!("{id}: no API named {other}"),
        };
        assert_eq!(
            op["tags"],
            Value::Sequence(vec![tag.into()]),
            "{method} {path}"
        );
    });
}

#[test]
fn only_crafters_operations_take_the_key_from_the_query() {
    let doc = document();
    let schemes = |v: &Value| -> BTreeSet<String> {
        v.as_sequence()
            .unwrap()
            .iter()
            .flat_map(|alt| alt.as_mapping().unwrap().keys())
            .map(|k| k.as_str().unwrap().to_owned())
            .collect()
    };
    let headers: BTreeSet<String> = ["ApiKeyHeader", "BearerKey"].map(String::from).into();
    assert_eq!(schemes(&doc["security"]), headers);
    each_operation(&doc, |path, method, _, op| {
        let id = op["operationId"].as_str().unwrap();
        let effective = match op.get("security") {
            Some(s) => schemes(s),
            None => schemes(&doc["security"]),
        };
        let mut expected = headers.clone();
        if id.starts_with("crafter-") {
            expected.insert("AccessTokenId".into());
        }
        assert_eq!(effective, expected, "{method} {path}");
    });
}

#[test]
fn every_path_parameter_is_declared() {
    let doc = document();
    each_operation(&doc, |path, method, item, op| {
        let in_path: BTreeSet<String> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(str::to_owned)
            .collect();
        let declared: BTreeSet<String> = [item.get("parameters"), op.get("parameters")]
            .into_iter()
            .flatten()
            .flat_map(|ps| ps.as_sequence().unwrap())
            .map(|p| resolve(&doc, p))
            .filter(|p| p["in"] == "path")
            .map(|p| {
                assert_eq!(p["required"], true, "{method} {path}");
                p["name"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(declared, in_path, "{method} {path}");
    });
}

/// Each refusal the native operations document carries a code of the document's list, its own
/// (no 4xx is labelled `internal`), and a 5xx the generic `internal`.
#[test]
fn native_errors_carry_the_documents_codes() {
    let doc = document();
    let codes: BTreeSet<&str> = doc["components"]["schemas"]["NativeError"]["properties"]["error"]
        ["properties"]["code"]["enum"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    each_operation(&doc, |path, method, _, op| {
        if !op["operationId"].as_str().unwrap().starts_with("native-") {
            return;
        }
        for status in op["responses"].as_mapping().unwrap().keys() {
            let status: u16 = status.as_str().unwrap().parse().unwrap();
            if status < 400 {
                continue;
            }
            let status = http::StatusCode::from_u16(status).unwrap();
            let body = <attachments::http::native::Native as attachments::http::Dialect>::error(
                status, "why",
            );
            let v: serde_json::Value = serde_json::from_slice(body.body()).unwrap();
            let code = v["error"]["code"].as_str().unwrap();
            assert!(codes.contains(code), "{method} {path} {status}: {code}");
            assert_eq!(
                code == "internal",
                status.is_server_error(),
                "{method} {path} {status}: {code}"
            );
        }
    });
}

#[test]
fn reads_document_their_etag_and_304() {
    let doc = document();
    each_operation(&doc, |path, method, _, op| {
        let responses = &op["responses"];
        if method != "get" || responses.get("200").is_none() {
            return;
        }
        let ok = resolve(&doc, &responses["200"]);
        for header in ["ETag", "Cache-Control"] {
            assert!(
                ok["headers"].get(header).is_some(),
                "{method} {path}: 200 without {header}"
            );
        }
        assert!(
            responses.get("304").is_some(),
            "{method} {path}: no 304 for If-None-Match"
        );
        let takes_if_none_match = op["parameters"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|p| resolve(&doc, p)["name"] == "If-None-Match");
        assert!(takes_if_none_match, "{method} {path}: no If-None-Match");
    });
}
