//! The behaviour suite of the records API (`/v2/{object}/…`): the documentation's two
//! examples, every error row, versions by name and by `document_id`, both delete modes, real
//! thumbnails, and the decompression bomb. Backend-agnostic: storage is only observed through
//! the API and its links.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::Cursor;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
use serde_json::{json, Value};

use crate::support::*;

/// The documentation's two records.
const R_EMPTY: &str = "42f64596-c42f-4ba2-8138-cc40188d2a88";
const R_TWO: &str = "41f19ff6-2738-4000-8bfd-a18950caa1d1";
const OBJECT: &str = "io_showcase";

const OBJECT_INVALID: &str = "The object identifier is not specified or is invalid";
const UUIDS_INVALID: &str = "The uuids parameter contains an invalid UUID";
const RECORDS_NOT_FOUND: &str = "Any of the records specified on the uuids parameters, to get attachments from, was not found (or user has no permission to access it)";
const RECORD_NOT_FOUND: &str = "The record was not found (or user has no permission to access it)";

fn envelope(status: u16, message: &str) -> Value {
    json!({"error": {"status": status, "message": message}})
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

fn many(uuids: &[&str]) -> String {
    format!("/v2/{OBJECT}/attachments?uuids={}", uuids.join(","))
}

fn one(uuid: &str) -> String {
    format!("/v2/{OBJECT}/{uuid}/attachments")
}

/// A text of exactly `len` bytes.
fn text_of(len: usize, seed: &str) -> Vec<u8> {
    let mut v = seed.as_bytes().to_vec();
    while v.len() < len {
        v.extend_from_slice(b" lorem ipsum");
    }
    v.truncate(len);
    v
}

/// A real PNG of one colour.
fn png_image(w: u32, h: u32, colour: [u8; 3]) -> Vec<u8> {
    let img = DynamicImage::ImageRgb8(RgbImage::from_pixel(w, h, Rgb(colour)));
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Png).unwrap();
    out.into_inner()
}

/// A real JPEG of one colour.
fn jpeg_image(w: u32, h: u32, colour: [u8; 3]) -> Vec<u8> {
    let img = DynamicImage::ImageRgb8(RgbImage::from_pixel(w, h, Rgb(colour)));
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A decompression bomb: a valid PNG of a few dozen bytes whose header claims `w`x`h` RGBA
/// pixels (100000x100000 would take 40 GB decoded).
pub fn bomb_png(w: u32, h: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32(&body).to_be_bytes());
    };
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    chunk(b"IHDR", &ihdr);
    chunk(
        b"IDAT",
        &[
            0x78, 0x01, 0x01, 0x04, 0x00, 0xfb, 0xff, 0, 0, 0, 0, 0, 4, 0, 1,
        ],
    );
    chunk(b"IEND", &[]);
    out
}

