//! Logging: human-readable locally, JSON on Lambda (with the request id of the invocation's
//! span). `RUST_LOG` filters (`info`, `warn,attachments=debug`, …), `info` by default.

use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt;
use tracing_subscriber::prelude::*;

/// The Lambda runtime logs whole events, API keys and bodies included, at trace and debug
/// level: whatever `RUST_LOG` asks for, these targets log at most `info`.
const EVENT_LOGGERS: [&str; 2] = ["lambda_runtime", "lambda_http"];

/// `RUST_LOG` as `level` and `target=level` directives; a value that does not parse means
/// the default. `Targets` needs no regex engine (`EnvFilter` would link one into every
/// function, about 0.3 MB, for span and field filters nobody uses here).
fn filter(rust_log: Option<&str>) -> Targets {
    let asked: Targets = rust_log
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| Targets::new().with_default(Level::INFO));
    EVENT_LOGGERS.iter().fold(asked, |t, target| {
        let level = match t.iter().find(|(name, _)| name == target) {
            Some((_, l)) => l.min(tracing::level_filters::LevelFilter::INFO),
            None => t
                .default_level()
                .unwrap_or(tracing::level_filters::LevelFilter::OFF)
                .min(tracing::level_filters::LevelFilter::INFO),
        };
        t.with_target(*target, level)
    })
}

/// Installs the global subscriber once; later calls do nothing.
pub fn init(json: bool) {
    let registry =
        tracing_subscriber::registry().with(filter(std::env::var("RUST_LOG").ok().as_deref()));
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
    fn the_runtime_never_logs_events_whatever_rust_log_says() {
        for asked in [
            Some("trace"),
            Some("debug,lambda_runtime=trace"),
            None,
            Some("nonsense="),
        ] {
            let t = filter(asked);
            for target in EVENT_LOGGERS {
                assert!(!t.would_enable(target, &Level::DEBUG), "{asked:?} {target}");
            }
        }
        let t = filter(Some("trace"));
        assert!(t.would_enable("lambda_runtime", &Level::INFO));
        assert!(t.would_enable("attachments::service", &Level::TRACE));
        assert!(!filter(Some("warn")).would_enable("lambda_runtime", &Level::INFO));
    }

    #[test]
    fn rust_log_directives_parse_without_a_regex_engine() {
        let t: Targets = "warn,attachments=debug".parse().unwrap();
        assert!(t.would_enable("attachments::service", &Level::DEBUG));
        assert!(!t.would_enable("hyper", &Level::INFO));
        assert!("attachments=loud".parse::<Targets>().is_err());
    }
}
