//! Tables of attached databases from Rust: `create_table`, `drop_table`,
//! `create_index`, `drop_index`, `update`, `delete` and `write_table`.
//!
//! Every identifier is quoted by the database's dialect and every value is
//! rendered as a literal by it (or, for rows, bound or sent by `COPY`);
//! column types given as text must look like a type name (letters, digits,
//! spaces, `_`, `(`, `)`, `,`, `[`, `]`), so nothing a caller passes can
//! end a statement or start another.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{ScalarValue, TableReference};
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::datasource::provider_as_source;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{
    DmlStatement, Expr, ExprSchemable, LogicalPlan, LogicalPlanBuilder, WriteOp,
};
use datafusion::prelude::DataFrame;
use datafusion::sql::unparser::Unparser;
use moltres_connectors::remote::RemoteDatabase;

use crate::ddl::{self, Target};
use crate::error::{Error, Result};
use crate::observe::{QueryTag, StatementKind, tag};
use crate::session::Moltres;

/// The type of a column of [`Moltres::create_table`]: the database's own
/// type name (`"INTEGER"`, `"VARCHAR(20)"`, `"timestamptz"`) or an Arrow
/// type, mapped as `CREATE TABLE ... AS SELECT` maps it.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnType {
    /// A type name in the database's SQL.
    Sql(String),
    /// An Arrow type, mapped to the database's.
    Arrow(DataType),
}

impl From<&str> for ColumnType {
    fn from(name: &str) -> Self {
        ColumnType::Sql(name.to_string())
    }
}

impl From<String> for ColumnType {
    fn from(name: String) -> Self {
        ColumnType::Sql(name)
    }
}

impl From<DataType> for ColumnType {
    fn from(data_type: DataType) -> Self {
        ColumnType::Arrow(data_type)
    }
}

/// A column of [`Moltres::create_table`]; see [`column`].
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    name: String,
    data_type: ColumnType,
    primary_key: bool,
    not_null: bool,
    unique: bool,
    default: Option<ScalarValue>,
}

/// A column named `name` of type `data_type` (a type name in the
/// database's SQL, or an Arrow [`DataType`]).
///
/// ```
/// use moltres::column;
/// let id = column("id", "INTEGER").primary_key();
/// let name = column("name", "VARCHAR(80)").not_null().unique();
/// let score = column("score", moltres::datafusion::arrow::datatypes::DataType::Float64).default(0.0);
/// ```
pub fn column(name: impl Into<String>, data_type: impl Into<ColumnType>) -> Column {
    Column {
        name: name.into(),
        data_type: data_type.into(),
        primary_key: false,
        not_null: false,
        unique: false,
        default: None,
    }
}

impl Column {
    /// The column is the table's primary key (for a key of several columns,
    /// see [`CreateTable::primary_key`]).
    pub fn primary_key(mut self) -> Self {
        self.primary_key = true;
        self
    }

    /// `NOT NULL`.
    pub fn not_null(mut self) -> Self {
        self.not_null = true;
        self
    }

    /// `UNIQUE`.
    pub fn unique(mut self) -> Self {
        self.unique = true;
        self
    }

    /// `DEFAULT value`, rendered as a literal by the database's dialect.
    pub fn default(mut self, value: impl Into<ScalarValue>) -> Self {
        self.default = Some(value.into());
        self
    }
}

type Pending<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// `.await` on a builder runs it.
macro_rules! awaitable {
    ($builder:ident) => {
        impl<'a> IntoFuture for $builder<'a> {
            type Output = Result<()>;
            type IntoFuture = Pending<'a, ()>;

            fn into_future(self) -> Self::IntoFuture {
                Box::pin(self.run())
            }
        }
    };
}

/// `CREATE TABLE` on an attached database; `.await` runs it.
#[must_use = "a CreateTable does nothing until awaited"]
pub struct CreateTable<'a> {
    db: &'a Moltres,
    name: String,
    columns: Vec<Column>,
    primary_key: Vec<String>,
    if_not_exists: bool,
}

