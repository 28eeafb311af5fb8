//! `CREATE TABLE` and `DROP TABLE` on attached databases.
//!
//! * `CREATE TABLE src.schema.t (col type, ...)`: sent to the database with
//!   the table named as the database names it; the column types are the
//!   database's own (`INTEGER`, `VARCHAR(20)`, ...).
//! * `CREATE TABLE [IF NOT EXISTS] src.schema.t AS SELECT ...`: the table is
//!   created with each column's Arrow type mapped to the database's type,
//!   then filled by `INSERT INTO` (streamed, one transaction). If filling
//!   fails, the new table is dropped again: nothing half-written remains.
//! * `DROP TABLE [IF EXISTS] src.schema.t`.
//!
//! Sources attached `READ_ONLY` refuse all three.

use std::sync::Arc;

use datafusion::arrow::array::UInt64Array;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::DataFrame;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{
    CreateTable, Ident, ObjectName, ObjectNamePart, ObjectType, Statement, TableObject,
};
use moltres_connectors::remote::{RemoteDatabase, RemoteSql, Written, seal};

use crate::error::{Error, Result};
use crate::session::Moltres;

/// A table of an attached database, as written and as the database names it.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub alias: String,
    pub schema: String,
    pub table: String,
}

impl Target {
    pub fn display(&self) -> String {
        format!("{}.{}.{}", self.alias, self.schema, self.table)
    }

    /// The name quoted for DataFusion (`"alias"."schema"."table"`).
    pub fn datafusion_name(&self) -> String {
        datafusion_name(self)
    }

    /// `schema.table` quoted in the database's dialect.
    pub fn quoted(&self, database: &dyn RemoteDatabase) -> Result<String> {
        quoted(database, &self.schema, &self.table)
    }
}

/// The attached database table `name` names: `source.schema.table`,
/// `source.table` (the source's default schema) or, after
/// [`Moltres::use_source`], `table`. Unquoted parts are lower-cased.
pub(crate) fn resolve(db: &Moltres, name: &str) -> Result<Target> {
    let reference = datafusion::common::TableReference::parse_str(name);
    let parts: Vec<String> = match &reference {
        datafusion::common::TableReference::Bare { table } => vec![table.to_string()],
        datafusion::common::TableReference::Partial { schema, table } => {
            vec![schema.to_string(), table.to_string()]
        }
        datafusion::common::TableReference::Full {
            catalog,
            schema,
            table,
        } => vec![catalog.to_string(), schema.to_string(), table.to_string()],
    };
    target_of(db, parts).ok_or_else(|| {
        Error::Statement(format!(
            "'{name}' is not a table of an attached database: name it source.table or \
             source.schema.table (see SHOW SOURCES), or call use_source first"
        ))
    })
}

/// DDL on tables of an attached database, parsed once by the caller.
pub(crate) enum Ddl {
    /// `CREATE TABLE` (with columns or `AS` a query).
    Create(Target, Box<CreateTable>),
    /// `DROP TABLE [IF EXISTS]` of one or more tables.
    Drop(Vec<Target>, bool),
}

impl Ddl {
    /// The source it changes (the first one, for a DROP of several).
    pub fn alias(&self) -> String {
        match self {
            Ddl::Create(target, _) => target.alias.clone(),
            Ddl::Drop(targets, _) => targets[0].alias.clone(),
        }
    }
}

