//! Everything `scripts/gen-template.py` and `functions/gen-bins.sh` write follows the route table:
//! `template.yaml` has one function per route with a matching HttpApi event and an IAM policy
//! that grants exactly what the route needs; the Makefile `sam build` runs builds each function
//! from its own binary; the `cargo lambda watch` router sends each path and method to its
//! function; every route has one binary; and `events/env.json` only sets variables the template
//! declares (SAM overrides no others).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use attachments::access::{self, Capability};
use attachments::http::routes::ROUTES;
use serde_yaml::Value;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap()
}

fn template() -> Value {
    serde_yaml::from_str(&read("template.yaml")).unwrap()
}

/// The function's logical id in the template, as the generator makes it.
fn logical_id(name: &str) -> String {
    let mut id: String = name
        .split('-')
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect();
    id.push_str("Function");
    id
}

/// The functions of the template, by logical id.
fn functions(doc: &Value) -> BTreeMap<String, &Value> {
    doc["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::Serverless::Function")
        .map(|(k, r)| (k.as_str().unwrap().to_owned(), r))
        .collect()
}

/// Every function with its policy's needs: the finalize function and one per route.
fn needs_by_function() -> Vec<(String, &'static [Capability])> {
    let mut out = vec![("FinalizeFunction".to_owned(), access::FINALIZE)];
    out.extend(ROUTES.iter().map(|r| (logical_id(r.name), r.needs)));
    out
}

/// A resource as the template writes it: `GetAtt Table.Arn`, `Sub ${Bucket.Arn}/*`.
fn resource(v: &Value) -> Result<String, String> {
    match v {
        Value::Tagged(t) => Ok(format!(
            "{} {}",
            t.tag.to_string().trim_start_matches('!'),
            t.value.as_str().ok_or("a resource that is not a string")?
        )),
        other => Err(format!(
            "resource {other:?} is not a reference to the stack's table or bucket"
        )),
    }
}

fn one_or_many(v: &Value) -> Vec<&Value> {
    match v.as_sequence() {
        Some(items) => items.iter().collect(),
        None => vec![v],
    }
}

/// What a function's policies allow, as (action, resource) pairs; anything that is not a plain
/// Allow statement on named actions and resources (a SAM policy template, a managed policy, a
/// Deny, a condition) is an error, since the check could not see what it grants.
fn granted(function: &Value) -> Result<BTreeSet<(String, String)>, String> {
    let mut out = BTreeSet::new();
    for policy in function["Properties"]["Policies"]
        .as_sequence()
        .ok_or("no Policies list")?
    {
        let statements = policy["Statement"]
            .as_sequence()
            .ok_or_else(|| format!("not an inline policy document: {policy:?}"))?;
        for s in statements {
            let keys: BTreeSet<&str> = s
                .as_mapping()
                .ok_or("a statement that is not a mapping")?
                .keys()
                .filter_map(Value::as_str)
                .collect();
            if keys != BTreeSet::from(["Effect", "Action", "Resource"]) || s["Effect"] != "Allow" {
                return Err(format!("not a plain Allow statement: {s:?}"));
            }
            for action in one_or_many(&s["Action"]) {
                let action = action.as_str().ok_or("an action that is not a string")?;
                for r in one_or_many(&s["Resource"]) {
                    out.insert((action.to_owned(), resource(r)?));
                }
            }
        }
    }
    Ok(out)
}

fn expected(needs: &[Capability]) -> BTreeSet<(String, String)> {
    access::permissions(needs)
        .into_iter()
        .map(|(action, r)| (action.to_owned(), format!("{} {}", r.function, r.argument)))
        .collect()
}

/// Every way a function's policy differs from what its route (or the finalize function) needs.
fn policy_problems(doc: &Value) -> Vec<String> {
    let functions = functions(doc);
    let mut problems = vec![];
    for (logical, needs) in needs_by_function() {
        let Some(function) = functions.get(&logical) else {
            problems.push(format!("{logical}: missing"));
            continue;
        };
        let want = expected(needs);
        match granted(function) {
            Err(e) => problems.push(format!("{logical}: {e}")),
            Ok(got) => {
                for extra in got.difference(&want) {
                    problems.push(format!(
                        "{logical} may do {extra:?}, which it does not need"
                    ));
                }
                for missing in want.difference(&got) {
                    problems.push(format!("{logical} may not do {missing:?}, which it needs"));
                }
            }
        }
    }
    problems
}

