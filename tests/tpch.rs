//! TPC-H at scale factor 0.1 across all five kinds of source: the 22
//! queries over the split (lineitem and orders in PostgreSQL, customer and
//! nation in MariaDB, part and partsupp in SQLite, supplier as CSV, region
//! as Parquet) give the answers the same queries give over all-Parquet;
//! and so do they over the second split, with orders in MariaDB apart from
//! lineitem.
//! The benchmark (`moltres-benches tpch`) runs the same code at larger
//! scale factors and times it.

use moltres_benches::tpch::{self, Split};

use crate::common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_sf0_1_over_the_split_answers_like_all_parquet() {
    common::root();
    // The generated files are deterministic, so they are kept between runs
    // (written under a temporary name, then renamed).
    let dir = std::env::temp_dir().join("moltres-tpch-sf0.1-tpchgen4");
    let data = tpch::generate(&dir, 0.1).expect("generate TPC-H SF0.1");
    let unique = format!("moltres_tpch_test_{}", std::process::id());
    let sqlite = tempfile::tempdir().expect("temp dir");
    let split = Split {
        postgres: common::postgres_url(),
        pg_schema: unique.clone(),
        mysql: common::mysql_url(),
        my_database: unique,
        sqlite: sqlite.path().join("split.db"),
        orders_apart: false,
    };
    let mut outcome = check(&data, &split, true).await;
    if outcome.is_ok() {
        // The second split: orders in MariaDB, lineitem in PostgreSQL.
        let apart = Split {
            orders_apart: true,
            ..split.clone()
        };
        outcome = check(&data, &apart, false)
            .await
            .map_err(|e| format!("with orders in MariaDB: {e}"));
    }
    tpch::drop_split(&split)
        .await
        .unwrap_or_else(|e| panic!("dropping the split: {e}"));
    if let Err(e) = outcome {
        panic!("{e}");
    }
}

async fn check(data: &tpch::Data, split: &Split, reload: bool) -> Result<(), String> {
    tpch::load_split(data, split, reload).await.map_err(|e| {
        format!("loading the split (PostgreSQL and MariaDB must be up; .ci/run starts them): {e}")
    })?;
    let parquet = tpch::parquet_session(data)
        .await
        .map_err(|e| e.to_string())?;
    let (outcomes, reference) = tpch::run_all(&parquet, 1, None, |_, _| {}).await;
    let failed = problems(&outcomes);
    if !failed.is_empty() {
        return Err(format!("over all-Parquet: {}", failed.join("\n")));
    }
    // Every query has rows to check (an empty answer would prove little).
    for ((q, _), rows) in tpch::QUERIES.iter().zip(&reference) {
        if rows.is_empty() {
            return Err(format!("{q} over all-Parquet returned no rows"));
        }
    }
    let db = tpch::split_session(data, split)
        .await
        .map_err(|e| e.to_string())?;
    let (outcomes, _) = tpch::run_all(&db, 1, Some(&reference), |_, _| {}).await;
    let wrong = problems(&outcomes);
    if !wrong.is_empty() {
        return Err(format!(
            "{} of 22 answers over the split differ from all-Parquet:\n{}",
            wrong.len(),
            wrong.join("\n")
        ));
    }
    // The split really is read from the databases: Q3 reads customer from
    // MariaDB and orders and lineitem from PostgreSQL.
    let scans = tpch::remote_queries(&db, tpch::QUERIES[2].1)
        .await
        .map_err(|e| e.to_string())?;
    if scans < 2 {
        return Err(format!(
            "Q3 should read MariaDB and PostgreSQL; {scans} remote scans"
        ));
    }
    Ok(())
}

/// "qNN: what went wrong" for each query that failed or differed.
fn problems(outcomes: &[tpch::Outcome]) -> Vec<String> {
    outcomes
        .iter()
        .zip(tpch::QUERIES)
        .filter_map(|(o, (q, _))| o.problem.as_ref().map(|p| format!("{q}: {p}")))
        .collect()
}