/// `statement` as DDL on an attached database, or `None` when it is not.
pub(crate) fn plan(db: &Moltres, statement: &DFStatement) -> Result<Option<Ddl>> {
    let DFStatement::Statement(statement) = statement else {
        return Ok(None);
    };
    match statement.as_ref() {
        Statement::CreateTable(create) => Ok(
            target(db, &create.name).map(|target| Ddl::Create(target, Box::new(create.clone())))
        ),
        Statement::Drop {
            object_type: ObjectType::Table,
            if_exists,
            names,
            ..
        } => {
            let targets: Vec<Target> = names.iter().filter_map(|n| target(db, n)).collect();
            if targets.is_empty() {
                return Ok(None);
            }
            if targets.len() != names.len() {
                return Err(Error::Statement(
                    "DROP TABLE mixes tables of attached databases with local ones; drop them in separate statements"
                        .to_string(),
                ));
            }
            Ok(Some(Ddl::Drop(targets, *if_exists)))
        }
        // Writes into a source attached READ_ONLY (a directory's files
        // too) are refused before DataFusion plans them.
        Statement::Insert(insert) => {
            if let TableObject::TableName(name) = &insert.table
                && name.0.len() >= 2
                && let Some(ObjectNamePart::Identifier(first)) = name.0.first()
            {
                let alias = ident_value(first);
                if db.sources().iter().any(|s| s.name == alias && s.read_only) {
                    return Err(Error::Statement(format!(
                        "source '{alias}' is attached READ_ONLY; INSERT INTO {name} is refused"
                    )));
                }
            }
            Ok(None)
        }
        _ => Ok(None),
    }
}

/// Runs `ddl`, whose text is `sql`.
pub(crate) async fn run(db: &Moltres, ddl: Ddl, sql: &str) -> Result<DataFrame> {
    match ddl {
        Ddl::Create(target, create) => {
            writable(db, &target)?;
            create_table(db, target, *create, sql).await
        }
        Ddl::Drop(targets, if_exists) => {
            for target in &targets {
                writable(db, target)?;
                let database = database(db, &target.alias)?;
                let sql = format!(
                    "DROP TABLE {}{}",
                    if if_exists { "IF EXISTS " } else { "" },
                    quoted(database.as_ref(), &target.schema, &target.table)?
                );
                database.execute_statement(&sql).await?;
                db.refresh(&target.alias)?;
            }
            Ok(db.context().read_empty()?)
        }
    }
}

/// A table of an attached database that may be changed, and its database
/// (refused, naming the source, when it is attached READ_ONLY).
pub(crate) fn writable_target(
    db: &Moltres,
    name: &str,
) -> Result<(Target, Arc<dyn RemoteDatabase>)> {
    let target = resolve(db, name)?;
    writable(db, &target)?;
    let database = database(db, &target.alias)?;
    Ok((target, database))
}

/// The attached database table `name` names, if it names one
/// (`alias.schema.table` or `alias.table` for the default schema).
fn target(db: &Moltres, name: &ObjectName) -> Option<Target> {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(ident) => Some(ident_value(ident)),
            _ => None,
        })
        .collect::<Option<_>>()?;
    target_of(db, parts)
}

fn target_of(db: &Moltres, parts: Vec<String>) -> Option<Target> {
    let (alias, schema, table) = match parts.as_slice() {
        [alias, schema, table] => (alias.clone(), Some(schema.clone()), table.clone()),
        [alias, table] => (alias.clone(), None, table.clone()),
        // After `use_source`, the default schema is a database's alias.
        [table] => {
            let state = db.context().state();
            let current = state.config().options().catalog.default_schema.clone();
            (current, None, table.clone())
        }
        _ => return None,
    };
    let info = db.sources().into_iter().find(|s| s.name == alias)?;
    db.source(&alias).ok()?;
    Some(Target {
        schema: schema.unwrap_or(info.default_schema),
        alias,
        table,
    })
}

/// An identifier as DataFusion resolves it: lower-cased unless quoted.
fn ident_value(ident: &Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_lowercase()
    }
}

pub(crate) fn writable(db: &Moltres, target: &Target) -> Result<()> {
    let read_only = db
        .sources()
        .into_iter()
        .any(|s| s.name == target.alias && s.read_only);
    if read_only {
        return Err(Error::Statement(format!(
            "source '{}' is attached READ_ONLY; changing {} is refused",
            target.alias,
            target.display()
        )));
    }
    Ok(())
}