/// The href of a link of an item.
fn link(item: &Value, rel: &str) -> String {
    let links = item["links"].as_array().unwrap();
    assert_eq!(links.len(), 2, "{item}");
    links
        .iter()
        .find(|l| l["rel"] == rel)
        .unwrap_or_else(|| panic!("no {rel} link in {item}"))["href"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The item without its links (they carry a changing expiry).
fn without_links(item: &Value) -> Value {
    let mut v = item.clone();
    v.as_object_mut().unwrap().remove("links");
    v
}

/// The bytes behind an item's `url`.
async fn content(item: &Value) -> Bytes {
    fetch(&link(item, "url")).await.expect(200).body
}

/// The image behind an item's `thumbnail_url`, checked to be served as a PNG.
async fn thumbnail(item: &Value) -> (DynamicImage, Bytes) {
    let r = fetch(&link(item, "thumbnail_url")).await.expect(200);
    assert_eq!(r.header("content-type"), "image/png");
    let img = image::load_from_memory_with_format(&r.body, ImageFormat::Png)
        .unwrap_or_else(|e| panic!("thumbnail of {} is not a PNG: {e}", item["name"]));
    (img, r.body)
}

/// Checks an item field by field against what was uploaded.
fn check_item(item: &Value, name: &str, bytes: &[u8], media_type: &str, after_ms: u128) {
    let keys: Vec<&str> = item
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "updated_on",
            "size",
            "media_type",
            "version_uuid",
            "name",
            "links",
            "type",
            "uuid"
        ]
    );
    assert_eq!(item["name"], name);
    assert_eq!(item["type"], "file");
    assert_eq!(item["media_type"], media_type);
    assert_eq!(item["size"], bytes.len().to_string());
    for f in ["uuid", "version_uuid"] {
        let s = item[f].as_str().unwrap();
        assert_eq!(
            uuid::Uuid::try_parse(s).unwrap().hyphenated().to_string(),
            s
        );
    }
    assert_ne!(item["uuid"], item["version_uuid"]);
    let updated: u128 = item["updated_on"].as_str().unwrap().parse().unwrap();
    assert!(
        updated >= after_ms && updated <= now_ms(),
        "updated_on {updated} not within the test's time"
    );
    let rels: Vec<&Value> = item["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| &l["rel"])
        .collect();
    assert_eq!(rels, [&json!("url"), &json!("thumbnail_url")]);
}

async fn upload(h: &Harness, key: &str, uuid: &str, form: &Form) -> Vec<Value> {
    h.post_form(&one(uuid), key, form)
        .await
        .expect(201)
        .json()
        .as_array()
        .unwrap()
        .clone()
}

async fn record_list(h: &Harness, uuid: &str) -> Vec<Value> {
    h.get(&one(uuid), KEY_A)
        .await
        .expect(200)
        .json()
        .as_array()
        .unwrap()
        .clone()
}

async fn setup_seed_records(h: &Harness) -> (Vec<Value>, Vec<u8>, Vec<u8>) {
    h.parent(KEY_A, OBJECT, R_EMPTY).await;
    h.parent(KEY_A, OBJECT, R_TWO).await;
    let f1 = text_of(314, "file one");
    let f2 = text_of(310, "file two");
    let items = upload(
        h,
        KEY_A,
        R_TWO,
        &Form::new()
            .file("file", "file1.txt", &f1)
            .file("file", "file2.text", &f2),
    )
    .await;
    (items, f1, f2)
}

/// The documentation's first example: one call for a record with no attachments and one with two, as a
/// map keyed by the requested UUIDs, in the order asked; every link works.
pub async fn records_seed_many(h: &Harness) {
    let start = now_ms();
    let (uploaded, f1, f2) = setup_seed_records(h).await;
    assert_eq!(uploaded.len(), 2);
    check_item(&uploaded[0], "file1.txt", &f1, "text/plain", start);
    check_item(&uploaded[1], "file2.text", &f2, "text/plain", start);

    let map = h
        .get(&many(&[R_EMPTY, R_TWO]), KEY_A)
        .await
        .expect(200)
        .json();
    let keys: Vec<&String> = map.as_object().unwrap().keys().collect();
    assert_eq!(keys, [R_EMPTY, R_TWO]);
    assert_eq!(map[R_EMPTY], json!([]));
    let items = map[R_TWO].as_array().unwrap();
    assert_eq!(items.len(), 2);
    check_item(&items[0], "file1.txt", &f1, "text/plain", start);
    check_item(&items[1], "file2.text", &f2, "text/plain", start);
    for (listed, up) in items.iter().zip(&uploaded) {
        assert_eq!(without_links(listed), without_links(up));
    }
    assert_eq!(&content(&items[0]).await[..], &f1[..]);
    assert_eq!(&content(&items[1]).await[..], &f2[..]);
    let dl = fetch(&link(&items[0], "url")).await;
    assert_eq!(dl.header("content-type"), "text/plain");
    assert_eq!(
        dl.header("content-disposition"),
        "attachment; filename*=UTF-8''file1.txt"
    );
    for item in items {
        let (img, _) = thumbnail(item).await;
        assert_eq!((img.width(), img.height()), (64, 64), "a text file's icon");
    }

    // The other order, a duplicate, and the single-record route agree.
    let map2 = h
        .get(&many(&[R_TWO, R_EMPTY, R_TWO]), KEY_A)
        .await
        .expect(200)
        .json();
    let keys: Vec<&String> = map2.as_object().unwrap().keys().collect();
    assert_eq!(keys, [R_TWO, R_EMPTY]);
    let single = record_list(h, R_TWO).await;
    assert_eq!(single.len(), 2);
    for i in 0..2 {
        assert_eq!(without_links(&single[i]), without_links(&items[i]));
        assert_eq!(without_links(&map2[R_TWO][i]), without_links(&items[i]));
    }
    assert_eq!(record_list(h, R_EMPTY).await, Vec::<Value>::new());
    // The list may also come as repeated parameters.
    let map3 = h
        .get(
            &format!("/v2/{OBJECT}/attachments?uuids={R_EMPTY}&uuids={R_TWO}"),
            KEY_A,
        )
        .await
        .expect(200)
        .json();
    let keys: Vec<&String> = map3.as_object().unwrap().keys().collect();
    assert_eq!(keys, [R_EMPTY, R_TWO]);
    assert_eq!(map3[R_TWO].as_array().unwrap().len(), 2);
}

/// The documentation's second example: without `uuids`, every record of the object that has at least
/// one attachment (not other objects', not other tenants'); `{}` when none has.
pub async fn records_seed_all(h: &Harness) {
    assert_eq!(
        h.get(&format!("/v2/{OBJECT}/attachments"), KEY_A)
            .await
            .expect(200)
            .json(),
        json!({})
    );
    let (uploaded, f1, _) = setup_seed_records(h).await;
    // A third record with one file, another object's record, and tenant b's record of the
    // same object: only a's io_showcase records with files are listed, in id order.
    let third = "0a3c2b1e-0000-4000-8000-000000000003";
    h.parent(KEY_A, OBJECT, third).await;
    let pic = png_image(1, 1, [9, 8, 7]);
    let third_items = upload(h, KEY_A, third, &Form::new().file("file", "pic.png", &pic)).await;
    h.parent(KEY_A, "io_other", R_EMPTY).await;
    h.post_form(
        &format!("/v2/io_other/{R_EMPTY}/attachments"),
        KEY_A,
        &Form::new().file("file", "x.txt", b"other object"),
    )
    .await
    .expect(201);
    h.parent(KEY_B, OBJECT, R_EMPTY).await;
    h.post_form(
        &one(R_EMPTY),
        KEY_B,
        &Form::new().file("file", "b.txt", b"tenant b"),
    )
    .await
    .expect(201);

    let all = h
        .get(&format!("/v2/{OBJECT}/attachments"), KEY_A)
        .await
        .expect(200)
        .json();
    let keys: Vec<&String> = all.as_object().unwrap().keys().collect();
    assert_eq!(keys, [third, R_TWO]);
    let two = all[R_TWO].as_array().unwrap();
    assert_eq!(two.len(), 2);
    for (listed, up) in two.iter().zip(&uploaded) {
        assert_eq!(without_links(listed), without_links(up));
    }
    assert_eq!(&content(&two[0]).await[..], &f1[..]);
    assert_eq!(
        without_links(&all[third][0]),
        without_links(&third_items[0])
    );
    assert_eq!(&content(&all[third][0]).await[..], &pic[..]);
    let (img, _) = thumbnail(&all[third][0]).await;
    assert_eq!(
        (img.width(), img.height()),
        (1, 1),
        "small images stay small"
    );
    assert_eq!(img.to_rgb8().get_pixel(0, 0), &Rgb([9, 8, 7]));

    // Tenant b sees only its own record.
    let b = h
        .get(&format!("/v2/{OBJECT}/attachments"), KEY_B)
        .await
        .expect(200)
        .json();
    let keys: Vec<&String> = b.as_object().unwrap().keys().collect();
    assert_eq!(keys, [R_EMPTY]);
    assert_eq!(b[R_EMPTY][0]["name"], "b.txt");
}

/// Every error row of the documentation, and the API's own, in one envelope; none changes anything.
pub async fn records_errors(h: &Harness) {
    let (uploaded, _, _) = setup_seed_records(h).await;
    let b_record = "0b0b0b0b-0000-4000-8000-00000000000b";
    h.parent(KEY_B, OBJECT, b_record).await;
    let b_item = h
        .post_form(
            &one(b_record),
            KEY_B,
            &Form::new().file("file", "b.txt", b"tenant b"),
        )
        .await
        .expect(201)
        .json()[0]
        .clone();
    let before = super::snapshot(h, KEY_A, OBJECT, R_TWO).await;
    let before_b = super::snapshot(h, KEY_B, OBJECT, b_record).await;
    assert_eq!(before.len(), 2);
    let unknown = "9e9e9e9e-0000-4000-8000-000000000000";

    let check = |r: Resp, status: u16, message: &str| {
        let r = r.expect(status);
        assert_eq!(r.header("content-type"), "application/json");
        assert_eq!(r.json(), envelope(status, message), "{status} {message}");
    };

    // 400: the object identifier missing or invalid, on every route.
    let long = "o".repeat(65);
    for object in ["bad$obj", "bad%24obj", "%20", "a%2Fb", long.as_str()] {
        check(
            h.get(&format!("/v2/{object}/attachments"), KEY_A).await,
            400,
            OBJECT_INVALID,
        );
        check(
            h.get(&format!("/v2/{object}/attachments?uuids={R_TWO}"), KEY_A)
                .await,
            400,
            OBJECT_INVALID,
        );
        check(
            h.get(&format!("/v2/{object}/{R_TWO}/attachments"), KEY_A)
                .await,
            400,
            OBJECT_INVALID,
        );
        check(
            h.post_form(
                &format!("/v2/{object}/{R_TWO}/attachments"),
                KEY_A,
                &Form::new().file("file", "x.txt", b"x"),
            )
            .await,
            400,
            OBJECT_INVALID,
        );
        check(
            h.call(
                "DELETE",
                &format!("/v2/{object}/{R_TWO}/attachments?names=file1.txt"),
                Some(KEY_A),
                "",
            )
            .await,
            400,
            OBJECT_INVALID,
        );
    }
    // 400: an invalid UUID in `uuids`, wherever it is.
    let no_hyphens = R_TWO.replace('-', "");
    let braced = format!("%7B{R_TWO}%7D");
    for bad in [
        vec![R_TWO, "not-a-uuid"],
        vec!["42f64596-c42f-4ba2-8138-cc40188d2a8"],
        vec![no_hyphens.as_str()],
        vec![braced.as_str()],
        vec![""],
        vec![R_TWO, ""],
        vec!["../../etc/passwd"],
    ] {
        check(h.get(&many(&bad), KEY_A).await, 400, UUIDS_INVALID);
    }
    // 400: more than 100 UUIDs; exactly 100 pass validation (and are then unknown).
    let hundred_one: Vec<String> = (0..101)
        .map(|i| format!("00000000-0000-4000-8000-{i:012}"))
        .collect();
    let refs: Vec<&str> = hundred_one.iter().map(String::as_str).collect();
    check(
        h.get(&many(&refs), KEY_A).await,
        400,
        "The uuids parameter contains more than 100 UUIDs",
    );
    check(
        h.get(&many(&refs[..100]), KEY_A).await,
        404,
        RECORDS_NOT_FOUND,
    );
    // 400: an invalid record UUID in the path.
    for bad in ["not-a-uuid", "42f64596c42f4ba28138cc40188d2a88", "%2E%2E"] {
        let msg = "The record UUID is invalid";
        check(h.get(&one(bad), KEY_A).await, 400, msg);
        check(
            h.post_form(&one(bad), KEY_A, &Form::new().file("file", "x.txt", b"x"))
                .await,
            400,
            msg,
        );
        check(
            h.call(
                "DELETE",
                &format!("{}?names=file1.txt", one(bad)),
                Some(KEY_A),
                "",
            )
            .await,
            400,
            msg,
        );
    }

    // 404: any requested record unknown, or another tenant's: the whole call fails, with the
    // same answer either way.
    check(
        h.get(&many(&[R_TWO, unknown]), KEY_A).await,
        404,
        RECORDS_NOT_FOUND,
    );
    check(
        h.get(&many(&[R_TWO, b_record]), KEY_A).await,
        404,
        RECORDS_NOT_FOUND,
    );
    check(h.get(&many(&[R_TWO]), KEY_B).await, 404, RECORDS_NOT_FOUND);
    // A record of another object is another record.
    h.parent(KEY_A, "io_other", unknown).await;
    check(
        h.get(&many(&[unknown]), KEY_A).await,
        404,
        RECORDS_NOT_FOUND,
    );
    for record in [unknown, b_record] {
        check(h.get(&one(record), KEY_A).await, 404, RECORD_NOT_FOUND);
        check(
            h.post_form(
                &one(record),
                KEY_A,
                &Form::new().file("file", "x.txt", b"x"),
            )
            .await,
            404,
            RECORD_NOT_FOUND,
        );
        check(
            h.call(
                "DELETE",
                &format!("{}?names=b.txt", one(record)),
                Some(KEY_A),
                "",
            )
            .await,
            404,
            RECORD_NOT_FOUND,
        );
    }

    // 401: no key, a wrong key.
    for key in [None, Some("wrong-key-0123456789")] {
        let r = h.call("GET", &many(&[R_TWO]), key, "").await;
        check(r, 401, "missing or invalid API key");
        let r = h.call("GET", &one(R_TWO), key, "").await;
        check(r, 401, "missing or invalid API key");
        let r = h
            .call(
                "DELETE",
                &format!("{}?names=file1.txt", one(R_TWO)),
                key,
                "",
            )
            .await;
        check(r, 401, "missing or invalid API key");
    }

    // 405 from the router, in this API's envelope.
    let r = h
        .call("PUT", &format!("/v2/{OBJECT}/attachments"), Some(KEY_A), "")
        .await;
    assert_eq!(r.header("allow"), "GET");
    check(r, 405, "method not allowed on this path");
    let r = h.call("PATCH", &one(R_TWO), Some(KEY_A), "").await;
    assert_eq!(r.header("allow"), "GET, POST, DELETE");
    check(r, 405, "method not allowed on this path");

    // Uploads: no file, no filename, not a form, bad or unknown document_id, another record's
    // or tenant's document, a document_id with two files, a refused file beside a good one.
    let up = one(R_TWO);
    check(
        h.post_form(&up, KEY_A, &Form::new().text("document_id", "x"))
            .await,
        400,
        "the form has no file part (name it file)",
    );
    check(
        h.call("POST", &up, Some(KEY_A), "plain body").await,
        400,
        "the request must be multipart/form-data with a boundary",
    );
    let nofilename =
        "--XX\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc\r\n--XX--\r\n";
    check(
        h.send(
            "POST",
            &up,
            &[
                ("x-api-key", KEY_A.to_string()),
                (
                    "content-type",
                    "multipart/form-data; boundary=XX".to_string(),
                ),
            ],
            Bytes::from(nofilename),
        )
        .await,
        400,
        "every file part needs a filename",
    );
    check(
        h.post_form(
            &up,
            KEY_A,
            &Form::new()
                .file("file", "v.txt", b"v")
                .text("document_id", "not-a-uuid"),
        )
        .await,
        400,
        "document_id is not a valid UUID",
    );
    let doc_404 = "The document was not found (or user has no permission to access it)";
    let b_doc = b_item["uuid"].as_str().unwrap();
    h.parent(KEY_A, OBJECT, R_EMPTY).await;
    for doc in [unknown, b_doc] {
        check(
            h.post_form(
                &up,
                KEY_A,
                &Form::new()
                    .file("file", "v.txt", b"v")
                    .text("document_id", doc),
            )
            .await,
            404,
            doc_404,
        );
    }
    // R_TWO's document through R_EMPTY: another record's document.
    check(
        h.post_form(
            &one(R_EMPTY),
            KEY_A,
            &Form::new()
                .file("file", "v.txt", b"v")
                .text("document_id", uploaded[0]["uuid"].as_str().unwrap()),
        )
        .await,
        404,
        doc_404,
    );
    check(
        h.post_form(
            &up,
            KEY_A,
            &Form::new()
                .file("file", "v.txt", b"v")
                .file("file", "w.txt", b"w")
                .text("document_id", uploaded[0]["uuid"].as_str().unwrap()),
        )
        .await,
        400,
        "document_id names one attachment: send exactly one file",
    );
    let r = h
        .post_form(
            &up,
            KEY_A,
            &Form::new()
                .file("file", "file1.txt", b"would be a new version")
                .file("file", "evil.png", b"<!DOCTYPE html><script>x</script>"),
        )
        .await
        .expect(415);
    assert_eq!(r.json()["error"]["status"], 415);
    let r = h
        .post_form(&up, KEY_A, &Form::new().file("file", "empty.txt", b""))
        .await
        .expect(422);
    assert_eq!(r.json()["error"]["status"], 422);

    // Deletions: no names, empty names, a bad version, an unknown name (alone or beside a
    // known one: nothing is removed).
    let del = |q: &str| format!("{}?{q}", one(R_TWO));
    let names_required = "The names parameter is required";
    for q in ["", "version=all", "names=", "names=,,"] {
        check(
            h.call("DELETE", &del(q), Some(KEY_A), "").await,
            400,
            names_required,
        );
    }
    for q in ["names=file1.txt&version=first", "names=file1.txt&version="] {
        check(
            h.call("DELETE", &del(q), Some(KEY_A), "").await,
            400,
            "The version parameter must be all or latest",
        );
    }
    let no_such = "No attachment of the record has one of the given names";
    for q in [
        "names=nope.txt",
        "names=file1.txt,nope.txt",
        "names=file1.txt,nope.txt&version=latest",
        "names=FILE1.TXT",
        "names=b.txt",
    ] {
        check(
            h.call("DELETE", &del(q), Some(KEY_A), "").await,
            404,
            no_such,
        );
    }

    assert_eq!(super::snapshot(h, KEY_A, OBJECT, R_TWO).await, before);
    assert_eq!(super::snapshot(h, KEY_B, OBJECT, b_record).await, before_b);
    assert_eq!(record_list(h, R_EMPTY).await, Vec::<Value>::new());
    let listed = record_list(h, R_TWO).await;
    assert_eq!(listed.len(), 2);
    for (l, u) in listed.iter().zip(&uploaded) {
        assert_eq!(without_links(l), without_links(u));
    }
}

/// A file whose name is already on the record becomes a new version (same `uuid`, new
/// `version_uuid`); `document_id` versions a named attachment, whatever the file's name.
pub async fn records_versions(h: &Harness) {
    let r = "0c0c0c0c-0000-4000-8000-00000000000c";
    h.parent(KEY_A, OBJECT, r).await;
    let start = now_ms();
    let v1 = upload(h, KEY_A, r, &Form::new().file("file", "report.txt", b"v1")).await;
    assert_eq!(v1.len(), 1);
    check_item(&v1[0], "report.txt", b"v1", "text/plain", start);
    let v2 = upload(
        h,
        KEY_A,
        r,
        &Form::new()
            .file("file", "report.txt", b"version 2")
            .file("file", "notes.txt", b"notes"),
    )
    .await;
    assert_eq!(v2.len(), 2);
    check_item(&v2[0], "report.txt", b"version 2", "text/plain", start);
    assert_eq!(v2[0]["uuid"], v1[0]["uuid"], "same attachment");
    assert_ne!(v2[0]["version_uuid"], v1[0]["version_uuid"], "new version");
    assert_ne!(
        v2[1]["uuid"], v1[0]["uuid"],
        "another name, another attachment"
    );
    let listed = record_list(h, r).await;
    assert_eq!(listed.len(), 2);
    assert_eq!(without_links(&listed[0]), without_links(&v2[0]));
    assert_eq!(&content(&listed[0]).await[..], b"version 2");
    // The previous version's link no longer is the attachment's; its bytes are still kept.
    assert_ne!(link(&listed[0], "url"), link(&v1[0], "url"));

    // document_id: a new version of that attachment, under the new file's name.
    let doc = v2[0]["uuid"].as_str().unwrap();
    let v3 = upload(
        h,
        KEY_A,
        r,
        &Form::new()
            .file("file", "report-final.txt", b"the final text")
            .text("document_id", doc),
    )
    .await;
    assert_eq!(v3.len(), 1);
    check_item(
        &v3[0],
        "report-final.txt",
        b"the final text",
        "text/plain",
        start,
    );
    assert_eq!(v3[0]["uuid"], doc);
    let versions: Vec<&Value> = [&v1[0], &v2[0], &v3[0]]
        .iter()
        .map(|v| &v["version_uuid"])
        .collect();
    assert_ne!(versions[0], versions[2]);
    assert_ne!(versions[1], versions[2]);
    let listed = record_list(h, r).await;
    assert_eq!(listed.len(), 2);
    assert_eq!(without_links(&listed[0]), without_links(&v3[0]));
    assert_eq!(&content(&listed[0]).await[..], b"the final text");
    assert_eq!(listed[1]["name"], "notes.txt");
    // The native API sees the same attachment and version.
    let native = h
        .get(&format!("/v1/attachments/{doc}"), KEY_A)
        .await
        .expect(200)
        .json();
    assert_eq!(native["version_id"], v3[0]["version_uuid"]);
    assert_eq!(native["file_name"], "report-final.txt");
}

/// `version=latest` removes only the newest version, one at a time, and the attachment with
/// its last; `version=all` (the default) removes attachments whole. Removed versions' files and
/// thumbnails are gone from storage.
pub async fn records_delete(h: &Harness) {
    let r = "0d0d0d0d-0000-4000-8000-00000000000d";
    h.parent(KEY_A, OBJECT, r).await;
    let v1 = upload(h, KEY_A, r, &Form::new().file("file", "a.txt", b"a one")).await;
    let v2 = upload(h, KEY_A, r, &Form::new().file("file", "a.txt", b"a two")).await;
    let v3 = upload(
        h,
        KEY_A,
        r,
        &Form::new()
            .file("file", "a-renamed.txt", b"a three")
            .text("document_id", v1[0]["uuid"].as_str().unwrap()),
    )
    .await;
    let other = upload(h, KEY_A, r, &Form::new().file("file", "b.txt", b"b")).await;
    let del = |q: &str| format!("{}?{q}", one(r));

    // latest, by the current name: back to v2, then to v1, then gone.
    let r1 = h
        .call(
            "DELETE",
            &del("names=a-renamed.txt&version=latest"),
            Some(KEY_A),
            "",
        )
        .await
        .expect(204);
    assert!(r1.body.is_empty());
    let listed = record_list(h, r).await;
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["uuid"], v1[0]["uuid"]);
    assert_eq!(listed[0]["version_uuid"], v2[0]["version_uuid"]);
    assert_eq!(listed[0]["name"], "a.txt");
    assert_eq!(listed[0]["size"], "5");
    assert_eq!(listed[0]["updated_on"], v2[0]["updated_on"]);
    assert_eq!(&content(&listed[0]).await[..], b"a two");
    thumbnail(&listed[0]).await;
    // The removed version's file and thumbnail are gone.
    for rel in ["url", "thumbnail_url"] {
        let gone = fetch(&link(&v3[0], rel)).await;
        assert!(gone.status.is_client_error(), "{rel}: {:?}", gone.status);
    }
    h.call(
        "DELETE",
        &del("names=a.txt&version=latest"),
        Some(KEY_A),
        "",
    )
    .await
    .expect(204);
    let listed = record_list(h, r).await;
    assert_eq!(listed[0]["version_uuid"], v1[0]["version_uuid"]);
    assert_eq!(&content(&listed[0]).await[..], b"a one");
    // The name now on the record is a.txt again; the renamed one is not.
    h.call("DELETE", &del("names=a-renamed.txt"), Some(KEY_A), "")
        .await
        .expect(404);
    h.call(
        "DELETE",
        &del("names=a.txt&version=latest"),
        Some(KEY_A),
        "",
    )
    .await
    .expect(204);
    let listed = record_list(h, r).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(without_links(&listed[0]), without_links(&other[0]));
    for item in [&v1[0], &v2[0]] {
        for rel in ["url", "thumbnail_url"] {
            let gone = fetch(&link(item, rel)).await;
            assert!(gone.status.is_client_error(), "{rel}: {:?}", gone.status);
        }
    }
    h.get(
        &format!("/v1/attachments/{}", v1[0]["uuid"].as_str().unwrap()),
        KEY_A,
    )
    .await
    .expect(404);

    // all (explicit and default): every version goes, several names at once.
    let c1 = upload(h, KEY_A, r, &Form::new().file("file", "c.txt", b"c one")).await;
    let c2 = upload(h, KEY_A, r, &Form::new().file("file", "c.txt", b"c two")).await;
    let d = upload(h, KEY_A, r, &Form::new().file("file", "d.txt", b"d")).await;
    h.call("DELETE", &del("names=c.txt&version=all"), Some(KEY_A), "")
        .await
        .expect(204);
    let names: Vec<Value> = record_list(h, r)
        .await
        .iter()
        .map(|i| i["name"].clone())
        .collect();
    assert_eq!(names, [json!("b.txt"), json!("d.txt")]);
    for item in [&c1[0], &c2[0]] {
        for rel in ["url", "thumbnail_url"] {
            let gone = fetch(&link(item, rel)).await;
            assert!(gone.status.is_client_error(), "{rel}: {:?}", gone.status);
        }
    }
    h.call("DELETE", &del("names=b.txt,d.txt"), Some(KEY_A), "")
        .await
        .expect(204);
    assert_eq!(record_list(h, r).await, Vec::<Value>::new());
    for item in [&other[0], &d[0]] {
        let gone = fetch(&link(item, "thumbnail_url")).await;
        assert!(gone.status.is_client_error(), "{:?}", gone.status);
    }
    // The record itself stays.
    h.get(&format!("/v1/parents/{OBJECT}/{r}"), KEY_A)
        .await
        .expect(200);
}

