//! Operating a session: hooks, metrics and health checks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moltres_connectors::remote::PoolStatus;

use crate::observe::{FnHook, MetricsSnapshot, QueryHook, QueryInfo, QueryOutcome};
use crate::session::Moltres;

/// One source's health ([`Moltres::check_health`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SourceHealth {
    /// The source's name.
    pub name: String,
    /// Its kind (`postgres`, `files`, ...).
    pub kind: String,
    /// It answered (a database: a round trip on a pooled connection; a
    /// local directory or file: it can be read).
    pub healthy: bool,
    /// How long the check took.
    pub latency: Duration,
    /// What the server reports as its version.
    pub server_version: Option<String>,
    /// Why it is not healthy.
    pub error: Option<String>,
    /// Its connection pool, for databases.
    pub pool: Option<PoolStatus>,
}

impl Moltres {
    /// Adds a hook called around every statement (see [`QueryHook`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "multi_thread")]
    /// # async fn main() -> moltres::Result<()> {
    /// use moltres::{HookResult, QueryHook, QueryInfo, QueryOutcome};
    ///
    /// struct Audit;
    /// impl QueryHook for Audit {
    ///     fn on_query_end(&self, q: &QueryInfo, o: &QueryOutcome) -> HookResult {
    ///         println!("#{} {} took {:?} ({} rows)", q.id, q.kind, o.elapsed, o.rows);
    ///         Ok(())
    ///     }
    /// }
    /// let db = moltres::Moltres::builder().without_env().build().await?;
    /// db.register_hook(std::sync::Arc::new(Audit));
    /// db.sql("SELECT 1").await?.collect().await?;
    /// # Ok(()) }
    /// ```
    pub fn register_hook(&self, hook: Arc<dyn QueryHook>) {
        self.observer.register(hook);
    }

    /// Calls `f` as each statement starts.
    pub fn on_query_start(&self, f: impl Fn(&QueryInfo) + Send + Sync + 'static) {
        self.register_hook(Arc::new(FnHook {
            start: Some(Box::new(f)),
            ..Default::default()
        }));
    }

    /// Calls `f` as each statement ends without an error.
    pub fn on_query_end(&self, f: impl Fn(&QueryInfo, &QueryOutcome) + Send + Sync + 'static) {
        self.register_hook(Arc::new(FnHook {
            end: Some(Box::new(f)),
            ..Default::default()
        }));
    }

    /// Calls `f` as each statement fails (`outcome.error` says why).
    pub fn on_query_error(&self, f: impl Fn(&QueryInfo, &QueryOutcome) + Send + Sync + 'static) {
        self.register_hook(Arc::new(FnHook {
            error: Some(Box::new(f)),
            ..Default::default()
        }));
    }

    /// The session's counters now: statements, errors, durations (p50,
    /// p95, p99), rows and bytes read per source, remote queries per source,
    /// each database's pool, bytes spilled. `.to_prometheus()` renders them
    /// for a `/metrics` endpoint.
    pub fn metrics(&self) -> MetricsSnapshot {
        let pools = self
            .sources()
            .into_iter()
            .map(|info| {
                let pool = self
                    .source(&info.name)
                    .ok()
                    .and_then(|s| s.database().pool_status());
                (info.name, pool)
            })
            .collect();
        self.observer.snapshot(pools)
    }

    /// Checks every attached source: a database answers a round trip on a
    /// pooled connection within `timeout` (its version and pool are
    /// reported); a local directory or file can be read. Never fails: a
    /// source that does not answer is reported unhealthy with the error.
    pub async fn check_health_within(&self, timeout: Duration) -> Vec<SourceHealth> {
        let mut out = Vec::new();
        for info in self.sources() {
            let started = Instant::now();
            let mut health = SourceHealth {
                name: info.name.clone(),
                kind: info.kind.clone(),
                healthy: true,
                latency: Duration::ZERO,
                server_version: None,
                error: None,
                pool: None,
            };
            match self.source(&info.name) {
                Ok(source) => {
                    let database = source.database();
                    match tokio::time::timeout(timeout, database.ping()).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => {
                            health.healthy = false;
                            health.error = Some(e.to_string());
                        }
                        Err(_) => {
                            health.healthy = false;
                            health.error = Some(format!("no answer within {timeout:?}"));
                        }
                    }
                    health.latency = started.elapsed();
                    health.server_version = database.server_version();
                    health.pool = database.pool_status();
                }
                Err(_) => {
                    // Files: a local path must be readable; object stores are
                    // checked when read.
                    let url = info.url.as_str();
                    if !url.contains("://") || url.starts_with("file://") {
                        let path = url.trim_start_matches("file://");
                        if let Err(e) = std::fs::metadata(path) {
                            health.healthy = false;
                            health.error = Some(format!("cannot read '{path}': {e}"));
                        }
                    }
                    health.latency = started.elapsed();
                }
            }
            out.push(health);
        }
        out
    }

    /// [`check_health_within`](Self::check_health_within) 5 seconds.
    pub async fn check_health(&self) -> Vec<SourceHealth> {
        self.check_health_within(Duration::from_secs(5)).await
    }
}
