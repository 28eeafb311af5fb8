//! ETL: load a CSV file into a new PostgreSQL table, then query it there.
//!
//! `cargo run -p moltres --example csv_to_postgres` from the repository root
//! (PostgreSQL at `MOLTRES_EXAMPLE_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`).

use moltres::datafusion::arrow::array::{Array, UInt64Array};
use moltres::datafusion::arrow::record_batch::RecordBatch;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> moltres::Result<()> {
    let url = std::env::var("MOLTRES_EXAMPLE_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let db = moltres::connect(&url).await?;
    let table = format!("example_trips_{}", std::process::id());

    // Streamed into PostgreSQL with binary COPY, in one transaction.
    let loaded = db
        .sql(&format!(
            "CREATE TABLE {table} AS
             SELECT trip_id, city_id, CAST(started_at AS TIMESTAMP) AS started_at,
                    distance_km, CAST(fare AS DECIMAL(10,2)) AS fare, payment
             FROM 'testdata/trips.csv'"
        ))
        .await?
        .collect()
        .await?;
    println!(
        "loaded {} rows into {table}",
        moltres_example_count(&loaded)
    );

    // The aggregate runs in PostgreSQL (see EXPLAIN); the result is Arrow.
    db.sql(&format!(
        "SELECT city_id, count(*) AS trips, sum(fare) AS revenue
         FROM {table} GROUP BY city_id ORDER BY city_id"
    ))
    .await?
    .show()
    .await?;

    db.sql(&format!("DROP TABLE {table}"))
        .await?
        .collect()
        .await?;
    Ok(())
}

/// The `count` an INSERT or CREATE TABLE AS returns.
fn moltres_example_count(batches: &[RecordBatch]) -> u64 {
    batches
        .first()
        .and_then(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<UInt64Array>()
                .map(|a| a.value(0))
        })
        .unwrap_or(0)
}
