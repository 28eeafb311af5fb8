//! Runs `tests/slt/*.slt` (sqllogictest) against a fresh Moltres session per
//! file. Values print as DataFusion displays them; NULL as `NULL`, the empty
//! string as `(empty)`.

use async_trait::async_trait;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use moltres::Moltres;
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType};

use crate::common;

struct MoltresDb {
    db: Moltres,
    /// (text, placeholder) pairs replaced in results, e.g. the test's own
    /// PostgreSQL schema name, so expected output does not depend on it.
    placeholders: Vec<(String, String)>,
}

fn column_type(data_type: &DataType) -> DefaultColumnType {
    if data_type.is_integer() {
        DefaultColumnType::Integer
    } else if data_type.is_floating()
        || matches!(
            data_type,
            DataType::Decimal128(..) | DataType::Decimal256(..)
        )
    {
        DefaultColumnType::FloatingPoint
    } else {
        DefaultColumnType::Text
    }
}

#[async_trait]
impl AsyncDB for MoltresDb {
    type Error = moltres::Error;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<Self::ColumnType>, Self::Error> {
        let df = self.db.sql(sql).await?;
        let schema = df.schema().as_arrow().clone();
        let batches = df.collect().await?;
        if schema.fields().is_empty() {
            return Ok(DBOutput::StatementComplete(0));
        }
        let options = FormatOptions::default().with_null("NULL");
        let explain = sql.trim_start().to_ascii_uppercase().starts_with("EXPLAIN");
        let mut rows: Vec<Vec<String>> = Vec::new();
        for batch in &batches {
            let formatters = batch
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
                .collect::<Result<Vec<_>, _>>()
                .map_err(datafusion::error::DataFusionError::from)?;
            for row in 0..batch.num_rows() {
                let mut values: Vec<String> = formatters
                    .iter()
                    .map(|f| {
                        let mut value = f.value(row).to_string();
                        for (text, placeholder) in &self.placeholders {
                            value = value.replace(text, placeholder);
                        }
                        if value.is_empty() {
                            "(empty)".to_string()
                        } else {
                            value
                        }
                    })
                    .collect();
                if explain && values.len() == 2 {
                    // One row per plan line (indentation dropped, later lines
                    // marked `-`), like DataFusion's own .slt files.
                    let kind = values.remove(0);
                    let lines = values[0].lines().filter(|l| !l.trim().is_empty());
                    for (i, line) in lines.enumerate() {
                        let kind = if i == 0 {
                            kind.clone()
                        } else {
                            "-".to_string()
                        };
                        rows.push(vec![kind, line.trim().to_string()]);
                    }
                } else {
                    rows.push(values);
                }
            }
        }
        Ok(DBOutput::Rows {
            types: schema
                .fields()
                .iter()
                .map(|f| column_type(f.data_type()))
                .collect(),
            rows,
        })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "moltres"
    }
}

async fn run_slt(name: &str) {
    let path = common::root().join("tests/slt").join(name);
    let mut runner = sqllogictest::Runner::new(|| async {
        Ok::<_, moltres::Error>(MoltresDb {
            db: common::session().await,
            placeholders: Vec::new(),
        })
    });
    if let Err(e) = runner.run_file_async(&path).await {
        panic!("{}", e.display(true));
    }
}

/// Runs an .slt file against PostgreSQL: a schema of its own is created and
/// filled from `<name>.setup.sql`, attached as `pg`, named `${SCHEMA}` in the
/// file and `<schema>` in results, and dropped afterwards.
async fn run_postgres_slt(name: &str) {
    let url = common::postgres_url();
    let root = common::root().join("tests/slt");
    let setup =
        std::fs::read_to_string(root.join(name.replace(".slt", ".setup.sql"))).expect("setup file");
    let schema = format!("moltres_slt_{}", std::process::id());
    let client = common::postgres_schema(&schema, &setup).await;
    let (make_url, make_schema) = (url.clone(), schema.clone());
    let mut runner = sqllogictest::Runner::new(move || {
        let (url, schema) = (make_url.clone(), make_schema.clone());
        async move {
            let db = common::session().await;
            db.attach(&url, "pg", false).await?;
            Ok::<_, moltres::Error>(MoltresDb {
                db,
                placeholders: vec![(schema, "<schema>".to_string())],
            })
        }
    });
    runner.set_var("SCHEMA".to_string(), schema.clone());
    let result = runner.run_file_async(root.join(name)).await;
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
    if let Err(e) = result {
        panic!("{}", e.display(true));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_pushdown() {
    run_postgres_slt("postgres_pushdown.slt").await;
}

macro_rules! slt_tests {
    ($($test:ident => $file:literal),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                run_slt($file).await;
            }
        )*
    };
}

slt_tests! {
    csv => "csv.slt",
    parquet_json => "parquet_json.slt",
    copy => "copy.slt",
    attach => "attach.slt",
    file_errors => "file_errors.slt",
}
