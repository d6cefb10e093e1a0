//! Bulk files leave the page cache once they are on disk.
//!
//! The file store writes uploads that are rarely read again soon, and keeping their pages cached
//! only pushes out what is read (the database's pages, small files). Growing the cache also has
//! a price of its own on virtual machines that hand free memory back to their host (virtio
//! free page reporting, as on Firecracker microVMs): every page the cache grows by is first
//! touched through a fault in the host. On the benchmark's machine that made writing a 4 MiB
//! upload take 10-14 ms instead of 0.7-1.1 ms (docs/performance.md). Pages let go right after
//! their flush are the ones the next write takes again.
//!
//! Only advice to the kernel (`posix_fadvise(POSIX_FADV_DONTNEED)`): the bytes on disk are the
//! same with or without it, so an error is not one, and outside Linux nothing is done.

use std::fs::File;
use std::io::Write;

/// Files of at least this size leave the cache after their flush. Smaller ones (thumbnails,
/// notes) stay: they cost little to keep and are likely to be fetched.
pub const BULK_BYTES: u64 = 1 << 20;

/// A streamed file goes to the disk, and then out of the cache, a window at a time.
pub const WINDOW_BYTES: u64 = 8 << 20;

/// After a file's flush: lets its pages go if it is bulk.
pub fn release_flushed(file: &File, len: u64) {
    if len >= BULK_BYTES {
        dont_need(file, 0, None);
    }
}

/// A file written as a stream of chunks (uploads of any size, up to S3's 5 GiB a part). Each
/// time a window has been written, it is flushed and leaves the cache: a 1 GiB upload holds at
/// most one window of cache, not 1 GiB, and its final flush has at most a window left to write.
/// The flush waits for the disk on the writing thread, which the receiving and the hashing do
/// not wait for until its queue is full.
#[derive(Debug)]
pub struct StreamedFile {
    file: File,
    written: u64,
    /// Everything before this is on disk and has been let go.
    released: u64,
}

impl StreamedFile {
    pub fn new(file: File) -> Self {
        Self {
            file,
            written: 0,
            released: 0,
        }
    }

    /// Appends a chunk (the `each` of a [`crate::domain::hashing::ChunkThread`]).
    pub fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.file.write_all(chunk)?;
        self.written += chunk.len() as u64;
        // Elsewhere the advice is not given, and flushing early would only cost.
        if cfg!(target_os = "linux") && self.written - self.released >= WINDOW_BYTES {
            // Advice drops clean pages only: the window goes to the disk first.
            self.file.sync_data()?;
            // The cache is made of folios of up to 2 MiB, and only those wholly inside the
            // advised range go: the one across the last window's edge goes with this window,
            // as the range reaches back over the window before.
            let from = self.released.saturating_sub(WINDOW_BYTES);
            dont_need(&self.file, from, Some(self.written - from));
            self.released = self.written;
        }
        Ok(())
    }

    /// Flushes the file to disk, lets the rest of its pages go, and gives it back.
    pub fn flush(self) -> std::io::Result<File> {
        sync_and_release(self.file, self.written)
    }
}

/// Flushes a finished file to disk and lets its pages go if it is bulk (blocking).
pub fn sync_and_release(file: File, len: u64) -> std::io::Result<File> {
    file.sync_all()?;
    release_flushed(&file, len);
    Ok(file)
}

#[cfg(target_os = "linux")]
fn dont_need(file: &File, offset: u64, len: Option<u64>) {
    use rustix::fs::{fadvise, Advice};
    // `None` reaches the end of the file; a zero length would too, so it is never passed.
    let len = match len {
        None => None,
        Some(n) => match std::num::NonZeroU64::new(n) {
            Some(n) => Some(n),
            None => return,
        },
    };
    if let Err(e) = fadvise(file, offset, len, Advice::DontNeed) {
        tracing::debug!(error = %e, "the kernel refused advice on a file's cache");
    }
}

#[cfg(not(target_os = "linux"))]
fn dont_need(_file: &File, _offset: u64, _len: Option<u64>) {}

#[cfg(test)]
#[cfg(target_os = "linux")]
pub(crate) mod tests {
    use super::*;

