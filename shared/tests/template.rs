//! `template.yaml`, the Lambda binaries and the route table agree: every route has exactly one
//! function with a matching HttpApi event and one binary, and nothing else has either.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::Path;

use attachments::http::routes::{Access, ROUTES};
use serde_yaml::Value;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn untag(v: &Value) -> &Value {
    match v {
        Value::Tagged(t) => &t.value,
        other => other,
    }
}

#[test]
fn template_has_one_function_per_route_and_no_other_api_function() {
    let text = std::fs::read_to_string(root().join("template.yaml")).unwrap();
    let doc: Value = serde_yaml::from_str(&text).unwrap();
    let resources = doc["Resources"].as_mapping().unwrap();
    let mut seen: Vec<(String, String, String, String)> = vec![];
    for (logical, res) in resources {
        if res["Type"] != "AWS::Serverless::Function" {
            continue;
        }
        let binary = res["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert_eq!(
            res["Metadata"]["BuildMethod"],
            Value::from("rust-cargolambda"),
            "{logical:?}"
        );
        let policies = serde_yaml::to_string(&res["Properties"]["Policies"]).unwrap();
        for (_, ev) in res["Properties"]["Events"]
            .as_mapping()
            .into_iter()
            .flatten()
        {
            if ev["Type"] != "HttpApi" {
                continue;
            }
            let p = &ev["Properties"];
            seen.push((
                binary.clone(),
                untag(&p["Method"]).as_str().unwrap().to_owned(),
                p["Path"].as_str().unwrap().to_owned(),
                policies.clone(),
            ));
        }
    }
    for route in ROUTES {
        let matching: Vec<_> = seen
            .iter()
            .filter(|(b, m, p, _)| b == route.name && m == route.method.as_str() && p == route.path)
            .collect();
        assert_eq!(
            matching.len(),
            1,
            "route {} ({} {}) needs exactly one function",
            route.name,
            route.method,
            route.path
        );
        let policies = &matching[0].3;
        if route.access == Access::Read {
            assert!(
                !policies.contains("Crud"),
                "{} only reads but may write: {policies}",
                route.name
            );
        }
    }
    for (binary, method, path, _) in &seen {
        assert!(
            ROUTES
                .iter()
                .any(|r| r.name == binary && r.method.as_str() == method && r.path == path),
            "template function {binary} ({method} {path}) is not in the route table"
        );
    }
}

#[test]
fn every_route_has_a_binary_and_every_binary_a_route() {
    let bins: BTreeSet<String> = std::fs::read_dir(root().join("functions/src/bin"))
        .unwrap()
        .map(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_owned()
        })
        .filter(|n| !n.starts_with("attachments-"))
        .collect();
    let names: BTreeSet<String> = ROUTES.iter().map(|r| r.name.to_owned()).collect();
    assert_eq!(bins, names, "run functions/gen-bins.sh");
    for r in ROUTES {
        let src = std::fs::read_to_string(root().join(format!("functions/src/bin/{}.rs", r.name)))
            .unwrap();
        let konst = r.name.to_uppercase().replace('-', "_");
        assert!(
            src.contains(&format!("lambda::run(&attachments::http::routes::{konst})")),
            "{} serves another route",
            r.name
        );
    }
}
