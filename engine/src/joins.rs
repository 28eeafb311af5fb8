//! Joins that finish under a memory limit.
//!
//! DataFusion 55's hash join cannot spill: its build side must fit in the
//! memory pool, or the query fails with `Resources exhausted ...
//! HashJoinInput (can spill: false)`. Its sort-merge join can: the sorts
//! below it spill, and so does the side it buffers. [`SpillableJoins`]
//! replaces a hash join with a sort-merge join when the estimate of its
//! build side (DataFusion's statistics: Parquet footers, CSV and JSON file
//! sizes, the databases' row counts) is more than a quarter of the memory
//! limit, where the hash table (about twice its input) would crowd out
//! everything else. Joins with no estimate, or small ones, stay hash joins:
//! they are faster when they fit.
//!
//! The rule runs right after DataFusion's `JoinSelection` (which picks the
//! build side by the same estimates), before the distribution and sorting
//! rules, which give the sort-merge join its partitioned, sorted inputs.

use std::sync::Arc;

use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::common::Result;
use datafusion::common::config::ConfigOptions;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::joins::{HashJoinExec, SortMergeJoinExec};
use datafusion::physical_plan::projection::{ProjectionExec, ProjectionExpr};

/// The share of the memory limit a hash join's build side may be
/// estimated at: its hash table takes about twice its input, and sorts,
/// aggregates and other joins of the same query need room too.
const BUILD_SHARE: usize = 4;

/// Turns hash joins whose build side is estimated above a quarter of the
/// memory limit into sort-merge joins, which spill (see the module).
#[derive(Debug)]
pub struct SpillableJoins {
    /// The memory limit in bytes.
    limit: usize,
}

impl SpillableJoins {
    /// The rule for a memory limit of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self { limit }
    }

    /// Whether a build side estimated at `bytes` is too large to hash.
    fn too_large(&self, bytes: usize) -> bool {
        bytes > self.limit / BUILD_SHARE
    }
}

/// About how many bytes `plan`'s output holds: its byte estimate, or its
/// row estimate times a row's width; `None` when it has neither.
pub fn estimated_bytes(plan: &dyn ExecutionPlan) -> Option<usize> {
    let statistics = datafusion::physical_plan::StatisticsContext::new()
        .compute(plan, &datafusion::physical_plan::StatisticsArgs::new())
        .ok()?;
    match (statistics.total_byte_size, statistics.num_rows) {
        (Precision::Exact(bytes) | Precision::Inexact(bytes), _) => Some(bytes),
        (_, Precision::Exact(rows) | Precision::Inexact(rows)) => {
            Some(rows.saturating_mul(row_width(&plan.schema())))
        }
        _ => None,
    }
}

/// A guess at the bytes of one row in Arrow: fixed widths as they are,
/// 32 bytes for strings and binaries (with their offsets).
fn row_width(schema: &Schema) -> usize {
    schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView => 32,
            other => other.primitive_width().unwrap_or(16),
        })
        .sum::<usize>()
        .max(1)
}

impl PhysicalOptimizerRule for SpillableJoins {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(hash) = node.downcast_ref::<HashJoinExec>() else {
                return Ok(Transformed::no(node));
            };
            // NOT IN's null-aware anti join has no sort-merge form.
            if hash.null_aware || hash.on.is_empty() {
                return Ok(Transformed::no(node));
            }
            match estimated_bytes(hash.left.as_ref()) {
                Some(bytes) if self.too_large(bytes) => {}
                _ => return Ok(Transformed::no(node)),
            }
            let Ok(merge) = SortMergeJoinExec::try_new(
                Arc::clone(&hash.left),
                Arc::clone(&hash.right),
                hash.on.clone(),
                hash.filter.clone(),
                hash.join_type,
                vec![SortOptions::default(); hash.on.len()],
                hash.null_equality,
            ) else {
                return Ok(Transformed::no(node));
            };
            let merge: Arc<dyn ExecutionPlan> = Arc::new(merge);
            let replaced = match &hash.projection {
                None => merge,
                Some(columns) => {
                    let schema = merge.schema();
                    let exprs = columns.iter().map(|&i| {
                        let name = schema.field(i).name().clone();
                        ProjectionExpr {
                            expr: Arc::new(Column::new(&name, i)),
                            alias: name,
                        }
                    });
                    Arc::new(ProjectionExec::try_new(exprs, merge)?)
                }
            };
            Ok(Transformed::yes(replaced))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "moltres_spillable_joins"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::Field;

    #[test]
    fn widths() {
        let schema = Schema::new(vec![
            Field::new("a", DataType::Int64, false),
            Field::new("b", DataType::Utf8, true),
        ]);
        assert_eq!(row_width(&schema), 8 + 32);
        let rule = SpillableJoins::new(256 << 20);
        assert!(!rule.too_large(64 << 20));
        assert!(rule.too_large((64 << 20) + 1));
    }
}
