//! ETL: copy a MySQL/MariaDB table into a SQLite file, all rows or none.
//!
//! `cargo run -p moltres --example mysql_to_sqlite` from the repository root
//! (MariaDB at `MOLTRES_EXAMPLE_MYSQL_URL`, default
//! `mysql://root@127.0.0.1:3306/test`).

use moltres::Moltres;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("MOLTRES_EXAMPLE_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into());
    let db = Moltres::builder().build().await?;
    db.attach(&url, "my", false).await?;
    let table = format!("example_drivers_{}", std::process::id());
    // Some data in MySQL first (from the bundled SQLite database).
    db.attach("sqlite:testdata/fleet.db?mode=ro", "fleet", false)
        .await?;
    db.sql(&format!(
        "CREATE TABLE my.{table} AS SELECT id, name, rating FROM fleet.drivers"
    ))
    .await?
    .collect()
    .await?;

    // MySQL into a new SQLite file.
    std::fs::create_dir_all("target/examples")?;
    let path = format!("target/examples/drivers_{}.db", std::process::id());
    db.attach(&format!("sqlite:{path}?mode=rwc"), "out", false)
        .await?;
    db.sql(&format!(
        "CREATE TABLE out.drivers AS SELECT id, name, rating FROM my.{table} WHERE rating >= 4"
    ))
    .await?
    .show()
    .await?;
    db.sql("SELECT count(*) AS good_drivers, round(avg(rating), 2) AS rating FROM out.drivers")
        .await?
        .show()
        .await?;

    db.sql(&format!("DROP TABLE my.{table}"))
        .await?
        .collect()
        .await?;
    std::fs::remove_file(&path)?;
    Ok(())
}
