//! [`Moltres`], the embedded engine, and its [`MoltresBuilder`].

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{CatalogProviderList, DynamicFileCatalog, MemorySchemaProvider};
use datafusion::common::TableReference;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{
    FairSpillPool, MemoryPool, TrackConsumersPool, UnboundedMemoryPool,
};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use moltres_connectors::files::{
    CheckedCsvFormatFactory, CheckedParquetFormatFactory, LazyObjectStoreRegistry,
    PathTableFactory, ReadFileFunction, SessionHandle, SkippedRows,
};
use moltres_connectors::mysql::MysqlKind;
use moltres_connectors::postgres::PostgresKind;
use moltres_connectors::remote::{
    FederatingQueryPlanner, ImplyThroughCastKeys, JoinSameSourceFirst, JoinSmallTablesFirst,
    PushSemiJoinDown, RemoteSources, RemoteTopK, ScalarSubqueryAsWindow, WriteMode,
};
use moltres_connectors::source::{AttachRequest, FilesKind, SourceKind};
use moltres_connectors::sqlite::SqliteKind;

use crate::config::{self, MemoryLimit, Settings, SettingsLayer};
use crate::error::{Error, Result};
use crate::observe::{
    Limits, MoltresOptions, Observer, ObservingQueryPlanner, QueryTag, StatementKind, tag,
};
use crate::sources::{Source, SourceCatalogList, SourceInfo, SourceRegistry};
use crate::statements::{MoltresStatement, parse_moltres_statement, split_statements};

/// The catalog unqualified names resolve in.
pub const DEFAULT_CATALOG: &str = "moltres";
/// The schema unqualified names resolve in.
pub const DEFAULT_SCHEMA: &str = "public";

/// A Moltres session: a DataFusion [`SessionContext`] with a memory budget,
/// spilling, file sources and attached databases.
///
/// ```
/// # #[tokio::main(flavor = "multi_thread")]
/// # async fn main() -> moltres::Result<()> {
/// let db = moltres::Moltres::builder()
///     .memory_limit(moltres::MemoryLimit::Bytes(512 << 20))
///     .build()
///     .await?;
/// let df = db.sql("SELECT 1 + 1 AS two").await?;
/// let batches = df.collect().await?;
/// assert_eq!(batches[0].num_rows(), 1);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Moltres {
    ctx: SessionContext,
    registry: Arc<SourceRegistry>,
    catalogs: Arc<SourceCatalogList>,
    settings: Arc<Settings>,
    skipped_rows: Arc<SkippedRows>,
    remote_sources: Arc<RemoteSources>,
    pub(crate) observer: Arc<Observer>,
}

impl std::fmt::Debug for Moltres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Moltres")
            .field("settings", &self.settings)
            .field("sources", &self.registry.list())
            .finish()
    }
}

/// Builds a [`Moltres`] session. Values set here override the environment,
/// which overrides the config file (see [`crate::config`]).
#[derive(Debug, Clone)]
pub struct MoltresBuilder {
    explicit: SettingsLayer,
    config_file: Option<PathBuf>,
    use_env: bool,
    kinds: Vec<Arc<dyn SourceKind>>,
}

impl Default for MoltresBuilder {
    fn default() -> Self {
        Self {
            explicit: SettingsLayer::default(),
            config_file: None,
            use_env: true,
            kinds: vec![
                Arc::new(FilesKind),
                Arc::new(PostgresKind),
                Arc::new(SqliteKind),
                Arc::new(MysqlKind),
            ],
        }
    }
}

impl MoltresBuilder {
    /// Memory queries may use before sorts, aggregates and joins spill.
    pub fn memory_limit(mut self, limit: MemoryLimit) -> Self {
        self.explicit.memory_limit = Some(limit);
        self
    }

