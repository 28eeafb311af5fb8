//! ETL: export a PostgreSQL query, joined with a local file, to Parquet.
//!
//! `cargo run -p moltres --example postgres_to_parquet` from the repository
//! root (PostgreSQL at `MOLTRES_EXAMPLE_POSTGRES_URL`).

use moltres::Moltres;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> moltres::Result<()> {
    let url = std::env::var("MOLTRES_EXAMPLE_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let db = Moltres::builder().build().await?;
    db.attach(&url, "pg", false).await?;
    let table = format!("pg.public.example_fares_{}", std::process::id());
    db.sql(&format!(
        "CREATE TABLE {table} AS SELECT trip_id, city_id, fare FROM 'testdata/trips.csv'"
    ))
    .await?
    .collect()
    .await?;

    // PostgreSQL rows joined with a Parquet file, written as partitioned Parquet.
    let out = "target/examples/fares_by_city";
    let _ = std::fs::remove_dir_all(out);
    db.sql(&format!(
        "COPY (SELECT c.country, c.name AS city, f.trip_id, f.fare
               FROM {table} f JOIN 'testdata/cities.parquet' c ON c.id = f.city_id)
         TO '{out}/' STORED AS PARQUET PARTITIONED BY (country)"
    ))
    .await?
    .collect()
    .await?;
    db.sql(&format!(
        "SELECT country, count(*) AS trips FROM '{out}/' GROUP BY country ORDER BY country"
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
