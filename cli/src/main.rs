//! `attachments`: the command-line client of the attachments service. Logs in once (API URL and
//! key in the user's config folder), lists a parent's attachments, uploads files straight to
//! storage with a progress bar (big ones in parallel parts, resumed when run again), downloads,
//! shows and deletes them. `--json` prints the API's JSON for scripts; errors are one line on
//! standard error, and the exit code says what kind (see `--help`).

mod client;
mod config;
mod content_type;
mod download;
mod error;
mod progress;
mod upload;

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use reqwest::Method;
use serde_json::{json, Value};

use client::{segment, Api, ParentArg};
use error::{CliError, CliResult};

const EXIT_CODES: &str = "\
Exit codes:
  0  done
  1  a local file could not be read or written
  2  the command line is wrong
  3  not logged in (run `attachments login`)
  4  the API refused the key
  5  no such parent or attachment
  6  the server refused the request or the file (the message says why)
  7  the server could not be reached or failed; run again (uploads resume)

The login can also come from ATTACHMENTS_URL and ATTACHMENTS_KEY (or --url and --key).";

/// Files attached to your application's records, from the command line.
#[derive(Debug, Parser)]
#[command(name = "attachments", version, after_help = EXIT_CODES)]
struct Cli {
    /// The API's URL (else the login's).
    #[arg(long, global = true, env = "ATTACHMENTS_URL")]
    url: Option<String>,
    /// The API key (else the login's). Prefer `login` or the variable: a command line is seen
    /// by other users of the machine.
    #[arg(long, global = true, env = "ATTACHMENTS_KEY", hide_env_values = true)]
    key: Option<String>,
    /// Print JSON (the API's) instead of text, and no progress bars.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Stores the API URL and key (read from standard input unless --key is given) in your
    /// config folder, readable by you only, after checking them against the API.
    Login,
    /// Lists a parent's attachments: `attachments ls profile/42`.
    Ls {
        /// The parent, as KIND/ID.
        parent: ParentArg,
    },
    /// Uploads files to a parent, straight to storage; run it again on the same file to resume
    /// an interrupted upload.
    Put {
        /// The parent, as KIND/ID.
        parent: ParentArg,
        /// The files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The attachments' type (a label such as `resume`).
        #[arg(long = "type")]
        label: Option<String>,
        /// Their title.
        #[arg(long)]
        title: Option<String>,
        /// Tags, comma-separated.
        #[arg(long, value_delimiter = ',')]
        tags: Option<Vec<String>>,
        /// Parts of a big file sent at once.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=32))]
        parallel: u16,
    },
    /// Downloads an attachment (to its file name here, or -o FILE; -o - for standard output).
    Get {
        id: String,
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Replace the output file if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Deletes attachments (their files and metadata).
    Rm {
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Shows an attachment's metadata.
    Info { id: String },
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli).await {
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    }
}

/// The API of the login, overridden by --url and --key.
fn api(cli: &Cli) -> CliResult<Api> {
    let stored = config::load()?;
    let url = cli
        .url
        .clone()
        .or_else(|| stored.as_ref().map(|l| l.url.clone()));
    let key = cli
        .key
        .clone()
        .or_else(|| stored.as_ref().map(|l| l.key.clone()));
    match (url, key) {
        (Some(url), Some(key)) => Ok(Api::new(
            client::http_client()?,
            config::normalize_url(&url)?,
            key.trim().to_owned(),
        )),
        _ => Err(CliError::NotLoggedIn),
    }
}

fn print_json(v: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

async fn run(cli: Cli) -> CliResult<()> {
    let show_progress = !cli.json && std::io::stderr().is_terminal();
    match &cli.command {
        Command::Login => login(&cli).await,
        Command::Ls { parent } => {
            let api = api(&cli)?;
            let items = list_all(&api, parent).await?;
            if cli.json {
                print_json(&Value::Array(items));
            } else {
                print_table(&items);
            }
            Ok(())
        }
        Command::Put {
            parent,
            files,
            label,
            title,
            tags,
            parallel,
        } => {
            let api = api(&cli)?;
            let opts = upload::PutOptions {
                parallel: usize::from(*parallel),
                label: label.clone(),
                title: title.clone(),
                tags: tags.clone(),
                show_progress,
            };
            let (done, mut failed) = upload::put_all(&api, parent, files, &opts).await;
            if cli.json {
                print_json(&Value::Array(done));
            } else {
                for a in &done {
                    println!(
                        "{}  {}  {}  {}  sha256 {}",
                        a["id"].as_str().unwrap_or(""),
                        a["file_name"].as_str().unwrap_or(""),
                        progress::human(a["size"].as_u64().unwrap_or(0)),
                        a["status"].as_str().unwrap_or(""),
                        a["sha256"].as_str().unwrap_or(""),
                    );
                }
            }
            // Every failure on its own line, in order; the exit code is the last one's.
            match failed.pop() {
                None => Ok(()),
                Some(last) => {
                    for e in &failed {
                        eprintln!("error: {e}");
                    }
                    Err(last)
                }
            }
        }
        Command::Get { id, output, force } => {
            let api = api(&cli)?;
            let (att, out) =
                download::get(&api, id, output.as_deref(), *force, show_progress).await?;
            if let download::Output::File(p) = out {
                if cli.json {
                    print_json(&json!({"attachment": att, "path": p}));
                } else {
                    println!(
                        "{}  {}",
                        p.display(),
                        progress::human(att["size"].as_u64().unwrap_or(0))
                    );
                }
            }
            Ok(())
        }
        Command::Rm { ids } => {
            let api = api(&cli)?;
            for id in ids {
                api.call(
                    Method::DELETE,
                    &format!("/v1/attachments/{}", segment(id)),
                    None,
                    &format!("attachment {id}"),
                )
                .await?;
                if cli.json {
                    print_json(&json!({"deleted": id}));
                } else {
                    println!("deleted {id}");
                }
            }
            Ok(())
        }
        Command::Info { id } => {
            let api = api(&cli)?;
            let att = api
                .json(
                    Method::GET,
                    &format!("/v1/attachments/{}", segment(id)),
                    None,
                    &format!("attachment {id}"),
                )
                .await?;
            if cli.json {
                print_json(&att);
            } else {
                print_info(&att);
            }
            Ok(())
        }
    }
}

/// `login`: checks the key against the API (an unknown attachment answers 404 to a valid key
/// and 401 to any other), then stores both.
async fn login(cli: &Cli) -> CliResult<()> {
    let stored = config::load()?;
    let url = cli
        .url
        .clone()
        .or_else(|| stored.map(|l| l.url))
        .ok_or_else(|| {
            CliError::Local(
                "give the API's URL: attachments login --url http://127.0.0.1:3000".into(),
            )
        })?;
    let url = config::normalize_url(&url)?;
    let key = match &cli.key {
        Some(k) => k.trim().to_owned(),
        None => {
            if std::io::stdin().is_terminal() {
                eprint!("API key for {url}: ");
            }
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|e| CliError::Local(format!("cannot read the key: {e}")))?;
            line.trim().to_owned()
        }
    };
    if key.is_empty() {
        return Err(CliError::Local(
            "no key given; paste it, or give --key (the server prints one on its first start)"
                .into(),
        ));
    }
    let api = Api::new(client::http_client()?, url.clone(), key.clone());
    match api
        .call(
            Method::GET,
            "/v1/attachments/00000000-0000-7000-8000-000000000000",
            None,
            "checking the key",
        )
        .await
    {
        Err(CliError::NotFound(_)) | Ok(_) => {}
        Err(e) => return Err(e),
    }
    let path = config::save(&config::Login {
        url: url.clone(),
        key,
    })?;
    if cli.json {
        print_json(&json!({"url": url, "config": path}));
    } else {
        println!("logged in to {url} (saved in {})", path.display());
    }
    Ok(())
}

/// Every page of a parent's attachments.
async fn list_all(api: &Api, parent: &ParentArg) -> CliResult<Vec<Value>> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("{}/attachments?limit=1000", parent.path());
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={}", segment(c)));
        }
        let page = api
            .json(Method::GET, &path, None, &format!("parent {parent}"))
            .await?;
        items.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return Ok(items),
        }
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Array(a) => a.iter().map(text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

fn print_table(items: &[Value]) {
    if items.is_empty() {
        println!("no attachments");
        return;
    }
    let rows: Vec<[String; 6]> = items
        .iter()
        .map(|a| {
            [
                text(&a["id"]),
                text(&a["file_name"]),
                a["size"].as_u64().map(progress::human).unwrap_or_default(),
                text(&a["content_type"]),
                text(&a["status"]),
                text(&a["tags"]),
            ]
        })
        .collect();
    let header = ["ID", "NAME", "SIZE", "CONTENT TYPE", "STATUS", "TAGS"];
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let parts: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(&header.map(str::to_owned));
    for r in &rows {
        line(r);
    }
}

fn print_info(a: &Value) {
    for k in [
        "id",
        "file_name",
        "content_type",
        "size",
        "sha256",
        "md5",
        "type",
        "title",
        "tags",
        "status",
        "problem",
        "owner",
        "created_at",
        "updated_at",
        "download_url",
    ] {
        let v = if k == "size" {
            a[k].as_u64()
                .map(|n| format!("{} ({n} bytes)", progress::human(n)))
                .unwrap_or_default()
        } else {
            text(&a[k])
        };
        if !v.is_empty() {
            println!("{k:<13} {v}");
        }
    }
    println!(
        "{:<13} {}/{}",
        "parent",
        text(&a["parent"]["kind"]),
        text(&a["parent"]["id"])
    );
}
