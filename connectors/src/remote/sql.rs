//! [`RemoteSql`]: remote SQL text made only from a logical plan, and
//! [`SqlWriter`]: how one database writes names and string values.
//!
//! sqlparser's `Display` cannot be trusted with a value or a name: its
//! escaping leaves a `'` that follows a backslash, and an already doubled
//! `''`, as they are (it guesses whether the text was escaped already), so
//! `it''s` comes out as `'it''s'` (which reads back as `it's`) and `\'`
//! closes the literal. So every statement Moltres renders is *sealed*
//! before it is printed: each string value becomes the text of the
//! database's own literal writer, each quoted name the text of its
//! identifier quoting ([`seal`]), and the printed
//! SQL is then tokenized again in the database's dialect and every literal
//! and quoted name in it checked against what was written
//! ([`verify`]): a value or a name that would read back differently, or
//! that reached the text some other way, fails the statement instead of
//! running.

use std::collections::HashSet;
use std::fmt;
use std::ops::ControlFlow;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::sql::sqlparser::ast::{
    self, Ident, JoinConstraint, JoinOperator, ObjectName, ObjectNamePart, SelectItem,
    SelectItemQualifiedWildcardKind, TableFactor, Value, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::Dialect as ParserDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer, Whitespace};
use datafusion::sql::unparser::Unparser;

use super::RemoteDatabase;

/// How one database writes names and string values into SQL text, whatever
/// they hold. Every name and value Moltres sends goes through these.
pub trait SqlWriter: fmt::Debug + Send + Sync {
    /// The database's name, for messages (`PostgreSQL`).
    fn database(&self) -> &'static str;

    /// `name` as a quoted identifier that reads back as exactly `name`.
    fn identifier(&self, name: &str) -> Result<String>;

    /// `value` as a string literal that reads back as exactly `value`,
    /// whatever the session's settings (backslash escapes on or off).
    fn string(&self, value: &str) -> Result<String>;

    /// sqlparser's dialect for this database, used to read the written SQL
    /// back ([`verify`]).
    fn parser_dialect(&self) -> &dyn ParserDialect;

    /// What a literal token read back by [`parser_dialect`] holds: the
    /// string value, when the token is one this writer makes.
    fn read_back(&self, token: &Token) -> Option<String> {
        match token {
            Token::SingleQuotedString(s) | Token::EscapedStringLiteral(s) => Some(s.clone()),
            _ => None,
        }
    }
}

/// `s` between `quote`s, each `quote` inside doubled.
pub fn doubled(s: &str, quote: char) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        if c == quote {
            out.push(quote);
        }
        out.push(c);
    }
    out.push(quote);
    out
}

/// Bytes as upper-case hexadecimal digits.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02X}");
    }
    out
}

/// A name or value a writer refuses, as a planning error.
pub fn unwritable(database: &str, what: &str, text: &str) -> DataFusionError {
    DataFusionError::Plan(format!(
        "{database} cannot hold this {what}: {text:?} (it contains a character the database \
         does not accept there)"
    ))
}

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
/// logical plan with the database's dialect and sealing it with the
/// database's [`SqlWriter`] (see the module docs), or from parts sealed the
/// same way; [`RemoteSql::passthrough`] carries a user's own native SQL
/// unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSql(String);

