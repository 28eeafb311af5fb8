//! Running statements and meta commands, printing results, timing and the
//! progress line. Input handling (REPL or script) is in `repl.rs`/`lib.rs`.

use std::io::{BufWriter, IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::StringArray;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::physical_plan::{ExecutionPlan, execute_stream};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use moltres::config::format_bytes;
use moltres::statements::is_complete;
use moltres::{Moltres, PlanMetrics};

use crate::print::{Format, PrintError, print_batches, print_stream};

/// What the caller should do after a command.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Keep reading input.
    Continue,
    /// `\q`, or stdout was closed: stop with success.
    Quit,
}

/// A failed statement or command; already described by its message.
#[derive(Debug)]
pub struct Failed(pub String);

impl<E: std::fmt::Display> From<E> for Failed {
    fn from(e: E) -> Self {
        Failed(e.to_string())
    }
}

/// The shell's state between statements.
pub struct Shell {
    db: Moltres,
    /// Output format.
    pub format: Format,
    /// `--max-rows`.
    pub max_rows: Option<usize>,
    /// Print `N rows in T s` after each statement.
    pub timing: bool,
    /// Show the progress line for queries running over a second.
    pub progress: bool,
    /// Ctrl-C cancels the running statement instead of ending the process.
    pub interactive: bool,
}

