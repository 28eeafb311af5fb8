//! `avg` of decimals, federated as `sum` and `count`.
//!
//! A database rounds a decimal average its own way (PostgreSQL to at least
//! 16 significant digits, MySQL to the argument's scale + 4), DataFusion
//! truncates to the argument's scale + 4. So an aggregate with `avg(x)` of a
//! decimal `x` runs in the database as `sum(x)` and `count(x)`, both exact,
//! and [`AvgFinish`] divides them locally exactly as DataFusion's `avg`
//! does: the sum scaled to the result's scale, divided by the count with
//! the remainder dropped, NULL for no values, an error past the result's
//! precision.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, Decimal128Builder};
use datafusion::arrow::datatypes::{DataType, Decimal128Type, DecimalType, Int64Type};
use datafusion::common::{Column, Result, exec_err};
use datafusion::functions_aggregate::expr_fn::{count, sum};
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::{
    Aggregate, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Projection, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// Widest decimal argument whose `avg` DataFusion sums as a `Decimal128`
/// (it adds 13 digits of headroom).
const MAX_PRECISION: u8 = 38 - 13;

/// An aggregate with each decimal `avg(x)` replaced by `sum(x)` and
/// `count(x)`, and the expressions that turn its output back into the
/// original one (same names, same types). `None` when it holds no such
/// `avg` or is grouped by grouping sets.
pub(super) fn split_decimal_averages(
    aggregate: &Aggregate,
    input: LogicalPlan,
) -> Result<Option<(LogicalPlan, Vec<Expr>)>> {
    if aggregate
        .group_expr
        .iter()
        .any(|e| matches!(e, Expr::GroupingSet(_)))
    {
        return Ok(None);
    }
    let mut aggregates = Vec::with_capacity(aggregate.aggr_expr.len() + 1);
    // For each original aggregate: its output column, or the sum and count.
    let mut finishes: Vec<Option<(String, String, u8, i8)>> = Vec::new();
    for (i, expr) in aggregate.aggr_expr.iter().enumerate() {
        match decimal_average(expr, aggregate.input.schema())? {
            Some((argument, precision, scale)) => {
                let sum_name = format!("__moltres_avg_sum_{i}");
                let count_name = format!("__moltres_avg_count_{i}");
                aggregates.push(sum(argument.clone()).alias(&sum_name));
                aggregates.push(count(argument).alias(&count_name));
                finishes.push(Some((sum_name, count_name, precision, scale)));
            }
            None => {
                aggregates.push(expr.clone());
                finishes.push(None);
            }
        }
    }
    if finishes.iter().all(Option::is_none) {
        return Ok(None);
    }
    let split = Aggregate::try_new(Arc::new(input), aggregate.group_expr.clone(), aggregates)?;
    let schema = Arc::clone(&split.schema);
    let mut outputs: Vec<Expr> = (0..aggregate.group_expr.len())
        .map(|i| Expr::Column(Column::from(schema.qualified_field(i))))
        .collect();
    let original = aggregate.schema.as_ref();
    for (i, finish) in finishes.into_iter().enumerate() {
        let name = original.field(aggregate.group_expr.len() + i).name();
        outputs.push(match finish {
            Some((sum_name, count_name, precision, scale)) => {
                let finish = ScalarUDF::from(AvgFinish::new(name, precision, scale));
                finish
                    .call(vec![
                        Expr::Column(Column::new_unqualified(sum_name)),
                        Expr::Column(Column::new_unqualified(count_name)),
                    ])
                    .alias(name)
            }
            None => Expr::Column(Column::new_unqualified(name)),
        });
    }
    Ok(Some((LogicalPlan::Aggregate(split), outputs)))
}

/// The projection of `outputs` over `input`, if its schema is exactly
/// `expected` (names, qualifiers, types); otherwise the split is not used.
pub(super) fn finish_averages(
    input: LogicalPlan,
    outputs: Vec<Expr>,
    expected: &datafusion::common::DFSchema,
) -> Result<Option<LogicalPlan>> {
    let projection = Projection::try_new(outputs, Arc::new(input))?;
    let same = projection.schema.fields().len() == expected.fields().len()
        && projection
            .schema
            .iter()
            .zip(expected.iter())
            .all(|((qa, a), (qb, b))| {
                qa == qb && a.name() == b.name() && a.data_type() == b.data_type()
            });
    Ok(same.then_some(LogicalPlan::Projection(projection)))
}

/// `avg(x)` of a `Decimal128(p, s)` with `p` small enough: `x`, `p`, `s`.
fn decimal_average(
    expr: &Expr,
    schema: &datafusion::common::DFSchema,
) -> Result<Option<(Expr, u8, i8)>> {
    let Expr::AggregateFunction(AggregateFunction { func, params }) = expr.clone().unalias() else {
        return Ok(None);
    };
    if func.name() != "avg"
        || params.distinct
        || params.filter.is_some()
        || !params.order_by.is_empty()
        || params.null_treatment.is_some()
    {
        return Ok(None);
    }
    let [argument] = params.args.as_slice() else {
        return Ok(None);
    };
    Ok(match argument.get_type(schema)? {
        DataType::Decimal128(precision, scale) if precision <= MAX_PRECISION => {
            Some((argument.clone(), precision, scale))
        }
        _ => None,
    })
}

/// `avg` of a `Decimal128(p, s)` from its sum and count, as DataFusion's
/// `avg` computes it: `Decimal128(min(38, p + 4), min(38, s + 4))`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct AvgFinish {
    signature: Signature,
    /// The average it finishes (`avg(t.x)`), for errors.
    name: String,
    precision: u8,
    scale: i8,
}

