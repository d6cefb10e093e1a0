//! The hashing row: bytes per second through the upload path's one-pass hasher
//! ([`attachments::domain::hashing::Hasher`], md5 and sha256 fed from the same chunks) against
//! the raw speed of the same two hashes run back to back over the whole buffer.

use std::hint::black_box;
use std::time::Instant;

use md5::{Digest, Md5};
use sha2::Sha256;

use attachments::domain::hashing::Hasher;

use crate::table::{ratio, verdict, Row};
use crate::util::{median, noise, rate};

/// Speeds measured by [`measure`], in bytes per second.
#[derive(Debug, Clone, Copy)]
pub struct Speeds {
    pub ours: f64,
    pub raw: f64,
    pub md5: f64,
    pub sha256: f64,
}

/// Interleaves `rounds` runs of each over a buffer of `len` bytes and keeps the medians.
pub fn measure(len: usize, rounds: usize) -> Speeds {
    let buf = noise(len, 0x5eed);
    let (mut ours, mut raw, mut md5, mut sha) = (vec![], vec![], vec![], vec![]);
    for round in 0..=rounds {
        let t = Instant::now();
        let mut h = Hasher::default();
        h.update(black_box(&buf));
        black_box(h.finish());
        let t_ours = t.elapsed().as_secs_f64();

        let t = Instant::now();
        black_box(Md5::digest(black_box(&buf)));
        let t_md5 = t.elapsed().as_secs_f64();
        let t = Instant::now();
        black_box(Sha256::digest(black_box(&buf)));
        let t_sha = t.elapsed().as_secs_f64();
        // Round 0 warms caches and CPU frequency.
        if round > 0 {
            ours.push(t_ours);
            raw.push(t_md5 + t_sha);
            md5.push(t_md5);
            sha.push(t_sha);
        }
    }
    let speed = |v: &[f64]| len as f64 / median(v);
    Speeds {
        ours: speed(&ours),
        raw: speed(&raw),
        md5: speed(&md5),
        sha256: speed(&sha),
    }
}

pub fn row(s: &Speeds) -> Row {
    let r = s.ours / s.raw;
    Row {
        figure: "hashing (md5+sha256)".into(),
        value: rate(s.ours),
        baseline: format!(
            "{} (md5 {}, sha256 {})",
            rate(s.raw),
            rate(s.md5),
            rate(s.sha256)
        ),
        ratio: ratio(r),
        target: ">= 0.8x".into(),
        verdict: verdict(r >= 0.8),
    }
}
