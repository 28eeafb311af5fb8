//! DataFusion's physical filter pushdown, only where column names are
//! unambiguous.
//!
//! DataFusion 55's physical `FilterPushdown` rules (the one that moves
//! filters down the physical plan, and the one that hands joins' run-time
//! filters to the scans below them) find a filter's columns in a child by
//! name (`FilterRemapper`, `ProjectionExec::collect_reverse_alias`). Where a
//! node's columns share a name (`a.k` and `b.k`, both `k`), a filter on one
//! lands on the other. An outsider found both: a `RIGHT JOIN` whose keys
//! had different types lost its unmatched rows (`a.k IS NULL` was applied
//! to `b.k` below the join), and a run-time key filter built on `s.nk` was
//! sent to PostgreSQL as a condition on `c.nk` (two of eleven groups of a
//! TPC-H Q7-shaped query were kept). [`UnambiguousFilterPushdown`] runs a
//! pushdown rule only on plans in which no node has two columns of one
//! name; other plans keep their filters where the logical optimizer put
//! them (the logical pushdown resolves columns by qualified name and is not
//! affected), without run-time filters.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::common::Result;
use datafusion::common::config::ConfigOptions;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;

/// A physical filter pushdown rule, skipped for plans with ambiguous column
/// names (see the module docs).
#[derive(Debug)]
pub struct UnambiguousFilterPushdown {
    inner: Arc<dyn PhysicalOptimizerRule + Send + Sync>,
}

impl UnambiguousFilterPushdown {
    pub fn new(inner: Arc<dyn PhysicalOptimizerRule + Send + Sync>) -> Self {
        Self { inner }
    }
}

impl PhysicalOptimizerRule for UnambiguousFilterPushdown {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if has_ambiguous_names(&plan) {
            return Ok(plan);
        }
        self.inner.optimize(plan, config)
    }

    fn name(&self) -> &str {
        self.inner.name()
    }

    fn schema_check(&self) -> bool {
        self.inner.schema_check()
    }
}

/// Whether a node of `plan` has two columns of one name.
fn has_ambiguous_names(plan: &Arc<dyn ExecutionPlan>) -> bool {
    let schema = plan.schema();
    let mut seen = HashSet::new();
    if !schema
        .fields()
        .iter()
        .all(|f| seen.insert(f.name().as_str()))
    {
        return true;
    }
    plan.children().into_iter().any(has_ambiguous_names)
}
