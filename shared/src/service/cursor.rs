//! Opaque list cursors: the position, bound to the tenant and parent, signed by the server.
//! Another tenant's cursor, another parent's, or an edited one is refused.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::ServiceError;
use crate::domain::{AttachmentId, ParentId, ParentKind, ParentRef, TenantId};
use crate::signing::Signer;

fn invalid() -> ServiceError {
    ServiceError::Invalid("cursor is invalid".into())
}

pub(super) fn encode(
    signer: &Signer,
    tenant: &TenantId,
    parent: &ParentRef,
    after: AttachmentId,
) -> String {
    let body = after.to_string();
    let sig = signer.sign(&[
        b"cursor",
        tenant.as_str().as_bytes(),
        parent.kind.as_str().as_bytes(),
        parent.id.as_str().as_bytes(),
        body.as_bytes(),
    ]);
    URL_SAFE_NO_PAD.encode(format!("{body}.{}", &sig[..32]))
}

pub(super) fn decode(
    signer: &Signer,
    cursor: &str,
    tenant: &TenantId,
    parent: &ParentRef,
) -> Result<AttachmentId, ServiceError> {
    if cursor.len() > 200 {
        return Err(invalid());
    }
    let raw = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let raw = String::from_utf8(raw).map_err(|_| invalid())?;
    let (body, sig) = raw.split_once('.').ok_or_else(invalid)?;
    let expected = signer.sign(&[
        b"cursor",
        tenant.as_str().as_bytes(),
        parent.kind.as_str().as_bytes(),
        parent.id.as_str().as_bytes(),
        body.as_bytes(),
    ]);
    if !same_signature(&expected, sig) {
        return Err(invalid());
    }
    AttachmentId::parse(body).map_err(|_| invalid())
}

/// The signature of a records cursor's body: bound to the tenant and the kind.
fn record_signature(signer: &Signer, tenant: &TenantId, kind: &ParentKind, body: &str) -> String {
    signer.sign(&[
        b"records-cursor",
        tenant.as_str().as_bytes(),
        kind.as_str().as_bytes(),
        body.as_bytes(),
    ])
}

/// A cursor of the pages of a kind's records: the last record id of a page.
pub(super) fn encode_record(
    signer: &Signer,
    tenant: &TenantId,
    kind: &ParentKind,
    after: &ParentId,
) -> String {
    let sig = record_signature(signer, tenant, kind, after.as_str());
    URL_SAFE_NO_PAD.encode(format!("{after}.{}", &sig[..32]))
}

pub(super) fn decode_record(
    signer: &Signer,
    cursor: &str,
    tenant: &TenantId,
    kind: &ParentKind,
) -> Result<ParentId, ServiceError> {
    if cursor.len() > 400 {
        return Err(invalid());
    }
    let raw = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let raw = String::from_utf8(raw).map_err(|_| invalid())?;
    // The signature is hex: the last dot separates it, whatever dots the id holds.
    let (body, sig) = raw.rsplit_once('.').ok_or_else(invalid)?;
    let expected = record_signature(signer, tenant, kind, body);
    if !same_signature(&expected, sig) {
        return Err(invalid());
    }
    ParentId::parse(body).map_err(|_| invalid())
}

/// A truncated signature (128 bits) keeps cursors short; it is compared in constant time.
fn same_signature(expected: &str, sig: &str) -> bool {
    sig.len() == 32
        && expected.as_bytes()[..32]
            .iter()
            .zip(sig.as_bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ParentId, ParentKind};

    #[test]
    fn cursors_round_trip_and_bind_tenant_and_parent() {
        let s = Signer::new([3; 32]);
        let t = TenantId::parse("a").unwrap();
        let p = ParentRef::new(
            ParentKind::parse("profile").unwrap(),
            ParentId::parse("p1").unwrap(),
        );
        let id = AttachmentId::new();
        let c = encode(&s, &t, &p, id);
        assert_eq!(decode(&s, &c, &t, &p).unwrap(), id);
        assert!(decode(&s, &c, &TenantId::parse("b").unwrap(), &p).is_err());
        let other = ParentRef::new(p.kind.clone(), ParentId::parse("p2").unwrap());
        assert!(decode(&s, &c, &t, &other).is_err());
        assert!(decode(&s, "garbage!", &t, &p).is_err());
        let forged = URL_SAFE_NO_PAD.encode(format!("{id}.{}", "0".repeat(32)));
        assert!(decode(&s, &forged, &t, &p).is_err());
    }

    #[test]
    fn record_cursors_round_trip_and_bind_tenant_and_kind() {
        let s = Signer::new([3; 32]);
        let t = TenantId::parse("a").unwrap();
        let kind = ParentKind::parse("io_showcase").unwrap();
        let id = ParentId::parse("42f64596-c42f-4ba2-8138-cc40188d2a88").unwrap();
        let c = encode_record(&s, &t, &kind, &id);
        assert_eq!(decode_record(&s, &c, &t, &kind).unwrap(), id);
        assert!(decode_record(&s, &c, &TenantId::parse("b").unwrap(), &kind).is_err());
        let other = ParentKind::parse("io_other").unwrap();
        assert!(decode_record(&s, &c, &t, &other).is_err());
        // An attachment cursor is no records cursor, nor the other way round.
        let p = ParentRef::new(kind.clone(), id.clone());
        let att = encode(&s, &t, &p, AttachmentId::new());
        assert!(decode_record(&s, &att, &t, &kind).is_err());
        assert!(decode(&s, &c, &t, &p).is_err());
        let forged = URL_SAFE_NO_PAD.encode(format!("{id}.{}", "0".repeat(32)));
        assert!(decode_record(&s, &forged, &t, &kind).is_err());
        assert!(decode_record(&s, "not base64!", &t, &kind).is_err());
    }
}
