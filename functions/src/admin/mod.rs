//! The admin command: create, list and revoke API keys, and run the sweep, on whichever backend
//! the configuration names; load the event fixtures' data into an embedded store; read and
//! redrive the finalize function's dead-letter queue (see [`dead_letters`]); migrate a
//! DynamoDB table written by an older version.

use clap::{Parser, Subcommand};

pub mod dead_letters;

use attachments::config::{Backend, Config};
use attachments::domain::TenantId;
use attachments::setup;

/// The command line of `attachments-admin`; the backend and its settings come from the
/// environment, as for the service.
#[derive(Debug, Parser)]
#[command(
    name = "attachments-admin",
    about = "Administers the attachments service's storage"
)]
pub struct Admin {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// API keys.
    #[command(subcommand)]
    Keys(Keys),
    /// Removes leftovers: expired uploads and the content of unfinished deletions.
    Sweep,
    /// The finalize function's dead-letter queue.
    Dlq {
        #[command(subcommand)]
        action: Dlq,
    },
    /// The event fixtures' data.
    #[command(subcommand)]
    Fixtures(Fixtures),
    /// Backend aws: creates the table and bucket, for local emulators.
    Init,
    /// Backend aws: counts the parents of a table from before counts, once.
    Migrate,
}

#[derive(Debug, Subcommand)]
enum Keys {
    /// A new key, shown once.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        owner: Option<String>,
    },
    /// Every key, secrets never shown.
    List,
    /// Revokes the key with this id.
    Revoke { id: String },
}

#[derive(Debug, Subcommand)]
enum Dlq {
    /// Shows the failed storage events.
    List {
        #[arg(long)]
        queue: String,
    },
    /// Handles them again; deletes those that succeed.
    Redrive {
        #[arg(long)]
        queue: String,
    },
}

#[derive(Debug, Subcommand)]
enum Fixtures {
    /// Loads the data events/ expects into a new embedded data folder.
    Load,
}

/// Runs a parsed command line with the configuration of the environment; returns what to
/// print or an error.
pub async fn run(admin: Admin) -> Result<String, String> {
    let cfg = Config::from_env().map_err(|e| e.to_string())?;
    run_with(cfg, admin).await
}

/// [`run`] with the given configuration.
pub async fn run_with(cfg: Config, admin: Admin) -> Result<String, String> {
    let aws = matches!(cfg.backend, Backend::Aws { .. });
    match admin.command {
        Command::Init if aws => {
            let sdk = setup::load_aws().await.map_err(|e| e.to_string())?;
            setup::init_aws(&cfg, &sdk).await.map_err(|e| e.to_string())
        }
        Command::Init => Ok(format!(
            "embedded storage needs no set-up (data in {})",
            cfg.data_dir.display()
        )),
        Command::Migrate if aws => migrate(&cfg).await,
        Command::Migrate => Ok("embedded storage needs no migration".into()),
        Command::Fixtures(_) if aws => Err(
            "fixtures load: only on the embedded backend (the fixtures' API key is public)".into(),
        ),
        Command::Dlq { action } => dead_letters(&cfg, action).await,
        Command::Keys(keys) => {
            let app = setup::build(&cfg).await.map_err(|e| e.to_string())?.app;
            match keys {
                Keys::Create { tenant, owner } => create_key(&app, &tenant, owner.as_deref()).await,
                Keys::List => list_keys(&app).await,
                Keys::Revoke { id } => {
                    app.revoke_key(&id).await.map_err(|e| e.to_string())?;
                    Ok(format!("revoked {id}"))
                }
            }
        }
        Command::Fixtures(Fixtures::Load) => load_fixtures(&cfg).await,
        Command::Sweep => {
            let app = setup::build(&cfg).await.map_err(|e| e.to_string())?.app;
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let n = app.sweep(now).await.map_err(|e| e.to_string())?;
            Ok(format!("removed {n} leftovers"))
        }
    }
}