impl RemoteSql {
    /// Renders `plan` as `database`'s SQL; fails when the dialect cannot
    /// express it or a value or name cannot be written.
    ///
    /// Timestamp literals with a time zone are rendered as their UTC
    /// wall-clock time: the unparser would print the local time with an
    /// offset and cast it to a zone-less `TIMESTAMP`, which drops the
    /// offset. Every connector pins its session time zone to UTC, so the
    /// UTC text means the same instant.
    pub fn from_plan(plan: &LogicalPlan, database: &dyn RemoteDatabase) -> Result<Self> {
        let plan = plan
            .clone()
            .transform_up(|node| node.map_expressions(|e| e.transform(utc_literal)))?
            .data;
        let mut statement = Unparser::new(database.dialect()).plan_to_sql(&plan)?;
        let writer = database.sql_writer();
        // sqlparser's visitor and printer recurse without stack growth (the
        // unparser grows its stack): a deep expression, thousands of OR
        // terms, is sealed and printed on a thread with a large stack.
        let sealed = std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("moltres-seal".to_string())
                .stack_size(256 << 20)
                .spawn_scoped(scope, || {
                    let written = seal(&mut statement, writer)?;
                    let sql = statement.to_string();
                    verify(&sql, writer, &written)?;
                    Ok::<_, DataFusionError>(sql)
                })
                .map_err(|e| DataFusionError::External(Box::new(e)))?
                .join()
                .map_err(|_| DataFusionError::Internal("sealing remote SQL panicked".into()))?
        })
        .map_err(|e| e.context(format!("source '{}'", database.source_name())))?;
        Ok(Self(sealed))
    }

    /// A user's own native SQL, sent as written (passthrough). Nothing of
    /// Moltres's making is ever put into it.
    pub fn passthrough(native: &str) -> Self {
        Self(native.to_string())
    }

    /// A statement Moltres assembled from names and expressions sealed by
    /// `writer` (`DELETE`, `UPDATE`, DDL); checked like a rendered plan.
    pub fn statement(sql: String, writer: &dyn SqlWriter, written: &Written) -> Result<Self> {
        verify(&sql, writer, written)?;
        Ok(Self(sql))
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

/// The names and string values a sealed statement holds, as they must read
/// back.
#[derive(Debug, Default, Clone)]
pub struct Written {
    names: HashSet<String>,
    strings: HashSet<String>,
}

impl Written {
    /// `name` quoted by `writer`, remembered.
    pub fn identifier(&mut self, writer: &dyn SqlWriter, name: &str) -> Result<String> {
        let quoted = writer.identifier(name)?;
        self.names.insert(name.to_string());
        Ok(quoted)
    }

    /// `value` written by `writer`, remembered.
    pub fn string(&mut self, writer: &dyn SqlWriter, value: &str) -> Result<String> {
        let literal = writer.string(value)?;
        self.strings.insert(value.to_string());
        Ok(literal)
    }

    /// A quoted name becomes `writer`'s quoting (printed as it is); an
    /// unquoted one must be a plain word (a keyword, a function), or it is
    /// quoted too.
    pub fn seal_ident(&mut self, writer: &dyn SqlWriter, ident: &mut Ident) -> Result<()> {
        if ident.quote_style.is_none() && is_plain_word(&ident.value) {
            return Ok(());
        }
        ident.value = self.identifier(writer, &ident.value)?;
        ident.quote_style = None;
        Ok(())
    }

    /// What another sealed part holds too.
    pub fn extend(&mut self, other: Written) {
        self.names.extend(other.names);
        self.strings.extend(other.strings);
    }
}

/// An identifier left unquoted by the unparser that needs no quotes: a
/// plain word (function names, keywords).
fn is_plain_word(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

struct Sealer<'a> {
    writer: &'a dyn SqlWriter,
    written: Written,
}

impl Sealer<'_> {
    fn ident(&mut self, ident: &mut Ident) -> Result<()> {
        self.written.seal_ident(self.writer, ident)
    }

    fn object_name(&mut self, name: &mut ObjectName) -> Result<()> {
        for part in &mut name.0 {
            match part {
                ObjectNamePart::Identifier(ident) => self.ident(ident)?,
                ObjectNamePart::Function(_) => {
                    return Err(DataFusionError::Plan(format!(
                        "cannot write the name {name} for {}",
                        self.writer.database()
                    )));
                }
            }
        }
        Ok(())
    }

    fn value(&mut self, value: &mut Value) -> Result<()> {
        match value {
            Value::SingleQuotedString(s)
            | Value::DoubleQuotedString(s)
            | Value::NationalStringLiteral(s) => {
                *value = Value::Placeholder(self.written.string(self.writer, s)?);
            }
            // Printed as they are: numbers from Arrow values, our own
            // sealed literals.
            Value::Number(..) | Value::Boolean(_) | Value::Null | Value::Placeholder(_) => {}
            other => {
                return Err(DataFusionError::Plan(format!(
                    "cannot write the literal {other} for {}",
                    self.writer.database()
                )));
            }
        }
        Ok(())
    }
}