    /// The longest a query may run (`MOLTRES_QUERY_TIMEOUT`); zero: no limit.
    pub fn query_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.explicit.query_timeout = Some(timeout);
        self
    }

    /// Queries running at once; more wait for a slot
    /// (`MOLTRES_MAX_CONCURRENT_QUERIES`); zero: no cap.
    pub fn max_concurrent_queries(mut self, queries: usize) -> Self {
        self.explicit.max_concurrent_queries = Some(queries);
        self
    }

    /// How long a query waits for a slot before it is refused
    /// (`MOLTRES_QUEUE_TIMEOUT`, default 30s).
    pub fn queue_timeout(mut self, wait: std::time::Duration) -> Self {
        self.explicit.queue_timeout = Some(wait);
        self
    }

    /// Statements at least this slow are logged at warn
    /// (`MOLTRES_SLOW_QUERY_MS`); zero: off.
    pub fn slow_query(mut self, threshold: std::time::Duration) -> Self {
        self.explicit.slow_query = Some(threshold);
        self
    }

    /// Where spill files go (must exist).
    pub fn spill_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.explicit.spill_dir = Some(dir.into());
        self
    }

    /// Rows per record batch.
    pub fn batch_size(mut self, rows: usize) -> Self {
        self.explicit.batch_size = Some(rows);
        self
    }

    /// Parallelism of scans, joins and aggregates.
    pub fn target_partitions(mut self, partitions: usize) -> Self {
        self.explicit.target_partitions = Some(partitions);
        self
    }

    /// Reads settings and sources from this TOML file (instead of `MOLTRES_CONFIG`).
    pub fn config_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config_file = Some(path.into());
        self
    }

    /// Ignores `MOLTRES_*` environment variables (settings come from code and
    /// the config file only).
    pub fn without_env(mut self) -> Self {
        self.use_env = false;
        self
    }

    /// Adds a kind of source that `ATTACH` can dispatch to by URL scheme.
    pub fn with_source_kind(mut self, kind: Arc<dyn SourceKind>) -> Self {
        self.kinds.push(kind);
        self
    }

    /// Resolves the settings, builds the runtime and attaches the sources the
    /// config file names. Fails naming the first invalid setting.
    pub async fn build(self) -> Result<Moltres> {
        for (name, value) in [
            ("batch_size", self.explicit.batch_size),
            ("target_partitions", self.explicit.target_partitions),
        ] {
            if value == Some(0) {
                return Err(Error::Config {
                    setting: name.to_string(),
                    message: "must be at least 1".to_string(),
                });
            }
        }
        let env = |key: &str| std::env::var(key).ok();
        let settings = config::resolve(
            &self.explicit,
            self.config_file.as_deref(),
            self.use_env
                .then_some(&env as &dyn Fn(&str) -> Option<String>),
        )?;
        Moltres::from_settings(settings, self.kinds).await
    }
}

impl Moltres {
    /// A builder with defaults, the environment and `MOLTRES_CONFIG` in force.
    pub fn builder() -> MoltresBuilder {
        MoltresBuilder::default()
    }

    /// A session with settings from the environment and config file only.
    pub async fn new() -> Result<Self> {
        Self::builder().build().await
    }