#[test]
fn template_has_one_function_per_route_and_no_other_api_function() {
    let doc = template();
    let mut seen: Vec<(String, String, String)> = vec![];
    for (logical, res) in functions(&doc) {
        assert_eq!(
            res["Metadata"]["BuildMethod"],
            Value::from("makefile"),
            "{logical}"
        );
        for (_, ev) in res["Properties"]["Events"]
            .as_mapping()
            .into_iter()
            .flatten()
        {
            if ev["Type"] == "HttpApi" {
                let p = &ev["Properties"];
                seen.push((
                    logical.clone(),
                    p["Method"].as_str().unwrap().to_owned(),
                    p["Path"].as_str().unwrap().to_owned(),
                ));
            }
        }
    }
    let want: Vec<(String, String, String)> = ROUTES
        .iter()
        .map(|r| (logical_id(r.name), r.method.to_string(), r.path.to_owned()))
        .collect();
    assert_eq!(
        seen.iter().collect::<BTreeSet<_>>(),
        want.iter().collect::<BTreeSet<_>>(),
        "run scripts/gen-template.py"
    );
    assert_eq!(seen.len(), want.len(), "a route has two functions");
}

#[test]
fn every_function_may_do_exactly_what_its_route_needs() {
    let problems = policy_problems(&template());
    assert!(
        problems.is_empty(),
        "run scripts/gen-template.py:\n{}",
        problems.join("\n")
    );
}

