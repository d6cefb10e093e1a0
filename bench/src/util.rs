//! Small helpers: temporary folders, child processes that die with the benchmark, statistics
//! and formatting.

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// An error message for the table; the benchmark reports failures in its rows, it does not stop.
pub type Error = String;

/// A folder under the system's temporary folder, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> Result<Self, Error> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "attachments-bench-{}-{n}-{label}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Self(path))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed and reaped on drop.
#[derive(Debug)]
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A server binary of this crate running as a child: it prints its address on its first line
/// and exits when its standard input (held here) closes.
#[derive(Debug)]
pub struct Server {
    pub addr: SocketAddr,
    pub child: Guard,
}

impl Server {
    pub fn spawn(mut cmd: Command) -> Result<Self, Error> {
        let program = cmd.get_program().to_string_lossy().into_owned();
        let child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("{program}: {e}"))?;
        let mut child = Guard(child);
        let stdout = child.0.stdout.take().ok_or("no stdout")?;
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| format!("{program}: {e}"))?;
        let addr = line
            .trim()
            .strip_prefix(crate::LISTENING)
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| format!("{program} did not start (printed {line:?})"))?;
        Ok(Self { addr, child })
    }

    /// CPU time the server's threads have used so far, in seconds (Linux), to tell a server's
    /// cost per request apart from the load generator's speed.
    pub fn cpu_seconds(&self) -> Option<f64> {
        cpu_seconds(self.child.0.id())
    }
}

/// Sum of the on-CPU time of every thread of a process, from `/proc/<pid>/task/*/schedstat`.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let mut ns: u64 = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let path = task.ok()?.path().join("schedstat");
        let text = std::fs::read_to_string(path).ok()?;
        ns += text.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(ns as f64 / 1e9)
}

/// The median of the values (the mean of the middle two for an even count); NaN when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// The q-quantile (0..=1) of sorted values.
pub fn quantile(sorted: &[u32], q: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted.get(i.min(sorted.len() - 1)).copied()
}

pub fn ms(secs: f64) -> String {
    if secs < 1e-4 {
        format!("{:.1} us", secs * 1e6)
    } else if secs < 0.01 {
        format!("{:.2} ms", secs * 1e3)
    } else {
        format!("{:.1} ms", secs * 1e3)
    }
}

/// Decimal megabytes, as AWS states its limits.
pub fn mb(bytes: u64) -> String {
    format!("{:.2} MB", bytes as f64 / 1e6)
}

pub fn rate(bytes_per_sec: f64) -> String {
    if bytes_per_sec >= 1e9 {
        format!("{:.2} GB/s", bytes_per_sec / 1e9)
    } else {
        format!("{:.0} MB/s", bytes_per_sec / 1e6)
    }
}

pub fn rps(r: f64) -> String {
    format!("{r:.0} req/s")
}

/// A pseudo-random, incompressible buffer (xorshift), so no hash or zip gets an easy ride.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The folder holding the benchmark's own binary: the function binaries and baselines are built
/// beside it (`target/release`).
pub fn bin_dir() -> Result<PathBuf, Error> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    exe.parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| "the benchmark binary has no folder".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_quantile() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[f64::NAN, 5.0]), 5.0);
        assert!(median(&[]).is_nan());
        let sorted: Vec<u32> = (1..=100).collect();
        assert_eq!(quantile(&sorted, 0.99), Some(99));
        assert_eq!(quantile(&sorted, 0.0), Some(1));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn noise_is_deterministic_and_sized() {
        assert_eq!(noise(1001, 7).len(), 1001);
        assert_eq!(noise(64, 7), noise(64, 7));
        assert_ne!(noise(64, 7), noise(64, 8));
    }
}