    async fn from_settings(settings: Settings, kinds: Vec<Arc<dyn SourceKind>>) -> Result<Self> {
        let pool: Arc<dyn MemoryPool> = match settings.memory_limit {
            MemoryLimit::Unlimited => Arc::new(UnboundedMemoryPool::default()),
            MemoryLimit::Bytes(bytes) => Arc::new(TrackConsumersPool::new(
                FairSpillPool::new(bytes),
                NonZeroUsize::new(5).expect("5 is not zero"),
            )),
        };
        let disk_mode = match &settings.spill_dir {
            Some(dir) => DiskManagerMode::Directories(vec![dir.clone()]),
            None => DiskManagerMode::OsTmpDirectory,
        };
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(pool)
            .with_disk_manager_builder(DiskManagerBuilder::default().with_mode(disk_mode))
            .with_object_store_registry(Arc::new(LazyObjectStoreRegistry::new()))
            .build_arc()?;
        let skipped_rows = Arc::new(SkippedRows::default());
        let remote_sources = Arc::new(RemoteSources::default());
        let mut config = SessionConfig::new()
            .with_batch_size(settings.batch_size)
            .with_target_partitions(settings.target_partitions)
            .with_default_catalog_and_schema(DEFAULT_CATALOG, DEFAULT_SCHEMA)
            .with_create_default_catalog_and_schema(true)
            .with_information_schema(true)
            .with_extension(Arc::clone(&skipped_rows))
            .with_extension(Arc::clone(&remote_sources))
            .with_option_extension(MoltresOptions::default());
        // Hash joins hand their build side's keys to the probe side's scan
        // as an IN list (a remote scan adds it to its query: see
        // moltres_connectors::remote) up to this many keys per partition;
        // DataFusion's default of 150 is tuned for file scans, where the
        // list only prunes row groups. A database filters a long list of
        // keys faster than it sends the rows the list would remove; the
        // remote scan itself drops lists that are long for its table (see
        // moltres_connectors::remote::runtime_filter).
        let optimizer = &mut config.options_mut().optimizer;
        optimizer.hash_join_inlist_pushdown_max_distinct_values = 250_000;
        optimizer.hash_join_inlist_pushdown_max_size = 4 << 20;
        if let MemoryLimit::Bytes(bytes) = settings.memory_limit {
            // Each sorting partition reserves this much up front for its merge
            // phase (DataFusion's default is 10 MiB); with a small budget that
            // reservation alone would fail the query instead of letting it spill.
            let per_partition = bytes / (4 * settings.target_partitions);
            config.options_mut().execution.sort_spill_reservation_bytes =
                per_partition.clamp(64 << 10, 10 << 20);
        }
        let observer = Arc::new(Observer::new(Limits {
            slow_query: settings.slow_query,
            query_timeout: settings.query_timeout,
            max_concurrent_queries: settings.max_concurrent_queries,
            queue_timeout: settings.queue_timeout,
        }));
        // DataFusion's optimizer and SQL unparser grow the stack on demand
        // when less than this is left (the `recursive` crate); its default
        // (128 KiB) is less than the unparser needs between two checks when
        // it renders a federated query with nested subqueries in an
        // unoptimized build, on a 2 MiB thread.
        recursive::set_minimum_stack_size(recursive::get_minimum_stack_size().max(1 << 20));
        let catalogs = Arc::new(SourceCatalogList::default());
        let path_tables = Arc::new(PathTableFactory::new());
        // Under a memory limit, hash joins too large for it become
        // sort-merge joins, which spill (see `joins`).
        let mut physical_rules =
            datafusion::physical_optimizer::optimizer::PhysicalOptimizer::new().rules;
        // DataFusion's physical filter pushdown confuses columns of one name
        // (see `filter_pushdown`): it runs only where names are unambiguous.
        for rule in physical_rules.iter_mut() {
            if rule.name().starts_with("FilterPushdown") {
                *rule = Arc::new(crate::filter_pushdown::UnambiguousFilterPushdown::new(
                    Arc::clone(rule),
                ));
            }
        }
        if let MemoryLimit::Bytes(bytes) = settings.memory_limit {
            let at = physical_rules
                .iter()
                .position(|r| r.name() == "join_selection")
                .map_or(0, |i| i + 1);
            physical_rules.insert(at, Arc::new(crate::joins::SpillableJoins::new(bytes)));
        }
        let mut state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime)
            .with_default_features()
            .with_physical_optimizer_rules(physical_rules)
            .with_optimizer_rule(Arc::new(ImplyThroughCastKeys))
            .with_optimizer_rule(Arc::new(ScalarSubqueryAsWindow))
            .with_optimizer_rule(Arc::new(PushSemiJoinDown))
            .with_optimizer_rule(Arc::new(JoinSameSourceFirst))
            .with_optimizer_rule(Arc::new(JoinSmallTablesFirst))
            .with_physical_optimizer_rule(Arc::new(RemoteTopK))
            .with_query_planner(Arc::new(ObservingQueryPlanner {
                inner: Arc::new(FederatingQueryPlanner),
                observer: Arc::clone(&observer),
            }))
            .with_catalog_list(Arc::new(DynamicFileCatalog::new(
                Arc::clone(&catalogs) as Arc<dyn CatalogProviderList>,
                Arc::clone(&path_tables) as _,
            )))
            .build();
        state.register_file_format(Arc::new(CheckedCsvFormatFactory::new()), true)?;
        state.register_file_format(Arc::new(CheckedParquetFormatFactory::new()), true)?;
        for (name, function) in ReadFileFunction::all() {
            state.register_udtf(name, function);
        }
        for kind in &kinds {
            for (name, function) in kind.table_functions() {
                state.register_udtf(&name, function);
            }
        }
        let ctx = SessionContext::new_with_state(state);
        path_tables.bind(SessionHandle::new(ctx.state_weak_ref()));

