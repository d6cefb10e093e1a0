//! The embedded store's read cache and the change mark that keeps it true across processes.
//!
//! Several processes may open one SQLite file at once: the local server, `attachments-admin`, the
//! functions under `cargo lambda watch`. Each process caches what it has read, and every write
//! that changes rows stamps the **change mark**, an 8-byte file beside the database, with a fresh
//! random value after it commits. A reader reads the mark *before* it looks anything up, and
//! keeps or trusts an entry only under the mark it read. A write that commits after that read
//! stamps a new mark afterwards, which empties every process's cache at its next read: no
//! process keeps serving what another has since changed.
//!
//! Reading the mark is one `pread`; a SQLite read transaction in WAL mode costs two `fcntl`
//! locks, the query and the decoding of the document (docs/performance.md). A process that dies
//! between its commit and its stamp would leave the others' caches unaware of that one write,
//! so nothing is kept longer than [`MAX_AGE`] either.

use std::collections::HashMap;
use std::fs::File;
use std::hash::Hash;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The longest a cache trusts its contents without a new mark.
pub const MAX_AGE: Duration = Duration::from_secs(1);
/// Entries kept at most; past that the cache starts over.
pub const MAX_ENTRIES: usize = 4096;

/// Where the last write of any process left its stamp.
#[derive(Debug)]
pub enum ChangeMark {
    /// The mark file of a database file, shared by every process that opens it.
    File(File),
    /// An in-memory database lives in one process: a counter is enough.
    Memory(AtomicU64),
}

impl ChangeMark {
    /// The mark of the database at `db`: the file `<db>-changes`, created when missing.
    pub fn beside(db: &Path) -> std::io::Result<Self> {
        let mut path = db.as_os_str().to_owned();
        path.push("-changes");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let mark = Self::File(file);
        // A fresh process may follow one that died before its stamp.
        mark.stamp()?;
        Ok(mark)
    }

    pub fn memory() -> Self {
        Self::Memory(AtomicU64::new(0))
    }

    /// The current mark, or `None` when it cannot be read (then nothing is cached or trusted).
    pub fn read(&self) -> Option<u64> {
        match self {
            Self::File(f) => {
                let mut buf = [0u8; 8];
                f.read_exact_at(&mut buf, 0).ok()?;
                Some(u64::from_le_bytes(buf))
            }
            Self::Memory(n) => Some(n.load(Ordering::Acquire)),
        }
    }

    /// Records that rows changed: called after the change committed.
    pub fn stamp(&self) -> std::io::Result<()> {
        match self {
            Self::File(f) => f.write_all_at(&fresh_value().to_le_bytes(), 0),
            Self::Memory(n) => {
                n.fetch_add(1, Ordering::AcqRel);
                Ok(())
            }
        }
    }
}

/// A value no other stamp, of this process or another, is likely to have written: a random
/// start per process plus a counter. (A torn read of a stamp being written is harmless too: the
/// reader's entries are only trusted under the exact value it read, which no stamp repeats.)
fn fresh_value() -> u64 {
    static BASE: OnceLock<u64> = OnceLock::new();
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let base = *BASE.get_or_init(|| {
        getrandom::u64().unwrap_or_else(|_| {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            nanos ^ (u64::from(std::process::id()) << 32)
        })
    });
    // An odd multiplier spreads consecutive counts over the whole range.
    base.wrapping_add(
        COUNT
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15),
    )
}

/// Values read under one mark, dropped together when the mark changes or ages.
pub struct ReadCache<K, V> {
    inner: Mutex<Entries<K, V>>,
    max_entries: usize,
    max_bytes: usize,
}

struct Entries<K, V> {
    mark: Option<u64>,
    since: Instant,
    map: HashMap<K, V>,
    /// What the values kept with [`ReadCache::put_sized`] weigh together.
    bytes: usize,
}

impl<K, V> std::fmt::Debug for ReadCache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReadCache")
    }
}

impl<K: Eq + Hash, V: Clone> Default for ReadCache<K, V> {
    fn default() -> Self {
        Self::bounded(MAX_ENTRIES, usize::MAX)
    }
}

impl<K: Eq + Hash, V: Clone> ReadCache<K, V> {
    /// A cache of at most `max_entries` values weighing at most `max_bytes` together.
    pub fn bounded(max_entries: usize, max_bytes: usize) -> Self {
        Self {
            inner: Mutex::new(Entries {
                mark: None,
                since: Instant::now(),
                map: HashMap::new(),
                bytes: 0,
            }),
            max_entries,
            max_bytes,
        }
    }