/// Thumbnails are real: images downscaled to at most 256 px with their aspect ratio, from
/// every API's uploads; other files get their family's icon. Deleting an attachment or its
/// record removes them.
pub async fn records_thumbnails(h: &Harness) {
    let r = "0e0e0e0e-0000-4000-8000-00000000000e";
    h.parent(KEY_A, OBJECT, r).await;
    let wide = png_image(600, 300, [200, 30, 40]);
    let tall = jpeg_image(300, 600, [20, 40, 220]);
    let small = png_image(40, 20, [10, 200, 10]);
    let pdf = b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\ntrailer\n%%EOF\n".to_vec();
    let items = upload(
        h,
        KEY_A,
        r,
        &Form::new()
            .file("file", "wide.png", &wide)
            .file("file", "tall.jpg", &tall)
            .file("file", "small.png", &small)
            .file("file", "doc.pdf", &pdf)
            .file("file", "notes.txt", b"some notes")
            .file("file", "fake.jpg", &jpeg_bytes(2000)),
    )
    .await;
    assert_eq!(items.len(), 6);
    assert_eq!(items[0]["media_type"], "image/png");
    assert_eq!(items[1]["media_type"], "image/jpeg");
    assert_eq!(&content(&items[0]).await[..], &wide[..]);
    assert_eq!(&content(&items[1]).await[..], &tall[..]);

    let (img, _) = thumbnail(&items[0]).await;
    assert_eq!((img.width(), img.height()), (256, 128));
    assert_eq!(img.to_rgb8().get_pixel(128, 64), &Rgb([200, 30, 40]));
    let (img, _) = thumbnail(&items[1]).await;
    assert_eq!((img.width(), img.height()), (128, 256));
    let px = img.to_rgb8().get_pixel(64, 128).0;
    assert!(px[2] > 180 && px[0] < 60, "a blue JPEG stays blue: {px:?}");
    let (img, _) = thumbnail(&items[2]).await;
    assert_eq!((img.width(), img.height()), (40, 20));
    assert_eq!(img.to_rgb8().get_pixel(20, 10), &Rgb([10, 200, 10]));
    // Icons: 64 px, one per family, the same for every file of a family.
    let (pdf_icon, pdf_bytes) = thumbnail(&items[3]).await;
    let (txt_icon, txt_bytes) = thumbnail(&items[4]).await;
    let (fake_icon, fake_bytes) = thumbnail(&items[5]).await;
    for icon in [&pdf_icon, &txt_icon, &fake_icon] {
        assert_eq!((icon.width(), icon.height()), (64, 64));
    }
    assert_ne!(pdf_bytes, txt_bytes);
    assert_ne!(pdf_bytes, fake_bytes);
    assert_ne!(txt_bytes, fake_bytes);
    let more = upload(
        h,
        KEY_A,
        r,
        &Form::new().file("file", "other.pdf", b"%PDF-1.4\n%%EOF\n"),
    )
    .await;
    assert_eq!(thumbnail(&more[0]).await.1, pdf_bytes);

    // An upload through the native API gets its thumbnail too.
    let native = h
        .post_form(
            &format!("/v1/parents/{OBJECT}/{r}/attachments"),
            KEY_A,
            &Form::new().file("file", "native.png", &png_image(1000, 250, [1, 2, 3])),
        )
        .await
        .expect(201)
        .json();
    let native_id = native["items"][0]["id"].as_str().unwrap().to_owned();
    let listed = record_list(h, r).await;
    let from_native = listed
        .iter()
        .find(|i| i["uuid"] == native_id.as_str())
        .unwrap();
    let (img, _) = thumbnail(from_native).await;
    assert_eq!((img.width(), img.height()), (256, 64));

    // Deleting through the native API removes the thumbnail; so does deleting the record.
    let native_thumb = link(from_native, "thumbnail_url");
    h.call(
        "DELETE",
        &format!("/v1/attachments/{native_id}"),
        Some(KEY_A),
        "",
    )
    .await
    .expect(204);
    assert!(fetch(&native_thumb).await.status.is_client_error());
    let thumbs: Vec<String> = items.iter().map(|i| link(i, "thumbnail_url")).collect();
    h.call(
        "DELETE",
        &format!("/v1/parents/{OBJECT}/{r}"),
        Some(KEY_A),
        "",
    )
    .await
    .expect(204);
    for t in thumbs {
        assert!(fetch(&t).await.status.is_client_error());
    }
}