const HELP: &str = r"Statements end with ';' and may span lines. Besides DataFusion SQL:
  ATTACH 'url-or-path' AS name [(READ_ONLY)]   attach a source (a directory of files, ...)
  DETACH name                                  detach it
  SHOW SOURCES                                 attached sources (passwords redacted)
  SELECT * FROM 'path/file.parquet'            query a file (csv, tsv, parquet, json; globs; s3://, https://)
  read_csv('path', 'delimiter=;', 'header=false', 'skip_bad_rows=true'), read_parquet(...), read_json(...)
  COPY (query) TO 'out.parquet'                write a result (parquet, csv, json)
  SET moltres.query_timeout = '30s'            stop (and cancel) queries running longer

Meta commands:
  \d            list tables of every source
  \d NAME       columns and types of a table
  \sources      attached sources
  \health       is each source reachable: latency, server version, pool
  \metrics [prometheus]   queries, errors, durations, rows read per source, pools
  \timing [on|off]   show row count and time after each statement
  \format [table|csv|tsv|json|ndjson]   show or set the output format
  \?            this help
  \q            quit (or Ctrl-D); Ctrl-C cancels a running query";

impl Shell {
    /// A shell over `db`.
    pub fn new(db: Moltres, format: Format) -> Self {
        Self {
            db,
            format,
            max_rows: None,
            timing: false,
            progress: false,
            interactive: false,
        }
    }

    /// Runs a script: statements separated by `;`, and meta commands on lines
    /// of their own. Stops at the first failure.
    pub async fn run_text(&mut self, text: &str) -> Result<Outcome, Failed> {
        let mut buffer = String::new();
        for line in text.lines() {
            if buffer.trim().is_empty() && line.trim_start().starts_with('\\') {
                buffer.clear();
                if self.meta(line.trim()).await? == Outcome::Quit {
                    return Ok(Outcome::Quit);
                }
                continue;
            }
            buffer.push_str(line);
            buffer.push('\n');
            if is_complete(&buffer) {
                let sql = std::mem::take(&mut buffer);
                if self.run_sql(&sql).await? == Outcome::Quit {
                    return Ok(Outcome::Quit);
                }
            }
        }
        if !buffer.trim().is_empty() {
            return self.run_sql(&buffer).await;
        }
        Ok(Outcome::Continue)
    }

    /// Runs every statement in `sql`, in order.
    pub async fn run_sql(&mut self, sql: &str) -> Result<Outcome, Failed> {
        for statement in moltres::statements::split_statements(sql)? {
            if self.run_statement(&statement).await? == Outcome::Quit {
                return Ok(Outcome::Quit);
            }
        }
        Ok(Outcome::Continue)
    }

    async fn run_statement(&mut self, sql: &str) -> Result<Outcome, Failed> {
        let started = Instant::now();
        // Before anything runs: a Ctrl-C from now on cancels (see the
        // `interrupts` module).
        let interrupted = crate::interrupts::mark();
        let run = async {
            let df = self.db.statement(sql).await?;
            let plan = df.create_physical_plan().await?;
            let stream = execute_stream(Arc::clone(&plan), self.db.context().task_ctx())?;
            let progress = self.progress.then(|| Progress::start(Arc::clone(&plan)));
            let mut out = BufWriter::with_capacity(1 << 16, std::io::stdout());
            let printed = print_stream(stream, self.format, self.max_rows, &mut out).await;
            let flushed = out.flush();
            if let Some(progress) = progress {
                progress.finish();
            }
            let printed = printed?;
            flushed?;
            Ok::<_, PrintError>(printed)
        };
        // A panic (in planning, or re-raised from a reader) fails this
        // statement; the shell goes on.
        let run = async {
            use futures::FutureExt;
            std::panic::AssertUnwindSafe(run)
                .catch_unwind()
                .await
                .unwrap_or_else(|payload| {
                    Err(PrintError::Statement(moltres::Error::Statement(format!(
                        "internal error: {} (a bug in Moltres or a library it uses)",
                        moltres::guard::panic_message(payload.as_ref())
                    ))))
                })
        };
        let result = if self.interactive {
            tokio::select! {
                result = run => Some(result),
                _ = crate::interrupts::after(interrupted) => None,
            }
        } else {
            Some(run.await)
        };
        self.report_skipped_rows();
        let printed = match result {
            None => return Err(Failed("query cancelled".to_string())),
            Some(Ok(printed)) => printed,
            Some(Err(PrintError::Output(e))) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                return Ok(Outcome::Quit);
            }
            Some(Err(PrintError::Output(e))) => return Err(Failed(format!("writing output: {e}"))),
            Some(Err(PrintError::Query(e))) => return Err(Failed(e.to_string())),
            Some(Err(PrintError::Statement(e))) => return Err(Failed(e.to_string())),
        };
        if printed.truncated {
            eprintln!(
                "(only the first {} rows are shown; see --max-rows)",
                printed.rows
            );
        }
        if self.timing {
            let rows = printed.rows;
            eprintln!(
                "{rows} row{} in {:.3} s",
                if rows == 1 { "" } else { "s" },
                started.elapsed().as_secs_f64()
            );
        }
        Ok(Outcome::Continue)
    }

    fn report_skipped_rows(&self) {
        let (count, samples) = self.db.take_skipped_rows();
        if count > 0 {
            eprintln!(
                "warning: skipped {count} malformed CSV row{}",
                if count == 1 { "" } else { "s" }
            );
            for sample in samples {
                eprintln!("  {sample}");
            }
        }
    }

    /// Runs a meta command (`\d`, `\q`, ...).
    pub async fn meta(&mut self, line: &str) -> Result<Outcome, Failed> {
        let mut parts = line.split_whitespace();
        let command = parts.next().unwrap_or("");
        let arg = parts.collect::<Vec<_>>().join(" ");
        let arg = arg.trim_end_matches(';').trim();
        match command {
            "\\q" | "\\quit" => return Ok(Outcome::Quit),
            "\\?" | "\\h" | "\\help" => println!("{HELP}"),
            "\\d" if arg.is_empty() => {
                let tables = self.db.tables().await?;
                let schema = Arc::new(Schema::new(vec![
                    Field::new("catalog", DataType::Utf8, false),
                    Field::new("schema", DataType::Utf8, false),
                    Field::new("table", DataType::Utf8, false),
                ]));
                let column = |f: fn(&(String, String, String)) -> &str| {
                    Arc::new(StringArray::from_iter_values(tables.iter().map(f)))
                };
                let batch = RecordBatch::try_new(
                    Arc::clone(&schema),
                    vec![column(|t| &t.0), column(|t| &t.1), column(|t| &t.2)],
                )?;
                self.print(&[batch], schema)?;
            }
            "\\d" => {
                let described = self.db.describe(arg).await?;
                let schema = Arc::new(Schema::new(vec![
                    Field::new("column", DataType::Utf8, false),
                    Field::new("type", DataType::Utf8, false),
                    Field::new("nullable", DataType::Utf8, false),
                ]));
                let fields = described.fields();
                let batch = RecordBatch::try_new(
                    Arc::clone(&schema),
                    vec![
                        Arc::new(StringArray::from_iter_values(
                            fields.iter().map(|f| f.name().clone()),
                        )),
                        Arc::new(StringArray::from_iter_values(
                            fields.iter().map(|f| f.data_type().to_string()),
                        )),
                        Arc::new(StringArray::from_iter_values(
                            fields
                                .iter()
                                .map(|f| if f.is_nullable() { "YES" } else { "NO" }),
                        )),
                    ],
                )?;
                self.print(&[batch], schema)?;
            }
            "\\sources" => return self.run_sql("SHOW SOURCES").await,
            "\\metrics" if arg == "prometheus" => print!("{}", self.db.metrics().to_prometheus()),
            "\\metrics" => {
                let (schema, batch) = metrics_table(&self.db.metrics())?;
                self.print(&[batch], schema)?;
            }
            "\\health" => {
                let (schema, batch) = health_table(&self.db.check_health().await)?;
                self.print(&[batch], schema)?;
            }
            "\\timing" => {
                self.timing = match arg {
                    "" => !self.timing,
                    "on" => true,
                    "off" => false,
                    other => {
                        return Err(Failed(format!("\\timing takes on or off, not '{other}'")));
                    }
                };
                eprintln!("timing is {}", if self.timing { "on" } else { "off" });
            }
            "\\format" => {
                if arg.is_empty() {
                    eprintln!("format is {}", self.format);
                } else {
                    self.format = arg.parse().map_err(Failed)?;
                }
            }
            other => {
                return Err(Failed(format!(
                    "unknown command '{other}'; \\? lists the commands"
                )));
            }
        }
        Ok(Outcome::Continue)
    }

    fn print(&self, batches: &[RecordBatch], schema: Arc<Schema>) -> Result<(), Failed> {
        let mut out = BufWriter::new(std::io::stdout());
        match print_batches(batches, schema, self.format, &mut out) {
            Ok(()) => {}
            Err(PrintError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            Err(PrintError::Output(e)) => return Err(Failed(format!("writing output: {e}"))),
            Err(PrintError::Query(e)) => return Err(Failed(e.to_string())),
            Err(PrintError::Statement(e)) => return Err(Failed(e.to_string())),
        }
        let _ = out.flush();
        Ok(())
    }
}

/// `\metrics`: one row per figure.
fn metrics_table(m: &moltres::MetricsSnapshot) -> Result<(Arc<Schema>, RecordBatch), Failed> {
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    let mut rows: Vec<(String, String)> = vec![
        ("queries".into(), m.queries.to_string()),
        ("errors".into(), m.errors.to_string()),
        ("timeouts".into(), m.timeouts.to_string()),
        ("queue timeouts".into(), m.queue_timeouts.to_string()),
        ("running".into(), m.running.to_string()),
        ("waiting".into(), m.waiting.to_string()),
        ("duration p50".into(), ms(m.duration_p50)),
        ("duration p95".into(), ms(m.duration_p95)),
        ("duration p99".into(), ms(m.duration_p99)),
        ("rows returned".into(), m.rows_returned.to_string()),
        ("spilled".into(), format_bytes(m.spilled_bytes)),
    ];
    for s in &m.sources {
        rows.push((
            format!("{} read", s.name),
            format!("{} rows, {}", s.rows_read, format_bytes(s.bytes_read)),
        ));
        rows.push((
            format!("{} remote queries", s.name),
            s.remote_queries.to_string(),
        ));
        if let Some(p) = s.pool {
            rows.push((
                format!("{} pool", s.name),
                format!(
                    "{} of {} open, {} in use, {} idle, {} waiting, {} acquire timeouts",
                    p.size, p.max_size, p.in_use, p.idle, p.waiting, p.acquire_timeouts
                ),
            ));
        }
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("metric", DataType::Utf8, false),
        Field::new("value", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.0))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.1))),
        ],
    )?;
    Ok((schema, batch))
}