fn broken(e: DataFusionError) -> ControlFlow<DataFusionError> {
    ControlFlow::Break(e)
}

impl VisitorMut for Sealer<'_> {
    type Break = DataFusionError;

    fn pre_visit_select(&mut self, select: &mut ast::Select) -> ControlFlow<Self::Break> {
        // A select list that reads no column (`SELECT 42 FROM t` computed
        // locally over the rows): MySQL and SQLite refuse an empty one.
        // The extra column is never decoded: scans read the columns of
        // their schema, by position.
        if select.projection.is_empty() {
            select
                .projection
                .push(SelectItem::UnnamedExpr(ast::Expr::value(Value::Number(
                    "1".to_string(),
                    false,
                ))));
        }
        for item in &mut select.projection {
            let sealed = match item {
                SelectItem::ExprWithAlias { alias, .. } => self.ident(alias),
                SelectItem::ExprWithAliases { aliases, .. } => {
                    aliases.iter_mut().try_for_each(|a| self.ident(a))
                }
                SelectItem::QualifiedWildcard(
                    SelectItemQualifiedWildcardKind::ObjectName(name),
                    _,
                ) => self.object_name(name),
                _ => Ok(()),
            };
            sealed.map_or_else(broken, ControlFlow::Continue)?;
        }
        for table in &mut select.from {
            for join in &mut table.joins {
                let constraint = match &mut join.join_operator {
                    JoinOperator::Join(c)
                    | JoinOperator::Inner(c)
                    | JoinOperator::Left(c)
                    | JoinOperator::LeftOuter(c)
                    | JoinOperator::Right(c)
                    | JoinOperator::RightOuter(c)
                    | JoinOperator::FullOuter(c)
                    | JoinOperator::Semi(c)
                    | JoinOperator::LeftSemi(c)
                    | JoinOperator::RightSemi(c)
                    | JoinOperator::Anti(c)
                    | JoinOperator::LeftAnti(c)
                    | JoinOperator::RightAnti(c) => Some(c),
                    _ => None,
                };
                if let Some(JoinConstraint::Using(names)) = constraint {
                    for name in names {
                        self.object_name(name)
                            .map_or_else(broken, ControlFlow::Continue)?;
                    }
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &mut ObjectName) -> ControlFlow<Self::Break> {
        self.object_name(relation)
            .map_or_else(broken, ControlFlow::Continue)
    }

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<Self::Break> {
        let alias = match factor {
            TableFactor::Table { alias, .. }
            | TableFactor::Derived { alias, .. }
            | TableFactor::TableFunction { alias, .. }
            | TableFactor::UNNEST { alias, .. }
            | TableFactor::NestedJoin { alias, .. } => alias.as_mut(),
            _ => None,
        };
        if let Some(alias) = alias {
            self.ident(&mut alias.name)
                .map_or_else(broken, ControlFlow::Continue)?;
            for column in &mut alias.columns {
                self.ident(&mut column.name)
                    .map_or_else(broken, ControlFlow::Continue)?;
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &mut ast::Expr) -> ControlFlow<Self::Break> {
        let sealed = match expr {
            ast::Expr::Identifier(ident) => self.ident(ident),
            ast::Expr::CompoundIdentifier(idents) => {
                idents.iter_mut().try_for_each(|i| self.ident(i))
            }
            ast::Expr::QualifiedWildcard(name, _) => self.object_name(name),
            _ => Ok(()),
        };
        sealed.map_or_else(broken, ControlFlow::Continue)
    }

    fn pre_visit_value(&mut self, value: &mut ast::ValueWithSpan) -> ControlFlow<Self::Break> {
        self.value(&mut value.value)
            .map_or_else(broken, ControlFlow::Continue)
    }
}

/// Replaces every string value and name in `node` (a statement or an
/// expression) by `writer`'s text (see the module docs); returns what was
/// written, for [`verify`].
pub fn seal<N: VisitMut>(node: &mut N, writer: &dyn SqlWriter) -> Result<Written> {
    let mut sealer = Sealer {
        writer,
        written: Written::default(),
    };
    if let ControlFlow::Break(e) = node.visit(&mut sealer) {
        return Err(e);
    }
    Ok(sealer.written)
}

/// Reads `sql` back in `writer`'s dialect: every string literal in it must
/// be a value that was written, and every quoted name holding a quote
/// character one that was written (a name without one reads back as
/// itself whoever quoted it). Anything else means a value or a name
/// reached the text without the writer: the statement is refused.
pub fn verify(sql: &str, writer: &dyn SqlWriter, written: &Written) -> Result<()> {
    let refuse = |what: String| {
        Err(DataFusionError::Internal(format!(
            "refusing to send SQL to {}: {what} in: {sql}",
            writer.database()
        )))
    };
    let tokens = match Tokenizer::new(writer.parser_dialect(), sql).tokenize() {
        Ok(tokens) => tokens,
        Err(e) => return refuse(format!("it does not read back ({e})")),
    };
    for token in &tokens {
        match token {
            Token::Word(word) => {
                if let Some(q) = word.quote_style
                    && word.value.contains(['"', '`', '\'', '[', ']'])
                    && !written.names.contains(&word.value)
                {
                    return refuse(format!("the name {q}{}{q} was not written", word.value));
                }
            }
            // Moltres writes no comments and one statement: a comment or a
            // `;` came from a value or a name.
            Token::Whitespace(
                Whitespace::SingleLineComment { .. } | Whitespace::MultiLineComment(_),
            )
            | Token::SemiColon => return refuse(format!("{token} was not written")),
            Token::Whitespace(_)
            | Token::Number(..)
            | Token::Char(_)
            | Token::Placeholder(_)
            | Token::EOF => {}
            other => match writer.read_back(other) {
                Some(value) if written.strings.contains(&value) => {}
                Some(value) => return refuse(format!("the literal {value:?} was not written")),
                None if is_punctuation(other) => {}
                None => return refuse(format!("the token {other} was not written")),
            },
        }
    }
    Ok(())
}

/// Operators and punctuation (no text of their own).
fn is_punctuation(token: &Token) -> bool {
    !matches!(
        token,
        Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_)
            | Token::TripleSingleQuotedString(_)
            | Token::TripleDoubleQuotedString(_)
            | Token::DollarQuotedString(_)
            | Token::SingleQuotedByteStringLiteral(_)
            | Token::DoubleQuotedByteStringLiteral(_)
            | Token::TripleSingleQuotedByteStringLiteral(_)
            | Token::TripleDoubleQuotedByteStringLiteral(_)
            | Token::SingleQuotedRawStringLiteral(_)
            | Token::DoubleQuotedRawStringLiteral(_)
            | Token::TripleSingleQuotedRawStringLiteral(_)
            | Token::TripleDoubleQuotedRawStringLiteral(_)
            | Token::NationalStringLiteral(_)
            | Token::QuoteDelimitedStringLiteral(_)
            | Token::NationalQuoteDelimitedStringLiteral(_)
            | Token::EscapedStringLiteral(_)
            | Token::UnicodeStringLiteral(_)
            | Token::HexStringLiteral(_)
            | Token::CustomBinaryOperator(_)
    )
}

/// A plain string literal, or a hexadecimal one holding UTF-8 (MySQL's
/// and SQLite's writers use both).
pub fn read_back_plain_or_hex(token: &Token) -> Option<String> {
    match token {
        Token::SingleQuotedString(s) => Some(s.clone()),
        Token::HexStringLiteral(h) => {
            let bytes = (0..h.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(h.get(i..i + 2)?, 16).ok())
                .collect::<Option<Vec<u8>>>()?;
            String::from_utf8(bytes).ok()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mysql::MysqlWriter;
    use crate::postgres::PostgresWriter;
    use crate::sqlite::SqliteWriter;

    /// Strings built from the pieces that break quoting: quotes (single,
    /// doubled, after a backslash), backslashes, comment and statement
    /// markers, dollar quotes, control characters, NUL, emoji.
    pub(crate) fn hostile_strings(count: usize, seed: u64) -> Vec<String> {
        const PIECES: &[&str] = &[
            "'",
            "''",
            "\\",
            "\\'",
            "\\\\",
            "\"",
            "\"\"",
            "`",
            "``",
            "$$",
            "$q$",
            "--",
            "/*",
            "*/",
            ";",
            "%",
            "_",
            " ",
            "  ",
            "a",
            "Z",
            "é",
            "ß",
            "😀",
            "\n",
            "\r",
            "\t",
            "\u{1}",
            "\u{7f}",
            "\0",
            ") OR 1=1 -- ",
            "'; DROP TABLE t; --",
            "E'",
            "X'",
            "N'",
            "?",
            "$1",
            ":x",
            "[",
            "]",
        ];
        let mut state = seed | 1;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        (0..count)
            .map(|_| {
                let len = (next() % 8) as usize;
                (0..len)
                    .map(|_| PIECES[(next() % PIECES.len() as u64) as usize])
                    .collect()
            })
            .collect()
    }

    fn writers() -> Vec<Box<dyn SqlWriter>> {
        vec![
            Box::new(PostgresWriter),
            Box::new(MysqlWriter),
            Box::new(SqliteWriter),
        ]
    }

    /// Every value a writer accepts reads back as itself in the writer's
    /// dialect, and passes `verify` as the one literal of a statement.
    #[test]
    fn written_strings_read_back_as_themselves() {
        for writer in writers() {
            for value in hostile_strings(10_000, 7) {
                let Ok(literal) = writer.string(&value) else {
                    assert!(
                        value.contains('\0'),
                        "{}: {value:?} refused",
                        writer.database()
                    );
                    continue;
                };
                let sql = format!("SELECT {literal} AS c");
                let mut written = Written::default();
                written.strings.insert(value.clone());
                verify(&sql, writer.as_ref(), &written).unwrap_or_else(|e| {
                    panic!("{}: {value:?} as {literal}: {e}", writer.database())
                });
                let tokens = Tokenizer::new(writer.parser_dialect(), &sql)
                    .tokenize()
                    .unwrap();
                let read: Vec<String> = tokens.iter().filter_map(|t| writer.read_back(t)).collect();
                assert_eq!(
                    read,
                    vec![value.clone()],
                    "{}: {literal}",
                    writer.database()
                );
            }
        }
    }

    /// Names read back as themselves; a name or value that did not go
    /// through the writer is refused.
    #[test]
    fn names_read_back_and_strays_are_refused() {
        for writer in writers() {
            for name in hostile_strings(2_000, 11) {
                let Ok(quoted) = writer.identifier(&name) else {
                    continue;
                };
                let sql = format!("SELECT 1 FROM {quoted}");
                let mut written = Written::default();
                written.names.insert(name.clone());
                verify(&sql, writer.as_ref(), &written)
                    .unwrap_or_else(|e| panic!("{}: {name:?} as {quoted}: {e}", writer.database()));
            }
            let empty = Written::default();
            for stray in [
                "SELECT 1 FROM t WHERE s = 'x'",
                "SELECT 1 -- comment",
                "SELECT 1; DELETE FROM t",
                "SELECT 1 /* c */",
            ] {
                assert!(verify(stray, writer.as_ref(), &empty).is_err(), "{stray}");
            }
        }
    }

    /// sqlparser's own printing of these values is wrong (the reason for
    /// the writers): a doubled quote and a quote after a backslash pass
    /// through as they are.
    #[test]
    fn sealed_statements_keep_every_value() {
        use datafusion::sql::sqlparser::dialect::GenericDialect;
        use datafusion::sql::sqlparser::parser::Parser;
        for writer in writers() {
            let mut statement = Parser::parse_sql(
                &GenericDialect {},
                "SELECT \"a\"\"b\" AS \"x\"\"\"\"y\" FROM \"we\"\"ird\" AS \"t\" WHERE s = 'it''''s' OR s = '\\'') OR 1=1 -- '",
            )
            .unwrap()
            .remove(0);
            let written = seal(&mut statement, writer.as_ref()).unwrap();
            let sql = statement.to_string();
            verify(&sql, writer.as_ref(), &written).unwrap();
            assert!(written.strings.contains("it''s"), "{sql}");
            assert!(written.strings.contains("\\') OR 1=1 -- "), "{sql}");
            assert!(
                written.names.contains("a\"b") && written.names.contains("x\"\"y"),
                "{sql}"
            );
        }
    }
}
