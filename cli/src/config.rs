//! Where the client keeps things: the login (API URL and key) in the user's config folder
//! (`$XDG_CONFIG_HOME/attachments/login.json`, readable by the user only), and the records of
//! unfinished uploads in the state folder (`$XDG_STATE_HOME/attachments/uploads/`).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{CliError, CliResult};

/// What `login` stores.
#[derive(Clone, Serialize, Deserialize)]
pub struct Login {
    pub url: String,
    pub key: String,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("url", &self.url)
            .field("key", &"<redacted>")
            .finish()
    }
}

fn config_dir() -> CliResult<PathBuf> {
    dirs::config_dir()
        .map(|d| d.join("attachments"))
        .ok_or_else(|| CliError::Local("no config folder: set HOME or XDG_CONFIG_HOME".into()))
}

/// The folder of upload records: the state folder, else the cache folder.
pub fn state_dir() -> CliResult<PathBuf> {
    dirs::state_dir()
        .or_else(dirs::cache_dir)
        .map(|d| d.join("attachments"))
        .ok_or_else(|| CliError::Local("no state folder: set HOME or XDG_STATE_HOME".into()))
}

pub fn login_path() -> CliResult<PathBuf> {
    Ok(config_dir()?.join("login.json"))
}

/// The stored login, if any.
pub fn load() -> CliResult<Option<Login>> {
    let path = login_path()?;
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            CliError::Local(format!(
                "{} is not a login ({e}); run `attachments login` again",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CliError::file(&path, "read", e)),
    }
}

/// Stores a login, readable and writable by the user only (the folder too).
pub fn save(login: &Login) -> CliResult<PathBuf> {
    let path = login_path()?;
    let json = serde_json::to_vec_pretty(login)
        .map_err(|e| CliError::Local(format!("cannot encode the login: {e}")))?;
    write_private(&path, &json)?;
    Ok(path)
}

/// Writes a file only its owner may read, through a temporary file renamed over it (so a
/// crash never leaves half a file).
pub fn write_private(path: &Path, bytes: &[u8]) -> CliResult<()> {
    let dir = path
        .parent()
        .ok_or_else(|| CliError::Local(format!("{} has no folder", path.display())))?;
    create_private_dir(dir)?;
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(&tmp)
        .map_err(|e| CliError::file(&tmp, "write", e))?;
    // An older file of the same name may have been more open: the mode only applies on create.
    #[cfg(unix)]
    std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(|e| CliError::file(&tmp, "protect", e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| CliError::file(&tmp, "write", e))?;
    std::fs::rename(&tmp, path).map_err(|e| CliError::file(path, "write", e))
}

pub fn create_private_dir(dir: &Path) -> CliResult<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir).map_err(|e| CliError::file(dir, "create", e))
}

/// The API URL, without a trailing slash, after a light check.
pub fn normalize_url(url: &str) -> CliResult<String> {
    let url = url.trim().trim_end_matches('/');
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(CliError::Local(format!(
            "{url:?} is not an API URL; give one such as http://127.0.0.1:3000"
        )));
    }
    Ok(url.to_owned())
}
