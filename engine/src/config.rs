//! Settings: defaults, a TOML file, the environment and explicit values, in
//! rising precedence (explicit > environment > file > defaults).
//!
//! | setting | environment | TOML key | default |
//! |---|---|---|---|
//! | memory limit | `MOLTRES_MEMORY_LIMIT` | `memory_limit` | half of physical memory |
//! | spill directory | `MOLTRES_SPILL_DIR` | `spill_dir` | the OS temp directory |
//! | batch size | `MOLTRES_BATCH_SIZE` | `batch_size` | 8192 |
//! | partitions | `MOLTRES_PARTITIONS` | `partitions` | number of CPU cores |
//! | config file | `MOLTRES_CONFIG` | - | none |
//! | query timeout | `MOLTRES_QUERY_TIMEOUT` | `query_timeout` | none |
//! | concurrent queries | `MOLTRES_MAX_CONCURRENT_QUERIES` | `max_concurrent_queries` | unlimited |
//! | queue wait | `MOLTRES_QUEUE_TIMEOUT` | `queue_timeout` | 30s |
//! | slow query log | `MOLTRES_SLOW_QUERY_MS` | `slow_query_ms` | off |
//! | pool size | `MOLTRES_POOL_MAX_SIZE` | `pool.max_size` | per database |
//! | pool wait | `MOLTRES_POOL_TIMEOUT` | `pool.timeout` | 30s |
//! | pool idle timeout | `MOLTRES_POOL_IDLE_TIMEOUT` | `pool.idle_timeout` | none |
//! | pool lifetime | `MOLTRES_POOL_MAX_LIFETIME` | `pool.max_lifetime` | none |
//! | pool pre-ping | `MOLTRES_POOL_PRE_PING` | `pool.pre_ping` | false |
//!
//! Pool settings are defaults for every database attached: a URL parameter
//! (`?pool_max_size=4`) or an ATTACH option wins over them.
//!
//! Sources to attach at start-up live in the file only, as
//! `[sources.NAME] url = "..."` with optional `read_only = true` and reader
//! options. Every value is checked when the session is built; a bad one is an
//! [`Error::Config`] naming the setting and where it came from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// How much memory queries may use before operators spill to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryLimit {
    /// No limit: nothing spills (a sort larger than memory fails).
    Unlimited,
    /// At most this many bytes.
    Bytes(usize),
}

impl MemoryLimit {
    /// Parses `"256MiB"`, `"2GB"`, `"512M"`, `"1073741824"`, `"50%"` (of
    /// physical memory) or `"unlimited"`.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let t = text.trim();
        if t.eq_ignore_ascii_case("unlimited") || t.eq_ignore_ascii_case("none") {
            return Ok(MemoryLimit::Unlimited);
        }
        if let Some(percent) = t.strip_suffix('%') {
            let p: f64 = percent
                .trim()
                .parse()
                .map_err(|_| format!("'{text}' is not a percentage"))?;
            if !(p > 0.0 && p <= 100.0) {
                return Err(format!("'{text}' must be between 0% and 100%"));
            }
            let total = physical_memory()
                .ok_or_else(|| format!("'{text}': physical memory size is unknown here"))?;
            return Ok(MemoryLimit::Bytes((total as f64 * p / 100.0) as usize));
        }
        parse_bytes(t).map(MemoryLimit::Bytes)
    }

    /// The default: half of physical memory, or unlimited where unknown.
    pub fn default_for_machine() -> Self {
        physical_memory()
            .map(|b| MemoryLimit::Bytes(b / 2))
            .unwrap_or(MemoryLimit::Unlimited)
    }
}

impl std::fmt::Display for MemoryLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MemoryLimit::Unlimited => write!(f, "unlimited"),
            MemoryLimit::Bytes(b) => write!(f, "{}", format_bytes(*b as u64)),
        }
    }
}

/// Parses a byte size with an optional unit (K, KB, KiB, M, MB, MiB, G, GB,
/// GiB, T, TB, TiB; decimal units are powers of 1000, binary of 1024).
pub fn parse_bytes(text: &str) -> std::result::Result<usize, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a size (examples: 512MiB, 2GB, 1048576)"))?;
    let multiplier: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "kb" => 1e3,
        "m" | "mib" => 1024.0 * 1024.0,
        "mb" => 1e6,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "gb" => 1e9,
        "t" | "tib" => 1024.0_f64.powi(4),
        "tb" => 1e12,
        other => {
            return Err(format!(
                "'{text}': unknown unit '{other}' (use KiB, MiB, GiB, KB, MB, GB)"
            ));
        }
    };
    let bytes = number * multiplier;
    if bytes < 1.0 {
        return Err(format!("'{text}' must be at least one byte"));
    }
    Ok(bytes as usize)
}

