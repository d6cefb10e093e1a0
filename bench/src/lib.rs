//! The performance benchmark of issue 9. Every row runs its baseline and its subject interleaved
//! in the same run and reports their ratio, because absolute times on a shared machine drift by
//! up to 2x between minutes while ratios hold.
//!
//! Rows: [`init`] (cold start to the first `/next` poll), [`size`] (zipped bootstrap),
//! [`hashing`] (one-pass md5+sha256), [`http_rows`] (local server under load), [`lambda_event`]
//! (a 4 MiB upload event through the Lambda handler). Loads go to loopback only, bounded in count
//! and time.

pub mod big_upload;
pub mod breakdown;
pub mod hashing;
pub mod http_rows;
pub mod init;
pub mod lambda_event;
pub mod load;
pub mod size;
pub mod table;
pub mod util;

use std::io::Write;
use std::net::SocketAddr;

/// The line a server binary prints once it listens, read by [`util::Server::spawn`].
pub const LISTENING: &str = "listening on ";

/// Prints a server's address for the driver.
pub fn announce(addr: SocketAddr) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{LISTENING}{addr}");
    let _ = out.flush();
}

/// Ends the process when its standard input closes: the driver holds the other end, so a server
/// never outlives the benchmark, even when the driver is killed.
pub fn exit_when_stdin_closes() {
    std::thread::spawn(|| {
        let mut sink = [0u8; 64];
        loop {
            match std::io::Read::read(&mut std::io::stdin(), &mut sink) {
                Ok(0) | Err(_) => std::process::exit(0),
                Ok(_) => {}
            }
        }
    });
}
