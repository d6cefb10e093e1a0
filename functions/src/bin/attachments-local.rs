//! The local server: the whole API on one machine, on embedded storage (`cargo run --release`).

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match functions::local::run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("attachments: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
