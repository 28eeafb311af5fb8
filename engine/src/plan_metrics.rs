//! Numbers read off a running or finished physical plan: rows and bytes read
//! by its scans and bytes spilled by its operators. The shell's progress line
//! and tests use them.

use std::sync::Arc;

use datafusion::physical_plan::ExecutionPlan;

/// What a plan has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanMetrics {
    /// Rows produced by the plan's leaves (its scans).
    pub rows_read: usize,
    /// Bytes read by scans that report it (Parquet); 0 where unknown.
    pub bytes_read: usize,
    /// Times an operator spilled to disk.
    pub spill_count: usize,
    /// Bytes written to spill files.
    pub spilled_bytes: usize,
}

impl PlanMetrics {
    /// Sums the metrics of every node of `plan`.
    pub fn of(plan: &Arc<dyn ExecutionPlan>) -> Self {
        let mut out = PlanMetrics::default();
        out.add(plan);
        out
    }

    fn add(&mut self, plan: &Arc<dyn ExecutionPlan>) {
        let children = plan.children();
        if let Some(metrics) = plan.metrics() {
            if children.is_empty() {
                self.rows_read += metrics.output_rows().unwrap_or(0);
            }
            self.bytes_read += metrics
                .sum_by_name("bytes_scanned")
                .map(|v| v.as_usize())
                .unwrap_or(0);
            self.spill_count += metrics.spill_count().unwrap_or(0);
            self.spilled_bytes += metrics.spilled_bytes().unwrap_or(0);
        }
        for child in children {
            self.add(child);
        }
    }
}
