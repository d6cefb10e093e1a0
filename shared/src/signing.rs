//! HMAC-SHA256 signatures for what the server hands out and must recognise later: list cursors
//! and the embedded blob store's download links.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// A 32-byte digest in lowercase hex, written in one go (`hex::encode` collects its digits one
/// `char` at a time; every link, API key check and AWS request signature goes through this).
pub fn hex32(digest: &[u8; 32]) -> String {
    let mut out = [0u8; 64];
    // 32 bytes always fill exactly 64 digits, all ASCII.
    let _ = hex::encode_to_slice(digest, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// A server secret of 32 bytes. Its `Debug` never shows the bytes.
#[derive(Clone)]
pub struct Signer {
    key: [u8; 32],
    /// HMAC already keyed (the inner and outer pads hashed): every signature starts from a
    /// copy of it instead of hashing the two pads again, two of a link's six SHA-256 blocks.
    keyed: HmacSha256,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(..)")
    }
}

impl Signer {
    pub fn new(key: [u8; 32]) -> Self {
        let keyed = HmacSha256::new_from_slice(&key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        Self { key, keyed }
    }

    /// A secret written as 64 hex characters.
    pub fn from_hex(hex: &str) -> Option<Self> {
        hex::FromHex::from_hex(hex).ok().map(Self::new)
    }

    /// A fresh random secret.
    pub fn random() -> Result<Self, getrandom::Error> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key)?;
        Ok(Self::new(key))
    }

    pub fn key_bytes(&self) -> &[u8; 32] {
        &self.key
    }

    fn mac(&self, parts: &[&[u8]]) -> HmacSha256 {
        let mut mac = self.keyed.clone();
        for p in parts {
            // Length-prefix every part so that ("ab","c") and ("a","bc") sign differently.
            mac.update(&(p.len() as u64).to_be_bytes());
            mac.update(p);
        }
        mac
    }

    /// The signature of the parts, hex.
    pub fn sign(&self, parts: &[&[u8]]) -> String {
        hex32(&self.mac(parts).finalize().into_bytes().into())
    }

    /// Checks a hex signature in constant time.
    pub fn verify(&self, parts: &[&[u8]], signature_hex: &str) -> bool {
        self.verify_truncated(parts, signature_hex, 32)
    }

    /// Checks, in constant time, a hex signature cut to its first `len` bytes.
    pub fn verify_truncated(&self, parts: &[&[u8]], signature_hex: &str, len: usize) -> bool {
        let sig = hex::decode(signature_hex);
        sig.is_ok_and(|sig| sig.len() == len && self.mac(parts).verify_truncated_left(&sig).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex32_is_lowercase_hex() {
        let mut d = [0u8; 32];
        d[0] = 0xAB;
        d[31] = 0x0f;
        assert_eq!(hex32(&d), hex::encode(d));
    }

    #[test]
    fn signatures_verify_and_bind_every_part() {
        let s = Signer::new([7; 32]);
        let sig = s.sign(&[b"ab", b"c"]);
        assert!(s.verify(&[b"ab", b"c"], &sig));
        assert!(!s.verify(&[b"a", b"bc"], &sig));
        assert!(!s.verify(&[b"ab", b"c"], "zz"));
        assert!(!Signer::new([8; 32]).verify(&[b"ab", b"c"], &sig));
    }

    #[test]
    fn the_prekeyed_state_signs_as_hmac_keyed_afresh() {
        // Links and cursors signed before the keyed state was kept must still verify.
        let s = Signer::new([7; 32]);
        let mut fresh = HmacSha256::new_from_slice(&[7; 32]).unwrap();
        for p in [&b"GET"[..], b"t/a/v"] {
            fresh.update(&(p.len() as u64).to_be_bytes());
            fresh.update(p);
        }
        let expected = hex::encode(fresh.finalize().into_bytes());
        assert_eq!(s.sign(&[b"GET", b"t/a/v"]), expected);
        // A signer is used many times: the kept state must not carry one message into the next.
        assert_eq!(s.sign(&[b"GET", b"t/a/v"]), expected);
        assert!(s.clone().verify(&[b"GET", b"t/a/v"], &expected));
    }
}