/// `1.5 GiB`, `256.0 MiB`, `12 B`.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Parses a duration: `500ms`, `30s`, `5m`, `1h`, or a number of seconds
/// (`2.5`). `0` is zero; more than a year is refused.
pub fn parse_duration(text: &str) -> std::result::Result<std::time::Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a duration (500ms, 30s, 5m, 1h)"))?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "ms" => 0.001,
        "" | "s" | "sec" | "secs" => 1.0,
        "m" | "min" | "mins" => 60.0,
        "h" => 3600.0,
        other => return Err(format!("'{text}': unknown unit '{other}' (ms, s, m, h)")),
    };
    let seconds = number * scale;
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(format!("'{text}' is not a duration"));
    }
    let longest = moltres_connectors::remote::LONGEST_DURATION;
    if seconds > longest.as_secs_f64() {
        return Err(format!(
            "'{text}' is longer than the longest duration allowed ({}h, a year)",
            longest.as_secs() / 3600
        ));
    }
    // A positive duration too short to represent would read as zero, which
    // means "none" for timeouts: refused rather than turned off.
    if seconds > 0.0 && seconds < 0.001 {
        return Err(format!(
            "'{text}' is shorter than the shortest duration allowed (1ms)"
        ));
    }
    Ok(std::time::Duration::from_secs_f64(seconds))
}

/// A duration as `250ms`, `30s`, `1.5s`, `5m`.
pub fn format_duration(d: std::time::Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 1000.0 {
        format!("{}ms", ms.round())
    } else if d.as_secs().is_multiple_of(60) && d.subsec_nanos() == 0 && d.as_secs() >= 60 {
        format!("{}m", d.as_secs() / 60)
    } else {
        let s = format!("{:.3}", d.as_secs_f64());
        format!("{}s", s.trim_end_matches('0').trim_end_matches('.'))
    }
}

/// Total physical memory in bytes (Linux), from /proc/meminfo.
fn physical_memory() -> Option<usize> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// A source to attach when the session starts (`[sources.NAME]` in the file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceConfig {
    /// The alias (`NAME`).
    pub name: String,
    /// The URL or path.
    pub url: String,
    /// Refuse writes.
    pub read_only: bool,
    /// Other keys, passed to the source kind as options.
    pub options: BTreeMap<String, String>,
}

/// The settings a session runs with, after precedence has been applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Memory queries may use before spilling.
    pub memory_limit: MemoryLimit,
    /// Where spill files go; `None` is the OS temp directory.
    pub spill_dir: Option<PathBuf>,
    /// Rows per Arrow record batch.
    pub batch_size: usize,
    /// Parallelism of scans, joins and aggregates.
    pub target_partitions: usize,
    /// Sources attached at start-up.
    pub sources: Vec<SourceConfig>,
    /// The TOML file read, if any.
    pub config_file: Option<PathBuf>,
    /// The longest a query may run; `None`: no limit.
    pub query_timeout: Option<std::time::Duration>,
    /// Queries running at once; more wait. `None`: no cap.
    pub max_concurrent_queries: Option<usize>,
    /// How long a query waits for a slot before it is refused.
    pub queue_timeout: std::time::Duration,
    /// Queries at least this slow are logged at warn.
    pub slow_query: Option<std::time::Duration>,
    /// Pool options every database gets unless its URL or ATTACH sets
    /// them (`pool_max_size`, `pool_timeout`, `pool_idle_timeout`,
    /// `pool_max_lifetime`, `pool_pre_ping`).
    pub pool: BTreeMap<String, String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            memory_limit: MemoryLimit::default_for_machine(),
            spill_dir: None,
            batch_size: 8192,
            target_partitions: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            sources: Vec::new(),
            config_file: None,
            query_timeout: None,
            max_concurrent_queries: None,
            queue_timeout: std::time::Duration::from_secs(30),
            slow_query: None,
            pool: BTreeMap::new(),
        }
    }
}

