//! Baseline of the HTTP rows: a hyper hello-world server on a tokio runtime with one worker
//! thread, like the local server it is compared with. Prints its address, then serves until its
//! standard input closes (so it never outlives the benchmark).
//!
//! `bench-hello-hyper FILE` answers with FILE's bytes instead of "Hello, world!": the list row's
//! floor, what serving its answer costs when producing it costs nothing.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

fn main() -> std::process::ExitCode {
    attachments_bench::serve_on_one_worker("bench-hello-hyper", serve())
}

async fn serve() -> std::io::Result<()> {
    let body = match std::env::args_os().nth(1) {
        Some(file) => Bytes::from(std::fs::read(file)?),
        None => Bytes::from_static(b"Hello, world!"),
    };
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    attachments_bench::announce(listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        // The local server sets it too; without it the comparison would measure Nagle.
        let _ = stream.set_nodelay(true);
        let body = body.clone();
        tokio::spawn(async move {
            let hello = move |_req: http::Request<Incoming>| {
                let body = body.clone();
                async move { Ok::<_, Infallible>(http::Response::new(Full::new(body))) }
            };
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), hyper::service::service_fn(hello))
                .await;
        });
    }
}