/// `fixtures load`: the event fixtures' data, into a new embedded data folder only.
async fn load_fixtures(cfg: &Config) -> Result<String, String> {
    let app = setup::build(cfg).await.map_err(|e| e.to_string())?.app;
    match attachments::fixtures::load(&app).await {
        Ok(()) => Ok(format!(
            "loaded the event fixtures' data into {} (tenant {}, API key {})",
            cfg.data_dir.display(),
            attachments::fixtures::TENANT,
            attachments::fixtures::KEY
        )),
        Err(attachments::fixtures::FixturesError::NotNew) => Err(format!(
            "{} is not a new data folder (it holds API keys: the fixtures' data, perhaps \
             changed by fixtures run since, or other data): remove it, or name a new one",
            cfg.data_dir.display()
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// `keys create --tenant T [--owner O]`: the new key, shown once.
async fn create_key(
    app: &attachments::App,
    tenant: &str,
    owner: Option<&str>,
) -> Result<String, String> {
    let tenant = TenantId::parse(tenant).map_err(|e| e.to_string())?;
    let key = app
        .create_key(&tenant, owner)
        .await
        .map_err(|e| e.to_string())?;
    Ok(format!(
        "key id {} for tenant {} (owner {}):\n{}\n(the key is shown only now)",
        key.record.id, key.record.tenant, key.record.owner, key.secret
    ))
}

/// `keys list`: a table of every key, secrets never shown.
async fn list_keys(app: &attachments::App) -> Result<String, String> {
    let keys = app.list_keys().await.map_err(|e| e.to_string())?;
    let mut out = String::from("ID            TENANT           OWNER                    STATUS\n");
    for k in keys {
        out.push_str(&format!(
            "{:<13} {:<16} {:<24} {}\n",
            k.id,
            k.tenant,
            k.owner,
            if k.revoked { "revoked" } else { "active" }
        ));
    }
    Ok(out)
}

/// Gives the parents of a table written before parents had counts their count and marker, and
/// removes the per-kind index items that named them (docs/dynamodb.md, "Migration"). Safe to
/// run while the service runs, and again.
async fn migrate(cfg: &Config) -> Result<String, String> {
    let aws = setup::load_aws().await.map_err(|e| e.to_string())?;
    let (meta, _) = setup::aws_stores(cfg, &aws, None)
        .await
        .map_err(|e| e.to_string())?;
    let done = meta.migrate_legacy().await.map_err(|e| e.to_string())?;
    Ok(format!(
        "removed {} parent index items; counted {} parents",
        done.index_items, done.counted
    ))
}

/// `dlq list` and `dlq redrive`: the queue at `url`, reached with the AWS configuration the
/// SDK loads from the environment (credentials, region, endpoints, as for the table and
/// bucket); a redrive handles the events with the deployment's own table and bucket.
async fn dead_letters(cfg: &Config, action: Dlq) -> Result<String, String> {
    let (redrive, url) = match &action {
        Dlq::List { queue } => (false, queue),
        Dlq::Redrive { queue } => (true, queue),
    };
    if redrive && cfg.backend == Backend::Embedded {
        return Err("dlq redrive: the dead-letter queue holds events of an AWS deployment: set ATTACHMENTS_BACKEND=aws and its table, bucket and secret".into());
    }
    // An AWS queue's URL names its region; a redrive's table and bucket need one configured,
    // which building the AWS stores checks.
    let sdk = setup::load_aws_any_region()
        .await
        .map_err(|e| e.to_string())?;
    let queue =
        dead_letters::DeadLetterQueue::new(&sdk, url).map_err(|e| format!("--queue: {e}"))?;
    if !redrive {
        let letters = dead_letters::list(&queue).await?;
        let mut out = format!("{} failed storage event(s) in the queue:\n", letters.len());
        for l in letters {
            out.push_str(&l.describe());
            out.push('\n');
        }
        return Ok(out);
    }
    let app = setup::build_aws(cfg, &sdk, None)
        .await
        .map_err(|e| e.to_string())?
        .app;
    let report = dead_letters::redrive(&app, &queue).await?;
    let mut out = format!(
        "handled {} event(s) (deleted from the queue); {} failed again (left in the queue)\n",
        report.handled.len(),
        report.failed.len()
    );
    for (id, why) in &report.failed {
        out.push_str(&format!("{id}: {why}\n"));
    }
    if report.failed.is_empty() {
        Ok(out)
    } else {
        Err(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Admin {
        Admin::try_parse_from(std::iter::once("attachments-admin").chain(line.split(' '))).unwrap()
    }

    fn config(vars: &[(&str, &str)]) -> Config {
        Config::from_lookup(|k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        })
        .unwrap()
    }

    #[tokio::test]
    async fn fixtures_load_fills_a_new_data_folder_once() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let data = data.to_str().unwrap();
        let cfg = config(&[("ATTACHMENTS_DATA_DIR", data)]);
        let out = run_with(cfg.clone(), args("fixtures load")).await.unwrap();
        assert!(out.contains(attachments::fixtures::KEY), "{out}");
        let app = setup::build(&cfg).await.unwrap().app;
        let who = app
            .authenticate(Some(attachments::fixtures::KEY))
            .await
            .unwrap();
        assert_eq!(who.tenant.as_str(), attachments::fixtures::TENANT);
        let again = run_with(cfg, args("fixtures load")).await.unwrap_err();
        assert!(again.contains("is not a new data folder"), "{again}");
    }

    #[tokio::test]
    async fn a_redrive_needs_the_aws_backend() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let cfg = config(&[("ATTACHMENTS_DATA_DIR", data.to_str().unwrap())]);
        let e = run_with(
            cfg,
            args("dlq redrive --queue https://sqs.us-east-1.amazonaws.com/1/q"),
        )
        .await
        .unwrap_err();
        assert!(e.contains("ATTACHMENTS_BACKEND=aws"), "{e}");
        assert!(!data.exists(), "nothing was set up for it");
    }

    #[tokio::test]
    async fn fixtures_load_refuses_the_aws_backend() {
        let secret = "ab".repeat(32);
        let cfg = config(&[
            ("ATTACHMENTS_BACKEND", "aws"),
            ("ATTACHMENTS_TABLE", "t"),
            ("ATTACHMENTS_BUCKET", "b"),
            ("ATTACHMENTS_SECRET", &secret),
        ]);
        let e = run_with(cfg, args("fixtures load")).await.unwrap_err();
        assert!(e.contains("only on the embedded backend"), "{e}");
    }
}
