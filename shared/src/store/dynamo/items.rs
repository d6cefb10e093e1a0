//! The table's items: their keys, the attributes beside them, and how an attachment is
//! written. Every key starts with the tenant (`T#<t>#…`) but the API keys', so no key of one
//! tenant can name another's item; free text inside a key is percent-encoded.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

use crate::domain::{
    Attachment, AttachmentId, Parent, ParentId, ParentKind, ParentRef, TenantId, VersionId,
};
use crate::store::{StoreError, StoreResult};

pub(super) type Item = HashMap<String, AttributeValue>;

/// The sparse index of leftovers: only attachments with an expiry carry its keys. (Named
/// generically, as `template.yaml` declares it.)
pub const LEFTOVERS_INDEX: &str = "gsi1";
/// DynamoDB's TTL attribute. It is a backstop only, set well after `expires_at`: the sweep must
/// remove a leftover first, because only the sweep also removes its file.
pub(super) const TTL_ATTRIBUTE: &str = "ttl";
pub(super) const TTL_GRACE_SECS: i64 = 7 * 24 * 3600;
/// Partitions of the leftovers index that uploads are spread over by default
/// (`ATTACHMENTS_LEFTOVER_SHARDS`): each takes about 500 uploads a second (two index writes of
/// one unit each). Raising the number is safe at any time; lowering it is not, since the sweep
/// reads only the shards below it and a leftover keeps its shard until it is written again.
pub const DEFAULT_LEFTOVER_SHARDS: u32 = 16;
/// The most leftovers partitions the setting may name: the sweep reads every one of them.
pub const MAX_LEFTOVER_SHARDS: u32 = 256;
/// Partitions the markers of a tenant's parents of one kind are spread over. Fixed: a parent's
/// marker is found where its id hashes to, so changing it would lose the markers written before.
pub(super) const MARKER_SHARDS: u32 = 16;

pub(super) const PK: &str = "pk";
pub(super) const SK: &str = "sk";
pub(super) const DOC: &str = "doc";
pub(super) const STATUS: &str = "st";
pub(super) const VERSION: &str = "vid";
/// The version of the upload under way to an attachment, for conditional writes.
pub(super) const UPLOAD: &str = "upv";
pub(super) const REV: &str = "rev";
/// A parent's count of listed attachments (absent on parents written before counts existed).
pub(super) const COUNT: &str = "n";
pub(super) const PARENT_ID: &str = "pid";
pub(super) const HASH: &str = "hash";
pub(super) const LEFTOVER_PK: &str = "gsi1pk";
pub(super) const LEFTOVER_SK: &str = "gsi1sk";
/// The leftovers partitions are `leftover#<shard>`; tables written before they were sharded
/// have the one partition `leftover`, which the sweep still reads.
pub(super) const LEFTOVER: &str = "leftover";

/// Free text inside a key (sources, references, e-mails): `#` separates key parts and `%`
/// escapes, so both are percent-encoded, which keeps every key unambiguous.
pub(super) const KEY_TEXT: &AsciiSet = &CONTROLS.add(b'#').add(b'%');

/// A key by the hash of its secret.
pub(super) fn api_key_key(hash: &str) -> Item {
    key_item(format!("KEY#{hash}"), "KEY")
}
/// All keys by public id, in one partition: keys are few and written rarely.
pub(super) const API_KEYS_PK: &str = "KEYS";

/// The partition of a parent: the parent item (`P`) and its attachments (`A#<id>`).
pub(super) fn parent_pk(tenant: &TenantId, key: &ParentRef) -> String {
    format!("T#{tenant}#P#{}#{}", key.kind, key.id)
}

pub(super) fn parent_key(tenant: &TenantId, key: &ParentRef) -> Item {
    key_item(parent_pk(tenant, key), "P")
}

/// An attachment's item, in its parent's partition.
pub(super) fn attachment_key(tenant: &TenantId, parent: &ParentRef, id: AttachmentId) -> Item {
    key_item(parent_pk(tenant, parent), format!("A#{id}"))
}

/// An attachment's own partition: a pointer to its parent (`A`) and its versions (`V#<id>`).
pub(super) fn attachment_pk(tenant: &TenantId, id: AttachmentId) -> String {
    format!("T#{tenant}#A#{id}")
}

pub(super) fn pointer_key(tenant: &TenantId, id: AttachmentId) -> Item {
    key_item(attachment_pk(tenant, id), "A")
}

pub(super) fn version_key(tenant: &TenantId, att: AttachmentId, id: VersionId) -> Item {
    key_item(attachment_pk(tenant, att), format!("V#{id}"))
}

/// One of the [`MARKER_SHARDS`] partitions of the markers of a tenant's parents of a kind that
/// have listed attachments (`SK` = parent id).
pub(super) fn marker_pk(tenant: &TenantId, kind: &ParentKind, shard: u32) -> String {
    format!("T#{tenant}#L#{kind}#{shard}")
}

/// Where a parent's marker lives: a stable hash of its id, so the shard never changes.
pub(super) fn marker_shard(id: &ParentId) -> u32 {
    use sha2::Digest;
    let d = sha2::Sha256::digest(id.as_str().as_bytes());
    u32::from_be_bytes([d[0], d[1], d[2], d[3]]) % MARKER_SHARDS
}

