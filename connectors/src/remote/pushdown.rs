//! The pushdown capability model: per filter, whether the database computes
//! exactly what DataFusion computes.
//!
//! * [`Capability::Exact`]: same rows; DataFusion drops its own filter.
//! * [`Capability::Inexact`]: the database returns a superset; DataFusion
//!   filters again (and no LIMIT is pushed above it).
//! * [`Capability::Unsupported`] (the default): evaluated locally.
//!
//! A policy answers for one expression against the table's Arrow schema. The
//! shared walker [`classify`] handles AND/OR/NOT so policies only judge leaves.

use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::logical_expr::{Expr, Operator, TableProviderFilterPushDown};

/// How faithfully a database evaluates an expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Capability {
    /// Not pushed.
    Unsupported,
    /// Pushed, and re-checked locally.
    Inexact,
    /// Pushed; the database's answer is DataFusion's answer.
    Exact,
}

impl Capability {
    /// Exact when `exact`, otherwise Unsupported.
    pub fn exact_if(exact: bool) -> Self {
        if exact {
            Capability::Exact
        } else {
            Capability::Unsupported
        }
    }
}

impl From<Capability> for TableProviderFilterPushDown {
    fn from(c: Capability) -> Self {
        match c {
            Capability::Exact => TableProviderFilterPushDown::Exact,
            Capability::Inexact => TableProviderFilterPushDown::Inexact,
            Capability::Unsupported => TableProviderFilterPushDown::Unsupported,
        }
    }
}

/// A database's judgement of single predicates.
pub trait PushdownPolicy: std::fmt::Debug + Send + Sync {
    /// The capability for a predicate that is not AND/OR/NOT. Unsupported
    /// unless the database is known to agree with DataFusion.
    fn leaf(&self, _expr: &Expr, _schema: &Schema) -> Capability {
        Capability::Unsupported
    }

    /// Whether the database computes the value of `expr` (a result column,
    /// an aggregate's argument) exactly as DataFusion does. False unless
    /// known.
    fn computes_exactly(&self, _expr: &Expr, _schema: &Schema) -> bool {
        false
    }

    /// Whether the database orders values of this column (with explicit
    /// NULLS FIRST/LAST) exactly as DataFusion does, so ORDER BY + LIMIT can
    /// be pushed. False unless known.
    fn sorts_exactly(&self, _field: &Field) -> bool {
        false
    }

    /// Whether the database orders the non-NULL values of this column
    /// exactly as DataFusion does (`min`, `max`). By default, as
    /// [`sorts_exactly`](Self::sorts_exactly).
    fn orders_values_exactly(&self, field: &Field) -> bool {
        self.sorts_exactly(field)
    }

    /// Whether the database tells values of this column apart exactly as
    /// DataFusion does (equality in joins, GROUP BY, DISTINCT). False unless
    /// known.
    fn equals_exactly(&self, _field: &Field) -> bool {
        false
    }

    /// What work costs the database (see the `cost` module): whether a
    /// join's keys are worth sending as `IN (...)`, and whether a join of
    /// two of its tables is worth running there. By default PostgreSQL's.
    fn costs(&self) -> super::cost::Costs {
        super::cost::Costs::default()
    }

    /// The type the database gives `sum` of a value of Arrow type
    /// `argument`, when it is not DataFusion's (PostgreSQL and MySQL sum
    /// integers as `numeric`/`DECIMAL`): an expression over the sum in the
    /// same remote query is judged with this type (`sum(x) / 78` divides a
    /// decimal there, not an integer). `None`: the same as DataFusion's.
    fn sum_type(&self, _argument: &DataType) -> Option<DataType> {
        None
    }

    /// Whether the database compares these two columns (a join's keys)
    /// exactly as DataFusion does: by default when it tells the values of
    /// each apart exactly.
    fn equals_exactly_between(&self, left: &Field, right: &Field) -> bool {
        self.equals_exactly(left) && self.equals_exactly(right)
    }

    /// Whether nothing at all is pushed ([`NothingPushed`]): no query is
    /// federated to the database, whatever it would compute alike.
    fn pushes_nothing(&self) -> bool {
        false
    }
}

/// Pushes nothing: the policy of a source attached with `pushdown = off`
/// (no filter, join, aggregate, sort or key list; only the columns a query
/// reads are selected). Its answers are the reference the differential
/// tests compare pushed-down answers with, and a way out for a user who
/// suspects a pushdown.
#[derive(Debug, Default)]
pub struct NothingPushed;

impl PushdownPolicy for NothingPushed {
    fn pushes_nothing(&self) -> bool {
        true
    }
}

/// Classifies `expr`: AND is as good as its weaker side, OR likewise (a
/// superset on either side is a superset of the OR), NOT only of an Exact
/// operand (NOT of a superset is a subset); other expressions go to the policy.
pub fn classify(policy: &dyn PushdownPolicy, expr: &Expr, schema: &Schema) -> Capability {
    match expr {
        Expr::BinaryExpr(b) if matches!(b.op, Operator::And | Operator::Or) => {
            classify(policy, &b.left, schema).min(classify(policy, &b.right, schema))
        }
        Expr::Not(inner) => match classify(policy, inner, schema) {
            Capability::Exact => Capability::Exact,
            _ => Capability::Unsupported,
        },
        other => policy.leaf(other, schema),
    }
}

/// Helpers for policies: literals as every dialect sees them.
pub mod literals {
    use datafusion::common::ScalarValue;
    use datafusion::logical_expr::{Expr, Operator};

    /// `=`, `<>`, `<`, `<=`, `>`, `>=`.
    pub fn is_comparison(op: &Operator) -> bool {
        matches!(
            op,
            Operator::Eq
                | Operator::NotEq
                | Operator::Lt
                | Operator::LtEq
                | Operator::Gt
                | Operator::GtEq
        )
    }

    /// The value of an integer literal.
    pub fn integer(expr: &Expr) -> Option<i128> {
        match expr {
            Expr::Literal(value, _) if value.data_type().is_integer() && !value.is_null() => {
                value.to_string().parse().ok()
            }
            _ => None,
        }
    }

    /// The text of a string literal (every writer can write any string;
    /// PostgreSQL's policy refuses NUL, which its text cannot hold).
    pub fn text(expr: &Expr) -> Option<&str> {
        match expr {
            Expr::Literal(
                ScalarValue::Utf8(Some(s))
                | ScalarValue::Utf8View(Some(s))
                | ScalarValue::LargeUtf8(Some(s)),
                _,
            ) => Some(s),
            _ => None,
        }
    }

    /// A divisor that makes integer `/` and `%` total and overflow-free.
    pub fn is_safe_divisor(expr: &Expr) -> bool {
        integer(expr).is_some_and(|n| n != 0 && n != -1)
    }
}

/// Whether pushdown is on for a source: the `pushdown` URL parameter or
/// ATTACH option (`on`/`off`, `true`/`false`; on by default).
pub fn pushdown_enabled(
    source: &str,
    url: &str,
    options: &std::collections::BTreeMap<String, String>,
) -> datafusion::common::Result<bool> {
    let from_url = url.split_once('?').and_then(|(_, query)| {
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "pushdown")
            .map(|(_, v)| v.into_owned())
    });
    match options.get("pushdown").cloned().or(from_url).as_deref() {
        None | Some("on" | "true") => Ok(true),
        Some("off" | "false") => Ok(false),
        Some(other) => Err(datafusion::common::DataFusionError::Configuration(format!(
            "source '{source}': pushdown must be on or off, got '{other}'"
        ))),
    }
}
