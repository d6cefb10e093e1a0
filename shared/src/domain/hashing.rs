//! MD5 and SHA-256 of a content, computed in one pass over the bytes.

use md5::{Digest, Md5};
use sha2::Sha256;

/// The digests every stored content carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    pub md5: [u8; 16],
    pub sha256: [u8; 32],
    pub size: u64,
}

/// Feeds both hashes from the same chunks, so each byte is read from memory once while it is hot
/// in the cache, whether the content arrives whole or streamed.
#[derive(Default)]
pub struct Hasher {
    md5: Md5,
    sha256: Sha256,
    size: u64,
}

/// Chunk size that keeps a chunk in L1/L2 between the two hash passes.
const CHUNK: usize = 16 * 1024;

impl Hasher {
    pub fn update(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(CHUNK) {
            self.md5.update(chunk);
            self.sha256.update(chunk);
        }
        self.size += bytes.len() as u64;
    }

    pub fn finish(self) -> Digests {
        Digests {
            md5: self.md5.finalize().into(),
            sha256: self.sha256.finalize().into(),
            size: self.size,
        }
    }
}

impl Digests {
    pub fn of(bytes: &[u8]) -> Self {
        let mut h = Hasher::default();
        h.update(bytes);
        h.finish()
    }

    pub fn md5_hex(&self) -> String {
        hex::encode(self.md5)
    }

    pub fn sha256_hex(&self) -> String {
        crate::signing::hex32(&self.sha256)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        let d = Digests::of(b"abc");
        assert_eq!(d.md5_hex(), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            d.sha256_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(d.size, 3);
    }

    #[test]
    fn streaming_equals_whole() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut h = Hasher::default();
        for part in data.chunks(7777) {
            h.update(part);
        }
        assert_eq!(h.finish(), Digests::of(&data));
    }
}