        let db = Moltres {
            ctx,
            registry: Arc::new(SourceRegistry::new(kinds)),
            catalogs,
            settings: Arc::new(settings),
            skipped_rows,
            remote_sources,
            observer,
        };
        for source in db.settings.sources.clone() {
            db.attach_with_options(&source.url, &source.name, source.read_only, source.options)
                .await?;
        }
        Ok(db)
    }

    /// Runs one statement or a script of statements separated by `;` and
    /// returns the last statement's result as a DataFusion [`DataFrame`]
    /// (earlier statements run to completion first).
    ///
    /// Besides DataFusion SQL this understands `ATTACH 'url' AS name
    /// [(READ_ONLY)]`, `DETACH name`, `SHOW SOURCES` and `REFRESH SOURCE name`.
    pub async fn sql(&self, sql: &str) -> Result<DataFrame> {
        // Before the text is parsed, logged or run: its passwords are hidden
        // from every message from now on.
        moltres_connectors::secrets::remember_sql(sql);
        let statements = split_statements(sql)?;
        let Some((last, earlier)) = statements.split_last() else {
            return Err(Error::Statement("no SQL statement given".to_string()));
        };
        // Boxed: a statement's future (planning, DDL, writes) is tens of
        // kilobytes, and every caller's future would carry it on its stack.
        // A panic fails its statement, not the process (see `guard`).
        for statement in earlier {
            crate::guard::catch("running a statement", async {
                Ok(Box::pin(self.remembered_statement(statement))
                    .await?
                    .collect()
                    .await?)
            })
            .await?;
        }
        Box::pin(self.remembered_statement(last)).await
    }

    /// Runs exactly one statement (no splitting). A panic while it is
    /// planned fails it with an error, and an expression nested too deep to
    /// plan is refused (see [`guard`](crate::guard)).
    pub async fn statement(&self, sql: &str) -> Result<DataFrame> {
        moltres_connectors::secrets::remember_sql(sql);
        self.remembered_statement(sql).await
    }

    /// [`Moltres::statement`] for a statement whose passwords are
    /// remembered already. Each statement's depth is checked on its own
    /// (see `guard`): a script of many short statements is not one deep
    /// one.
    async fn remembered_statement(&self, sql: &str) -> Result<DataFrame> {
        crate::guard::check_depth(sql)?;
        // Dropped while planning (Ctrl-C, a caller's timeout) before any
        // event of the statement: counted as a cancelled statement.
        let mut pending = PlanningCancelled {
            observer: &self.observer,
            sql,
            mark: self.observer.started_count(),
            started: std::time::Instant::now(),
            done: false,
        };
        let planning = crate::guard::catch("planning", Box::pin(self.statement_unguarded(sql)));
        // The query timeout covers planning too (schema look-ups on a
        // stalled server, statements that run as they are planned).
        let state = self.ctx.state();
        let result = match self.observer.timeout_for(&state).ok().flatten() {
            Some(limit) => tokio::time::timeout(limit, planning)
                .await
                .unwrap_or_else(|_| {
                    let e = Error::Statement(format!(
                        "query timed out after {} while planning or running a statement \
                         (moltres.query_timeout / MOLTRES_QUERY_TIMEOUT)",
                        config::format_duration(limit)
                    ));
                    self.observer.failed(StatementKind::Query, sql, &e);
                    Err(e)
                }),
            None => planning.await,
        };
        pending.done = true;
        result
    }

    async fn statement_unguarded(&self, sql: &str) -> Result<DataFrame> {
        if let Some(statement) = parse_moltres_statement(sql)? {
            let sources = match &statement {
                MoltresStatement::Attach { alias, .. }
                | MoltresStatement::Detach { alias, .. }
                | MoltresStatement::Refresh { alias } => vec![alias.clone()],
                MoltresStatement::ShowSources => Vec::new(),
            };
            let observer = Arc::clone(&self.observer);
            let done = observer
                .run(
                    StatementKind::Session,
                    sql,
                    sources,
                    self.moltres_statement(statement),
                    |_| 0,
                )
                .await?;
            return Ok(tag(done, QueryTag::Internal));
        }
        let state = self.ctx.state();
        let dialect = state.config().options().sql_parser.dialect;
        // Parsed once: for the DDL check, then for DataFusion's planner.
        let parsed = state
            .sql_to_statement(sql, &dialect)
            .map_err(Error::from)
            .and_then(|mut statement| {
                crate::precedence::repair(&mut statement);
                Ok((crate::ddl::plan(self, &statement)?, statement))
            });
        let (ddl, statement) = match parsed {
            Ok(parsed) => parsed,
            Err(e) => {
                self.observer.failed(StatementKind::Query, sql, &e);
                return Err(e);
            }
        };
        if let Some(ddl) = ddl {
            let observer = Arc::clone(&self.observer);
            return observer
                .run(
                    StatementKind::Ddl,
                    sql,
                    vec![ddl.alias()],
                    crate::ddl::run(self, ddl, sql),
                    |_| 0,
                )
                .await
                .map(|done| tag(done, QueryTag::Internal));
        }
        let plan = match state.statement_to_plan(statement).await {
            Ok(plan) => plan,
            Err(e) => {
                self.observer.failed(StatementKind::Query, sql, &e);
                return Err(e.into());
            }
        };
        // Settings whose bad values would abort or hang a later query are
        // checked when they are set.
        if let LogicalPlan::Statement(datafusion::logical_expr::Statement::SetVariable(set)) = &plan
            && let Err(e) = check_setting(&set.variable, &set.value)
        {
            self.observer.failed(StatementKind::Session, sql, &e);
            return Err(e);
        }
        let eager = match &plan {
            LogicalPlan::Ddl(_) => Some(StatementKind::Ddl),
            LogicalPlan::Statement(_) => Some(StatementKind::Session),
            _ => None,
        };
        match eager {
            // Runs now (CREATE VIEW, SET, ...).
            Some(kind) => {
                let observer = Arc::clone(&self.observer);
                observer
                    .run(
                        kind,
                        sql,
                        Vec::new(),
                        async { Ok(self.ctx.execute_logical_plan(plan).await?) },
                        |_| 0,
                    )
                    .await
                    .map(|done| tag(done, QueryTag::Internal))
            }
            // Runs when the DataFrame is executed: observed then.
            None => {
                let explain = matches!(plan, LogicalPlan::Explain(_) | LogicalPlan::Analyze(_));
                let df = tag(
                    self.ctx.execute_logical_plan(plan).await?,
                    QueryTag::Statement {
                        sql: sql.to_string(),
                        kind: None,
                    },
                );
                if !explain {
                    return Ok(df);
                }
                // A plan names its tables, and a table may be a URL with a
                // password (`SELECT * FROM 'https://u:pw@host/x.csv'`).
                let batches = df.collect().await?;
                let scrubbed = batches
                    .iter()
                    .map(scrub_text_columns)
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(datafusion::error::DataFusionError::from)?;
                match scrubbed.first() {
                    Some(first) => {
                        let table = datafusion::datasource::MemTable::try_new(
                            first.schema(),
                            vec![scrubbed],
                        )?;
                        Ok(self.ctx.read_table(Arc::new(table))?)
                    }
                    None => Ok(self.ctx.read_empty()?),
                }
            }
        }
    }

    async fn moltres_statement(&self, statement: MoltresStatement) -> Result<DataFrame> {
        match statement {
            MoltresStatement::Attach {
                url,
                alias,
                read_only,
                options,
            } => {
                self.attach_with_options(&url, &alias, read_only, options)
                    .await?;
                Ok(self.ctx.read_empty()?)
            }
            MoltresStatement::Detach { alias, if_exists } => {
                match self.detach(&alias) {
                    Err(_) if if_exists => {}
                    other => other?,
                }
                Ok(self.ctx.read_empty()?)
            }
            MoltresStatement::Refresh { alias } => {
                self.refresh(&alias)?;
                Ok(self.ctx.read_empty()?)
            }
            MoltresStatement::ShowSources => Ok(self.ctx.read_batch(self.registry.to_batch()?)?),
        }
    }

    /// A table by name (`t`, `schema.t`, `source.t`, `source.schema.t`, or a
    /// quoted path such as `'testdata/x.parquet'`).
    pub async fn table(&self, name: &str) -> Result<DataFrame> {
        let unquoted = name.strip_prefix('\'').and_then(|n| n.strip_suffix('\''));
        match unquoted {
            // A path: one name, not split at its dots.
            Some(path) => Ok(self.ctx.table(TableReference::bare(path)).await?),
            None => Ok(self.ctx.table(name).await?),
        }
    }

    /// Attaches the source at `url` as `alias`.
    pub async fn attach(&self, url: &str, alias: &str, read_only: bool) -> Result<()> {
        self.attach_with_options(url, alias, read_only, Default::default())
            .await
    }

    /// Attaches with source-specific options.
    pub async fn attach_with_options(
        &self,
        url: &str,
        alias: &str,
        read_only: bool,
        options: std::collections::BTreeMap<String, String>,
    ) -> Result<()> {
        let default_catalog = self.default_catalog()?;
        if self.registry.get(alias).is_some() {
            return Err(Error::Statement(format!(
                "a source named '{alias}' is already attached; DETACH it first"
            )));
        }
        if self.catalogs.catalog(alias).is_some() || default_catalog.schema(alias).is_some() {
            return Err(Error::Statement(format!(
                "cannot attach as '{alias}': a catalog or schema of that name exists"
            )));
        }
        let mut options = options;
        // Pool defaults from the environment and config file, where neither
        // the URL nor the ATTACH options set them.
        if !self.settings.pool.is_empty()
            && matches!(
                self.registry.kind_for(url).map(|k| k.name()),
                Ok("postgres" | "mysql" | "sqlite")
            )
        {
            let in_url: Vec<String> = url
                .split_once('?')
                .map(|(_, query)| {
                    query
                        .split('&')
                        .filter_map(|pair| pair.split('=').next())
                        .map(str::to_ascii_lowercase)
                        .collect()
                })
                .unwrap_or_default();
            for (key, value) in &self.settings.pool {
                if !in_url.contains(key) && !options.contains_key(key) {
                    options.insert(key.clone(), value.clone());
                }
            }
        }
        let request = AttachRequest {
            alias: alias.to_string(),
            url: url.to_string(),
            read_only,
            options,
            session: SessionHandle::new(self.ctx.state_weak_ref()),
        };
        let attached = self.registry.attach(&request).await?;
        let default_schema = attached
            .catalog
            .schema(&attached.default_schema)
            .unwrap_or_else(|| Arc::new(MemorySchemaProvider::new()));
        self.catalogs
            .register_catalog(alias.to_string(), attached.catalog);
        default_catalog.register_schema(alias, default_schema)?;
        if let Some(remote) = attached.remote {
            self.remote_sources.insert(alias, remote);
        }
        Ok(())
    }

    /// Detaches `alias`; its tables are no longer reachable.
    pub fn detach(&self, alias: &str) -> Result<()> {
        if self.registry.detach(alias).is_none() {
            return Err(Error::Statement(format!(
                "no source named '{alias}' is attached (see SHOW SOURCES)"
            )));
        }
        self.catalogs.deregister_catalog(alias);
        self.remote_sources.remove(alias);
        self.default_catalog()?.deregister_schema(alias, true)?;
        Ok(())
    }

    fn default_catalog(&self) -> Result<Arc<dyn datafusion::catalog::CatalogProvider>> {
        self.catalogs.catalog(DEFAULT_CATALOG).ok_or_else(|| {
            Error::Statement(format!(
                "the default catalog '{DEFAULT_CATALOG}' is missing"
            ))
        })
    }

    /// An attached database, for native SQL passthrough.
    ///
    /// ```no_run
    /// # async fn f(db: moltres::Moltres) -> moltres::Result<()> {
    /// db.attach("postgres://postgres@127.0.0.1/test", "pg", false).await?;
    /// let pg = db.source("pg")?;
    /// pg.execute("ALTER TABLE orders ADD COLUMN note text").await?;
    /// let rows = pg.query("SELECT now() AS at, version() AS v").await?.collect().await?;
    /// # Ok(()) }
    /// ```
    pub fn source(&self, name: &str) -> Result<Source> {
        let info = self.registry.get(name).ok_or_else(|| {
            Error::Statement(format!(
                "no source named '{name}' is attached (see SHOW SOURCES)"
            ))
        })?;
        let catalog = self
            .remote_sources
            .get(name)
            .ok_or_else(|| Error::Statement(format!("source '{name}' is not a database")))?;
        Ok(Source {
            info,
            catalog,
            ctx: self.ctx.clone(),
            observer: Arc::clone(&self.observer),
        })
    }

    /// Forgets the cached schemas, tables and column types of database
    /// `name` (`REFRESH SOURCE name`); they are read again on next use.
    pub fn refresh(&self, name: &str) -> Result<()> {
        if self.registry.get(name).is_none() {
            return Err(Error::Statement(format!(
                "no source named '{name}' is attached (see SHOW SOURCES)"
            )));
        }
        let catalog = self.remote_sources.get(name).ok_or_else(|| {
            Error::Statement(format!(
                "source '{name}' is a directory, listed once at ATTACH; DETACH and ATTACH it again"
            ))
        })?;
        catalog.refresh();
        Ok(())
    }

    /// The attached sources (passwords redacted).
    pub fn sources(&self) -> Vec<SourceInfo> {
        self.registry.list()
    }

    /// Every table: (catalog, schema, table), sources first by name. The
    /// default catalog's per-source alias schemas are not repeated.
    pub async fn tables(&self) -> Result<Vec<(String, String, String)>> {
        let mut out = Vec::new();
        for catalog_name in self.catalogs.catalog_names() {
            let Some(catalog) = self.catalogs.catalog(&catalog_name) else {
                continue;
            };
            for schema_name in catalog.schema_names() {
                if catalog_name == DEFAULT_CATALOG
                    && (self.registry.get(&schema_name).is_some()
                        || schema_name == "information_schema")
                {
                    continue;
                }
                let Some(schema) = catalog.schema(&schema_name) else {
                    continue;
                };
                let mut names = schema.table_names();
                names.sort();
                for table in names {
                    out.push((catalog_name.clone(), schema_name.clone(), table));
                }
            }
        }
        Ok(out)
    }

    /// The Arrow schema of a table or query result.
    pub async fn describe(&self, name: &str) -> Result<SchemaRef> {
        let df = self.table(name).await?;
        Ok(Arc::new(df.schema().as_arrow().clone()))
    }

    /// Malformed CSV rows skipped (with `skip_bad_rows`) since the last call:
    /// the count and up to five messages naming file and line.
    pub fn take_skipped_rows(&self) -> (u64, Vec<String>) {
        self.skipped_rows.take()
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The underlying DataFusion context, for everything DataFusion offers
    /// (registering UDFs, `read_parquet`, ...).
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Runs a statement in the native SQL of the default database (the one
    /// [`connect`] attached, or [`use_source`](Self::use_source) chose);
    /// returns the rows affected. For another source:
    /// `db.source(name)?.execute(..)`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "multi_thread")]
    /// # async fn main() -> moltres::Result<()> {
    /// let db = moltres::connect("sqlite::memory:").await?;
    /// db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)").await?;
    /// assert_eq!(db.execute("INSERT INTO notes (body) VALUES ('a'), ('b')").await?, 2);
    /// # Ok(()) }
    /// ```
    pub async fn execute(&self, native: &str) -> Result<u64> {
        let current = self
            .ctx
            .state()
            .config()
            .options()
            .catalog
            .default_schema
            .clone();
        if self.registry.get(&current).is_none() {
            return Err(Error::Statement(
                "no default database: connect(url) or use_source(name) first, or use \
                 source(name).execute(..)"
                    .to_string(),
            ));
        }
        self.source(&current)?.execute(native).await
    }

    /// Makes the attached database `alias` where unqualified names resolve:
    /// `orders` then means `alias.orders` (its default schema), and
    /// `CREATE TABLE t AS ...` creates `t` there. Other sources keep their
    /// names (`files.trips`, `pg.public.orders`).
    pub fn use_source(&self, alias: &str) -> Result<()> {
        if self.registry.get(alias).is_none() {
            return Err(Error::Statement(format!(
                "no source named '{alias}' is attached (see SHOW SOURCES)"
            )));
        }
        let state = self.ctx.state_ref();
        let mut state = state.write();
        let options = state.config_mut().options_mut();
        options.catalog.default_catalog = DEFAULT_CATALOG.to_string();
        options.catalog.default_schema = alias.to_string();
        Ok(())
    }

    /// Appends `batches` to `table` (any table Moltres can write: a table
    /// of an attached database, a memory table) and returns the rows
    /// written. For databases: columns matched by name and cast to the
    /// table's types (its other columns get their defaults), streamed in
    /// one transaction, all rows or none.
    pub async fn insert(
        &self,
        table: &str,
        batches: Vec<datafusion::arrow::record_batch::RecordBatch>,
    ) -> Result<u64> {
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        let observer = Arc::clone(&self.observer);
        observer
            .run(
                StatementKind::Write,
                &format!("insert into {table} ({rows} rows)"),
                self.source_of(table),
                self.write_rows(table, batches, WriteMode::Append),
                |n| *n,
            )
            .await
    }

    /// The attached source `table` names, if any (for observation).
    pub(crate) fn source_of(&self, table: &str) -> Vec<String> {
        crate::ddl::resolve(self, table)
            .map(|t| vec![t.alias])
            .unwrap_or_default()
    }

    /// Appends or upserts `batches` (see [`insert`](Self::insert) and
    /// [`upsert`](Self::upsert)).
    async fn write_rows(
        &self,
        table: &str,
        batches: Vec<datafusion::arrow::record_batch::RecordBatch>,
        mode: WriteMode<'_>,
    ) -> Result<u64> {
        use moltres_connectors::remote::RemoteTable;
        let what = match mode {
            WriteMode::Upsert(_) => format!("upsert into '{table}'"),
            _ => format!("insert into '{table}'"),
        };
        let frame = tag(self.ctx.read_batches(batches)?, QueryTag::Internal);
        let provider = self.ctx.table_provider(table).await?;
        let Some(remote) = provider.downcast_ref::<RemoteTable>() else {
            if mode.upsert_keys().is_some() {
                return Err(Error::Statement(format!(
                    "{what}: only tables of attached databases take upserts"
                )));
            }
            let written = frame
                .write_table(table, DataFrameWriteOptions::new())
                .await?;
            return Ok(crate::ddl::written(&written));
        };
        remote.writable(if mode.upsert_keys().is_some() {
            "upsert into"
        } else {
            "INSERT INTO"
        })?;
        let table_schema = datafusion::datasource::TableProvider::schema(remote);
        let (frame, fields) = crate::tables::by_name(frame, &table_schema, &what, false)?;
        if let Some(keys) = mode.upsert_keys() {
            crate::tables::check_keys(&what, keys, &fields)?;
        }
        Ok(remote
            .database()
            .write(
                remote.reference(),
                Arc::new(datafusion::arrow::datatypes::Schema::new(fields)),
                frame.execute_stream().await?,
                mode,
            )
            .await?)
    }
}

impl Moltres {
    /// Inserts `batches` into `table` of an attached database, replacing
    /// the other columns of rows whose `keys` already exist (PostgreSQL and
    /// SQLite `ON CONFLICT (keys) DO UPDATE`, MySQL `ON DUPLICATE KEY
    /// UPDATE`); one transaction. The batches' columns are matched to the
    /// table's by name and cast to its types. Returns the rows sent
    /// (PostgreSQL: the rows inserted or updated).
    pub async fn upsert(
        &self,
        table: &str,
        batches: Vec<datafusion::arrow::record_batch::RecordBatch>,
        keys: &[&str],
    ) -> Result<u64> {
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        let observer = Arc::clone(&self.observer);
        observer
            .run(
                StatementKind::Write,
                &format!("upsert into {table} on {} ({rows} rows)", keys.join(", ")),
                self.source_of(table),
                self.write_rows(table, batches, WriteMode::Upsert(&keys)),
                |n| *n,
            )
            .await
    }
}

/// Connects to one database by URL (`postgres://...`, `mysql://...`,
/// `sqlite:path`) with settings from the environment: it is attached as
/// `db` and becomes where unqualified names resolve, so
/// `db.sql("SELECT * FROM orders")` reads the database's `orders`. Files
/// and other databases can still be attached and joined.
///
/// ```no_run
/// # #[tokio::main(flavor = "multi_thread")]
/// # async fn main() -> moltres::Result<()> {
/// let db = moltres::connect("postgres://postgres@127.0.0.1:5432/test").await?;
/// let open = db.sql("SELECT count(*) FROM orders WHERE status = 'open'").await?;
/// open.show().await?;
/// db.source("db")?.execute("ANALYZE orders").await?;
/// # Ok(())
/// # }
/// ```
pub async fn connect(url: &str) -> Result<Moltres> {
    let db = Moltres::builder().build().await?;
    db.attach(url, "db", false).await?;
    db.use_source("db")?;
    Ok(db)
}

/// `batch` with every text column's values passed through
/// [`secrets::scrub`](moltres_connectors::secrets::scrub) (as `Utf8`).
fn scrub_text_columns(
    batch: &datafusion::arrow::record_batch::RecordBatch,
) -> std::result::Result<
    datafusion::arrow::record_batch::RecordBatch,
    datafusion::arrow::error::ArrowError,
> {
    use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if matches!(
            field.data_type(),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        ) {
            let text = datafusion::arrow::compute::cast(column, &DataType::Utf8)?;
            let text = text.as_string::<i32>();
            let scrubbed: StringArray = (0..text.len())
                .map(|i| {
                    (!text.is_null(i))
                        .then(|| moltres_connectors::secrets::scrub(text.value(i)).into_owned())
                })
                .collect();
            fields.push(Field::new(
                field.name(),
                DataType::Utf8,
                field.is_nullable(),
            ));
            columns.push(Arc::new(scrubbed));
        } else {
            fields.push(field.as_ref().clone());
            columns.push(Arc::clone(column));
        }
    }
    datafusion::arrow::record_batch::RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}

