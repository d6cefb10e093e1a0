//! The admin command: create, list and revoke API keys, and run the sweep, on whichever backend
//! the configuration names; load the event fixtures' data into an embedded store; read and
//! redrive the finalize function's dead-letter queue (see [`crate::dead_letters`]); migrate a
//! DynamoDB table written by an older version.

use crate::config::{Backend, Config};
use crate::domain::TenantId;
use crate::setup;

const USAGE: &str = "usage:
  attachments-admin keys create --tenant TENANT [--owner OWNER]
  attachments-admin keys list
  attachments-admin keys revoke KEY_ID
  attachments-admin sweep
  attachments-admin dlq list --queue QUEUE_URL      (the finalize function's dead-letter queue)
  attachments-admin dlq redrive --queue QUEUE_URL   (handle its events again; delete those that succeed)
  attachments-admin fixtures load (backend embedded: the data events/ expects, in a new data folder)
  attachments-admin init          (backend aws: create the table and bucket, for local emulators)
  attachments-admin migrate       (backend aws: count the parents of a table from before counts, once)";

/// Runs the command line `args` (without the program name); returns what to print or an error.
pub async fn run(args: &[String]) -> Result<String, String> {
    let cfg = Config::from_env().map_err(|e| e.to_string())?;
    run_with(cfg, args).await
}

/// [`run`] with the given configuration.
pub async fn run_with(cfg: Config, args: &[String]) -> Result<String, String> {
    if args.first().map(String::as_str) == Some("init") {
        return match cfg.backend {
            Backend::Aws => setup::init_aws(&cfg).await.map_err(|e| e.to_string()),
            Backend::Embedded => Ok(format!(
                "embedded storage needs no set-up (data in {})",
                cfg.data_dir.display()
            )),
        };
    }
    if args.first().map(String::as_str) == Some("migrate") {
        return match cfg.backend {
            Backend::Aws => migrate(&cfg).await,
            Backend::Embedded => Ok("embedded storage needs no migration".into()),
        };
    }
    if args.first().map(String::as_str) == Some("fixtures") && cfg.backend != Backend::Embedded {
        return Err(
            "fixtures load: only on the embedded backend (the fixtures' API key is public)".into(),
        );
    }
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    if let ["dlq", action @ ("list" | "redrive"), "--queue", url] = words.as_slice() {
        return dead_letters(&cfg, action, url).await;
    }
    let built = setup::build(&cfg).await.map_err(|e| e.to_string())?;
    let app = built.app;
    match words.as_slice() {
        ["keys", "create", rest @ ..] => create_key(&app, rest).await,
        ["keys", "list"] => list_keys(&app).await,
        ["keys", "revoke", id] => {
            app.revoke_key(id).await.map_err(|e| e.to_string())?;
            Ok(format!("revoked {id}"))
        }
        ["fixtures", "load"] => match crate::fixtures::load(&app).await {
            Ok(()) => Ok(format!(
                "loaded the event fixtures' data into {} (tenant {}, API key {})",
                cfg.data_dir.display(),
                crate::fixtures::TENANT,
                crate::fixtures::KEY
            )),
            Err(crate::fixtures::FixturesError::NotNew) => Err(format!(
                "{} is not a new data folder (it holds API keys: the fixtures' data, perhaps \
                 changed by fixtures run since, or other data): remove it, or name a new one",
                cfg.data_dir.display()
            )),
            Err(e) => Err(e.to_string()),
        },
        ["sweep"] => {
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let n = app.sweep(now).await.map_err(|e| e.to_string())?;
            Ok(format!("removed {n} leftovers"))
        }
        _ => Err(USAGE.into()),
    }
}

/// `keys create --tenant T [--owner O]`: the new key, shown once.
async fn create_key(app: &crate::App, flags: &[&str]) -> Result<String, String> {
    let mut tenant = None;
    let mut owner = None;
    let mut it = flags.iter();
    while let Some(flag) = it.next() {
        match (*flag, it.next()) {
            ("--tenant", Some(v)) => tenant = Some(*v),
            ("--owner", Some(v)) => owner = Some(*v),
            _ => return Err(USAGE.into()),
        }
    }
    let tenant = TenantId::parse(tenant.ok_or(USAGE)?).map_err(|e| e.to_string())?;
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
async fn list_keys(app: &crate::App) -> Result<String, String> {
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
    let (meta, _) = setup::aws_stores(cfg, &aws)
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
async fn dead_letters(cfg: &Config, action: &str, url: &str) -> Result<String, String> {
    if action == "redrive" && cfg.backend != Backend::Aws {
        return Err("dlq redrive: the dead-letter queue holds events of an AWS deployment: set ATTACHMENTS_BACKEND=aws and its table, bucket and secret".into());
    }
    let sdk = setup::load_aws().await.map_err(|e| e.to_string())?;
    let queue = crate::dead_letters::DeadLetterQueue::new(&sdk, url)
        .map_err(|e| format!("--queue: {e}"))?;
    if action == "list" {
        let letters = crate::dead_letters::list(&queue).await?;
        let mut out = format!("{} failed storage event(s) in the queue:\n", letters.len());
        for l in letters {
            out.push_str(&l.describe());
            out.push('\n');
        }
        return Ok(out);
    }
    let app = setup::build_aws(cfg, &sdk)
        .await
        .map_err(|e| e.to_string())?
        .app;
    let report = crate::dead_letters::redrive(&app, &queue).await?;
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

    fn args(line: &str) -> Vec<String> {
        line.split(' ').map(str::to_owned).collect()
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
        let out = run_with(cfg.clone(), &args("fixtures load")).await.unwrap();
        assert!(out.contains(crate::fixtures::KEY), "{out}");
        let app = setup::build(&cfg).await.unwrap().app;
        let who = app.authenticate(Some(crate::fixtures::KEY)).await.unwrap();
        assert_eq!(who.tenant.as_str(), crate::fixtures::TENANT);
        let again = run_with(cfg, &args("fixtures load")).await.unwrap_err();
        assert!(again.contains("is not a new data folder"), "{again}");
    }

    #[tokio::test]
    async fn a_redrive_needs_the_aws_backend() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let cfg = config(&[("ATTACHMENTS_DATA_DIR", data.to_str().unwrap())]);
        let e = run_with(
            cfg,
            &args("dlq redrive --queue https://sqs.us-east-1.amazonaws.com/1/q"),
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
        let e = run_with(cfg, &args("fixtures load")).await.unwrap_err();
        assert!(e.contains("only on the embedded backend"), "{e}");
    }
}