/// Values set in one layer (file, environment or code); unset ones fall through.
#[derive(Debug, Clone, Default)]
pub struct SettingsLayer {
    /// See [`Settings::memory_limit`].
    pub memory_limit: Option<MemoryLimit>,
    /// See [`Settings::spill_dir`].
    pub spill_dir: Option<PathBuf>,
    /// See [`Settings::batch_size`].
    pub batch_size: Option<usize>,
    /// See [`Settings::target_partitions`].
    pub target_partitions: Option<usize>,
    /// See [`Settings::query_timeout`] (zero: no limit).
    pub query_timeout: Option<std::time::Duration>,
    /// See [`Settings::max_concurrent_queries`] (zero: no cap).
    pub max_concurrent_queries: Option<usize>,
    /// See [`Settings::queue_timeout`].
    pub queue_timeout: Option<std::time::Duration>,
    /// See [`Settings::slow_query`] (zero: off).
    pub slow_query: Option<std::time::Duration>,
    /// See [`Settings::pool`].
    pub pool: BTreeMap<String, String>,
}

impl SettingsLayer {
    fn apply(&self, settings: &mut Settings) {
        if let Some(v) = self.memory_limit {
            settings.memory_limit = v;
        }
        if let Some(v) = &self.spill_dir {
            settings.spill_dir = Some(v.clone());
        }
        if let Some(v) = self.batch_size {
            settings.batch_size = v;
        }
        if let Some(v) = self.target_partitions {
            settings.target_partitions = v;
        }
        if let Some(v) = self.query_timeout {
            settings.query_timeout = (!v.is_zero()).then_some(v);
        }
        if let Some(v) = self.max_concurrent_queries {
            settings.max_concurrent_queries = (v > 0).then_some(v);
        }
        if let Some(v) = self.queue_timeout {
            settings.queue_timeout = v;
        }
        if let Some(v) = self.slow_query {
            settings.slow_query = (!v.is_zero()).then_some(v);
        }
        for (key, value) in &self.pool {
            settings.pool.insert(key.clone(), value.clone());
        }
    }
}

/// The pool settings: (name in the environment, key in `[pool]`, option).
const POOL_KEYS: [(&str, &str, &str); 5] = [
    ("MOLTRES_POOL_MAX_SIZE", "max_size", "pool_max_size"),
    ("MOLTRES_POOL_TIMEOUT", "timeout", "pool_timeout"),
    (
        "MOLTRES_POOL_IDLE_TIMEOUT",
        "idle_timeout",
        "pool_idle_timeout",
    ),
    (
        "MOLTRES_POOL_MAX_LIFETIME",
        "max_lifetime",
        "pool_max_lifetime",
    ),
    ("MOLTRES_POOL_PRE_PING", "pre_ping", "pool_pre_ping"),
];

/// Checks a pool setting's value; the option's value (seconds for times).
fn pool_value(setting: &str, option: &str, text: &str) -> Result<String> {
    match option {
        "pool_max_size" => parse_count(setting, text).map(|n| n.to_string()),
        "pool_pre_ping" => match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok("true".into()),
            "false" | "0" | "no" | "off" => Ok("false".into()),
            _ => Err(config_error(
                setting,
                format!("'{text}' is not true or false"),
            )),
        },
        _ => {
            let d = parse_duration(text).map_err(|m| config_error(setting, m))?;
            if d.is_zero() {
                return Err(config_error(setting, "must be more than zero"));
            }
            Ok(d.as_secs_f64().to_string())
        }
    }
}

fn duration_setting(setting: &str, text: &str) -> Result<std::time::Duration> {
    parse_duration(text).map_err(|m| config_error(setting, m))
}

fn millis_setting(setting: &str, text: &str) -> Result<std::time::Duration> {
    text.trim()
        .parse::<u64>()
        .map(std::time::Duration::from_millis)
        .map_err(|_| config_error(setting, format!("'{text}' is not a number of milliseconds")))
}

fn count_or_zero(setting: &str, text: &str) -> Result<usize> {
    text.trim()
        .parse::<usize>()
        .map_err(|_| config_error(setting, format!("'{text}' is not a number (0: no limit)")))
}

fn config_error(setting: &str, message: impl Into<String>) -> Error {
    Error::Config {
        setting: setting.to_string(),
        message: message.into(),
    }
}

fn parse_count(setting: &str, text: &str) -> Result<usize> {
    match text.trim().parse::<usize>() {
        Ok(0) => Err(config_error(
            setting,
            format!("'{text}' must be at least 1"),
        )),
        Ok(n) => Ok(n),
        Err(_) => Err(config_error(
            setting,
            format!("'{text}' is not a positive integer"),
        )),
    }
}

