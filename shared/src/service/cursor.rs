//! Opaque list cursors: the position, bound to a scope (the tenant and the parent, or the kind)
//! and signed by the server. Another tenant's cursor, another parent's, or an edited one is
//! refused.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::ServiceError;
use crate::domain::{IdError, ParentKind, ParentRef, TenantId};
use crate::signing::Signer;

/// The longest cursor looked at; a real one is about a quarter of it.
const MAX_CURSOR: usize = 400;

/// The scope of a cursor of a parent's attachments.
pub(super) fn of_parent<'a>(tenant: &'a TenantId, parent: &'a ParentRef) -> [&'a [u8]; 4] {
    let (kind, id) = (parent.kind.as_str(), parent.id.as_str());
    ["cursor", tenant.as_str(), kind, id].map(str::as_bytes)
}

/// The scope of a cursor of the pages of a kind's records.
pub(super) fn of_kind<'a>(tenant: &'a TenantId, kind: &'a ParentKind) -> [&'a [u8]; 3] {
    ["records-cursor", tenant.as_str(), kind.as_str()].map(str::as_bytes)
}

/// The signature is cut to 128 bits, to keep cursors short.
const SIGNATURE_BYTES: usize = 16;

/// The position `after` (the last id of a page), if any, with its signature over `scope`.
pub(super) fn encode(
    signer: &Signer,
    scope: &[&[u8]],
    after: Option<impl std::fmt::Display>,
) -> Option<String> {
    let after = after?.to_string();
    let sig = signer.sign(&[scope, &[after.as_bytes()]].concat());
    Some(URL_SAFE_NO_PAD.encode(format!("{after}.{}", &sig[..2 * SIGNATURE_BYTES])))
}

/// The position in a cursor encoded for `scope`, if there is one and its signature holds.
pub(super) fn decode<T>(
    signer: &Signer,
    cursor: Option<&str>,
    scope: &[&[u8]],
    parse: impl FnOnce(&str) -> Result<T, IdError>,
) -> Result<Option<T>, ServiceError> {
    let Some(cursor) = cursor else {
        return Ok(None);
    };
    let invalid = || ServiceError::Invalid("cursor is invalid".into());
    if cursor.len() > MAX_CURSOR {
        return Err(invalid());
    }
    let raw = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let raw = String::from_utf8(raw).map_err(|_| invalid())?;
    // The signature is hex: the last dot separates it, whatever dots the id holds.
    let (body, sig) = raw.rsplit_once('.').ok_or_else(invalid)?;
    let signed = [scope, &[body.as_bytes()]].concat();
    if !signer.verify_truncated(&signed, sig, SIGNATURE_BYTES) {
        return Err(invalid());
    }
    parse(body).map(Some).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AttachmentId, ParentId, ParentKind};

    fn encode_att(s: &Signer, t: &TenantId, p: &ParentRef, id: AttachmentId) -> String {
        encode(s, &of_parent(t, p), Some(id)).unwrap()
    }

    fn decode_att(
        s: &Signer,
        c: &str,
        t: &TenantId,
        p: &ParentRef,
    ) -> Result<AttachmentId, ServiceError> {
        decode(s, Some(c), &of_parent(t, p), AttachmentId::parse).map(Option::unwrap)
    }

    fn encode_record(s: &Signer, t: &TenantId, k: &ParentKind, id: &ParentId) -> String {
        encode(s, &of_kind(t, k), Some(id)).unwrap()
    }

    fn decode_record(
        s: &Signer,
        c: &str,
        t: &TenantId,
        k: &ParentKind,
    ) -> Result<ParentId, ServiceError> {
        decode(s, Some(c), &of_kind(t, k), ParentId::parse).map(Option::unwrap)
    }

    #[test]
    fn cursors_round_trip_and_bind_tenant_and_parent() {
        let s = Signer::new([3; 32]);
        let t = TenantId::parse("a").unwrap();
        let p = ParentRef::new(
            ParentKind::parse("profile").unwrap(),
            ParentId::parse("p1").unwrap(),
        );
        let id = AttachmentId::new();
        let c = encode_att(&s, &t, &p, id);
        assert_eq!(decode_att(&s, &c, &t, &p).unwrap(), id);
        assert!(decode_att(&s, &c, &TenantId::parse("b").unwrap(), &p).is_err());
        let other = ParentRef::new(p.kind.clone(), ParentId::parse("p2").unwrap());
        assert!(decode_att(&s, &c, &t, &other).is_err());
        assert!(decode_att(&s, "garbage!", &t, &p).is_err());
        let forged = URL_SAFE_NO_PAD.encode(format!("{id}.{}", "0".repeat(32)));
        assert!(decode_att(&s, &forged, &t, &p).is_err());
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
        let att = encode_att(&s, &t, &p, AttachmentId::new());
        assert!(decode_record(&s, &att, &t, &kind).is_err());
        assert!(decode_att(&s, &c, &t, &p).is_err());
        let forged = URL_SAFE_NO_PAD.encode(format!("{id}.{}", "0".repeat(32)));
        assert!(decode_record(&s, &forged, &t, &kind).is_err());
        assert!(decode_record(&s, "not base64!", &t, &kind).is_err());
    }
}
