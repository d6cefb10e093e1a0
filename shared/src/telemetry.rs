//! Logging: human-readable locally, JSON on Lambda (with the request id of the invocation's
//! span). `RUST_LOG` filters (`info`, `warn,attachments=debug`, …), `info` by default.

use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt;
use tracing_subscriber::prelude::*;

/// `RUST_LOG` as `level` and `target=level` directives; a value that does not parse means
/// the default. `Targets` needs no regex engine (`EnvFilter` would link one into every
/// function, about 0.3 MB, for span and field filters nobody uses here).
fn filter() -> Targets {
    std::env::var("RUST_LOG")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| Targets::new().with_default(Level::INFO))
}

/// Installs the global subscriber once; later calls do nothing.
pub fn init(json: bool) {
    let registry = tracing_subscriber::registry().with(filter());
    let _ = if json {
        registry
            .with(
                fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false)
                    .flatten_event(true)
                    .with_ansi(false)
                    .without_time(),
            )
            .try_init()
    } else {
        registry.with(fmt::layer().with_target(false)).try_init()
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_log_directives_parse_without_a_regex_engine() {
        let t: Targets = "warn,attachments=debug".parse().unwrap();
        assert!(t.would_enable("attachments::service", &Level::DEBUG));
        assert!(!t.would_enable("hyper", &Level::INFO));
        assert!("attachments=loud".parse::<Targets>().is_err());
    }
}
