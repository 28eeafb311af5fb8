//! Shared test helpers.

use std::path::{Path, PathBuf};
use std::sync::Once;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use moltres::Moltres;

/// The workspace root (where `testdata/` is).
pub fn root() -> &'static Path {
    static ONCE: Once = Once::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("sql/ has a parent");
    // slt files and API tests name paths relative to the workspace root.
    ONCE.call_once(|| std::env::set_current_dir(root).expect("chdir to workspace root"));
    root
}

/// A path under testdata/.
pub fn testdata(name: &str) -> PathBuf {
    root().join("testdata").join(name)
}

/// A session with defaults, ignoring the environment.
pub async fn session() -> Moltres {
    root();
    Moltres::builder()
        .without_env()
        .target_partitions(2)
        .build()
        .await
        .expect("session builds")
}

/// Rows as strings (NULL for nulls), for assertions.
pub fn rows(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let options = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for batch in batches {
        let formatters: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).expect("formatter"))
            .collect();
        for row in 0..batch.num_rows() {
            out.push(
                formatters
                    .iter()
                    .map(|f| f.value(row).to_string())
                    .collect(),
            );
        }
    }
    out
}

/// Runs `sql` and returns its rows as strings.
pub async fn query(db: &Moltres, sql: &str) -> Vec<Vec<String>> {
    let batches = db
        .sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows(&batches)
}
