//! Memory-bounded execution at small scale: ORDER BY and GROUP BY over a CSV
//! several times larger than the memory limit complete by spilling to disk.
//! (The 2 GB version is `benches`' `spill` benchmark.)

use std::io::Write;
use std::sync::Arc;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::physical_plan::{ExecutionPlan, execute_stream};
use futures::StreamExt;
use moltres::{MemoryLimit, Moltres, PlanMetrics};

use crate::common;

const ROWS: u64 = 1_600_000;
const LIMIT: usize = 16 << 20;

/// `id,key,value` with pseudo-random keys (a fixed LCG), about 62 MB.
fn write_csv(path: &std::path::Path) -> u64 {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(out, "id,key,value,note").unwrap();
    let mut x: u64 = 42;
    for id in 0..ROWS {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let key = (x >> 33) % 400_000;
        writeln!(
            out,
            "{id},k{key:06},{},padding-text-{:x}",
            x % 1000,
            x >> 40
        )
        .unwrap();
    }
    out.flush().unwrap();
    std::fs::metadata(path).unwrap().len()
}

async fn session(spill_dir: &std::path::Path) -> Moltres {
    common::root();
    Moltres::builder()
        .without_env()
        .memory_limit(MemoryLimit::Bytes(LIMIT))
        .spill_dir(spill_dir)
        // One partition and smaller batches keep the merge phase (which
        // cannot spill) small enough for a 16 MiB budget.
        .target_partitions(1)
        .batch_size(4096)
        .build()
        .await
        .unwrap()
}

async fn run(
    db: &Moltres,
    sql: &str,
) -> (
    Arc<dyn ExecutionPlan>,
    Vec<datafusion::arrow::record_batch::RecordBatch>,
) {
    let plan = db
        .sql(sql)
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    let mut stream = execute_stream(Arc::clone(&plan), db.context().task_ctx()).unwrap();
    let mut batches = Vec::new();
    while let Some(batch) = stream.next().await {
        batches.push(batch.unwrap_or_else(|e| panic!("{sql}: {e}")));
    }
    (plan, batches)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sort_and_aggregate_larger_than_memory_spill() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("big.csv");
    let size = write_csv(&csv);
    assert!(
        size as usize > 3 * LIMIT,
        "input {size} B is not larger than memory"
    );
    let spill_dir = dir.path().join("spill");
    std::fs::create_dir(&spill_dir).unwrap();
    let db = session(&spill_dir).await;

    // ORDER BY over all rows: output is complete and sorted.
    let sql = format!(
        "SELECT key, id, note FROM '{}' ORDER BY key, id",
        csv.display()
    );
    let (plan, batches) = run(&db, &sql).await;
    let mut previous: Option<(String, i64)> = None;
    let mut rows = 0;
    for batch in &batches {
        let keys = cast(batch.column(0), &DataType::Utf8).unwrap();
        let keys = keys.as_string::<i32>();
        let ids = batch.column(1).as_primitive::<Int64Type>();
        for i in 0..batch.num_rows() {
            let current = (keys.value(i).to_string(), ids.value(i));
            if let Some(prev) = &previous {
                assert!(prev <= &current, "not sorted: {prev:?} then {current:?}");
            }
            previous = Some(current);
            rows += 1;
        }
    }
    assert_eq!(rows, ROWS);
    let metrics = PlanMetrics::of(&plan);
    assert!(
        metrics.spill_count > 0,
        "the sort did not spill: {metrics:?}"
    );
    assert!(metrics.spilled_bytes > 0, "{metrics:?}");

    // GROUP BY with many groups: every row counted once.
    let sql = format!(
        "SELECT key, count(*) AS n, sum(value) AS total, max(note) AS note FROM '{}' GROUP BY key",
        csv.display()
    );
    let (plan, batches) = run(&db, &sql).await;
    let mut groups = 0;
    let mut counted = 0;
    for batch in &batches {
        groups += batch.num_rows();
        let n = batch.column(1).as_primitive::<Int64Type>();
        counted += (0..n.len()).map(|i| n.value(i)).sum::<i64>();
    }
    assert_eq!(counted as u64, ROWS);
    assert!(groups > 350_000, "{groups} groups");
    let metrics = PlanMetrics::of(&plan);
    assert!(
        metrics.spill_count > 0,
        "the aggregate did not spill: {metrics:?}"
    );

    // A join whose every side is larger than memory (issue 17, part 4): a
    // hash join cannot spill and failed ("HashJoinInput (can spill:
    // false)"); under the limit it is planned as a sort-merge join, whose
    // sorts spill, and every row is matched once.
    let sql = format!(
        "SELECT count(*) AS n, sum(a.value - b.value) AS zero FROM '{0}' a JOIN '{0}' b \
         ON a.id = b.id AND a.key = b.key",
        csv.display()
    );
    let (join_plan, batches) = run(&db, &sql).await;
    assert_eq!(
        common::rows(&batches),
        [[ROWS.to_string(), "0".to_string()]],
        "{sql}"
    );
    let shown = datafusion::physical_plan::displayable(join_plan.as_ref())
        .indent(true)
        .to_string();
    assert!(
        shown.contains("SortMergeJoin") && !shown.contains("HashJoinExec"),
        "{shown}"
    );
    assert!(PlanMetrics::of(&join_plan).spill_count > 0, "{shown}");
    drop(join_plan);
    // Without a limit the same join stays a hash join (faster when it fits).
    let unlimited = Moltres::builder()
        .without_env()
        .memory_limit(MemoryLimit::Unlimited)
        .build()
        .await
        .unwrap();
    let shown = common::explain(&unlimited, &sql).await;
    assert!(shown.contains("HashJoinExec"), "{shown}");

    // Spill files are cleaned up once the queries are done.
    drop(plan);
    let left: Vec<_> = walk(&spill_dir);
    assert!(left.is_empty(), "spill files left behind: {left:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