impl CreateTable<'_> {
    /// Succeeds without a change when the table exists.
    pub fn if_not_exists(mut self) -> Self {
        self.if_not_exists = true;
        self
    }

    /// A primary key of several columns.
    pub fn primary_key<S: Into<String>>(mut self, columns: impl IntoIterator<Item = S>) -> Self {
        self.primary_key = columns.into_iter().map(Into::into).collect();
        self
    }

    async fn run(self) -> Result<()> {
        let (target, database) = ddl::writable_target(self.db, &self.name)?;
        let db = database.as_ref();
        if self.columns.is_empty() {
            return Err(Error::Statement(format!(
                "create_table {}: give at least one column",
                target.display()
            )));
        }
        let mut definitions = Vec::new();
        for column in &self.columns {
            let sql_type = match &column.data_type {
                ColumnType::Sql(name) => type_name(&target, &column.name, name)?,
                ColumnType::Arrow(data_type) => db.column_type_sql(data_type).ok_or_else(|| {
                    Error::Statement(format!(
                        "column '{}' of {}: {} tables cannot hold {data_type}",
                        column.name,
                        target.display(),
                        db.kind()
                    ))
                })?,
            };
            let mut definition = format!("{} {sql_type}", ddl::quote(db, &column.name)?);
            if column.not_null || column.primary_key {
                definition.push_str(" NOT NULL");
            }
            if let Some(value) = &column.default {
                definition.push_str(" DEFAULT ");
                definition.push_str(&literal(db, value)?);
            }
            if column.unique {
                definition.push_str(" UNIQUE");
            }
            definitions.push(definition);
        }
        let mut key: Vec<&str> = self
            .columns
            .iter()
            .filter(|c| c.primary_key)
            .map(|c| c.name.as_str())
            .collect();
        if !self.primary_key.is_empty() {
            if !key.is_empty() {
                return Err(Error::Statement(format!(
                    "create_table {}: the primary key is given both on columns and for the table",
                    target.display()
                )));
            }
            key = self.primary_key.iter().map(String::as_str).collect();
        }
        for name in &key {
            if !self.columns.iter().any(|c| c.name == *name) {
                return Err(Error::Statement(format!(
                    "create_table {}: primary key column '{name}' is not among the columns",
                    target.display()
                )));
            }
        }
        if !key.is_empty() {
            definitions.push(format!(
                "PRIMARY KEY ({})",
                key.iter()
                    .map(|k| ddl::quote(db, k))
                    .collect::<Result<Vec<_>>>()?
                    .join(", ")
            ));
        }
        let sql = format!(
            "CREATE TABLE {}{} ({})",
            if self.if_not_exists {
                "IF NOT EXISTS "
            } else {
                ""
            },
            target.quoted(db)?,
            definitions.join(", ")
        );
        ddl_statement(self.db, &target.alias, &sql, database.as_ref()).await?;
        self.db.refresh(&target.alias)?;
        Ok(())
    }
}

awaitable!(CreateTable);

/// Sends a DDL statement of the library's builders, observed as DDL.
async fn ddl_statement(
    db: &Moltres,
    alias: &str,
    sql: &str,
    database: &dyn RemoteDatabase,
) -> Result<u64> {
    Ok(db
        .observer
        .run(
            StatementKind::Ddl,
            sql,
            vec![alias.to_string()],
            database.execute_statement(sql),
            |n| *n,
        )
        .await?)
}

/// A type name given as text, refused unless it looks like one.
fn type_name(target: &Target, column: &str, name: &str) -> Result<String> {
    let name = name.trim();
    let allowed = |c: char| c.is_ascii_alphanumeric() || " _(),[]".contains(c);
    let mut depth = 0i32;
    let balanced = name.chars().all(|c| {
        depth += match c {
            '(' | '[' => 1,
            ')' | ']' => -1,
            _ => 0,
        };
        depth >= 0
    }) && depth == 0;
    if name.is_empty()
        || !name.chars().all(allowed)
        || !balanced
        || !name.starts_with(|c: char| c.is_ascii_alphabetic())
    {
        return Err(Error::Statement(format!(
            "column '{column}' of {}: '{name}' is not a type name",
            target.display()
        )));
    }
    Ok(name.to_string())
}

