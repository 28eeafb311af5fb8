//! [`RemoteTable`]: one table of a remote database as a DataFusion table.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{Column, Result, TableReference};
use datafusion::datasource::TableType;
use datafusion::logical_expr::{
    Expr, LogicalPlanBuilder, LogicalTableSource, TableProviderFilterPushDown, cast,
};
use datafusion::physical_plan::ExecutionPlan;

use super::pushdown::{Capability, classify};
use super::{CAST_TO_TEXT, RemoteDatabase, RemoteScanExec, RemoteSql};

/// A table (or view) of a remote database.
#[derive(Debug)]
pub struct RemoteTable {
    database: Arc<dyn RemoteDatabase>,
    reference: TableReference,
    schema: SchemaRef,
}

impl RemoteTable {
    /// `schema.table` of `database`, whose columns are `arrow_schema`.
    pub fn new(
        database: Arc<dyn RemoteDatabase>,
        schema: &str,
        table: &str,
        arrow_schema: SchemaRef,
    ) -> Self {
        Self {
            database,
            reference: TableReference::partial(schema, table),
            schema: arrow_schema,
        }
    }

    /// The SQL a scan with these arguments sends.
    pub fn scan_sql(
        &self,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<RemoteSql> {
        let source = Arc::new(LogicalTableSource::new(Arc::clone(&self.schema)));
        let mut builder = LogicalPlanBuilder::scan(self.reference.clone(), source, None)?;
        for filter in filters {
            if classify(self.database.pushdown(), filter, &self.schema) != Capability::Unsupported {
                builder = builder.filter(filter.clone())?;
            }
        }
        let indices: Vec<usize> = match projection {
            Some(indices) => indices.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let columns: Vec<Expr> = indices
            .iter()
            .map(|i| {
                let field = self.schema.field(*i);
                let column = Expr::Column(Column::new(Some(self.reference.clone()), field.name()));
                if field.metadata().contains_key(CAST_TO_TEXT) {
                    cast(column, DataType::Utf8).alias(field.name())
                } else {
                    column
                }
            })
            .collect();
        builder = builder.project(columns)?;
        if let Some(limit) = limit {
            builder = builder.limit(0, Some(limit))?;
        }
        RemoteSql::from_plan(&builder.build()?, self.database.dialect())
    }
}

#[async_trait]
impl TableProvider for RemoteTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| classify(self.database.pushdown(), f, &self.schema).into())
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let sql = self.scan_sql(projection, filters, limit)?;
        let schema = match projection {
            Some(indices) => Arc::new(self.schema.project(indices)?),
            None => Arc::clone(&self.schema),
        };
        Ok(Arc::new(RemoteScanExec::new(
            Arc::clone(&self.database),
            sql,
            schema,
            state.config().batch_size(),
        )))
    }
}
