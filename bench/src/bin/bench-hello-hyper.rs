//! Baseline of the HTTP rows: a hyper hello-world server on a tokio runtime with one worker
//! thread, like the local server it is compared with. Prints its address, then serves until its
//! standard input closes (so it never outlives the benchmark).

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

async fn hello(_req: http::Request<Incoming>) -> Result<http::Response<Full<Bytes>>, Infallible> {
    Ok(http::Response::new(Full::new(Bytes::from_static(
        b"Hello, world!",
    ))))
}

fn main() -> std::process::ExitCode {
    attachments_bench::serve_on_one_worker("bench-hello-hyper", serve())
}

async fn serve() -> std::io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    attachments_bench::announce(listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        // The local server sets it too; without it the comparison would measure Nagle.
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), hyper::service::service_fn(hello))
                .await;
        });
    }
}
