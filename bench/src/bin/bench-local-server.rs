//! The subject of the HTTP rows: the local server (`functions::local::serve`) on a tokio
//! runtime with one worker thread, configured from the environment like `attachments-local`.
//! It listens on a free loopback port, prints its address, and serves until its standard input
//! closes (so it never outlives the benchmark).

use attachments::config::Config;
use tokio::net::TcpListener;

fn main() -> std::process::ExitCode {
    attachments_bench::serve_on_one_worker("bench-local-server", serve())
}

async fn serve() -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (addr_s, url) = (addr.to_string(), format!("http://{addr}"));
    let cfg = Config::from_lookup(|k| match k {
        "ATTACHMENTS_ADDR" => Some(addr_s.clone()),
        "ATTACHMENTS_PUBLIC_URL" => Some(url.clone()),
        _ => std::env::var(k).ok(),
    })?;
    attachments::telemetry::init(&cfg);
    let (addr, server, listener, _) = functions::local::start(&cfg, Some(listener)).await?;
    attachments_bench::announce(addr);
    functions::local::serve(server, listener).await?;
    Ok(())
}