/// A decompression bomb (a PNG of a few dozen bytes claiming 100000x100000 pixels) is never
/// decoded: the upload is stored as sent, and its thumbnail is the image icon, the same as for
/// an image that cannot be decoded at all. It takes no time and no memory to find out.
pub async fn records_bomb(h: &Harness) {
    let r = "0f0f0f0f-0000-4000-8000-00000000000f";
    h.parent(KEY_A, OBJECT, r).await;
    let bomb = bomb_png(100_000, 100_000);
    assert!(bomb.len() < 100);
    let started = Instant::now();
    let items = upload(
        h,
        KEY_A,
        r,
        &Form::new()
            .file("file", "bomb.png", &bomb)
            .file("file", "huge.png", &bomb_png(16_000, 16_000))
            .file("file", "broken.jpg", &jpeg_bytes(500)),
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["media_type"], "image/png");
    assert_eq!(items[0]["size"], bomb.len().to_string());
    assert_eq!(&content(&items[0]).await[..], &bomb[..]);
    let (bomb_icon, bomb_bytes) = thumbnail(&items[0]).await;
    assert_eq!((bomb_icon.width(), bomb_icon.height()), (64, 64));
    let (_, huge_bytes) = thumbnail(&items[1]).await;
    let (_, broken_bytes) = thumbnail(&items[2]).await;
    assert_eq!(bomb_bytes, huge_bytes);
    assert_eq!(bomb_bytes, broken_bytes);
    // The server is fine afterwards.
    assert_eq!(record_list(h, r).await.len(), 3);
}