pub(crate) fn database(db: &Moltres, alias: &str) -> Result<Arc<dyn RemoteDatabase>> {
    Ok(db.source(alias)?.database())
}

/// `schema.table` quoted in the database's dialect.
fn quoted(database: &dyn RemoteDatabase, schema: &str, table: &str) -> Result<String> {
    Ok(format!(
        "{}.{}",
        quote(database, schema)?,
        quote(database, table)?
    ))
}

/// `identifier` quoted by the database's writer.
pub(crate) fn quote(database: &dyn RemoteDatabase, identifier: &str) -> Result<String> {
    Ok(database.sql_writer().identifier(identifier)?)
}

/// The text of the query of `CREATE TABLE ... AS <query>` as the user wrote
/// it: everything after the first unquoted `AS` outside parentheses.
/// (Re-rendering the parsed query would lose escapes, and sqlparser's spans
/// do not always cover a whole query.)
fn query_text(sql: &str) -> Result<String> {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::keywords::Keyword;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    let missing = || {
        Error::Statement(format!(
            "cannot find the query of CREATE TABLE ... AS in: {sql}"
        ))
    };
    let tokens = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize_with_location()
        .map_err(|e| Error::Statement(e.to_string()))?;
    let mut depth = 0i32;
    let mut after_as = false;
    for token in tokens {
        match &token.token {
            Token::Whitespace(_) => continue,
            _ if after_as => {
                let start = byte_offset(sql, token.span.start.line, token.span.start.column)
                    .ok_or_else(missing)?;
                let text = sql[start..].trim_end().trim_end_matches(';').trim_end();
                return Ok(text.to_string());
            }
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            Token::Word(word)
                if depth == 0 && word.keyword == Keyword::AS && word.quote_style.is_none() =>
            {
                after_as = true
            }
            _ => {}
        }
    }
    Err(missing())
}

/// The byte offset of a 1-based line and column (in characters).
fn byte_offset(sql: &str, line: u64, column: u64) -> Option<usize> {
    let mut current = (1, 1);
    for (i, c) in sql.char_indices() {
        if current == (line, column) {
            return Some(i);
        }
        current = if c == '\n' {
            (current.0 + 1, 1)
        } else {
            (current.0, current.1 + 1)
        };
    }
    (current == (line, column)).then_some(sql.len())
}

async fn create_table(
    db: &Moltres,
    target: Target,
    create: CreateTable,
    sql: &str,
) -> Result<DataFrame> {
    let database = database(db, &target.alias)?;
    if create.if_not_exists && exists(database.as_ref(), &target).await? {
        return count(db, 0);
    }
    if create.query.is_none() {
        // Column definitions as written, the table named as the database
        // names it, every name and value sealed by the database's writer.
        let mut native = create.clone();
        native.name = ObjectName::from(vec![
            Ident::with_quote('"', &target.schema),
            Ident::with_quote('"', &target.table),
        ]);
        let writer = database.sql_writer();
        let mut written = Written::default();
        for column in &mut native.columns {
            written.seal_ident(writer, &mut column.name)?;
        }
        let mut statement = Statement::CreateTable(native);
        written.extend(seal(&mut statement, writer)?);
        let sql = RemoteSql::statement(statement.to_string(), writer, &written)?;
        let sql = sql.as_str();
        database.execute_statement(sql).await?;
        db.refresh(&target.alias)?;
        return Ok(db.context().read_empty()?);
    }
    let query = query_text(sql)?;
    let frame = db.context().sql(&query).await?;
    let frame = crate::observe::tag(frame, crate::observe::QueryTag::Internal);
    let rows = create_and_fill(db, &target, frame).await?;
    count(db, rows)
}

