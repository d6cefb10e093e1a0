//! How the file store writes: never in place. Bytes go to a temporary file beside their
//! destination, synced, renamed into place, and the folder synced, so neither a reader nor a
//! crash sees half a file and a name reported as written survives a power cut. Received streams
//! are hashed in the pass that writes them, off the async workers.

use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use md5::Digest;

use crate::domain::hashing::{Digests, Hasher};

/// How many received bytes are handed to one blocking write at a time: large enough that the
/// hop to a blocking thread is rare, small enough that an upload holds little memory (two
/// batches at most: one being written, one being received).
const BATCH_BYTES: usize = 1 << 20;

/// Runs blocking file work off the async workers ([`crate::blocking`]).
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    let done = crate::blocking::run(work).await;
    done.map_err(std::io::Error::other)?
}

/// A file being written beside its destination. Committed, it takes the destination's name;
/// dropped before that (an error, a cancelled upload), it is removed.
struct TempFile {
    file: std::fs::File,
    tmp: PathBuf,
    dest: PathBuf,
}

/// Creates a folder and its missing parents, readable by the owner only: the data folder holds
/// every tenant's files.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Options that write a file readable and writable by its owner only, once created.
pub fn private_file() -> std::fs::OpenOptions {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts
}

impl TempFile {
    fn create(dest: &Path) -> std::io::Result<Self> {
        if let Some(dir) = dest.parent() {
            create_private_dir(dir)?;
        }
        let tmp = dest.with_extension(format!("tmp-{}", uuid::Uuid::new_v4()));
        Ok(Self {
            file: private_file().create_new(true).open(&tmp)?,
            tmp,
            dest: dest.to_path_buf(),
        })
    }

    /// Syncs the bytes, renames the file into place and syncs the folder. Returns the file's
    /// identity (see [`identity`]).
    fn commit(self) -> std::io::Result<String> {
        self.file.sync_all()?;
        std::fs::rename(&self.tmp, &self.dest)?;
        sync_folder_of(&self.dest)?;
        Ok(identity(&self.file.metadata()?))
    }
}

impl Drop for TempFile {
    /// Once committed, there is nothing left under the temporary name to remove.
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// Makes the names in a file's folder durable (a rename is an entry of the folder, not of the
/// file). Only Unix can open a folder to sync it.
pub fn sync_folder_of(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Names one file: a file that replaces it under its name (every write here does, by a rename)
/// is another inode written at another time, while a rename keeps both.
pub(super) fn identity(meta: &std::fs::Metadata) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let (ino, secs, nanos) = (meta.ino(), meta.mtime(), meta.mtime_nsec());
        format!("{ino:x}-{secs:x}.{nanos:x}-{:x}", meta.len())
    }
    #[cfg(not(unix))]
    {
        let modified = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        format!("{modified:x}-{:x}", meta.len())
    }
}

/// Writes `data` to `dest` as described in the module's doc.
pub(super) async fn write_atomically(dest: PathBuf, data: Bytes) -> std::io::Result<()> {
    blocking(move || {
        let mut f = TempFile::create(&dest)?;
        f.file.write_all(&data)?;
        f.commit().map(drop)
    })
    .await
}

/// What is computed while a stream is written: MD5 and SHA-256 for a whole object (its
/// verification needs both), MD5 alone for a part (its ETag, as on S3).
pub(super) enum Hashing {
    Both(Hasher),
    Md5(md5::Md5),
}

impl Hashing {
    fn update(&mut self, bytes: &[u8]) {
        match self {
            Hashing::Both(h) => h.update(bytes),
            Hashing::Md5(h) => h.update(bytes),
        }
    }

    /// The digests of `size` bytes; for a part, the SHA-256 is left zero.
    fn finish(self, size: u64) -> Digests {
        match self {
            Hashing::Both(h) => h.finish(),
            Hashing::Md5(h) => Digests {
                md5: h.finalize().into(),
                sha256: [0; 32],
                size,
            },
        }
    }
}

/// Why a received stream (a form upload's file, a part) was not stored: the reasons S3 gives.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    #[error("no such upload")]
    NoSuchUpload,
    #[error("the body is larger than the upload allows")]
    TooLarge,
    #[error("the body is smaller than the upload requires")]
    TooSmall,
    #[error("the body's SHA-256 does not match the declared checksum")]
    BadDigest,
    #[error("the body could not be read: {0}")]
    Body(String),
    #[error("storage failed: {0}")]
    Io(#[from] std::io::Error),
}

/// What was stored: the digests, and the identity of the file (see [`identity`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub digests: Digests,
    pub etag: String,
}

/// The temporary file and the hashes of what it holds so far.
type Sink = (TempFile, Hashing);

/// Writes and hashes `batch` on a blocking thread, without waiting for it.
fn write_batch(
    (mut file, mut sum): Sink,
    batch: Vec<Bytes>,
) -> tokio::task::JoinHandle<std::io::Result<Sink>> {
    tokio::spawn(blocking(move || {
        for chunk in &batch {
            sum.update(chunk);
            file.file.write_all(chunk)?;
        }
        Ok((file, sum))
    }))
}

/// The sink once a [`write_batch`] is done.
async fn written(job: tokio::task::JoinHandle<std::io::Result<Sink>>) -> std::io::Result<Sink> {
    job.await.map_err(std::io::Error::other)?
}