    /// How many of a file's pages are in the page cache, and how many it has, as util-linux's
    /// `fincore` counts them (`mincore`, or `cachestat` in newer ones). Neither touches the
    /// cache; a probing read would (even a refused `RWF_NOWAIT` read starts reading its page).
    pub(crate) fn cached_pages(path: &std::path::Path) -> (usize, usize) {
        let out = std::process::Command::new("fincore")
            .args(["--raw", "--noheadings", "--bytes", "--output", "PAGES,SIZE"])
            .arg(path)
            .output()
            .expect("fincore (util-linux) counts cached pages: install util-linux-extra");
        assert!(
            out.status.success(),
            "fincore: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let mut fields = text.split_whitespace().map(|n| n.parse::<usize>().unwrap());
        let (cached, size) = (fields.next().unwrap(), fields.next().unwrap());
        (cached, size.div_ceil(4096))
    }

    /// The cache can only be observed on a disk-backed folder (tmpfs keeps every page): the
    /// build's own folder is one wherever the repository is checked out.
    pub(crate) fn disk_dir() -> tempfile::TempDir {
        let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
        std::fs::create_dir_all(&target).unwrap();
        tempfile::tempdir_in(target).unwrap()
    }

    fn written(dir: &std::path::Path, name: &str, len: usize) -> (std::path::PathBuf, File) {
        let path = dir.join(name);
        let mut f = File::create(&path).unwrap();
        f.write_all(&vec![7u8; len]).unwrap();
        (path, f)
    }

    #[test]
    fn a_flushed_bulk_file_leaves_the_cache_and_a_small_one_stays() {
        let dir = disk_dir();
        let (bulk, f) = written(dir.path(), "bulk", 4 << 20);
        sync_and_release(f, 4 << 20).unwrap();
        assert_eq!(cached_pages(&bulk), (0, 1024));

        let (small, f) = written(dir.path(), "small", 64 << 10);
        sync_and_release(f, 64 << 10).unwrap();
        assert_eq!(cached_pages(&small), (16, 16));

        // Without the advice the same write stays cached: the check above can see the difference.
        let (kept, f) = written(dir.path(), "kept", 4 << 20);
        f.sync_all().unwrap();
        assert_eq!(cached_pages(&kept), (1024, 1024));
    }

    #[test]
    fn a_streamed_file_holds_at_most_a_window_of_cache_while_written() {
        let dir = disk_dir();
        let path = dir.path().join("streamed");
        let mut f = StreamedFile::new(File::create(&path).unwrap());
        let chunk = vec![3u8; 256 << 10];
        let total = 5 * WINDOW_BYTES + (100 << 10);
        while f.written + chunk.len() as u64 <= total {
            f.write(&chunk).unwrap();
        }
        f.write(&chunk[..(total - f.written) as usize]).unwrap();
        assert_eq!(f.written, total);
        let (cached, pages) = cached_pages(&path);
        // Five windows went; the last, partial one is what is left.
        assert_eq!((cached, pages), (25, 5 * 2048 + 25));
        let file = f.flush().unwrap();
        assert_eq!(file.metadata().unwrap().len(), total);
        assert_eq!(cached_pages(&path), (0, pages));
        assert!(std::fs::read(&path).unwrap().iter().all(|b| *b == 3));
    }

    #[test]
    fn a_streamed_file_in_uneven_chunks_holds_only_its_unflushed_window() {
        // Chunks as a network hands them over: window edges fall inside pages and inside the
        // large folios the cache is made of.
        let dir = disk_dir();
        let path = dir.path().join("uneven");
        let mut f = StreamedFile::new(File::create(&path).unwrap());
        let chunk = vec![5u8; 100_003];
        while f.written < 5 * WINDOW_BYTES + (3 << 20) {
            f.write(&chunk).unwrap();
        }
        assert!(f.released >= 5 * WINDOW_BYTES);
        let unflushed = f.written.div_ceil(4096) - f.released / 4096;
        let (cached, pages) = cached_pages(&path);
        assert_eq!(cached as u64, unflushed, "of {pages} pages");
        f.flush().unwrap();
        assert_eq!(cached_pages(&path), (0, pages));
    }
}