    /// The value cached for `key` under `mark`, the mark read before this lookup.
    pub fn get(&self, mark: u64, key: &K) -> Option<V> {
        let mut e = self.inner.lock().ok()?;
        if e.mark != Some(mark) || e.since.elapsed() >= MAX_AGE {
            e.map.clear();
            e.bytes = 0;
            e.mark = Some(mark);
            e.since = Instant::now();
            return None;
        }
        e.map.get(key).cloned()
    }

    /// Keeps `value`, read from the store after `mark` was read. A value read under an older
    /// mark is not kept: a write may have committed between its read and now.
    pub fn put(&self, mark: u64, key: K, value: V) {
        self.put_sized(mark, key, value, 0);
    }

    /// [`Self::put`] for a value that weighs `bytes`; one heavier than the whole cache is not
    /// kept. (A value that replaces another is counted on top of it: the cache starts over a
    /// little early, never late.)
    pub fn put_sized(&self, mark: u64, key: K, value: V, bytes: usize) {
        if bytes > self.max_bytes {
            return;
        }
        let Ok(mut e) = self.inner.lock() else {
            return;
        };
        if e.mark != Some(mark) {
            return;
        }
        if e.map.len() >= self.max_entries || e.bytes + bytes > self.max_bytes {
            e.map.clear();
            e.bytes = 0;
        }
        e.map.insert(key, value);
        e.bytes += bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_by_another_handle_of_the_file_empties_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("meta.db");
        // Two handles of one file stand for two processes.
        let (ours, theirs) = (
            ChangeMark::beside(&db).unwrap(),
            ChangeMark::beside(&db).unwrap(),
        );
        let cache = ReadCache::default();
        let m = ours.read().unwrap();
        assert_eq!(cache.get(m, &1), None);
        cache.put(m, 1, "old");
        assert_eq!(cache.get(ours.read().unwrap(), &1), Some("old"));

        theirs.stamp().unwrap();
        let m2 = ours.read().unwrap();
        assert_ne!(m, m2);
        assert_eq!(cache.get(m2, &1), None, "a stamp elsewhere must reach us");
    }

    #[test]
    fn a_value_read_under_an_older_mark_is_not_kept() {
        let mark = ChangeMark::memory();
        let cache = ReadCache::default();
        let before = mark.read().unwrap();
        assert_eq!(cache.get(before, &"k"), None);
        // A write commits while the value is being read...
        mark.stamp().unwrap();
        let after = mark.read().unwrap();
        assert_eq!(cache.get(after, &"k"), None);
        // ...so the value read before it is refused.
        cache.put(before, "k", 1);
        assert_eq!(cache.get(after, &"k"), None);
        cache.put(after, "k", 2);
        assert_eq!(cache.get(after, &"k"), Some(2));
    }

    #[test]
    fn nothing_is_trusted_past_the_max_age() {
        let cache = ReadCache::default();
        assert_eq!(cache.get(7, &1), None);
        cache.put(7, 1, 'a');
        assert_eq!(cache.get(7, &1), Some('a'));
        cache.inner.lock().unwrap().since -= MAX_AGE;
        assert_eq!(cache.get(7, &1), None);
    }

    #[test]
    fn the_cache_starts_over_when_full() {
        let cache = ReadCache::default();
        assert_eq!(cache.get(1, &0), None);
        for k in 0..MAX_ENTRIES {
            cache.put(1, k, k);
        }
        assert_eq!(cache.get(1, &0), Some(0));
        cache.put(1, MAX_ENTRIES, MAX_ENTRIES);
        assert_eq!(cache.get(1, &0), None);
        assert_eq!(cache.get(1, &MAX_ENTRIES), Some(MAX_ENTRIES));
    }

    #[test]
    fn the_cache_starts_over_when_its_weight_is_reached() {
        let cache = ReadCache::bounded(10, 100);
        assert_eq!(cache.get(1, &0), None);
        cache.put_sized(1, 0, 'a', 60);
        cache.put_sized(1, 1, 'b', 40);
        assert_eq!((cache.get(1, &0), cache.get(1, &1)), (Some('a'), Some('b')));
        cache.put_sized(1, 2, 'c', 1);
        assert_eq!((cache.get(1, &0), cache.get(1, &2)), (None, Some('c')));
        // Heavier than the whole cache: refused, and what is kept stays.
        cache.put_sized(1, 3, 'd', 101);
        assert_eq!((cache.get(1, &3), cache.get(1, &2)), (None, Some('c')));
    }
}