pub(super) fn marker_key(tenant: &TenantId, parent: &ParentRef) -> Item {
    let shard = marker_shard(&parent.id);
    key_item(marker_pk(tenant, &parent.kind, shard), parent.id.as_str())
}

/// The per-kind parent index item of tables written before counts existed: never read, removed
/// with its parent and by the migration.
pub(super) fn legacy_index_key(tenant: &TenantId, parent: &ParentRef) -> Item {
    key_item(format!("T#{tenant}#I#{}", parent.kind), parent.id.as_str())
}

/// The leftovers partition of an attachment: its id's random bits, so an attachment stays in
/// one shard as long as the number of shards is unchanged.
pub(super) fn leftover_shard(id: AttachmentId, shards: u32) -> String {
    let n = id.as_uuid().as_u128() % u128::from(shards.max(1));
    format!("{LEFTOVER}#{n}")
}

/// A unique look-up value of a parent (`R` for references, `E` for e-mails): the item that
/// holds it.
pub(super) fn lookup_key(
    tenant: &TenantId,
    what: char,
    kind: &ParentKind,
    source: &str,
    value: &str,
) -> Item {
    let source = utf8_percent_encode(source, KEY_TEXT);
    let value = utf8_percent_encode(value, KEY_TEXT);
    let pk = format!("T#{tenant}#{what}#{kind}#{source}#{value}");
    key_item(pk, "LOOKUP")
}

pub(super) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(super) fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// An expiry as the index's string sort key: zero-padded, so string order is time order.
pub(super) fn expiry_key(unix: i64) -> AttributeValue {
    s(format!("{:020}", unix.max(0)))
}

pub(super) fn key_item(pk: impl Into<String>, sk: impl Into<String>) -> Item {
    HashMap::from([(PK.to_owned(), s(pk)), (SK.to_owned(), s(sk))])
}

/// The key of an item as a (pk, sk) pair of strings, for reading keys back.
pub(super) fn key_strings(item: &Item) -> Option<(&str, &str)> {
    Some((get_s(item, PK).ok()?, get_s(item, SK).ok()?))
}

/// Stored data that does not read back as it was written.
pub(super) fn corrupt(e: impl ToString) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

pub(super) fn get_s<'a>(item: &'a Item, name: &str) -> StoreResult<&'a str> {
    let v = item.get(name).and_then(|v| v.as_s().ok());
    v.map(String::as_str)
        .ok_or_else(|| corrupt(format!("item without string attribute {name}")))
}

pub(super) fn get_n(item: &Item, name: &str) -> StoreResult<i64> {
    let v = item.get(name).and_then(|v| v.as_n().ok()?.parse().ok());
    v.ok_or_else(|| corrupt(format!("item without integer attribute {name}")))
}

/// The item of `key` with `v` as its JSON document.
pub(super) fn doc_item<T: serde::Serialize>(mut key: Item, v: &T) -> StoreResult<Item> {
    key.insert(DOC.into(), s(serde_json::to_string(v).map_err(corrupt)?));
    Ok(key)
}

pub(super) fn doc<T: serde::de::DeserializeOwned>(item: &Item) -> StoreResult<T> {
    serde_json::from_str(get_s(item, DOC)?).map_err(corrupt)
}

/// A parent's item as first written: revision 1, `listed` listed attachments.
pub(super) fn parent_item(parent: &Parent, listed: i64) -> StoreResult<Item> {
    let mut item = doc_item(parent_key(&parent.tenant, &parent.key), parent)?;
    item.extend([(REV.into(), n(1)), (COUNT.into(), n(listed))]);
    Ok(item)
}

/// An attachment's item; an attachment with an expiry goes to one of `leftover_shards`
/// partitions of the leftovers index.
pub(super) fn attachment_item(att: &Attachment, leftover_shards: u32) -> StoreResult<Item> {
    let mut item = doc_item(attachment_key(&att.tenant, &att.parent, att.id), att)?;
    item.insert(STATUS.into(), s(att.status.as_str()));
    let version = att.content.as_ref().map(|v| v.id.to_string());
    let upload = att.upload.as_ref().map(|u| u.version.id.to_string());
    for (name, id) in [(VERSION, version), (UPLOAD, upload)] {
        item.extend(id.map(|id| (name.to_owned(), s(id))));
    }
    // Only what has an expiry is in the sparse index (pending and refused uploads, unfinished
    // deletions, uploads under way to an existing attachment), so the sweep never reads the
    // settled ones.
    if let Some(exp) = att.expires_at {
        let shard = leftover_shard(att.id, leftover_shards);
        item.insert(LEFTOVER_PK.into(), s(shard));
        item.insert(LEFTOVER_SK.into(), expiry_key(exp));
        // The TTL backstop only for what is gone anyway (pending, refused, deleted): never for
        // an attachment that lives on, listed, while a new upload to it is under way.
        if !att.status.is_listed() {
            item.insert(TTL_ATTRIBUTE.into(), n(exp.saturating_add(TTL_GRACE_SECS)));
        }
    }
    Ok(item)
}

