//! Logs through `tracing`, configured from the environment.
//!
//! * `MOLTRES_LOG` (else `RUST_LOG`): the filter, in `tracing`'s
//!   `EnvFilter` syntax (`info`, `moltres=debug,warn`); default `warn`.
//! * `MOLTRES_LOG_FORMAT`: `text` (default) or `json` (one object per line).
//!
//! Moltres logs under the target `moltres` (`moltres::query` for each
//! statement: id, kind, duration, rows, the SQL with passwords replaced by
//! `***`, at info, failures included (the caller gets the error); slow
//! statements, `MOLTRES_SLOW_QUERY_MS`, at warn;
//! `moltres::hooks` for hooks that fail). Logs go to standard error, with
//! every password this process has seen replaced by `***`, whatever wrote
//! the line.

use tracing_subscriber::EnvFilter;

use crate::error::{Error, Result};

/// Installs a global subscriber as the environment says. Call it once, at
/// start; an application with its own subscriber does not call it (Moltres
/// logs into whatever subscriber is installed).
pub fn init() -> Result<()> {
    init_from(|key| std::env::var(key).ok())
}

/// [`init`] with the variables read through `get`.
pub fn init_from(get: impl Fn(&str) -> Option<String>) -> Result<()> {
    let filter = get("MOLTRES_LOG")
        .or_else(|| get("RUST_LOG"))
        .filter(|f| !f.trim().is_empty())
        .unwrap_or_else(|| "warn".to_string());
    let filter = EnvFilter::try_new(&filter).map_err(|e| Error::Config {
        setting: "MOLTRES_LOG".to_string(),
        message: format!("'{filter}': {e}"),
    })?;
    let format = get("MOLTRES_LOG_FORMAT").unwrap_or_else(|| "text".to_string());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(|| Scrubbed(std::io::stderr()));
    let installed = match format.trim().to_ascii_lowercase().as_str() {
        "text" | "" => builder.try_init(),
        "json" => builder.json().flatten_event(true).try_init(),
        other => {
            return Err(Error::Config {
                setting: "MOLTRES_LOG_FORMAT".to_string(),
                message: format!("'{other}' is not text or json"),
            });
        }
    };
    installed.map_err(|e| Error::Config {
        setting: "MOLTRES_LOG".to_string(),
        message: format!("a global logger is already installed: {e}"),
    })
}

/// Standard error, with every password this process has seen replaced by
/// `***` (a driver's or DataFusion's own log line may quote one). The
/// formatter writes each event in one call.
struct Scrubbed<W>(W);

impl<W: std::io::Write> std::io::Write for Scrubbed<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        self.0
            .write_all(moltres_connectors::secrets::scrub(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}