/// Reads the `MOLTRES_*` variables through `get` (the process environment in
/// production, a map in tests).
pub fn env_layer(get: impl Fn(&str) -> Option<String>) -> Result<(SettingsLayer, Option<PathBuf>)> {
    let mut layer = SettingsLayer::default();
    let non_empty = |key: &str| get(key).filter(|v| !v.trim().is_empty());
    if let Some(v) = non_empty("MOLTRES_MEMORY_LIMIT") {
        layer.memory_limit =
            Some(MemoryLimit::parse(&v).map_err(|m| config_error("MOLTRES_MEMORY_LIMIT", m))?);
    }
    if let Some(v) = non_empty("MOLTRES_SPILL_DIR") {
        layer.spill_dir = Some(PathBuf::from(v));
    }
    if let Some(v) = non_empty("MOLTRES_BATCH_SIZE") {
        layer.batch_size = Some(parse_count("MOLTRES_BATCH_SIZE", &v)?);
    }
    if let Some(v) = non_empty("MOLTRES_PARTITIONS") {
        layer.target_partitions = Some(parse_count("MOLTRES_PARTITIONS", &v)?);
    }
    if let Some(v) = non_empty("MOLTRES_QUERY_TIMEOUT") {
        layer.query_timeout = Some(duration_setting("MOLTRES_QUERY_TIMEOUT", &v)?);
    }
    if let Some(v) = non_empty("MOLTRES_MAX_CONCURRENT_QUERIES") {
        layer.max_concurrent_queries = Some(count_or_zero("MOLTRES_MAX_CONCURRENT_QUERIES", &v)?);
    }
    if let Some(v) = non_empty("MOLTRES_QUEUE_TIMEOUT") {
        layer.queue_timeout = Some(duration_setting("MOLTRES_QUEUE_TIMEOUT", &v)?);
    }
    if let Some(v) = non_empty("MOLTRES_SLOW_QUERY_MS") {
        layer.slow_query = Some(millis_setting("MOLTRES_SLOW_QUERY_MS", &v)?);
    }
    for (variable, _, option) in POOL_KEYS {
        if let Some(v) = non_empty(variable) {
            layer
                .pool
                .insert(option.to_string(), pool_value(variable, option, &v)?);
        }
    }
    Ok((layer, non_empty("MOLTRES_CONFIG").map(PathBuf::from)))
}

/// Reads a TOML settings file.
pub fn file_layer(path: &Path) -> Result<(SettingsLayer, Vec<SourceConfig>)> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        config_error(
            "MOLTRES_CONFIG",
            format!("cannot read config file '{}': {e}", path.display()),
        )
    })?;
    parse_file(&text, &path.display().to_string())
}

/// Parses the TOML text of a settings file named `origin` (for messages).
pub fn parse_file(text: &str, origin: &str) -> Result<(SettingsLayer, Vec<SourceConfig>)> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        // Not the error's own text: it quotes the line, which may be a
        // source's URL with its password.
        let at = e
            .span()
            .map(|span| {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                format!(" at line {line}, column {column}")
            })
            .unwrap_or_default();
        config_error("MOLTRES_CONFIG", format!("{origin}{at}: {}", e.message()))
    })?;
    let mut layer = SettingsLayer::default();
    let mut sources = Vec::new();
    for (key, value) in &table {
        let setting = format!("{key} in {origin}");
        match key.as_str() {
            "memory_limit" => {
                let text = value_text(value);
                layer.memory_limit =
                    Some(MemoryLimit::parse(&text).map_err(|m| config_error(&setting, m))?);
            }
            "spill_dir" => {
                let Some(dir) = value.as_str() else {
                    return Err(config_error(&setting, "must be a string (a directory)"));
                };
                layer.spill_dir = Some(PathBuf::from(dir));
            }
            "batch_size" => layer.batch_size = Some(parse_count(&setting, &value_text(value))?),
            "partitions" => {
                layer.target_partitions = Some(parse_count(&setting, &value_text(value))?)
            }
            "query_timeout" => {
                layer.query_timeout = Some(duration_setting(&setting, &value_text(value))?)
            }
            "max_concurrent_queries" => {
                layer.max_concurrent_queries = Some(count_or_zero(&setting, &value_text(value))?)
            }
            "queue_timeout" => {
                layer.queue_timeout = Some(duration_setting(&setting, &value_text(value))?)
            }
            "slow_query_ms" => {
                layer.slow_query = Some(millis_setting(&setting, &value_text(value))?)
            }
            "pool" => {
                let Some(entries) = value.as_table() else {
                    return Err(config_error(&setting, "must be a [pool] table"));
                };
                for (key, value) in entries {
                    let setting = format!("pool.{key} in {origin}");
                    let Some((_, _, option)) = POOL_KEYS.iter().find(|(_, k, _)| k == key) else {
                        return Err(config_error(
                            &setting,
                            "unknown pool setting (known: max_size, timeout, idle_timeout, max_lifetime, pre_ping)",
                        ));
                    };
                    layer.pool.insert(
                        option.to_string(),
                        pool_value(&setting, option, &value_text(value))?,
                    );
                }
            }
            "sources" => {
                let Some(entries) = value.as_table() else {
                    return Err(config_error(
                        &setting,
                        "must be a table of [sources.NAME] entries",
                    ));
                };
                for (name, entry) in entries {
                    sources.push(parse_source(name, entry, origin)?);
                }
            }
            other => {
                return Err(config_error(
                    &setting,
                    format!(
                        "unknown setting '{other}' (known: memory_limit, spill_dir, batch_size, partitions, \
                         query_timeout, max_concurrent_queries, queue_timeout, slow_query_ms, pool, sources)"
                    ),
                ));
            }
        }
    }
    Ok((layer, sources))
}