#[test]
fn a_policy_that_grants_more_or_less_than_its_route_needs_is_found() {
    let mut doc = template();
    let statements = |doc: &mut Value, function: &str| -> Vec<Value> {
        doc["Resources"][function]["Properties"]["Policies"][0]["Statement"]
            .as_sequence()
            .unwrap()
            .clone()
    };
    // One action too many: a read-only route that may delete objects.
    let mut s = statements(&mut doc, "CrafterListFunction");
    s[0]["Action"]
        .as_sequence_mut()
        .unwrap()
        .push("dynamodb:PutItem".into());
    doc["Resources"]["CrafterListFunction"]["Properties"]["Policies"][0]["Statement"] =
        Value::Sequence(s);
    // One too few: the finalize function without its last statement.
    let mut s = statements(&mut doc, "FinalizeFunction");
    s.pop();
    doc["Resources"]["FinalizeFunction"]["Properties"]["Policies"][0]["Statement"] =
        Value::Sequence(s);
    // A SAM policy template, whose grants the check cannot see.
    doc["Resources"]["NativeGetParentFunction"]["Properties"]["Policies"]
        .as_sequence_mut()
        .unwrap()
        .push(serde_yaml::from_str("S3ReadPolicy: {BucketName: b}").unwrap());
    let problems = policy_problems(&doc).join("\n");
    assert!(
        problems.contains(r#"CrafterListFunction may do ("dynamodb:PutItem", "GetAtt Table.Arn")"#),
        "{problems}"
    );
    assert!(
        problems.contains(r#"FinalizeFunction may not do ("s3:AbortMultipartUpload""#),
        "{problems}"
    );
    assert!(
        problems.contains("NativeGetParentFunction: not an inline policy document"),
        "{problems}"
    );
    assert_eq!(problems.lines().count(), 7, "{problems}");
}

#[test]
fn the_makefile_builds_each_function_from_its_own_binary() {
    let makefile = read("Makefile");
    let mut targets = BTreeMap::new();
    let mut lines = makefile.lines().peekable();
    while let Some(line) = lines.next() {
        if let Some(target) = line
            .strip_prefix("build-")
            .and_then(|l| l.strip_suffix(": $(STAMP)"))
        {
            let recipe = lines.next().unwrap_or_default();
            let binary = recipe
                .strip_prefix("\tcp $(call binary,")
                .and_then(|r| r.strip_suffix(") $(ARTIFACTS_DIR)/bootstrap"))
                .unwrap_or_else(|| panic!("build-{target} does not copy a binary: {recipe:?}"));
            targets.insert(target.to_owned(), binary.to_owned());
        }
    }
    let mut want: BTreeMap<String, String> = ROUTES
        .iter()
        .map(|r| (logical_id(r.name), r.name.to_owned()))
        .collect();
    want.insert("FinalizeFunction".into(), "attachments-finalize".into());
    assert_eq!(targets, want, "run scripts/gen-template.py");
    let built: BTreeSet<&str> = makefile
        .split_once("BINS := \\\n")
        .unwrap()
        .1
        .lines()
        .map_while(|l| l.strip_prefix("  "))
        .map(|l| l.trim_end_matches(" \\"))
        .collect();
    assert_eq!(
        built,
        want.values().map(String::as_str).collect(),
        "the one cargo invocation builds every function and nothing else"
    );
    let template_functions: BTreeSet<String> = functions(&template()).into_keys().collect();
    assert_eq!(template_functions, want.into_keys().collect());
}

#[test]
fn cargo_lambda_watch_sends_each_path_and_method_to_its_function() {
    let manifest: toml::Table = read("Cargo.toml").parse().unwrap();
    let router = manifest["workspace"]["metadata"]["lambda"]["watch"]["router"]
        .as_table()
        .expect("[workspace.metadata.lambda.watch.router]: run scripts/gen-template.py");
    let mut routed = BTreeSet::new();
    for (path, entries) in router {
        for e in entries.as_array().unwrap() {
            routed.insert((
                path.clone(),
                e["method"].as_str().unwrap().to_owned(),
                e["function"].as_str().unwrap().to_owned(),
            ));
        }
    }
    let want: BTreeSet<(String, String, String)> = ROUTES
        .iter()
        .map(|r| (r.path.to_owned(), r.method.to_string(), r.name.to_owned()))
        .collect();
    assert_eq!(routed, want, "run scripts/gen-template.py");
}

#[test]
fn events_env_json_sets_only_variables_every_function_declares() {
    let doc = template();
    let globals: BTreeSet<&str> = doc["Globals"]["Function"]["Environment"]["Variables"]
        .as_mapping()
        .unwrap()
        .keys()
        .filter_map(Value::as_str)
        .collect();
    let env: serde_json::Value = serde_json::from_str(&read("events/env.json")).unwrap();
    let set: BTreeSet<&str> = env["Parameters"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let undeclared: Vec<_> = set.difference(&globals).collect();
    assert!(
        undeclared.is_empty(),
        "SAM would not pass {undeclared:?} from events/env.json: declare them in scripts/template-base.yaml"
    );
    for (logical, f) in functions(&doc) {
        assert!(
            f["Properties"]["Environment"].is_null(),
            "{logical} sets its own environment"
        );
    }
    assert_eq!(
        env.as_object().unwrap().len(),
        1,
        "events/env.json: one Parameters map for every function"
    );
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

/// `!Ref Name` (or `!GetAtt X.Y`, `!Sub …`) as (`Ref`, `Name`).
fn tag(v: &Value) -> Option<(String, String)> {
    match v {
        Value::Tagged(t) => Some((
            t.tag.to_string().trim_start_matches('!').to_owned(),
            match &t.value {
                Value::String(s) => s.clone(),
                other => format!("{other:?}"),
            },
        )),
        _ => None,
    }
}

fn reference(name: &str) -> Option<(String, String)> {
    Some(("Ref".into(), name.into()))
}

/// Every function writes to a log group of its own, kept `LogRetentionDays` (30 by default),
/// and has an alarm on its errors and one on its throttles; the API writes JSON access lines
/// to its own group, kept as long.
#[test]
fn every_function_has_a_kept_log_group_and_alarms() {
    let doc = template();
    let resources = &doc["Resources"];
    assert_eq!(doc["Parameters"]["LogRetentionDays"]["Default"], 30);
    for (logical, f) in functions(&doc) {
        let group = tag(&f["Properties"]["LoggingConfig"]["LogGroup"]);
        assert_eq!(group, reference(&format!("{logical}Logs")), "{logical}");
        let g = &resources[format!("{logical}Logs").as_str()];
        assert_eq!(g["Type"], "AWS::Logs::LogGroup", "{logical}");
        assert_eq!(
            tag(&g["Properties"]["RetentionInDays"]),
            reference("LogRetentionDays")
        );
        for (metric, threshold) in [
            (
                "Errors",
                if logical == "FinalizeFunction" {
                    "FinalizeErrorsThreshold"
                } else {
                    "FunctionErrorsThreshold"
                },
            ),
            ("Throttles", "FunctionThrottlesThreshold"),
        ] {
            let a = &resources[format!("{logical}{metric}Alarm").as_str()]["Properties"];
            assert_eq!(a["Namespace"], "AWS/Lambda", "{logical} {metric}");
            assert_eq!(a["MetricName"], metric);
            assert_eq!(tag(&a["Dimensions"][0]["Value"]), reference(&logical));
            assert_eq!(tag(&a["Threshold"]), reference(threshold));
        }
    }
    let api = &resources["HttpApi"]["Properties"]["AccessLogSettings"];
    assert_eq!(
        tag(&api["DestinationArn"]),
        Some(("GetAtt".into(), "ApiAccessLogGroup.Arn".into()))
    );
    let format: serde_json::Value = serde_json::from_str(api["Format"].as_str().unwrap())
        .expect("the access log format is one JSON object");
    for field in ["requestId", "integrationRequestId", "status", "routeKey"] {
        assert!(format.get(field).is_some(), "{field}");
    }
    assert_eq!(
        tag(&resources["ApiAccessLogGroup"]["Properties"]["RetentionInDays"]),
        reference("LogRetentionDays")
    );
}

/// Every alarm has a threshold parameter and notifies the optional topic.
#[test]
fn every_alarm_has_a_threshold_parameter_and_the_optional_topic() {
    let doc = template();
    let alarms: Vec<(&Value, &Value)> = doc["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::CloudWatch::Alarm")
        .collect();
    // API 5xx, DynamoDB throttles, dead letters, oldest unverified upload, and two per function.
    assert_eq!(alarms.len(), 4 + 2 * functions(&doc).len());
    assert_eq!(doc["Parameters"]["AlarmTopicArn"]["Default"], "");
    for (name, a) in alarms {
        let p = &a["Properties"];
        let (kind, param) = tag(&p["Threshold"]).unwrap_or_default();
        assert_eq!(kind, "Ref", "{name:?}");
        assert!(
            doc["Parameters"][param.as_str()].is_mapping(),
            "{name:?}: {param}"
        );
        for actions in ["AlarmActions", "OKActions"] {
            let (kind, args) = tag(&p[actions]).unwrap_or_default();
            assert_eq!(kind, "If", "{name:?} {actions}");
            assert!(args.contains("HasAlarmTopic"), "{name:?} {actions}");
        }
    }
}

/// The finalize function sends what it fails on to a dead-letter queue, whose depth has an
/// alarm; tracing is a parameter, on by default.
#[test]
fn failed_storage_events_land_in_a_watched_queue_and_tracing_is_on() {
    let doc = template();
    let r = &doc["Resources"];
    let invoke = &r["FinalizeFunction"]["Properties"]["EventInvokeConfig"];
    assert_eq!(invoke["DestinationConfig"]["OnFailure"]["Type"], "SQS");
    assert_eq!(
        tag(&invoke["DestinationConfig"]["OnFailure"]["Destination"]),
        Some(("GetAtt".into(), "FinalizeDeadLetterQueue.Arn".into()))
    );
    assert_eq!(r["FinalizeDeadLetterQueue"]["Type"], "AWS::SQS::Queue");
    let depth = &r["DeadLetterDepthAlarm"]["Properties"];
    assert_eq!(depth["MetricName"], "ApproximateNumberOfMessagesVisible");
    assert_eq!(
        tag(&depth["Dimensions"][0]["Value"]),
        Some(("GetAtt".into(), "FinalizeDeadLetterQueue.QueueName".into()))
    );
    assert_eq!(doc["Parameters"]["TracingEnabled"]["Default"], "true");
    let (kind, args) = tag(&doc["Globals"]["Function"]["Tracing"]).unwrap();
    assert_eq!(kind, "If");
    assert!(
        args.contains("TracingOn") && args.contains("Active"),
        "{args}"
    );
}

/// The alarm on the oldest unverified upload reads the metric the functions write, in the
/// namespace they are given.
#[test]
fn the_metric_alarm_reads_what_the_functions_write() {
    use attachments::telemetry::emf::Metric;
    let doc = template();
    let ns =
        tag(&doc["Globals"]["Function"]["Environment"]["Variables"]
            ["ATTACHMENTS_METRICS_NAMESPACE"]);
    let alarm = &doc["Resources"]["OldestUnverifiedUploadAlarm"]["Properties"];
    assert!(ns.is_some());
    assert_eq!(tag(&alarm["Namespace"]), ns);
    assert_eq!(
        alarm["MetricName"],
        Metric::OldestUnverifiedUploadAge.name()
    );
    assert_eq!(
        alarm["TreatMissingData"], "breaching",
        "a sweep that stops is a problem too"
    );
}
