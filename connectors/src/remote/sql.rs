//! [`RemoteSql`]: remote SQL text made only from a logical plan.

use std::fmt;

use datafusion::common::Result;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::unparser::Unparser;
use datafusion::sql::unparser::dialect::Dialect;

/// SQL for a remote database. Moltres makes it only by rendering a DataFusion
/// logical plan with the database's dialect, so identifiers and literals are
/// always quoted by the dialect; [`RemoteSql::passthrough`] carries a user's
/// own native SQL unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSql(String);

impl RemoteSql {
    /// Renders `plan` in `dialect`; fails when the dialect cannot express it.
    pub fn from_plan(plan: &LogicalPlan, dialect: &dyn Dialect) -> Result<Self> {
        let statement = Unparser::new(dialect).plan_to_sql(plan)?;
        Ok(Self(statement.to_string()))
    }

    /// A user's own native SQL, sent as written (passthrough). Nothing of
    /// Moltres's making is ever put into it.
    pub fn passthrough(native: &str) -> Self {
        Self(native.to_string())
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