/// `\health`: one row per source.
fn health_table(health: &[moltres::SourceHealth]) -> Result<(Arc<Schema>, RecordBatch), Failed> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("source", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("healthy", DataType::Utf8, false),
        Field::new("latency", DataType::Utf8, false),
        Field::new("version", DataType::Utf8, false),
        Field::new("pool", DataType::Utf8, false),
        Field::new("error", DataType::Utf8, false),
    ]));
    let column = |f: &dyn Fn(&moltres::SourceHealth) -> String| {
        Arc::new(StringArray::from_iter_values(health.iter().map(f)))
            as datafusion::arrow::array::ArrayRef
    };
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            column(&|h| h.name.clone()),
            column(&|h| h.kind.clone()),
            column(&|h| if h.healthy { "yes" } else { "NO" }.to_string()),
            column(&|h| format!("{:.1} ms", h.latency.as_secs_f64() * 1000.0)),
            column(&|h| h.server_version.clone().unwrap_or_default()),
            column(&|h| {
                h.pool
                    .map(|p| {
                        format!(
                            "{}/{} open, {} in use, {} waiting",
                            p.size, p.max_size, p.in_use, p.waiting
                        )
                    })
                    .unwrap_or_default()
            }),
            column(&|h| h.error.clone().unwrap_or_default()),
        ],
    )?;
    Ok((schema, batch))
}

/// The `rows read ..., bytes read ...` line on stderr for queries running
/// longer than a second.
struct Progress {
    task: tokio::task::JoinHandle<()>,
    bar: ProgressBar,
}

impl Progress {
    fn start(plan: Arc<dyn ExecutionPlan>) -> Self {
        let bar = ProgressBar::hidden();
        let shown = bar.clone();
        let task = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if !std::io::stderr().is_terminal() {
                return;
            }
            shown.set_draw_target(ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template("{spinner} {elapsed} {msg}") {
                shown.set_style(style);
            }
            shown.enable_steady_tick(Duration::from_millis(120));
            loop {
                let m = PlanMetrics::of(&plan);
                let mut message = format!("rows read {}", m.rows_read);
                if m.bytes_read > 0 {
                    message.push_str(&format!(
                        ", bytes read {}",
                        format_bytes(m.bytes_read as u64)
                    ));
                }
                if m.spilled_bytes > 0 {
                    message.push_str(&format!(
                        ", spilled {}",
                        format_bytes(m.spilled_bytes as u64)
                    ));
                }
                shown.set_message(message);
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
        Self { task, bar }
    }

    fn finish(self) {
        drop(self);
    }
}

/// Also when the query is dropped (Ctrl-C, a timeout): the task would tick
/// on and keep the plan, and the remote scans and connections it holds,
/// alive for the life of the shell.
impl Drop for Progress {
    fn drop(&mut self) {
        self.task.abort();
        self.bar.finish_and_clear();
    }
}