fn value_text(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn parse_source(name: &str, entry: &toml::Value, origin: &str) -> Result<SourceConfig> {
    let setting = format!("sources.{name} in {origin}");
    let Some(entry) = entry.as_table() else {
        return Err(config_error(&setting, "must be a table with a url"));
    };
    let mut url = None;
    let mut read_only = false;
    let mut options = BTreeMap::new();
    for (key, value) in entry {
        match key.as_str() {
            "url" => url = value.as_str().map(str::to_string),
            "read_only" => {
                read_only = value.as_bool().ok_or_else(|| {
                    config_error(
                        &format!("sources.{name}.read_only in {origin}"),
                        "must be true or false",
                    )
                })?
            }
            other => {
                options.insert(other.to_ascii_lowercase(), value_text(value));
            }
        }
    }
    let url = url.ok_or_else(|| {
        config_error(
            &format!("sources.{name}.url in {origin}"),
            "missing (a string)",
        )
    })?;
    Ok(SourceConfig {
        name: name.to_string(),
        url,
        read_only,
        options,
    })
}

/// Looks up an environment variable (the process environment, or a map in tests).
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Combines the layers: explicit > environment > file > defaults.
/// The most rows per batch a session takes.
pub const MAX_BATCH_SIZE: usize = 1 << 20;

/// The most partitions a session takes.
pub const MAX_PARTITIONS: usize = 1024;

pub fn resolve(
    explicit: &SettingsLayer,
    explicit_config_file: Option<&Path>,
    env: Option<EnvLookup<'_>>,
) -> Result<Settings> {
    let (env_layer, env_file) = match env {
        Some(get) => env_layer(get)?,
        None => (SettingsLayer::default(), None),
    };
    let config_file = explicit_config_file.map(Path::to_path_buf).or(env_file);
    let mut settings = Settings::default();
    if let Some(path) = &config_file {
        let (file_layer, sources) = file_layer(path)?;
        file_layer.apply(&mut settings);
        settings.sources = sources;
    }
    env_layer.apply(&mut settings);
    explicit.apply(&mut settings);
    settings.config_file = config_file;
    // Past these, a query allocates for every partition or row before it
    // reads one, and the process aborts when the allocation fails.
    if settings.batch_size > MAX_BATCH_SIZE {
        return Err(config_error(
            "batch size (MOLTRES_BATCH_SIZE / batch_size / --batch-size)",
            format!("{} is more than {MAX_BATCH_SIZE} rows", settings.batch_size),
        ));
    }
    if settings.target_partitions > MAX_PARTITIONS {
        return Err(config_error(
            "partitions (MOLTRES_PARTITIONS / partitions / --partitions)",
            format!(
                "{} is more than {MAX_PARTITIONS}",
                settings.target_partitions
            ),
        ));
    }
    if let Some(dir) = &settings.spill_dir
        && !dir.is_dir()
    {
        return Err(config_error(
            "spill directory (MOLTRES_SPILL_DIR / spill_dir)",
            format!("'{}' is not an existing directory", dir.display()),
        ));
    }
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn parses_sizes() {
        assert_eq!(parse_bytes("256MiB").unwrap(), 256 << 20);
        assert_eq!(parse_bytes("2GB").unwrap(), 2_000_000_000);
        assert_eq!(parse_bytes("512 m").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("1048576").unwrap(), 1 << 20);
        assert!(parse_bytes("lots").is_err());
        assert!(
            parse_bytes("12 parsecs")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert_eq!(
            MemoryLimit::parse("unlimited").unwrap(),
            MemoryLimit::Unlimited
        );
    }

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k: &str| map.get(k).cloned()
    }

    #[test]
    fn precedence_is_explicit_env_file_default() {
        let dir = std::env::temp_dir().join(format!("moltres-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("moltres.toml");
        std::fs::write(
            &file,
            "memory_limit = '1GiB'\nbatch_size = 100\npartitions = 3\n[sources.files]\nurl = 'testdata/'\nread_only = true\n",
        )
        .unwrap();
        let get = env(&[
            ("MOLTRES_BATCH_SIZE", "200"),
            ("MOLTRES_CONFIG", file.to_str().unwrap()),
        ]);
        let explicit = SettingsLayer {
            target_partitions: Some(7),
            ..Default::default()
        };
        let s = resolve(&explicit, None, Some(&get)).unwrap();
        assert_eq!(s.memory_limit, MemoryLimit::Bytes(1 << 30)); // file
        assert_eq!(s.batch_size, 200); // env over file
        assert_eq!(s.target_partitions, 7); // explicit over file
        assert_eq!(s.sources.len(), 1);
        assert!(s.sources[0].read_only);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn limits_and_pool_settings() {
        let dir = std::env::temp_dir().join(format!("moltres-limits-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("moltres.toml");
        std::fs::write(
            &file,
            "query_timeout = '2m'\nslow_query_ms = 250\n[pool]\nmax_size = 3\ntimeout = '5s'\npre_ping = true\n",
        )
        .unwrap();
        let get = env(&[
            ("MOLTRES_CONFIG", file.to_str().unwrap()),
            ("MOLTRES_QUERY_TIMEOUT", "1500ms"),
            ("MOLTRES_POOL_MAX_SIZE", "6"),
            ("MOLTRES_MAX_CONCURRENT_QUERIES", "4"),
        ]);
        let s = resolve(&SettingsLayer::default(), None, Some(&get)).unwrap();
        assert_eq!(
            s.query_timeout,
            Some(std::time::Duration::from_millis(1500))
        );
        assert_eq!(s.slow_query, Some(std::time::Duration::from_millis(250)));
        assert_eq!(s.max_concurrent_queries, Some(4));
        assert_eq!(s.pool["pool_max_size"], "6"); // env over file
        assert_eq!(s.pool["pool_timeout"], "5");
        assert_eq!(s.pool["pool_pre_ping"], "true");
        let err = parse_file("[pool]\nmax_sise = 3", "m.toml").unwrap_err();
        assert!(err.to_string().contains("pool.max_sise"), "{err}");
        let get = env(&[("MOLTRES_QUERY_TIMEOUT", "soon")]);
        let err = resolve(&SettingsLayer::default(), None, Some(&get)).unwrap_err();
        assert!(err.to_string().contains("MOLTRES_QUERY_TIMEOUT"), "{err}");
        assert_eq!(
            format_duration(std::time::Duration::from_millis(250)),
            "250ms"
        );
        assert_eq!(
            format_duration(std::time::Duration::from_millis(1500)),
            "1.5s"
        );
        assert_eq!(format_duration(std::time::Duration::from_secs(300)), "5m");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_values_name_the_setting() {
        let get = env(&[("MOLTRES_BATCH_SIZE", "lots")]);
        let err = resolve(&SettingsLayer::default(), None, Some(&get)).unwrap_err();
        assert!(err.to_string().contains("MOLTRES_BATCH_SIZE"), "{err}");
        let get = env(&[("MOLTRES_MEMORY_LIMIT", "12 parsecs")]);
        let err = resolve(&SettingsLayer::default(), None, Some(&get)).unwrap_err();
        assert!(err.to_string().contains("MOLTRES_MEMORY_LIMIT"), "{err}");
        let err = parse_file("memroy_limit = '1GB'", "m.toml").unwrap_err();
        assert!(err.to_string().contains("memroy_limit"), "{err}");
        let err = parse_file("[sources.x]\nread_only = true", "m.toml").unwrap_err();
        assert!(err.to_string().contains("sources.x.url"), "{err}");
        let get = env(&[("MOLTRES_SPILL_DIR", "/definitely/not/here")]);
        let err = resolve(&SettingsLayer::default(), None, Some(&get)).unwrap_err();
        assert!(err.to_string().contains("/definitely/not/here"), "{err}");
    }
}
