//! [`RemoteSql`]: remote SQL text made only from a logical plan.

use std::fmt;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::sql::unparser::Unparser;
use datafusion::sql::unparser::dialect::Dialect;

/// A timestamp literal with a time zone as the same instant without one
/// (UTC wall-clock time); other expressions unchanged.
pub(crate) fn utc_literal(expr: Expr) -> Result<Transformed<Expr>> {
    use ScalarValue::*;
    Ok(match expr {
        Expr::Literal(value, metadata) => {
            let naive = match value {
                TimestampSecond(v, Some(_)) => TimestampSecond(v, None),
                TimestampMillisecond(v, Some(_)) => TimestampMillisecond(v, None),
                TimestampMicrosecond(v, Some(_)) => TimestampMicrosecond(v, None),
                TimestampNanosecond(v, Some(_)) => TimestampNanosecond(v, None),
                other => return Ok(Transformed::no(Expr::Literal(other, metadata))),
            };
            Transformed::yes(Expr::Literal(naive, metadata))
        }
        other => Transformed::no(other),
    })
}

/// SQL for a remote database. Moltres makes it only by rendering a DataFusion
/// logical plan with the database's dialect, so identifiers and literals are
/// always quoted by the dialect; [`RemoteSql::passthrough`] carries a user's
/// own native SQL unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSql(String);

impl RemoteSql {
    /// Renders `plan` in `dialect`; fails when the dialect cannot express it.
    ///
    /// Timestamp literals with a time zone are rendered as their UTC
    /// wall-clock time: the unparser would print the local time with an
    /// offset and cast it to a zone-less `TIMESTAMP`, which drops the
    /// offset. Every connector pins its session time zone to UTC, so the
    /// UTC text means the same instant.
    pub fn from_plan(plan: &LogicalPlan, dialect: &dyn Dialect) -> Result<Self> {
        let plan = plan
            .clone()
            .transform_up(|node| node.map_expressions(|e| e.transform(utc_literal)))?
            .data;
        let statement = Unparser::new(dialect).plan_to_sql(&plan)?;
        Ok(Self(statement.to_string()))
    }

    /// A user's own native SQL, sent as written (passthrough). Nothing of
    /// Moltres's making is ever put into it.
    pub fn passthrough(native: &str) -> Self {
        Self(native.to_string())
    }

    /// A data-changing statement Moltres assembled from a quoted table name
    /// and expressions rendered by the unparser (`DELETE`, `UPDATE`).
    pub(crate) fn statement(sql: String) -> Self {
        Self(sql)
    }

    /// The text sent to the database.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RemoteSql {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