/// Creates `target` with the columns of `frame` (each Arrow type mapped to
/// the database's) and writes the rows of `frame` into it, streamed, all or
/// nothing ([`RemoteDatabase::create_and_write`]): after an error, a
/// timeout or a killed process there is no half-filled table, and a retry
/// does not find one in its way. Returns the rows written.
pub(crate) async fn create_and_fill(
    db: &Moltres,
    target: &Target,
    frame: DataFrame,
) -> Result<u64> {
    let database = database(db, &target.alias)?;
    let schema = frame.schema().as_arrow().clone();
    let columns = schema
        .fields()
        .iter()
        .map(|field| {
            let sql_type = database.column_type_sql(field.data_type()).ok_or_else(|| {
                Error::Statement(format!(
                    "column '{}' of {} has type {}, which {} tables cannot hold",
                    field.name(),
                    target.display(),
                    field.data_type(),
                    database.kind()
                ))
            })?;
            Ok(format!(
                "{} {sql_type}{}",
                quote(database.as_ref(), field.name())?,
                if field.is_nullable() { "" } else { " NOT NULL" }
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let reference =
        datafusion::common::TableReference::partial(target.schema.as_str(), target.table.as_str());
    let frame = crate::observe::tag(frame, crate::observe::QueryTag::Internal);
    let data = frame.execute_stream().await?;
    // All or nothing, in the database (see `create_and_write`): a failure,
    // a timeout or a killed process leaves no half-filled table.
    let written = database
        .create_and_write(&reference, &columns, Arc::new(schema), data)
        .await;
    db.refresh(&target.alias)?;
    Ok(written?)
}

/// Whether `target` exists in its database now: asked of the database,
/// asynchronously (a stalled server is bounded by the query timeout), not
/// of the cached catalog.
pub(crate) async fn exists(database: &dyn RemoteDatabase, target: &Target) -> Result<bool> {
    Ok(database
        .table_schema(&target.schema, &target.table)
        .await?
        .is_some())
}

/// The `count` of a DML result.
pub(crate) fn written(batches: &[RecordBatch]) -> u64 {
    batches
        .first()
        .and_then(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<UInt64Array>()
                .map(|a| a.value(0))
        })
        .unwrap_or(0)
}

/// The target as a quoted DataFusion name.
fn datafusion_name(target: &Target) -> String {
    let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    format!(
        "{}.{}.{}",
        q(&target.alias),
        q(&target.schema),
        q(&target.table)
    )
}

/// A one-row result: the rows written.
fn count(db: &Moltres, rows: u64) -> Result<DataFrame> {
    let schema = Arc::new(Schema::new(vec![Field::new(
        "count",
        DataType::UInt64,
        false,
    )]));
    let batch = RecordBatch::try_new(schema, vec![Arc::new(UInt64Array::from(vec![rows]))])
        .map_err(datafusion::error::DataFusionError::from)?;
    Ok(db.context().read_batch(batch)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::parser::DFParser;

    #[test]
    fn query_text_is_the_original() {
        for sql in [
            "CREATE TABLE a.b.c AS SELECT payment, count(*) AS trips FROM 'x.csv' GROUP BY payment",
            "CREATE TABLE a.b AS SELECT 'it''s\\' AS \"q\"\"\" UNION ALL SELECT 'b'",
            "CREATE TABLE IF NOT EXISTS a.b AS\n  SELECT 1 AS one\n  ORDER BY 1",
            "CREATE TABLE a.\"AS\" AS SELECT CAST(payment AS INT) AS p FROM 'x.csv'",
        ] {
            let mut statements = DFParser::parse_sql(sql).unwrap();
            let Some(DFStatement::Statement(statement)) = statements.pop_front() else {
                panic!()
            };
            let Statement::CreateTable(create) = *statement else {
                panic!()
            };
            assert!(create.query.is_some());
            let text = query_text(sql).unwrap();
            let expected = &sql[sql.find("SELECT").unwrap()..];
            assert_eq!(text, expected);
        }
    }
}