/// Writes a stream to `dest` if it is exactly `expected` bytes and, when given, has that SHA-256
/// (with [`Hashing::Both`]), hashing each batch in the same blocking job that writes it;
/// anything else leaves `dest` as it was. While one batch is written, the next is received.
pub(super) async fn write_stream(
    dest: PathBuf,
    mut stream: impl futures_util::Stream<Item = Result<Bytes, impl std::fmt::Display>> + Unpin,
    expected: u64,
    sha256: Option<[u8; 32]>,
    hashing: Hashing,
) -> Result<Written, ReceiveError> {
    use futures_util::StreamExt;
    let sink = blocking(move || Ok((TempFile::create(&dest)?, hashing))).await?;
    let mut job = tokio::spawn(std::future::ready(Ok(sink)));
    let (mut batch, mut batched, mut size) = (Vec::new(), 0usize, 0u64);
    let refused = loop {
        let chunk = match stream.next().await {
            None => break (size < expected).then_some(ReceiveError::TooSmall),
            Some(Err(e)) => break Some(ReceiveError::Body(e.to_string())),
            Some(Ok(chunk)) => chunk,
        };
        size += chunk.len() as u64;
        if size > expected {
            break Some(ReceiveError::TooLarge);
        }
        batched += chunk.len();
        batch.push(chunk);
        if batched >= BATCH_BYTES {
            job = write_batch(written(job).await?, std::mem::take(&mut batch));
            batched = 0;
        }
    };
    // The write under way ends before the answer: a refused stream leaves no file behind.
    let sink = written(job).await;
    if let Some(refused) = refused {
        return Err(refused);
    }
    let (file, sum) = written(write_batch(sink?, batch)).await?;
    let digests = sum.finish(size);
    if sha256.is_some_and(|sha| sha != digests.sha256) {
        return Err(ReceiveError::BadDigest);
    }
    let etag = blocking(move || file.commit()).await?;
    Ok(Written { digests, etag })
}

/// Joins `parts`, in order, into `dest`.
pub(super) async fn join(parts: Vec<PathBuf>, dest: PathBuf) -> std::io::Result<()> {
    blocking(move || {
        let mut out = TempFile::create(&dest)?;
        for part in parts {
            std::io::copy(&mut std::fs::File::open(part)?, &mut out.file)?;
        }
        out.commit().map(drop)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fs_blob::tests::chunked;

    #[tokio::test]
    async fn streams_are_written_whole_and_hashed_on_the_way() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 241) as u8).collect();
        let dest = dir.path().join("a/b");
        let d = write_stream(
            dest.clone(),
            chunked(&data, 65_537),
            data.len() as u64,
            None,
            Hashing::Both(Hasher::default()),
        )
        .await
        .unwrap();
        assert_eq!(d.digests, Digests::of(&data));
        assert_eq!(d.etag, identity(&std::fs::metadata(&dest).unwrap()));
        assert_eq!(std::fs::read(&dest).unwrap(), data);
        // Every tenant's files are in the data folder: nobody else may read them.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&dest), 0o600);
            assert_eq!(mode(&dir.path().join("a")), 0o700);
        }
        let d = write_stream(
            dest.clone(),
            chunked(&data, 100_000),
            data.len() as u64,
            None,
            Hashing::Md5(md5::Md5::new()),
        )
        .await
        .unwrap();
        assert_eq!(d.digests.md5, Digests::of(&data).md5);
        assert_eq!(d.digests.size, data.len() as u64);
    }

    #[tokio::test]
    async fn a_refused_stream_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("x");
        std::fs::write(&dest, b"before").unwrap();
        let too_big = write_stream(
            dest.clone(),
            chunked(&[7; 5000], 1000),
            4096,
            None,
            Hashing::Both(Hasher::default()),
        );
        assert!(matches!(too_big.await, Err(ReceiveError::TooLarge)));
        let too_small = write_stream(
            dest.clone(),
            chunked(&[7; 5000], 1000),
            5001,
            None,
            Hashing::Both(Hasher::default()),
        );
        assert!(matches!(too_small.await, Err(ReceiveError::TooSmall)));
        let other = write_stream(
            dest.clone(),
            chunked(&[7; 5000], 1000),
            5000,
            Some([1; 32]),
            Hashing::Both(Hasher::default()),
        );
        assert!(matches!(other.await, Err(ReceiveError::BadDigest)));
        let broken = futures_util::stream::iter(vec![
            Ok(Bytes::from_static(b"abc")),
            Err(std::io::Error::other("reset")),
        ]);
        assert!(matches!(
            write_stream(
                dest.clone(),
                broken,
                4096,
                None,
                Hashing::Both(Hasher::default())
            )
            .await,
            Err(ReceiveError::Body(_))
        ));
        // The file that was there is untouched, and no temporary file is left.
        assert_eq!(std::fs::read(&dest).unwrap(), b"before");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[tokio::test]
    async fn parts_join_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..2_500_000u32).map(|i| (i % 239) as u8).collect();
        let mut parts = vec![];
        for (i, p) in data.chunks(1_000_000).enumerate() {
            let path = dir.path().join(format!("{i}.part"));
            std::fs::write(&path, p).unwrap();
            parts.push(path);
        }
        let dest = dir.path().join("joined");
        join(parts, dest.clone()).await.unwrap();
        assert_eq!(std::fs::read(dest).unwrap(), data);
    }
}
