//! What can go wrong, as one line that says what to do, and the exit code scripts can test.

/// Exit codes (also in `--help` and the README).
pub mod exit {
    /// A local file could not be read or written.
    pub const LOCAL: i32 = 1;
    /// Not logged in: no API URL or key.
    pub const NOT_LOGGED_IN: i32 = 3;
    /// The API refused the key (401).
    pub const UNAUTHORIZED: i32 = 4;
    /// No such parent or attachment (404).
    pub const NOT_FOUND: i32 = 5;
    /// The server refused the request or the file (400, 409, 413, 415, 422).
    pub const REFUSED: i32 = 6;
    /// The server could not be reached or failed (network, 5xx): running again resumes.
    pub const UNAVAILABLE: i32 = 7;
}

/// A failure of a command.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Local(String),
    #[error("not logged in; run `attachments login --url URL` (or set ATTACHMENTS_URL and ATTACHMENTS_KEY)")]
    NotLoggedIn,
    #[error("the API refused the key ({0}); run `attachments login` with a valid key")]
    Unauthorized(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Unavailable(String),
}

impl CliError {
    /// The process's exit code for this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Local(_) => exit::LOCAL,
            Self::NotLoggedIn => exit::NOT_LOGGED_IN,
            Self::Unauthorized(_) => exit::UNAUTHORIZED,
            Self::NotFound(_) => exit::NOT_FOUND,
            Self::Refused(_) => exit::REFUSED,
            Self::Unavailable(_) => exit::UNAVAILABLE,
        }
    }

    /// The same failure, its message led by `what` (which file of several it was about).
    pub fn about(self, what: &str) -> Self {
        match self {
            Self::Local(m) => Self::Local(format!("{what}: {m}")),
            Self::NotLoggedIn => Self::NotLoggedIn,
            Self::Unauthorized(m) => Self::Unauthorized(m),
            Self::NotFound(m) => Self::NotFound(format!("{what}: {m}")),
            Self::Refused(m) => Self::Refused(format!("{what}: {m}")),
            Self::Unavailable(m) => Self::Unavailable(format!("{what}: {m}")),
        }
    }

    /// A local file problem, naming the file.
    pub fn file(path: &std::path::Path, what: &str, e: std::io::Error) -> Self {
        Self::Local(format!("cannot {what} {}: {e}", path.display()))
    }
}

pub type CliResult<T> = Result<T, CliError>;