/// `SET name = value` for the settings whose bad values would abort or
/// hang a later query.
fn check_setting(name: &str, value: &str) -> Result<()> {
    let name = name.trim().to_ascii_lowercase();
    let value = value.trim();
    let bounded = |max: usize| match value.parse::<u64>() {
        Ok(n) if n as u128 <= max as u128 => Ok(()),
        _ => Err(Error::Statement(format!(
            "{name}: '{value}' must be a whole number up to {max}"
        ))),
    };
    match name.as_str() {
        "moltres.query_timeout" if !value.is_empty() => config::parse_duration(value)
            .map(|_| ())
            .map_err(|e| Error::Statement(format!("moltres.query_timeout: {e}"))),
        "datafusion.execution.target_partitions" => bounded(config::MAX_PARTITIONS),
        "datafusion.execution.batch_size" => bounded(config::MAX_BATCH_SIZE),
        _ => Ok(()),
    }
}

/// Counts a statement dropped while it was planned as cancelled, unless an
/// event of its own was recorded already (a statement that runs as it is
/// planned ends its own events). Another statement of the session starting
/// meanwhile hides the drop: it is never counted twice.
struct PlanningCancelled<'a> {
    observer: &'a Observer,
    sql: &'a str,
    mark: u64,
    started: std::time::Instant,
    done: bool,
}

impl Drop for PlanningCancelled<'_> {
    fn drop(&mut self) {
        if !self.done && self.observer.started_count() == self.mark {
            self.observer.cancelled_while_planning(
                StatementKind::Query,
                self.sql,
                self.started.elapsed(),
            );
        }
    }
}
