//! What the DynamoDB store costs and where it writes, measured on moto through an interceptor on
//! the store's client (`support/capacity.rs`): the write units of an upload, a direct upload's
//! completion and a deletion are the same for a parent that holds 6,000 attachments as for one
//! that holds one; two parents' and two tenants' writes go to disjoint partitions, but for the
//! two documented sharded keys; the records API lists 100 records in two round trips.

use std::collections::BTreeSet;

use attachments::domain::{ParentId, ParentKind, ParentRef};
use attachments::store::dynamo::{bulk_items, DEFAULT_LEFTOVER_SHARDS};
use serde_json::{json, Value};

use crate::behaviour::direct::{payload, post_form};
use crate::support::capacity::{cost_of, json_item, sequential_round_trips, Call, Cost, Recorder};
use crate::support::*;

fn profile(id: &str) -> ParentRef {
    ParentRef::new(
        ParentKind::parse("profile").unwrap(),
        ParentId::parse(id).unwrap(),
    )
}

/// The calls `f` makes, from the recorder's log.
async fn calls_of<T>(rec: &Recorder, f: impl std::future::Future<Output = T>) -> (T, Vec<Call>) {
    let mark = rec.mark();
    let out = f.await;
    (out, rec.since(mark))
}

/// Uploads one small file through the native API; its id and what the upload cost.
async fn upload(
    h: &Harness,
    rec: &Recorder,
    key: &str,
    parent: &str,
    name: &str,
) -> (String, Cost) {
    let (r, calls) = calls_of(
        rec,
        h.post_form(
            &format!("/v1/parents/profile/{parent}/attachments"),
            key,
            &Form::new().file("file", name, name.as_bytes()),
        ),
    )
    .await;
    let id = r.expect(201).json()["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    (id, cost_of(&calls))
}

/// A direct upload (one form POST to S3): what its begin and its completion cost.
async fn direct(h: &Harness, rec: &Recorder, parent: &str) -> (String, Cost, Cost) {
    let data = payload(20_000, 7);
    let (r, begin) = calls_of(
        rec,
        h.call(
            "POST",
            &format!("/v1/parents/profile/{parent}/uploads"),
            Some(KEY_A),
            json!({"file_name": "scan.bin", "content_type": "application/octet-stream", "size": data.len()})
                .to_string(),
        ),
    )
    .await;
    let up = r.expect(201).json();
    let id = up["attachment"]["id"].as_str().unwrap().to_owned();
    assert!(post_form(&up["upload"], &data).await.status.is_success());
    let (r, complete) = calls_of(
        rec,
        h.call(
            "POST",
            &format!("/v1/attachments/{id}/complete"),
            Some(KEY_A),
            "",
        ),
    )
    .await;
    assert_eq!(r.expect(200).json()["status"], "ready");
    (id, cost_of(&begin), cost_of(&complete))
}

async fn delete(h: &Harness, rec: &Recorder, key: &str, id: &str) -> Cost {
    let (r, calls) = calls_of(
        rec,
        h.call("DELETE", &format!("/v1/attachments/{id}"), Some(key), ""),
    )
    .await;
    r.expect(204);
    cost_of(&calls)
}

/// Table and index units, for comparing.
fn units(c: &Cost) -> (u64, u64) {
    (c.table, c.index)
}

/// Registers `big` with 6,000 attachments, straight into the table (uploads would take minutes
/// on moto), made known to the recorder so that writes to them are measured at their real size.
async fn load_big_parent(h: &Harness, rec: &Recorder) {
    let big = profile("big");
    let who = attachments::domain::Principal {
        tenant: attachments::domain::TenantId::parse("a").unwrap(),
        owner: OWNER_A.into(),
    };
    let stored = h.app.get_parent(&who, &big).await.unwrap();
    let atts: Vec<_> = (0..6000)
        .map(|i| ready_attachment("a", &big, &format!("f{i:04}.txt")))
        .collect();
    let items = bulk_items(Some(&stored), &atts, DEFAULT_LEFTOVER_SHARDS).unwrap();
    rec.know(&items.iter().map(json_item).collect::<Vec<_>>());
    h.peers.as_ref().unwrap().load(items).await;
}

/// What the items of parent `fresh` and its attachment `second_id` weigh, for the capacity model of
/// docs/dynamodb.md.
async fn print_item_sizes(h: &Harness, rec: &Recorder, second_id: &str) {
    let upload_id = h
        .get(&format!("/v1/attachments/{second_id}"), KEY_A)
        .await
        .expect(200)
        .json()["version_id"]
        .as_str()
        .map(str::to_owned);
    let sizes = [
        ("parent", "T#a#P#profile#fresh".to_owned(), "P".to_owned()),
        (
            "attachment",
            "T#a#P#profile#fresh".to_owned(),
            format!("A#{second_id}"),
        ),
        ("pointer", format!("T#a#A#{second_id}"), "A".to_owned()),
        (
            "version",
            format!("T#a#A#{second_id}"),
            format!("V#{}", upload_id.unwrap_or_default()),
        ),
    ];
    for (what, pk, sk) in sizes {
        eprintln!("item size: {what:<10} {:?} bytes", rec.size_of(&pk, &sk));
    }
}

#[tokio::test]
async fn writes_cost_the_same_whatever_the_parent_holds() {
    let rec = Recorder::default();
    let h = Harness::aws_recorded(Opts::default(), &rec).await;
    h.parent(KEY_A, "profile", "fresh").await;
    h.parent(KEY_A, "profile", "big").await;
    load_big_parent(&h, &rec).await;

    let (_, first) = upload(&h, &rec, KEY_A, "fresh", "one.txt").await;
    let (second_id, second) = upload(&h, &rec, KEY_A, "fresh", "two.txt").await;
    let (big_id, big_upload) = upload(&h, &rec, KEY_A, "big", "6001.txt").await;
    assert_eq!(
        units(&big_upload),
        units(&second),
        "an upload to a parent of 6,000 costs what one to a parent of one does"
    );
    // The first attachment of a parent also puts its marker: one small item, in the
    // transaction (2 units).
    assert_eq!(units(&first), (second.table + 2, second.index));

    let (_, fresh_begin, fresh_complete) = direct(&h, &rec, "fresh").await;
    let (_, big_begin, big_complete) = direct(&h, &rec, "big").await;
    assert_eq!(units(&big_begin), units(&fresh_begin));
    assert_eq!(units(&big_complete), units(&fresh_complete));

    print_item_sizes(&h, &rec, &second_id).await;

    // Reads write nothing: a page of 20 of the 6,001 attachments, and a download.
    let (r, list_calls) = calls_of(
        &rec,
        h.get("/v1/parents/profile/big/attachments?limit=20", KEY_A),
    )
    .await;
    assert_eq!(r.expect(200).json()["items"].as_array().unwrap().len(), 20);
    let (r, download_calls) = calls_of(
        &rec,
        h.get(&format!("/v1/attachments/{big_id}/content"), KEY_A),
    )
    .await;
    assert!(r.status.is_redirection(), "{}", r.status);
    let (list, download) = (cost_of(&list_calls), cost_of(&download_calls));
    assert_eq!(units(&list), (0, 0));
    assert_eq!(units(&download), (0, 0));

    let fresh_delete = delete(&h, &rec, KEY_A, &second_id).await;
    let big_delete = delete(&h, &rec, KEY_A, &big_id).await;
    assert_eq!(units(&big_delete), units(&fresh_delete));

    // Small constants, whatever the parent: the figures docs/dynamodb.md gives.
    let table = [
        ("upload (first of its parent)", &first),
        ("upload", &second),
        ("upload to a parent of 6,000", &big_upload),
        ("direct upload: begin", &fresh_begin),
        ("direct upload: complete", &fresh_complete),
        ("direct upload: complete, parent of 6,000", &big_complete),
        ("delete", &fresh_delete),
        ("delete, parent of 6,000", &big_delete),
        ("list 20 of 6,001", &list),
        ("download", &download),
    ];
    for (what, c) in table {
        eprintln!(
            "write units: {what:<42} table {:>2}  leftovers index {:>2}  reads: {}",
            c.table,
            c.index,
            c.read_summary()
        );
        assert!(c.table + c.index <= 16, "{what}: {c:?}");
    }
}

/// Partition keys that several parents' writes may share, by design: the marker shards and
/// the leftovers index shards.
fn sharded(pk: &str) -> bool {
    let parts: Vec<&str> = pk.split('#').collect();
    matches!(parts.as_slice(), ["T", _, "L", _, n] if n.parse::<u32>().is_ok_and(|n| n < 16))
        || matches!(parts.as_slice(), ["leftover", n] if n.parse::<u32>().is_ok())
}

#[tokio::test]
async fn two_parents_and_two_tenants_write_disjoint_partitions() {
    let rec = Recorder::default();
    let h = Harness::aws_recorded(Opts::default(), &rec).await;
    let writers = [(KEY_A, "a", "p1"), (KEY_A, "a", "p2"), (KEY_B, "b", "p1")];
    let mut own: Vec<BTreeSet<String>> = Vec::new();
    let mut shared = BTreeSet::new();
    for (key, tenant, parent) in writers {
        h.parent(key, "profile", parent).await;
        let mut written = Cost::default();
        // Two uploads and their deletions: the first upload puts the parent's marker and the
        // last deletion takes it away; the uploads in between never write a shared key.
        let (first, cost) = upload(&h, &rec, key, parent, "a.txt").await;
        written.add(cost);
        let (second, cost) = upload(&h, &rec, key, parent, "b.txt").await;
        assert!(
            !cost.partitions.iter().any(|pk| sharded(pk)),
            "an upload to a parent with attachments wrote {:?}",
            cost.partitions
        );
        written.add(cost);
        for id in [&first, &second] {
            written.add(delete(&h, &rec, key, id).await);
        }
        let mut mine = BTreeSet::new();
        for pk in written.partitions.iter().chain(&written.index_partitions) {
            if sharded(pk) {
                shared.insert(pk.clone());
                continue;
            }
            // Only the parent's own partition and its attachments' own partitions.
            let home = format!("T#{tenant}#P#profile#{parent}");
            assert!(
                *pk == home || pk.starts_with(&format!("T#{tenant}#A#")),
                "{tenant}/{parent} wrote {pk}"
            );
            mine.insert(pk.clone());
        }
        own.push(mine);
    }
    for (i, a) in own.iter().enumerate() {
        for b in &own[i + 1..] {
            assert!(a.is_disjoint(b), "{a:?} and {b:?}");
        }
    }
    // The sharded keys were written too (markers, pending uploads), and are of their two forms.
    assert!(shared.iter().any(|k| k.starts_with("T#")), "{shared:?}");
    assert!(
        shared.iter().any(|k| k.starts_with("leftover#")),
        "{shared:?}"
    );
}

#[tokio::test]
async fn a_hundred_records_are_listed_in_two_round_trips() {
    let rec = Recorder::default();
    let h = Harness::aws_recorded(Opts::default(), &rec).await;
    let uuid = |i: usize| format!("5a0e2c9d-3b7f-4c1e-9d2a-{i:012}");
    let kind = ParentKind::parse("io_trips").unwrap();
    for i in 0..100 {
        h.parent(KEY_A, "io_trips", &uuid(i)).await;
        // Three records in five have two files each.
        if i % 5 < 3 {
            let record = ParentRef::new(kind.clone(), ParentId::parse(&uuid(i)).unwrap());
            let atts = [
                ready_attachment("a", &record, "one.txt"),
                ready_attachment("a", &record, "two.txt"),
            ];
            h.load_attachments("a", &record, &atts).await;
        }
    }
    let ids: Vec<String> = (0..100).map(uuid).collect();
    let path = format!("/v2/io_trips/attachments?uuids={}", ids.join(","));
    // Once to check the answer (and to have the key checked and cached), once to measure.
    let answer = h.get(&path, KEY_A).await.expect(200).json();
    let map = answer.as_object().unwrap();
    assert_eq!(map.keys().cloned().collect::<Vec<_>>(), ids);
    for (i, id) in ids.iter().enumerate() {
        let n = if i % 5 < 3 { 2 } else { 0 };
        assert_eq!(map[id].as_array().unwrap().len(), n, "{id}");
    }
    let (again, calls) = calls_of(&rec, h.get(&path, KEY_A)).await;
    let again: Value = again.expect(200).json();
    assert_eq!(
        again.as_object().unwrap().keys().collect::<Vec<_>>(),
        map.keys().collect::<Vec<_>>()
    );
    let ops: Vec<&str> = calls.iter().map(|c| c.op.as_str()).collect();
    assert_eq!(
        (
            ops.iter().filter(|o| **o == "BatchGetItem").count(),
            ops.iter().filter(|o| **o == "Query").count(),
            ops.len()
        ),
        (1, 60, 61),
        "one read of the records, one Query per record with files: {ops:?}"
    );
    assert_eq!(
        sequential_round_trips(&calls),
        2,
        "the records, then their attachments all at once"
    );
}

/// A parent of 120 attachments is deleted over several requests (at most 100 attachments, or
/// a few seconds' worth, each), each going on where the last stopped; no transaction holds more
/// than a handful of items, whatever the parent held, and no request more than one page's
/// worth of them.
#[tokio::test]
async fn a_parent_of_many_is_deleted_in_pages_of_small_transactions() {
    let rec = Recorder::default();
    let h = Harness::aws_recorded(Opts::default(), &rec).await;
    h.parent(KEY_A, "profile", "many").await;
    let many = profile("many");
    let atts: Vec<_> = (0..120)
        .map(|i| ready_attachment("a", &many, &format!("f{i:03}.txt")))
        .collect();
    h.load_attachments("a", &many, &atts).await;

    let mut removed = Vec::new();
    loop {
        let (r, calls) = calls_of(
            &rec,
            h.call("DELETE", "/v1/parents/profile/many", Some(KEY_A), ""),
        )
        .await;
        let transactions: Vec<usize> = calls
            .iter()
            .filter(|c| c.op == "TransactWriteItems")
            .map(|c| c.body["TransactItems"].as_array().unwrap().len())
            .collect();
        let widest = transactions.iter().copied().max().unwrap_or(0);
        assert!(widest <= 5, "a transaction of {widest} items");
        // Two a removed attachment (its tombstone, then its removal), one for the parent.
        assert!(
            transactions.len() <= 2 * 100 + 1,
            "one request, {} transactions",
            transactions.len()
        );
        if r.status.as_u16() == 204 {
            break;
        }
        let n = r.expect(202).json()["removed"].as_u64().unwrap();
        assert!((1..=100).contains(&n), "{n}");
        removed.push(n);
        assert!(removed.len() < 60, "no end in sight: {removed:?}");
    }
    assert!(
        !removed.is_empty(),
        "120 attachments take two requests at least"
    );
    assert!(removed.iter().sum::<u64>() <= 120, "{removed:?}");
    h.get("/v1/parents/profile/many", KEY_A).await.expect(404);
    for a in [&atts[0], &atts[119]] {
        h.get(&format!("/v1/attachments/{}", a.id), KEY_A)
            .await
            .expect(404);
    }
}
