//! What an operator sees: logs (human-readable locally, JSON on Lambda with the request id of the
//! invocation's span; `RUST_LOG` filters, `info` by default), one line per request ([`request`]),
//! CloudWatch metrics ([`metrics`], written by [`emf`]) and the AWS calls as X-Ray subsegments
//! ([`xray`]).

pub mod emf;
pub mod metrics;
pub mod request;
pub mod xray;

use tracing::level_filters::LevelFilter;
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt;
use tracing_subscriber::prelude::*;

use crate::config::Config;

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
        let asked = t.iter().find(|(name, _)| name == target).map(|(_, l)| l);
        let level = asked.or(t.default_level()).unwrap_or(LevelFilter::OFF);
        t.with_target(*target, level.min(LevelFilter::INFO))
    })
}

/// Installs the global subscriber and the metrics' namespace once; later calls do nothing.
/// JSON lines carry no time on Lambda, where CloudWatch Logs stamps every line itself.
pub fn init(cfg: &Config) {
    let _ = emf::NAMESPACE.set(cfg.metrics_namespace.clone());
    let on_lambda = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some();
    let json = fmt::layer()
        .json()
        .with_span_list(false)
        .flatten_event(true)
        .with_ansi(false);
    let logs = match (cfg.json_logs, on_lambda) {
        (true, true) => json.without_time().boxed(),
        (true, false) => json.boxed(),
        (false, _) => fmt::layer().with_target(false).boxed(),
    };
    let _ = tracing_subscriber::registry()
        .with(logs.with_filter(filter(std::env::var("RUST_LOG").ok().as_deref())))
        .try_init();
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
