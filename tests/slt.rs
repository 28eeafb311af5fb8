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
        let mut rows = Vec::new();
        for batch in &batches {
            let formatters = batch
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
                .collect::<Result<Vec<_>, _>>()
                .map_err(datafusion::error::DataFusionError::from)?;
            for row in 0..batch.num_rows() {
                rows.push(
                    formatters
                        .iter()
                        .map(|f| {
                            let value = f.value(row).to_string();
                            if value.is_empty() {
                                "(empty)".to_string()
                            } else {
                                value
                            }
                        })
                        .collect(),
                );
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
        })
    });
    if let Err(e) = runner.run_file_async(&path).await {
        panic!("{}", e.display(true));
    }
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