impl AvgFinish {
    /// The finish of `name`, an `avg` over a `Decimal128(precision, scale)`.
    pub fn new(name: &str, precision: u8, scale: i8) -> Self {
        Self {
            signature: Signature::any(2, Volatility::Immutable),
            name: name.to_string(),
            precision,
            scale,
        }
    }

    fn result_type(&self) -> (u8, i8) {
        ((self.precision + 4).min(38), (self.scale + 4).min(38))
    }
}

impl ScalarUDFImpl for AvgFinish {
    fn name(&self) -> &str {
        "avg_from_sum_and_count"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        let (precision, scale) = self.result_type();
        Ok(DataType::Decimal128(precision, scale))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let [sums, counts] = arrays.as_slice() else {
            return exec_err!("avg_from_sum_and_count takes a sum and a count");
        };
        let DataType::Decimal128(_, sum_scale) = sums.data_type() else {
            return exec_err!("avg_from_sum_and_count: the sum is {}", sums.data_type());
        };
        let sums = sums.as_primitive::<Decimal128Type>();
        let counts = counts.as_primitive::<Int64Type>();
        let (precision, scale) = self.result_type();
        let Some(factor) = scale
            .checked_sub(*sum_scale)
            .and_then(|d| u32::try_from(d).ok())
            .and_then(|d| 10_i128.checked_pow(d))
        else {
            return exec_err!("avg_from_sum_and_count: a sum of scale {sum_scale}");
        };
        let mut averages = Decimal128Builder::with_capacity(sums.len());
        for i in 0..sums.len() {
            if sums.is_null(i) || counts.is_null(i) || counts.value(i) == 0 {
                averages.append_null();
                continue;
            }
            let average = sums
                .value(i)
                .checked_mul(factor)
                .map(|scaled| scaled / i128::from(counts.value(i)))
                .filter(|v| Decimal128Type::is_valid_decimal_precision(*v, precision));
            match average {
                Some(v) => averages.append_value(v),
                None => return exec_err!("{}: Arithmetic Overflow in AvgAccumulator", self.name),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(
            averages
                .finish()
                .with_precision_and_scale(precision, scale)?,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Decimal128Array, Int64Array};
    use datafusion::arrow::datatypes::Field;
    use datafusion::common::config::ConfigOptions;

    fn finish(
        precision: u8,
        scale: i8,
        sums: Vec<Option<i128>>,
        counts: Vec<i64>,
    ) -> Result<Vec<Option<i128>>> {
        let udf = AvgFinish::new("avg(t.x)", precision, scale);
        let sums = Decimal128Array::from(sums).with_precision_and_scale(38, scale)?;
        let rows = sums.len();
        let result = udf.invoke_with_args(ScalarFunctionArgs {
            args: vec![
                ColumnarValue::Array(Arc::new(sums)),
                ColumnarValue::Array(Arc::new(Int64Array::from(counts))),
            ],
            arg_fields: vec![],
            number_rows: rows,
            return_field: Arc::new(Field::new("avg", udf.return_type(&[])?, true)),
            config_options: Arc::new(ConfigOptions::new()),
        })?;
        let ColumnarValue::Array(array) = result else {
            panic!("an array");
        };
        Ok(array.as_primitive::<Decimal128Type>().iter().collect())
    }

    #[test]
    fn truncates_like_datafusion() -> Result<()> {
        // 10.00 / 3 = 3.333333 (scale 2 + 4), -10.00 / 3 = -3.333333;
        // 2.00 / 3 = 0.666666 (truncated, not rounded).
        let got = finish(
            15,
            2,
            vec![Some(1000), Some(-1000), Some(200), None, Some(5)],
            vec![3, 3, 3, 0, 0],
        )?;
        assert_eq!(
            got,
            vec![Some(3_333_333), Some(-3_333_333), Some(666_666), None, None]
        );
        Ok(())
    }

    #[test]
    fn overflow_is_an_error() {
        let err = finish(25, 0, vec![Some(10_i128.pow(36))], vec![1]).unwrap_err();
        assert!(err.to_string().contains("Overflow"), "{err}");
        assert!(
            err.to_string().contains("avg(t.x)"),
            "names the average: {err}"
        );
    }
}