pub(super) fn pointer_item(att: &Attachment) -> Item {
    let mut item = pointer_key(&att.tenant, att.id);
    item.insert("kind".into(), s(att.parent.kind.as_str()));
    item.insert(PARENT_ID.into(), s(att.parent.id.as_str()));
    item
}

pub(super) fn parent_of_pointer(item: &Item) -> StoreResult<ParentRef> {
    let kind = ParentKind::parse(get_s(item, "kind")?).map_err(corrupt)?;
    Ok(ParentRef::new(kind, parent_id(get_s(item, PARENT_ID)?)?))
}

pub(super) fn parent_id(id: &str) -> StoreResult<ParentId> {
    ParentId::parse(id).map_err(corrupt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::AttachmentStatus;

    #[test]
    fn free_text_in_keys_cannot_forge_another_key() {
        let t = TenantId::parse("a").unwrap();
        let k = ParentKind::parse("profile").unwrap();
        // Without encoding, source "s#x" + ref "y" and source "s" + ref "x#y" would collide.
        assert_ne!(
            lookup_key(&t, 'R', &k, "s#x", "y"),
            lookup_key(&t, 'R', &k, "s", "x#y")
        );
        assert_eq!(
            lookup_key(&t, 'E', &k, "", "a%b#c").get(PK),
            Some(&s("T#a#E#profile##a%25b%23c"))
        );
    }

    #[test]
    fn markers_spread_a_kinds_parents_over_fixed_shards() {
        let t = TenantId::parse("a").unwrap();
        let kind = ParentKind::parse("profile").unwrap();
        let mut used = std::collections::BTreeSet::new();
        for i in 0..400 {
            let id = ParentId::parse(&format!("p{i}")).unwrap();
            let shard = marker_shard(&id);
            assert!(shard < MARKER_SHARDS);
            // Stable: the same parent always lands in the same shard.
            assert_eq!(marker_shard(&id), shard);
            let k = marker_key(&t, &ParentRef::new(kind.clone(), id.clone()));
            assert_eq!(k.get(PK), Some(&s(format!("T#a#L#profile#{shard}"))));
            assert_eq!(k.get(SK), Some(&s(id.as_str())));
            used.insert(shard);
        }
        assert_eq!(used.len(), MARKER_SHARDS as usize);
        // The hash is pinned (the first four bytes of the id's SHA-256): markers written by one
        // version are found by the next.
        assert_eq!(marker_shard(&ParentId::parse("p0").unwrap()), 2);
    }

    #[test]
    fn only_leftovers_carry_the_index_and_ttl() {
        let t = TenantId::parse("a").unwrap();
        let p = ParentRef::new(
            ParentKind::parse("profile").unwrap(),
            ParentId::parse("p1").unwrap(),
        );
        let now = time::OffsetDateTime::UNIX_EPOCH;
        let mut att = Attachment {
            tenant: t,
            id: AttachmentId::new(),
            parent: p,
            label: "file".into(),
            title: Some("x".repeat(255)),
            description: Some("é".repeat(4000)),
            category: None,
            tags: (0..50).map(|i| format!("{i:0>64}")).collect(),
            status: AttachmentStatus::Pending,
            owner: "o".into(),
            external_id: None,
            content: None,
            created_at: now,
            updated_at: now,
            expires_at: Some(100),
            upload: None,
            problem: None,
        };
        let item = attachment_item(&att, 16).unwrap();
        assert_eq!(item.get(LEFTOVER_SK), Some(&s("00000000000000000100")));
        // Spread over the shards by the id's random bits, and in the same shard at every write.
        let shard = format!("leftover#{}", att.id.as_uuid().as_u128() % 16);
        assert_eq!(item.get(LEFTOVER_PK), Some(&s(shard.as_str())));
        let shards: std::collections::BTreeSet<String> = (0..200)
            .map(|_| leftover_shard(AttachmentId::new(), 16))
            .collect();
        assert_eq!(shards.len(), 16, "{shards:?}");
        assert_eq!(leftover_shard(att.id, 1), "leftover#0");
        assert_eq!(item.get(TTL_ATTRIBUTE), Some(&n(100 + TTL_GRACE_SECS)));
        // The largest document the service allows is a few tens of KB.
        assert!(get_s(&item, DOC).unwrap().len() < 40_000);
        att.status = AttachmentStatus::Ready;
        att.expires_at = None;
        let item = attachment_item(&att, 16).unwrap();
        assert!(!item.contains_key(LEFTOVER_PK) && !item.contains_key(TTL_ATTRIBUTE));
        assert_eq!(item.get(STATUS), Some(&s("ready")));
        assert!(!item.contains_key(VERSION));
        // A ready attachment with a new upload under way: swept when the upload expires, but
        // never removed by the TTL.
        att.expires_at = Some(200);
        let item = attachment_item(&att, 16).unwrap();
        assert_eq!(item.get(LEFTOVER_SK), Some(&s("00000000000000000200")));
        assert!(!item.contains_key(TTL_ATTRIBUTE));
    }
}
