//! The performance benchmark. Every row runs its baseline and its subject interleaved
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

/// A server binary's `main`: ends with the driver (see [`exit_when_stdin_closes`]) and runs
/// `serve` on a tokio runtime with one worker thread, the setup both HTTP servers of the
/// benchmark are compared under. An error is printed with the binary's `name`.
pub fn serve_on_one_worker<F, E>(name: &str, serve: F) -> std::process::ExitCode
where
    F: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    exit_when_stdin_closes();
    let result = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|rt| rt.block_on(serve).map_err(|e| e.to_string()));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
