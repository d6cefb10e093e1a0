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

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hasher").field("size", &self.size).finish()
    }
}

/// Chunk size that keeps a chunk in L1/L2 between the two hash passes.
const CHUNK: usize = 16 * 1024;

impl Hasher {
    pub fn new() -> Self {
        Self::default()
    }

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
        let mut h = Hasher::new();
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

/// A blocking thread fed the chunks of a stream as they arrive, each handed to `each` with the
/// thread's state: so that receiving a large upload overlaps with hashing or writing it instead
/// of waiting for it. The chunks are shared (`Bytes`), not copied. What waits for the thread is
/// bounded in bytes, not chunks: network chunks are small and uneven, and a queue of a few of
/// them would stall the whole pipeline at the first hiccup of the disk.
#[derive(Debug)]
pub struct ChunkThread<S> {
    tx: tokio::sync::mpsc::UnboundedSender<bytes::Bytes>,
    room: std::sync::Arc<tokio::sync::Semaphore>,
    worker: tokio::task::JoinHandle<std::io::Result<S>>,
    what: &'static str,
}

/// Bytes waiting for one chunk thread, at most.
pub const QUEUED_BYTES: usize = 4 << 20;

impl<S: Send + 'static> ChunkThread<S> {
    /// `what` names the thread in errors ("hashing", "writing").
    pub fn spawn(
        what: &'static str,
        mut state: S,
        each: fn(&mut S, &[u8]) -> std::io::Result<()>,
    ) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<bytes::Bytes>();
        let room = std::sync::Arc::new(tokio::sync::Semaphore::new(QUEUED_BYTES));
        let freed = room.clone();
        let worker = tokio::task::spawn_blocking(move || {
            while let Some(chunk) = rx.blocking_recv() {
                if let Err(e) = each(&mut state, &chunk) {
                    // Wakes a sender waiting for room, which then reports the stop.
                    freed.close();
                    return Err(e);
                }
                freed.add_permits(Self::cost(&chunk));
            }
            Ok(state)
        });
        Self {
            tx,
            room,
            worker,
            what,
        }
    }

    /// The room a chunk takes in the queue (a chunk larger than the queue takes all of it).
    fn cost(chunk: &[u8]) -> usize {
        chunk.len().clamp(1, QUEUED_BYTES)
    }

    /// Queues a chunk; waits only while the queue is full.
    pub async fn update(&self, chunk: bytes::Bytes) -> std::io::Result<()> {
        let stopped = || std::io::Error::other(format!("the {} thread stopped", self.what));
        let cost = u32::try_from(Self::cost(&chunk)).map_err(|_| stopped())?;
        match self.room.acquire_many(cost).await {
            // Given back by the thread once the chunk is done.
            Ok(permit) => permit.forget(),
            Err(_) => return Err(stopped()),
        }
        // The thread stopped early, on an error of its own, which `finish` reports.
        self.tx.send(chunk).map_err(|_| stopped())
    }

    /// The state after every queued chunk, or the first error.
    pub async fn finish(self) -> std::io::Result<S> {
        drop(self.tx);
        match self.worker.await {
            Ok(result) => result,
            Err(e) => Err(std::io::Error::other(format!(
                "the {} thread failed: {e}",
                self.what
            ))),
        }
    }
}

/// A [`Hasher`] on its own blocking thread (a [`ChunkThread`]).
#[derive(Debug)]
pub struct BackgroundHasher(ChunkThread<Hasher>);

impl BackgroundHasher {
    pub fn spawn() -> Self {
        Self(ChunkThread::spawn("hashing", Hasher::new(), |h, c| {
            h.update(c);
            Ok(())
        }))
    }

    /// Queues a chunk; waits only while the queue is full.
    pub async fn update(&self, chunk: bytes::Bytes) -> std::io::Result<()> {
        self.0.update(chunk).await
    }

    /// The digests of everything queued.
    pub async fn finish(self) -> std::io::Result<Digests> {
        self.0.finish().await.map(Hasher::finish)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_chunk_thread_bounds_its_queue_in_bytes_and_reports_its_own_error() {
        // Everything queued reaches the thread, in order, with more bytes than the queue holds.
        let t = ChunkThread::spawn("summing", 0u64, |sum, c| {
            *sum += c.iter().map(|b| u64::from(*b)).sum::<u64>();
            Ok(())
        });
        let chunk = bytes::Bytes::from(vec![1u8; 1 << 20]);
        for _ in 0..(QUEUED_BYTES >> 20) * 3 {
            t.update(chunk.clone()).await.unwrap();
        }
        assert_eq!(t.finish().await.unwrap(), 3 * QUEUED_BYTES as u64);

        // A thread that fails stops taking chunks; a sender waiting for room is woken and
        // `finish` gives the thread's own error.
        let t = ChunkThread::spawn("failing", (), |_, _| {
            Err(std::io::Error::other("disk full"))
        });
        let mut stopped = false;
        for _ in 0..(QUEUED_BYTES >> 20) * 3 {
            if t.update(chunk.clone()).await.is_err() {
                stopped = true;
                break;
            }
        }
        assert!(stopped, "the sender learns that the thread stopped");
        assert_eq!(t.finish().await.unwrap_err().to_string(), "disk full");
    }

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
        let mut h = Hasher::new();
        for part in data.chunks(7777) {
            h.update(part);
        }
        assert_eq!(h.finish(), Digests::of(&data));
    }

    #[tokio::test]
    async fn background_equals_whole() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
        let h = BackgroundHasher::spawn();
        for part in data.chunks(65_537) {
            h.update(bytes::Bytes::copy_from_slice(part)).await.unwrap();
        }
        assert_eq!(h.finish().await.unwrap(), Digests::of(&data));
    }
}
