//! The admin command: API keys, the sweep, the dead-letter queue and the event fixtures' data, on
//! the configured backend (`attachments-admin --help`).

use clap::Parser;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let admin = functions::admin::Admin::parse();
    match functions::admin::run(admin).await {
        Ok(out) => {
            println!("{out}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}