/// `value` as a literal of the database's SQL.
fn literal(database: &dyn RemoteDatabase, value: &ScalarValue) -> Result<String> {
    let expr = Expr::Literal(value.clone(), None);
    let mut sql = Unparser::new(database.dialect()).expr_to_sql(&expr)?;
    moltres_connectors::remote::seal(&mut sql, database.sql_writer())?;
    Ok(sql.to_string())
}

/// `DROP TABLE` on an attached database; `.await` runs it.
#[must_use = "a DropTable does nothing until awaited"]
pub struct DropTable<'a> {
    db: &'a Moltres,
    name: String,
    if_exists: bool,
}

impl DropTable<'_> {
    /// Succeeds without a change when there is no such table.
    pub fn if_exists(mut self) -> Self {
        self.if_exists = true;
        self
    }

    async fn run(self) -> Result<()> {
        let (target, database) = ddl::writable_target(self.db, &self.name)?;
        let sql = format!(
            "DROP TABLE {}{}",
            if self.if_exists { "IF EXISTS " } else { "" },
            target.quoted(database.as_ref())?
        );
        ddl_statement(self.db, &target.alias, &sql, database.as_ref()).await?;
        self.db.refresh(&target.alias)?;
        Ok(())
    }
}

awaitable!(DropTable);

/// `CREATE INDEX` on a table of an attached database; `.await` runs it.
#[must_use = "a CreateIndex does nothing until awaited"]
pub struct CreateIndex<'a> {
    db: &'a Moltres,
    name: String,
    table: String,
    columns: Vec<String>,
    unique: bool,
    if_not_exists: bool,
}

impl CreateIndex<'_> {
    /// `CREATE UNIQUE INDEX`.
    pub fn unique(mut self) -> Self {
        self.unique = true;
        self
    }

    /// Succeeds without a change when an index of that name exists
    /// (PostgreSQL, SQLite, MariaDB; MySQL has no `IF NOT EXISTS` here).
    pub fn if_not_exists(mut self) -> Self {
        self.if_not_exists = true;
        self
    }

    async fn run(self) -> Result<()> {
        let (target, database) = ddl::writable_target(self.db, &self.table)?;
        let db = database.as_ref();
        if self.columns.is_empty() {
            return Err(Error::Statement(format!(
                "create_index {} on {}: give at least one column",
                self.name,
                target.display()
            )));
        }
        let columns = self
            .columns
            .iter()
            .map(|c| ddl::quote(db, c))
            .collect::<Result<Vec<_>>>()?
            .join(", ");
        // PostgreSQL puts an index in its table's schema and takes no schema
        // in the name; SQLite wants the schema on the index, not the table.
        let (index, table) = match db.kind() {
            "sqlite" => (
                format!(
                    "{}.{}",
                    ddl::quote(db, &target.schema)?,
                    ddl::quote(db, &self.name)?
                ),
                ddl::quote(db, &target.table)?,
            ),
            _ => (ddl::quote(db, &self.name)?, target.quoted(db)?),
        };
        let sql = format!(
            "CREATE {}INDEX {}{index} ON {table} ({columns})",
            if self.unique { "UNIQUE " } else { "" },
            if self.if_not_exists {
                "IF NOT EXISTS "
            } else {
                ""
            },
        );
        ddl_statement(self.db, &target.alias, &sql, database.as_ref()).await?;
        Ok(())
    }
}

awaitable!(CreateIndex);

/// `DROP INDEX` of a table of an attached database; `.await` runs it.
#[must_use = "a DropIndex does nothing until awaited"]
pub struct DropIndex<'a> {
    db: &'a Moltres,
    name: String,
    table: String,
    if_exists: bool,
}

impl DropIndex<'_> {
    /// Succeeds without a change when there is no such index.
    pub fn if_exists(mut self) -> Self {
        self.if_exists = true;
        self
    }

    async fn run(self) -> Result<()> {
        let (target, database) = ddl::writable_target(self.db, &self.table)?;
        let db = database.as_ref();
        let if_exists = if self.if_exists { "IF EXISTS " } else { "" };
        let index = format!(
            "{}.{}",
            ddl::quote(db, &target.schema)?,
            ddl::quote(db, &self.name)?
        );
        let sql = match db.kind() {
            "mysql" => format!(
                "DROP INDEX {if_exists}{} ON {}",
                ddl::quote(db, &self.name)?,
                target.quoted(db)?
            ),
            _ => format!("DROP INDEX {if_exists}{index}"),
        };
        ddl_statement(self.db, &target.alias, &sql, database.as_ref()).await?;
        Ok(())
    }
}

awaitable!(DropIndex);

/// What [`Moltres::write_table`] does when the table exists. When it does
/// not, every mode creates it with the DataFrame's columns and writes the
/// rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveMode {
    /// Adds the rows.
    Append,
    /// Replaces the rows, atomically: the old rows are deleted and the new
    /// ones written in one transaction, so readers see the old rows or the
    /// new ones, and a failure keeps the old rows. (The table itself stays:
    /// its indexes, constraints, grants and dependent views are kept, which
    /// swapping in a staging table would lose.)
    Overwrite,
    /// Refuses with an error.
    ErrorIfExists,
    /// Does nothing.
    Ignore,
}

impl Moltres {
    /// `CREATE TABLE name (columns...)` on an attached database (`name` is
    /// `source.table`, `source.schema.table`, or after
    /// [`use_source`](Self::use_source) just `table`); `.await` runs it.
    ///
    /// ```no_run
    /// # async fn f(db: moltres::Moltres) -> moltres::Result<()> {
    /// use moltres::column;
    /// db.create_table(
    ///     "pg.public.customers",
    ///     [
    ///         column("id", "BIGINT").primary_key(),
    ///         column("email", "TEXT").not_null().unique(),
    ///         column("credit", "NUMERIC(12,2)").default(0i64),
    ///     ],
    /// )
    /// .if_not_exists()
    /// .await?;
    /// db.create_index("customers_by_email", "pg.public.customers", ["email"]).await?;
    /// # Ok(()) }
    /// ```
    pub fn create_table(
        &self,
        name: &str,
        columns: impl IntoIterator<Item = Column>,
    ) -> CreateTable<'_> {
        CreateTable {
            db: self,
            name: name.to_string(),
            columns: columns.into_iter().collect(),
            primary_key: Vec::new(),
            if_not_exists: false,
        }
    }

    /// `DROP TABLE name` on an attached database; `.await` runs it.
    pub fn drop_table(&self, name: &str) -> DropTable<'_> {
        DropTable {
            db: self,
            name: name.to_string(),
            if_exists: false,
        }
    }

    /// `CREATE INDEX index ON table (columns)`; `.await` runs it.
    pub fn create_index<S: Into<String>>(
        &self,
        index: &str,
        table: &str,
        columns: impl IntoIterator<Item = S>,
    ) -> CreateIndex<'_> {
        CreateIndex {
            db: self,
            name: index.to_string(),
            table: table.to_string(),
            columns: columns.into_iter().map(Into::into).collect(),
            unique: false,
            if_not_exists: false,
        }
    }

    /// `DROP INDEX index` of `table`; `.await` runs it.
    pub fn drop_index(&self, index: &str, table: &str) -> DropIndex<'_> {
        DropIndex {
            db: self,
            name: index.to_string(),
            table: table.to_string(),
            if_exists: false,
        }
    }

    /// `DELETE FROM table WHERE filter`, one statement in the database;
    /// returns the rows deleted. Refused (nothing deleted) when the database
    /// would not evaluate `filter` exactly as Moltres does.
    ///
    /// ```no_run
    /// # async fn f(db: moltres::Moltres) -> moltres::Result<()> {
    /// use moltres::datafusion::prelude::{col, lit};
    /// let gone = db.delete("pg.public.orders", col("status").eq(lit("cancelled"))).await?;
    /// let changed = db
    ///     .update("pg.public.orders", col("id").eq(lit(7)), [("status", lit("shipped"))])
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn delete(&self, table: &str, filter: Expr) -> Result<u64> {
        let plan = self.dml_plan(table, filter, None).await?;
        let batches = self
            .context()
            .execute_logical_plan(plan)
            .await?
            .collect()
            .await?;
        Ok(ddl::written(&batches))
    }

    /// `UPDATE table SET column = value, ... WHERE filter`, one statement in
    /// the database; returns the rows changed. Values are cast to the
    /// columns' types. Refused (nothing changed) when the database would
    /// not compute a value or the filter exactly as Moltres does.
    pub async fn update<S: Into<String>>(
        &self,
        table: &str,
        filter: Expr,
        set: impl IntoIterator<Item = (S, Expr)>,
    ) -> Result<u64> {
        let set = set.into_iter().map(|(c, v)| (c.into(), v)).collect();
        let plan = self.dml_plan(table, filter, Some(set)).await?;
        let batches = self
            .context()
            .execute_logical_plan(plan)
            .await?
            .collect()
            .await?;
        Ok(ddl::written(&batches))
    }

    /// The DELETE (no `set`) or UPDATE plan DataFusion's SQL planner would
    /// make for `table`.
    pub(crate) async fn dml_plan(
        &self,
        table: &str,
        filter: Expr,
        set: Option<Vec<(String, Expr)>>,
    ) -> Result<LogicalPlan> {
        let target = ddl::resolve(self, table)?;
        let reference = TableReference::full(
            target.alias.as_str(),
            target.schema.as_str(),
            target.table.as_str(),
        );
        let provider = self.context().table_provider(reference.clone()).await?;
        let source = provider_as_source(Arc::clone(&provider));
        let scan =
            LogicalPlanBuilder::scan(reference.clone(), Arc::clone(&source), None)?.build()?;
        let filtered = LogicalPlanBuilder::from(scan).filter(filter)?.build()?;
        let (op, input) = match set {
            None => (WriteOp::Delete, filtered),
            Some(set) => {
                let schema = provider.schema();
                for (name, _) in &set {
                    if schema.field_with_name(name).is_err() {
                        return Err(Error::Statement(format!(
                            "update {}: the table has no column '{name}'",
                            target.display()
                        )));
                    }
                }
                let input_schema = Arc::clone(filtered.schema());
                let exprs = schema
                    .fields()
                    .iter()
                    .map(|field| {
                        let value = match set.iter().find(|(c, _)| c == field.name()) {
                            Some((_, value)) => value
                                .clone()
                                .cast_to(field.data_type(), input_schema.as_ref())?,
                            None => Expr::Column(datafusion::common::Column::new(
                                Some(reference.clone()),
                                field.name(),
                            )),
                        };
                        Ok(value.alias(field.name()))
                    })
                    .collect::<datafusion::common::Result<Vec<_>>>()?;
                let projected = LogicalPlanBuilder::from(filtered).project(exprs)?.build()?;
                (WriteOp::Update, projected)
            }
        };
        Ok(LogicalPlan::Dml(DmlStatement::new(
            reference,
            source,
            op,
            Arc::new(input),
        )))
    }

    /// Writes the rows of `frame` into `table` (a table of an attached
    /// database, or a table registered in the session); `mode` says what
    /// happens when it exists. When it does not, it is created with the
    /// frame's columns (each Arrow type mapped to the database's) and
    /// filled; if filling fails it is dropped again. Returns the rows
    /// written (0 for [`SaveMode::Ignore`] on an existing table).
    ///
    /// ```no_run
    /// # async fn f(db: moltres::Moltres) -> moltres::Result<()> {
    /// use moltres::SaveMode;
    /// let daily = db.sql("SELECT day, sum(amount) AS total FROM 'sales/*.parquet' GROUP BY day").await?;
    /// db.write_table(daily, "pg.public.daily_sales", SaveMode::Overwrite).await?;
    /// # Ok(()) }
    /// ```
    pub async fn write_table(&self, frame: DataFrame, table: &str, mode: SaveMode) -> Result<u64> {
        let source = self.source_of(table);
        let described = format!("write_table {table} ({mode:?})");
        let frame = tag(frame, QueryTag::Internal);
        let observer = Arc::clone(&self.observer);
        observer
            .run(
                StatementKind::Write,
                &described,
                source,
                self.write_table_now(frame, table, mode),
                |n| *n,
            )
            .await
    }

    async fn write_table_now(&self, frame: DataFrame, table: &str, mode: SaveMode) -> Result<u64> {
        let target = match ddl::resolve(self, table) {
            Ok(target) => target,
            // A table of the session (a memory table, ...): DataFusion writes it.
            Err(_) if self.context().table_exist(table).unwrap_or(false) => {
                return match mode {
                    SaveMode::ErrorIfExists => Err(Error::Statement(format!(
                        "write_table: table '{table}' already exists (SaveMode::ErrorIfExists)"
                    ))),
                    SaveMode::Ignore => Ok(0),
                    SaveMode::Append | SaveMode::Overwrite => {
                        let op = if mode == SaveMode::Append {
                            InsertOp::Append
                        } else {
                            InsertOp::Overwrite
                        };
                        let batches = frame
                            .write_table(
                                table,
                                DataFrameWriteOptions::new().with_insert_operation(op),
                            )
                            .await?;
                        Ok(ddl::written(&batches))
                    }
                };
            }
            Err(e) => return Err(e),
        };
        ddl::writable(self, &target)?;
        let database = ddl::database(self, &target.alias)?;
        if !ddl::exists(database.as_ref(), &target).await? {
            return ddl::create_and_fill(self, &target, frame).await;
        }
        let op = match mode {
            SaveMode::ErrorIfExists => {
                return Err(Error::Statement(format!(
                    "write_table: table {} already exists (SaveMode::ErrorIfExists)",
                    target.display()
                )));
            }
            SaveMode::Ignore => return Ok(0),
            SaveMode::Append => InsertOp::Append,
            SaveMode::Overwrite => InsertOp::Overwrite,
        };
        let provider = self
            .context()
            .table_provider(target.datafusion_name().as_str())
            .await?;
        let what = format!("write_table {}", target.display());
        let (frame, _) = by_name(frame, &provider.schema(), &what, true)?;
        let batches = frame
            .write_table(
                &target.datafusion_name(),
                DataFrameWriteOptions::new().with_insert_operation(op),
            )
            .await?;
        Ok(ddl::written(&batches))
    }
}

/// Refuses an upsert without keys, or with a key the rows lack.
pub(crate) fn check_keys(
    what: &str,
    keys: &[String],
    fields: &[datafusion::arrow::datatypes::FieldRef],
) -> Result<()> {
    if keys.is_empty() {
        return Err(Error::Statement(format!(
            "{what}: name at least one key column"
        )));
    }
    for key in keys {
        if !fields.iter().any(|f| f.name() == key) {
            return Err(Error::Statement(format!(
                "{what}: key column '{key}' is not among the rows' columns"
            )));
        }
    }
    Ok(())
}

/// `frame`'s columns matched to `table`'s by name and cast to their types;
/// with `all_columns`, the table's columns the frame lacks are NULL (in
/// the table's order). Also the fields written. A frame column the table
/// lacks is an error naming it.
pub(crate) fn by_name(
    frame: DataFrame,
    table: &datafusion::arrow::datatypes::Schema,
    what: &str,
    all_columns: bool,
) -> Result<(DataFrame, Vec<datafusion::arrow::datatypes::FieldRef>)> {
    use datafusion::logical_expr::{cast, col, lit};
    let frame_columns: Vec<String> = frame
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    for name in &frame_columns {
        if table.field_with_name(name).is_err() {
            return Err(Error::Statement(format!(
                "{what}: the table has no column '{name}' (its columns: {})",
                table
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    let mut exprs = Vec::new();
    let mut fields = Vec::new();
    for field in table.fields() {
        let present = frame_columns.contains(field.name());
        if !present && !all_columns {
            continue;
        }
        let value = if present {
            col(datafusion::common::Column::from_name(field.name()))
        } else if field.is_nullable() {
            lit(ScalarValue::Null)
        } else {
            return Err(Error::Statement(format!(
                "{what}: column '{}' is NOT NULL, and the rows have no such column",
                field.name()
            )));
        };
        exprs.push(cast(value, field.data_type().clone()).alias(field.name()));
        fields.push(Arc::clone(field));
    }
    Ok((frame.select(exprs)?, fields))
}
