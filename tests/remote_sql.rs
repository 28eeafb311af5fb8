//! Trustworthy remote SQL, against the real servers:
//!
//! * hostile values reach each database exactly, as literals in filters,
//!   IN lists, run-time key lists, inserted values and DELETEs, and hostile
//!   names as table and column names (10,000 generated strings per
//!   database), with nothing else running;
//! * the generated differential matrix: every column type of each
//!   database's type table holding that type's edge values, queried through
//!   every shape Moltres pushes (filters with every comparison, IN,
//!   BETWEEN, IS NULL, LIKE, functions and arithmetic, GROUP BY, DISTINCT,
//!   ORDER BY + LIMIT, aggregates, joins in the database and across
//!   sources), once through a source with pushdown and once through the same
//!   database attached with `pushdown = off`: the answers must be equal.
//!   `MOLTRES_MATRIX_QUERIES` bounds the queries per database (default
//!   5,000; the seed is fixed, `MOLTRES_MATRIX_SEED` changes it);
//! * read-only sources are read-only at the database.

use std::collections::BTreeMap;

use moltres::Moltres;
use moltres_connectors::mysql::MysqlWriter;
use moltres_connectors::postgres::PostgresWriter;
use moltres_connectors::remote::{SqlWriter, Written, seal, verify};
use moltres_connectors::sqlite::SqliteWriter;

use crate::common::{self, query};

/// The strings of the property tests: pieces that break quoting, joined
/// at random (seeded, so a failure names a reproducible string).
fn hostile_strings(count: usize, seed: u64) -> Vec<String> {
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
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    while out.len() < count {
        let len = 1 + (next() % 7) as usize;
        let s: String = (0..len)
            .map(|_| PIECES[(next() % PIECES.len() as u64) as usize])
            .collect();
        if seen.insert(s.clone()) {
            out.push(s);
        }
    }
    out
}

/// `s` as a DataFusion string literal.
fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `s` as a DataFusion quoted name.
fn name(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn writers() -> Vec<Box<dyn SqlWriter>> {
    vec![
        Box::new(PostgresWriter),
        Box::new(MysqlWriter),
        Box::new(SqliteWriter),
    ]
}

/// Every value a writer accepts reads back as itself in the writer's
/// dialect, and passes `verify` as the one literal of a statement (no
/// server needed).
#[test]
fn written_strings_read_back_as_themselves() {
    use datafusion::sql::sqlparser::tokenizer::Tokenizer;
    for writer in writers() {
        for value in hostile_strings(10_000, 7) {
            let mut written = Written::default();
            let Ok(literal) = written.string(writer.as_ref(), &value) else {
                assert!(
                    value.contains('\0'),
                    "{}: {value:?} refused",
                    writer.database()
                );
                continue;
            };
            let sql = format!("SELECT {literal} AS c");
            verify(&sql, writer.as_ref(), &written)
                .unwrap_or_else(|e| panic!("{}: {value:?} as {literal}: {e}", writer.database()));
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

/// Names read back as themselves; a literal, a comment or a `;` that did
/// not go through the writer is refused.
#[test]
fn names_read_back_and_strays_are_refused() {
    for writer in writers() {
        for name in hostile_strings(2_000, 11) {
            let mut written = Written::default();
            let Ok(quoted) = written.identifier(writer.as_ref(), &name) else {
                continue;
            };
            let sql = format!("SELECT 1 FROM {quoted}");
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

/// sqlparser's own printing of these is wrong (the reason for the
/// writers): a doubled quote and a quote after a backslash pass through as
/// they are. Sealed, every value and name reads back as itself.
#[test]
fn sealed_statements_keep_every_value() {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    for writer in writers() {
        let mut statement = Parser::parse_sql(
            &GenericDialect {},
            r#"SELECT "a""b" AS "x""""y" FROM "we""ird" AS "t" WHERE s = 'it''''s' OR s = '\'') OR 1=1 -- '"#,
        )
        .unwrap()
        .remove(0);
        let written = seal(&mut statement, writer.as_ref()).unwrap();
        let sql = statement.to_string();
        verify(&sql, writer.as_ref(), &written).unwrap();
        let tokens = Tokenizer::new(writer.parser_dialect(), &sql)
            .tokenize()
            .unwrap();
        let values: Vec<String> = tokens.iter().filter_map(|t| writer.read_back(t)).collect();
        assert_eq!(values, ["it''s", r"\') OR 1=1 -- "], "{sql}");
        let names: Vec<String> = tokens
            .iter()
            .filter_map(|t| match t {
                Token::Word(w) if w.quote_style.is_some() => Some(w.value.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(names, [r#"a"b"#, r#"x""y"#, r#"we"ird"#, "t"], "{sql}");
    }
}

/// The fuzz target of part 1, as a generated test: logical plans whose
/// tables, columns, aliases and string literals are hostile strings go
/// through each database's unparser dialect, sealing and printing (what
/// `RemoteSql::from_plan` does); the SQL must parse in that dialect and hold
/// exactly the plan's literals and names.
#[test]
fn plans_render_with_every_literal_and_name_intact() {
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::logical_expr::{col, lit, logical_plan::builder::table_scan};
    use datafusion::sql::sqlparser::parser::Parser;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    use datafusion::sql::unparser::Unparser;
    use datafusion::sql::unparser::dialect::Dialect;
    use moltres_connectors::mysql::MysqlDialect;
    use moltres_connectors::postgres::PostgresDialect;
    use moltres_connectors::sqlite::SqliteDialect;
    let pairs: Vec<(Box<dyn Dialect>, Box<dyn SqlWriter>)> = vec![
        (Box::new(PostgresDialect {}), Box::new(PostgresWriter)),
        (Box::new(MysqlDialect::default()), Box::new(MysqlWriter)),
        (Box::new(SqliteDialect {}), Box::new(SqliteWriter)),
    ];
    let values = hostile_strings(4_000, 11);
    // Names within every database's rules: no NUL, no trailing space, at
    // most 64 characters (MySQL).
    let names: Vec<String> = hostile_strings(4_000, 13)
        .into_iter()
        .filter(|n| !n.contains('\0') && !n.ends_with(' ') && n.chars().count() <= 60)
        .collect();
    let mut plans = 0;
    for (dialect, writer) in &pairs {
        let database = writer.database();
        for (i, chunk) in values.chunks(4).enumerate() {
            let [a, b, c, d] = chunk else { continue };
            let n = |k: usize| names[(i * 4 + k) % names.len()].clone();
            let (table, c1, c2, alias) = (n(0), n(1), n(2), n(3));
            if c1 == c2 {
                continue;
            }
            let schema = Schema::new(vec![
                Field::new(&c1, DataType::Utf8, true),
                Field::new(&c2, DataType::Utf8, true),
            ]);
            let plan = table_scan(
                Some(datafusion::common::TableReference::bare(table.as_str())),
                &schema,
                None,
            )
            .and_then(|p| {
                p.filter(
                    col(datafusion::common::Column::new_unqualified(&c1))
                        .eq(lit(a.as_str()))
                        .or(col(datafusion::common::Column::new_unqualified(&c2))
                            .in_list(vec![lit(b.as_str()), lit(c.as_str())], false)),
                )
            })
            .and_then(|p| {
                p.project(vec![
                    col(datafusion::common::Column::new_unqualified(&c1)),
                    lit(d.as_str()).alias(&alias),
                ])
            })
            .and_then(|p| p.build())
            .unwrap();
            let mut statement = Unparser::new(dialect.as_ref())
                .plan_to_sql(&plan)
                .unwrap_or_else(|e| panic!("{database}: unparsing {plan}: {e}"));
            let sealed = seal(&mut statement, writer.as_ref());
            let literals = [a, b, c, d];
            if database == "PostgreSQL" && literals.iter().any(|v| v.contains('\0')) {
                assert!(sealed.is_err(), "{database}: NUL must be refused");
                continue;
            }
            let written = sealed.unwrap_or_else(|e| panic!("{database}: {e}"));
            let sql = statement.to_string();
            verify(&sql, writer.as_ref(), &written)
                .unwrap_or_else(|e| panic!("{database}: {sql}: {e}"));
            Parser::parse_sql(writer.parser_dialect(), &sql)
                .unwrap_or_else(|e| panic!("{database}: {sql} does not parse: {e}"));
            let tokens = Tokenizer::new(writer.parser_dialect(), &sql)
                .tokenize()
                .unwrap();
            let mut read: Vec<String> = tokens.iter().filter_map(|t| writer.read_back(t)).collect();
            let mut expected: Vec<String> = literals.iter().map(|v| v.to_string()).collect();
            read.sort();
            expected.sort();
            assert_eq!(read, expected, "{database}: literals of {sql}");
            let quoted: Vec<String> = tokens
                .iter()
                .filter_map(|t| match t {
                    Token::Word(w) if w.quote_style.is_some() => Some(w.value.clone()),
                    _ => None,
                })
                .collect();
            for name in [&table, &c1, &c2, &alias] {
                assert!(quoted.contains(name), "{database}: {name:?} not in {sql}");
            }
            for name in &quoted {
                assert!(
                    [&table, &c1, &c2, &alias].contains(&name),
                    "{database}: stray name {name:?} in {sql}"
                );
            }
            plans += 1;
        }
    }
    assert!(plans > 2_500, "{plans} plans checked");
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    Postgres,
    Mysql,
    Sqlite,
}

/// One database with the table `q (id, s)` holding the hostile strings,
/// attached as `src`.
struct Hostile {
    kind: Kind,
    db: Moltres,
    strings: Vec<String>,
    _dir: Option<tempfile::TempDir>,
}

impl Hostile {
    /// Runs native SQL on the database (the test's own connection).
    async fn native(&self, sql: &str) {
        match self.kind {
            Kind::Postgres => {
                let url = common::postgres_url();
                let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(conn);
                client.batch_execute(sql).await.unwrap();
            }
            Kind::Mysql => {
                use mysql_async::prelude::Queryable;
                let mut conn = mysql_async::Conn::new(
                    mysql_async::Opts::from_url(&format!(
                        "{}/moltres_hostile",
                        common::mysql_url()
                    ))
                    .unwrap(),
                )
                .await
                .unwrap();
                conn.query_drop(sql).await.unwrap();
            }
            Kind::Sqlite => {
                let path = self._dir.as_ref().unwrap().path().join("h.db");
                rusqlite::Connection::open(path)
                    .unwrap()
                    .execute_batch(sql)
                    .unwrap();
            }
        }
    }

    /// The strings of `table.s` by id, read by the test's own connection.
    async fn stored(&self, table: &str) -> BTreeMap<i64, String> {
        match self.kind {
            Kind::Postgres => {
                let url = common::postgres_url();
                let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(conn);
                client
                    .query(
                        &format!("SELECT id::int8, s FROM moltres_hostile.{table}"),
                        &[],
                    )
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| (r.get::<_, i64>(0), r.get::<_, String>(1)))
                    .collect()
            }
            Kind::Mysql => {
                use mysql_async::prelude::Queryable;
                let mut conn = mysql_async::Conn::new(
                    mysql_async::Opts::from_url(&format!(
                        "{}/moltres_hostile",
                        common::mysql_url()
                    ))
                    .unwrap(),
                )
                .await
                .unwrap();
                conn.query::<(i64, String), _>(format!("SELECT id, s FROM {table}"))
                    .await
                    .unwrap()
                    .into_iter()
                    .collect()
            }
            Kind::Sqlite => {
                let path = self._dir.as_ref().unwrap().path().join("h.db");
                let c = rusqlite::Connection::open(path).unwrap();
                let mut st = c.prepare(&format!("SELECT id, s FROM {table}")).unwrap();
                st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap()
            }
        }
    }

    async fn new(kind: Kind, count: usize) -> Self {
        let all = hostile_strings(count, 42);
        // PostgreSQL text holds no NUL.
        let strings: Vec<String> = match kind {
            Kind::Postgres => all.into_iter().filter(|s| !s.contains('\0')).collect(),
            _ => all,
        };
        let db = common::session().await;
        let mut dir = None;
        match kind {
            Kind::Postgres => {
                let client = common::postgres_schema(
                    "moltres_hostile",
                    "CREATE TABLE q (id int PRIMARY KEY, s text COLLATE \"C\");
                     CREATE TABLE w (id int PRIMARY KEY, s text);
                     CREATE TABLE canary (id int); INSERT INTO canary VALUES (1), (2);",
                )
                .await;
                let insert = client
                    .prepare("INSERT INTO moltres_hostile.q VALUES ($1, $2)")
                    .await
                    .unwrap();
                for (i, s) in strings.iter().enumerate() {
                    client.execute(&insert, &[&(i as i32), s]).await.unwrap();
                }
                db.attach(&common::postgres_url(), "src", false)
                    .await
                    .unwrap();
            }
            Kind::Mysql => {
                use mysql_async::prelude::Queryable;
                let mut conn = common::mysql_database(
                    "moltres_hostile",
                    "CREATE TABLE q (id int PRIMARY KEY, s text CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin);
                     CREATE TABLE w (id int PRIMARY KEY, s text CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin);
                     CREATE TABLE canary (id int); INSERT INTO canary VALUES (1), (2);",
                )
                .await;
                conn.exec_batch(
                    "INSERT INTO q VALUES (?, ?)",
                    strings
                        .iter()
                        .enumerate()
                        .map(|(i, s)| (i as i64, s.clone())),
                )
                .await
                .unwrap();
                db.attach(
                    &format!("{}/moltres_hostile", common::mysql_url()),
                    "src",
                    false,
                )
                .await
                .unwrap();
            }
            Kind::Sqlite => {
                let d = tempfile::tempdir().unwrap();
                let path = d.path().join("h.db");
                let mut c = rusqlite::Connection::open(&path).unwrap();
                c.execute_batch(
                    "CREATE TABLE q (id INTEGER PRIMARY KEY, s TEXT);
                     CREATE TABLE w (id INTEGER PRIMARY KEY, s TEXT);
                     CREATE TABLE canary (id INTEGER); INSERT INTO canary VALUES (1), (2);",
                )
                .unwrap();
                let tx = c.transaction().unwrap();
                for (i, s) in strings.iter().enumerate() {
                    tx.execute("INSERT INTO q VALUES (?1, ?2)", (i as i64, s))
                        .unwrap();
                }
                tx.commit().unwrap();
                db.attach(&format!("sqlite:{}", path.display()), "src", false)
                    .await
                    .unwrap();
                dir = Some(d);
            }
        }
        Hostile {
            kind,
            db,
            strings,
            _dir: dir,
        }
    }

    /// A table of the source as DataFusion names it.
    fn t(&self, table: &str) -> String {
        match self.kind {
            Kind::Postgres => format!("src.moltres_hostile.{table}"),
            _ => format!("src.{table}"),
        }
    }

    /// Nothing but the statements asked for ran: the canary and `q` are
    /// whole.
    async fn untouched(&self) {
        assert_eq!(
            query(
                &self.db,
                &format!("SELECT count(*) FROM {}", self.t("canary"))
            )
            .await,
            vec![vec!["2".to_string()]],
            "{:?}: the canary table changed",
            self.kind
        );
        assert_eq!(
            query(&self.db, &format!("SELECT count(*) FROM {}", self.t("q"))).await,
            vec![vec![self.strings.len().to_string()]],
            "{:?}: q changed",
            self.kind
        );
    }

    /// Filters, IN lists, run-time key lists, inserted values and a DELETE,
    /// each with every hostile string.
    async fn check_values(&self) {
        let kind = self.kind;
        // IN lists of 100: each string finds exactly its own row, read back
        // exactly.
        for (chunk_no, chunk) in self.strings.chunks(100).enumerate() {
            let list: Vec<String> = chunk.iter().map(|s| lit(s)).collect();
            let sql = format!(
                "SELECT id, s FROM {} WHERE s IN ({}) ORDER BY id",
                self.t("q"),
                list.join(", ")
            );
            let got = query(&self.db, &sql).await;
            let expected: Vec<Vec<String>> = chunk
                .iter()
                .enumerate()
                .map(|(i, s)| vec![(chunk_no * 100 + i).to_string(), s.clone()])
                .collect();
            assert_eq!(got, expected, "{kind:?}: IN list {chunk_no}");
            if chunk_no == 0 {
                let plan = common::explain(&self.db, &sql).await;
                assert!(
                    common::remote_scans(&plan)
                        .iter()
                        .any(|l| l.contains(" IN (")),
                    "{kind:?}: the IN list should be pushed:\n{plan}"
                );
            }
        }
        // Single comparisons, 500 of them.
        for (i, s) in self
            .strings
            .iter()
            .enumerate()
            .step_by(self.strings.len() / 500)
        {
            let got = query(
                &self.db,
                &format!("SELECT id FROM {} WHERE s = {}", self.t("q"), lit(s)),
            )
            .await;
            assert_eq!(got, vec![vec![i.to_string()]], "{kind:?}: s = {s:?}");
        }
        // Run-time key lists: local values joined with the remote table.
        for (chunk_no, chunk) in self.strings.chunks(50).enumerate().step_by(10) {
            let values: Vec<String> = chunk.iter().map(|s| format!("({})", lit(s))).collect();
            let sql = format!(
                "SELECT q.id FROM {} AS q JOIN (VALUES {}) AS v(s) ON q.s = v.s ORDER BY q.id",
                self.t("q"),
                values.join(", ")
            );
            let expected: Vec<Vec<String>> = (0..chunk.len())
                .map(|i| vec![(chunk_no * 50 + i).to_string()])
                .collect();
            assert_eq!(
                query(&self.db, &sql).await,
                expected,
                "{kind:?}: key list {chunk_no}"
            );
        }
        // The same from a CSV file (the issue's reproduction: a file's value
        // reaching the key list of a join with the database).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.csv");
        let keys: Vec<(usize, &String)> = self
            .strings
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.contains(['\n', '\r', '\0']))
            .take(400)
            .collect();
        let mut text = String::from("s\n");
        for s in keys
            .iter()
            .map(|(_, s)| s.as_str())
            .chain([r"\') OR nextval($$seq$$) > 0 -- ", r"') OR 1=1 -- "])
        {
            text.push_str(&format!("\"{}\"\n", s.replace('"', "\"\"")));
        }
        std::fs::write(&path, text).unwrap();
        let table = format!("keys_{}", format!("{kind:?}").to_lowercase());
        query(
            &self.db,
            &format!(
                "CREATE EXTERNAL TABLE {table} (s VARCHAR) STORED AS CSV LOCATION '{}' OPTIONS ('format.has_header' 'true', 'format.newlines_in_values' 'true')",
                path.display()
            ),
        )
        .await;
        let got = query(
            &self.db,
            &format!(
                "SELECT q.id FROM {} AS q JOIN {table} AS k ON q.s = k.s ORDER BY q.id",
                self.t("q")
            ),
        )
        .await;
        // Every row holding one of the keys (a generated string may come
        // twice).
        let hostile = [
            r"\') OR nextval($$seq$$) > 0 -- ".to_string(),
            r"') OR 1=1 -- ".to_string(),
        ];
        let wanted: std::collections::HashSet<&String> =
            keys.iter().map(|(_, s)| *s).chain(&hostile).collect();
        let expected: Vec<Vec<String>> = self
            .strings
            .iter()
            .enumerate()
            .filter(|(_, s)| wanted.contains(s))
            .map(|(i, _)| vec![i.to_string()])
            .collect();
        let missing: Vec<_> = expected.iter().filter(|row| !got.contains(row)).collect();
        let extra: Vec<_> = got.iter().filter(|row| !expected.contains(row)).collect();
        if let Some(row) = extra.first() {
            let id: usize = row[0].parse().unwrap();
            let matched = query(
                &self.db,
                &format!(
                    "SELECT k.s, q.s FROM {} AS q JOIN {table} AS k ON q.s = k.s WHERE q.id = {id}",
                    self.t("q")
                ),
            )
            .await;
            panic!(
                "{kind:?}: key list from a CSV file: row {id} holds {:?}, and matched {matched:?}",
                self.strings[id]
            );
        }
        assert!(
            missing.is_empty(),
            "{kind:?}: key list from a CSV file: missing {missing:?}"
        );
        // Inserted values: every string stored exactly.
        for (chunk_no, chunk) in self.strings.chunks(1000).enumerate() {
            let rows: Vec<String> = chunk
                .iter()
                .enumerate()
                .map(|(i, s)| format!("({}, {})", chunk_no * 1000 + i, lit(s)))
                .collect();
            query(
                &self.db,
                &format!("INSERT INTO {} VALUES {}", self.t("w"), rows.join(", ")),
            )
            .await;
        }
        let stored = self.stored("w").await;
        assert_eq!(stored.len(), self.strings.len(), "{kind:?}: rows inserted");
        for (i, s) in self.strings.iter().enumerate() {
            assert_eq!(stored.get(&(i as i64)), Some(s), "{kind:?}: inserted {s:?}");
        }
        // DELETE with the literals of the issue: one row or none, never all.
        for s in [
            "\\')) OR 1=1 -- ",
            "\\') OR 1=1 -- ",
            self.strings[3].as_str(),
        ] {
            let stored = self.stored("w").await;
            let before = stored.len();
            let expected = stored.values().filter(|v| v.as_str() == s).count();
            query(
                &self.db,
                &format!("DELETE FROM {} WHERE s = {}", self.t("w"), lit(s)),
            )
            .await;
            assert_eq!(
                self.stored("w").await.len(),
                before - expected,
                "{kind:?}: DELETE WHERE s = {s:?}"
            );
        }
        self.untouched().await;
    }

    /// Tables and columns with hostile names: each reads its own value.
    async fn check_names(&self) {
        let kind = self.kind;
        let names: Vec<String> = hostile_strings(400, 9)
            .into_iter()
            .filter(|n| !n.contains('\0') && !n.ends_with(' ') && !n.is_empty())
            // MySQL names are at most 64 characters, PostgreSQL 63 bytes.
            .filter(|n| n.len() <= 60)
            // MySQL names hold only the Basic Multilingual Plane (utf8mb3)
            // and no control characters.
            .filter(|n| {
                kind != Kind::Mysql || n.chars().all(|c| (c as u32) < 0x10000 && !c.is_control())
            })
            // Distinct ignoring case: MySQL table names may be folded.
            .fold(Vec::<String>::new(), |mut acc, n| {
                if !acc.iter().any(|a| a.to_lowercase() == n.to_lowercase()) {
                    acc.push(n);
                }
                acc
            })
            .into_iter()
            .take(60)
            .collect();
        let native_quote = |s: &str| match kind {
            Kind::Mysql => format!("`{}`", s.replace('`', "``")),
            _ => format!("\"{}\"", s.replace('"', "\"\"")),
        };
        let prefix = match kind {
            Kind::Postgres => "moltres_hostile.",
            _ => "",
        };
        let mut setup = String::new();
        for (i, n) in names.iter().enumerate() {
            setup.push_str(&format!(
                "CREATE TABLE {prefix}{} ({} int, {} int); INSERT INTO {prefix}{} VALUES ({i}, {});",
                native_quote(&format!("t{n}")),
                native_quote(n),
                native_quote(&format!("{n}x")),
                native_quote(&format!("t{n}")),
                i + 1000
            ));
        }
        self.native(&setup).await;
        self.db.refresh("src").unwrap();
        for (i, n) in names.iter().enumerate() {
            let sql = format!(
                "SELECT {}, {} FROM {}.{} WHERE {} = {i}",
                name(n),
                name(&format!("{n}x")),
                self.t("").trim_end_matches('.'),
                name(&format!("t{n}")),
                name(n)
            );
            assert_eq!(
                query(&self.db, &sql).await,
                vec![vec![i.to_string(), (i + 1000).to_string()]],
                "{kind:?}: names {n:?}"
            );
        }
        self.untouched().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_values_and_names_reach_postgres_exactly() {
    let h = Hostile::new(Kind::Postgres, 10_000).await;
    h.check_values().await;
    h.check_names().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_values_and_names_reach_mysql_exactly() {
    let h = Hostile::new(Kind::Mysql, 10_000).await;
    h.check_values().await;
    h.check_names().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_values_and_names_reach_sqlite_exactly() {
    let h = Hostile::new(Kind::Sqlite, 10_000).await;
    h.check_values().await;
    h.check_names().await;
}

/// The SQL type DataFusion casts a text literal to for a column of `t`.
fn sql_type(t: &datafusion::arrow::datatypes::DataType) -> Option<String> {
    use datafusion::arrow::datatypes::DataType::*;
    Some(match t {
        Int8 => "TINYINT".into(),
        Int16 => "SMALLINT".into(),
        Int32 => "INT".into(),
        Int64 => "BIGINT".into(),
        UInt8 => "TINYINT UNSIGNED".into(),
        UInt16 => "SMALLINT UNSIGNED".into(),
        UInt32 => "INT UNSIGNED".into(),
        UInt64 => "BIGINT UNSIGNED".into(),
        Float32 => "REAL".into(),
        Float64 => "DOUBLE".into(),
        Decimal128(p, s) => format!("DECIMAL({p}, {s})"),
        Boolean => "BOOLEAN".into(),
        Utf8 | LargeUtf8 | Utf8View => "VARCHAR".into(),
        Date32 => "DATE".into(),
        Timestamp(_, None) => "TIMESTAMP".into(),
        Timestamp(_, Some(_)) => "TIMESTAMPTZ".into(),
        _ => return None,
    })
}

/// One column of the matrix table: its name, Arrow type and the text of
/// its distinct values (as DataFusion casts them to text).
struct Column {
    name: String,
    data_type: datafusion::arrow::datatypes::DataType,
    values: Vec<String>,
}

impl Column {
    fn literal(&self, value: &str) -> String {
        let t = sql_type(&self.data_type).unwrap_or_else(|| "VARCHAR".into());
        format!("CAST({} AS {t})", lit(value))
    }
    fn is_text(&self) -> bool {
        use datafusion::arrow::datatypes::DataType::*;
        matches!(self.data_type, Utf8 | LargeUtf8 | Utf8View)
    }
    fn is_number(&self) -> bool {
        self.data_type.is_numeric()
    }
    fn is_time(&self) -> bool {
        use datafusion::arrow::datatypes::DataType::*;
        matches!(self.data_type, Date32 | Timestamp(..))
    }
}

/// A tiny seeded generator (xorshift), so a failing query is reproducible.
struct Seeded(u64);

impl Seeded {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
}

/// The queries of the matrix over `columns` of table `{T}` (`{R}`: the same
/// table read with pushdown off, for joins across sources).
fn matrix_queries(columns: &[Column], budget: usize, seed: u64) -> Vec<String> {
    let mut queries = Vec::new();
    let mut predicates = Vec::new();
    for col in columns {
        let c = name(&col.name);
        let v = &col.values;
        let mut preds = Vec::new();
        for value in v {
            for op in ["=", "<>", "<", "<=", ">", ">="] {
                preds.push(format!("{c} {op} {}", col.literal(value)));
            }
        }
        preds.push(format!("{c} IS NULL"));
        preds.push(format!("{c} IS NOT NULL"));
        for window in v.windows(3) {
            let list: Vec<String> = window.iter().map(|x| col.literal(x)).collect();
            preds.push(format!("{c} IN ({})", list.join(", ")));
            preds.push(format!("{c} NOT IN ({})", list.join(", ")));
            preds.push(format!(
                "{c} BETWEEN {} AND {}",
                col.literal(&window[0]),
                col.literal(&window[2])
            ));
        }
        if col.is_text() {
            for pattern in ["a%", "%a%", "_", "%\\%%", "A%", "% ", "%é%", "M%"] {
                preds.push(format!("{c} LIKE {}", lit(pattern)));
                preds.push(format!("{c} NOT LIKE {}", lit(pattern)));
                preds.push(format!("{c} ILIKE {}", lit(pattern)));
            }
            preds.push(format!("starts_with({c}, 'a')"));
            for f in [
                "length({c})",
                "character_length({c})",
                "octet_length({c})",
                "upper({c})",
                "lower({c})",
                "trim({c})",
                "rtrim({c})",
                "ltrim({c})",
                "{c} || 'x'",
                "'x' || {c}",
                "strpos({c}, 'a')",
                "replace({c}, 'a', 'b')",
                "substr({c}, 1, 2)",
            ] {
                let e = f.replace("{c}", &c);
                queries.push(format!("SELECT id, {e} FROM {{T}}"));
                preds.push(format!("{e} IS NULL"));
                for value in v.iter().take(3) {
                    preds.push(format!("{e} = {}", lit(value)));
                }
            }
        }
        if col.is_number() {
            for f in [
                "{c} + 1",
                "{c} - 1",
                "{c} * 2",
                "{c} / 7",
                "{c} % 3",
                "abs({c})",
                "-{c}",
                "ceil({c})",
                "floor({c})",
                "{c} / 2.5",
            ] {
                let e = f.replace("{c}", &c);
                queries.push(format!("SELECT id, {e} FROM {{T}}"));
                preds.push(format!("{e} > 0"));
                preds.push(format!("{e} = 1"));
            }
            queries.push(format!("SELECT sum({c}) FROM {{T}}"));
            queries.push(format!("SELECT sum({c}) / 78 FROM {{T}}"));
            queries.push(format!("SELECT DISTINCT sum({c}) / 78 FROM {{T}}"));
            queries.push(format!("SELECT avg({c}) FROM {{T}}"));
            queries.push(format!("SELECT count(*), sum({c}) FROM {{T}} WHERE id > 2"));
        }
        if col.is_time() {
            for unit in ["year", "month", "day", "hour", "minute", "second"] {
                let e = format!("date_trunc('{unit}', {c})");
                queries.push(format!("SELECT id, {e} FROM {{T}}"));
                queries.push(format!("SELECT {e}, count(*) FROM {{T}} GROUP BY {e}"));
            }
            queries.push(format!("SELECT id, extract(year FROM {c}) FROM {{T}}"));
        }
        queries.push(format!("SELECT {c}, count(*) FROM {{T}} GROUP BY {c}"));
        queries.push(format!("SELECT DISTINCT {c} FROM {{T}}"));
        queries.push(format!(
            "SELECT min({c}), max({c}), count({c}), count(DISTINCT {c}) FROM {{T}}"
        ));
        for order in [
            "ASC NULLS FIRST",
            "ASC NULLS LAST",
            "DESC NULLS FIRST",
            "DESC NULLS LAST",
        ] {
            queries.push(format!(
                "SELECT {c} FROM {{T}} ORDER BY {c} {order} LIMIT 3"
            ));
            queries.push(format!(
                "SELECT id, {c} FROM {{T}} ORDER BY {c} {order}, id LIMIT 4"
            ));
        }
        queries.push(format!(
            "SELECT a.id, b.id FROM {{T}} AS a JOIN {{T}} AS b ON a.{c} = b.{c}"
        ));
        queries.push(format!(
            "SELECT a.id, b.id FROM {{T}} AS a LEFT JOIN {{T}} AS b ON a.{c} = b.{c} AND b.id > 3"
        ));
        queries.push(format!(
            "SELECT a.id, b.id FROM {{T}} AS a JOIN {{R}} AS b ON a.{c} = b.{c}"
        ));
        queries.push(format!(
            "SELECT b.id, a.id FROM {{R}} AS b JOIN {{T}} AS a ON a.{c} = b.{c} WHERE b.id < 6"
        ));
        queries.push(format!(
            "SELECT id FROM {{T}} WHERE {c} IN (SELECT {c} FROM {{T}} WHERE id < 4)"
        ));
        queries.push(format!(
            "SELECT id FROM {{T}} AS a WHERE NOT EXISTS (SELECT 1 FROM {{T}} AS b WHERE b.{c} = a.{c} AND b.id <> a.id)"
        ));
        queries.push(format!("SELECT {c}, 42 AS k FROM {{T}}"));
        for p in &preds {
            queries.push(format!("SELECT id FROM {{T}} WHERE {p}"));
        }
        predicates.extend(preds);
    }
    // Joins between two columns of one Arrow type (`char(n)` against
    // `text`, two collations, signed against unsigned).
    for (i, a) in columns.iter().enumerate() {
        for b in &columns[i + 1..] {
            if a.data_type == b.data_type {
                let (x, y) = (name(&a.name), name(&b.name));
                queries.push(format!(
                    "SELECT l.id, r.id FROM {{T}} AS l JOIN {{T}} AS r ON l.{x} = r.{y}"
                ));
                queries.push(format!(
                    "SELECT id FROM {{T}} WHERE {x} IN (SELECT {y} FROM {{T}})"
                ));
            }
        }
    }
    queries.push("SELECT 42 AS k FROM {T}".to_string());
    queries.push("SELECT 90 / 9 FROM {T}".to_string());
    queries.push("SELECT count(*) FROM {T}".to_string());
    let mut random = Seeded(seed | 1);
    // Combinations fill the budget.
    while queries.len() < budget && !predicates.is_empty() {
        let a = random.pick(&predicates).clone();
        let b = random.pick(&predicates).clone();
        let q = match random.next() % 4 {
            0 => format!("SELECT id FROM {{T}} WHERE ({a}) AND ({b})"),
            1 => format!("SELECT id FROM {{T}} WHERE ({a}) OR NOT ({b})"),
            2 => format!("SELECT count(*) FROM {{T}} WHERE ({a}) OR ({b})"),
            _ => format!("SELECT id FROM {{T}} WHERE NOT (({a}) AND ({b})) ORDER BY id LIMIT 5"),
        };
        queries.push(q);
    }
    // A fixed-seed sample when there are more than the budget.
    while queries.len() > budget {
        let i = (random.next() % queries.len() as u64) as usize;
        queries.swap_remove(i);
    }
    queries
}

/// Attaches the database at `url` twice, as `src` and as `raw` with
/// `pushdown=off`, and runs the matrix over `table` (see [`matrix`]).
async fn run_matrix(url: &str, table: &str, what: &str) {
    let db = common::session().await;
    db.attach(url, "src", false).await.unwrap();
    let separator = if url.contains('?') { '&' } else { '?' };
    db.attach(&format!("{url}{separator}pushdown=off"), "raw", false)
        .await
        .unwrap();
    let n = matrix(&db, table, what).await;
    assert!(
        n >= 5_000 || std::env::var("MOLTRES_MATRIX_QUERIES").is_ok(),
        "{what}: {n} queries"
    );
}

/// Runs the matrix for table `table` (`src.<table>` pushed down,
/// `raw.<table>` not): every answer must be the same; a query that fails
/// must fail both ways. Returns the number of queries run.
async fn matrix(db: &Moltres, table: &str, what: &str) -> usize {
    use futures::StreamExt;
    let budget = std::env::var("MOLTRES_MATRIX_QUERIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    let seed = std::env::var("MOLTRES_MATRIX_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_261_202);
    let raw_table = format!("raw.{table}");
    let frame = db.sql(&format!("SELECT * FROM {raw_table}")).await.unwrap();
    let schema = frame.schema().as_arrow().clone();
    let mut columns = Vec::new();
    for field in schema.fields() {
        if field.name() == "id" || sql_type(field.data_type()).is_none() {
            continue;
        }
        let c = name(field.name());
        let values = query(
            db,
            &format!(
                "SELECT DISTINCT CAST({c} AS VARCHAR) AS v FROM {raw_table} WHERE {c} IS NOT NULL ORDER BY v"
            ),
        )
        .await
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
        columns.push(Column {
            name: field.name().clone(),
            data_type: field.data_type().clone(),
            values,
        });
    }
    let queries = matrix_queries(&columns, budget, seed);
    let count = queries.len();
    let run = |sql: String| async move { common::answer(db, &sql).await };
    let differences: Vec<String> = futures::stream::iter(queries)
        .map(|template| {
            let pushed = template
                .replace("{T}", &format!("src.{table}"))
                .replace("{R}", &raw_table);
            let reference = template
                .replace("{T}", &raw_table)
                .replace("{R}", &raw_table);
            async move {
                let (mut a, mut b) = (run(pushed.clone()).await, run(reference).await);
                if !template.contains("ORDER BY") {
                    if let Ok(rows) = &mut a {
                        rows.sort();
                    }
                    if let Ok(rows) = &mut b {
                        rows.sort();
                    }
                }
                match (&a, &b) {
                    (Ok(x), Ok(y)) if x == y => None,
                    (Err(_), Err(_)) => None,
                    // A pushed filter may remove the rows a local
                    // expression would fail on (`abs(-128)` of a tinyint):
                    // an answer where the reference fails, never another
                    // answer or a failure where it answers.
                    (Ok(_), Err(_)) => None,
                    _ => Some(format!("{pushed}\n  pushed: {a:?}\n  local:  {b:?}")),
                }
            }
        })
        .buffer_unordered(4)
        .filter_map(|d| async move { d })
        .collect()
        .await;
    assert!(
        differences.is_empty(),
        "{what}: {} of {count} queries differ with pushdown (seed {seed}):\n{}",
        differences.len(),
        differences
            .iter()
            .take(25)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differential_matrix_postgres() {
    common::postgres_schema(
        "moltres_matrix",
        r#"CREATE TABLE m (id int PRIMARY KEY, i2 int2, i4 int4, i8 int8, f4 float4, f8 float8,
             n numeric(12,3), nu numeric, b bool, t text, tc text COLLATE "C", v varchar(10),
             c char(6), cc char(4) COLLATE "C", d date, ts timestamp(6), tz timestamptz);
           INSERT INTO m VALUES
           (1, 0, 0, 0, 0, 0, 0, 0, false, '', '', '', '', '', '1970-01-01', '1970-01-01 00:00:00', '1970-01-01 00:00:00+00'),
           (2, -32768, -2147483648, -9223372036854775808, 'NaN', 'NaN', -999999999.999, -1e20, true, 'a', 'a', 'a', 'a', 'a', '1969-12-31', '1969-12-31 23:59:59.999999', '2024-03-10 02:30:00+00'),
           (3, 32767, 2147483647, 9223372036854775807, 'Infinity', 'Infinity', 999999999.999, 123456789012345678901234567890.5, false, 'A', 'A', 'A', 'A ', 'A ', '2100-01-01', '2100-12-31 23:59:59.25', '2024-11-03 05:30:00+00'),
           (4, -1, -1, -1, '-Infinity', '-Infinity', -0.001, 0.1, true, 'a ', 'a ', 'a ', ' a', ' a', '1900-01-01', '2024-01-01 00:00:00.250', '1900-01-01 00:00:00+00'),
           (5, 1, 1, 1, '-0', '-0', 0.5, -0.5, NULL, ' a', ' a', 'é', 'é', 'é', '2024-02-29', '2024-02-29 12:00:00', '2000-01-01 00:00:00.000001+00'),
           (6, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
           (7, 2, 7, 7, 1.5, 2.5, 1.005, 2, true, 'é', 'é', 'e', 'e', 'e', '2024-01-01', '2024-01-01 00:00:00', '2024-01-01 00:00:00+00'),
           (8, 3, -7, -7, -1.5, 1e300, -1.005, 3, false, 'it''s', 'it''s', 'it''s', 'x\y', 'x\y', '2024-01-31', '2024-01-31 23:59:59.5', '2024-01-31 23:59:59.5+00'),
           (9, 7, 78, 78, 3.25, -2.5, 2, 78, true, 'ß', 'ß', 'MAIL', 'MAIL', 'MAIL', '2024-12-31', '2024-12-31 23:59:59.999999', '2024-12-31 23:59:59.999999+00'),
           (10, 78, 199, 199, 100, 1e-300, 78, 199, false, 'MAIL', 'MAIL', 'B', 'MAIL  ', 'MAI', '1999-12-31', '2000-01-01 00:00:00', '2000-01-01 00:00:00+00');"#,
    )
    .await;
    run_matrix(&common::postgres_url(), "moltres_matrix.m", "PostgreSQL").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differential_matrix_mysql() {
    common::mysql_database(
        "moltres_matrix",
        r#"CREATE TABLE m (id int PRIMARY KEY, ti tinyint, si smallint, i int, bi bigint,
             ub bigint unsigned, f float, dd double, n decimal(12,3), b tinyint(1),
             v varchar(20), vb varchar(20) COLLATE utf8mb4_nopad_bin,
             vbin varchar(20) COLLATE utf8mb4_bin, c char(6), t text, d date,
             dt datetime(6), ts timestamp(6) NULL) CHARACTER SET utf8mb4;
           INSERT INTO m VALUES
           (1, 0, 0, 0, 0, 0, 0, 0, 0, 0, '', '', '', '', '', '1970-01-01', '1970-01-01 00:00:00', '1970-01-02 00:00:00'),
           (2, -128, -32768, -2147483648, -9223372036854775808, 18446744073709551615, -1.5, -1e300, -999999999.999, 1, 'a', 'a', 'a', 'a', 'a', '1969-12-31', '1969-12-31 23:59:59.999999', '2024-03-10 02:30:00'),
           (3, 127, 32767, 2147483647, 9223372036854775807, 1, 3.25, 1e300, 999999999.999, 0, 'A', 'A', 'A', 'A', 'A ', '2100-01-01', '2100-12-31 23:59:59.25', '2024-11-03 05:30:00.25'),
           (4, -1, -1, -1, -1, 2, -0.0, -0.0, -0.001, 1, 'a ', 'a ', 'a ', ' a', 'a ', '1000-01-01', '2024-01-01 00:00:00.250', '2038-01-19 03:14:07'),
           (5, 1, 1, 1, 1, 3, 1e-30, 2.5, 0.5, NULL, ' a', ' a', ' a', 'é', ' a', '2024-02-29', '2024-02-29 12:00:00', '2000-01-01 00:00:00.000001'),
           (6, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
           (7, 2, 7, 7, 7, 78, 1.5, 0.1, 1.005, 1, 'é', 'é', 'é', 'e', 'é', '2024-01-01', '2024-01-01 00:00:00', '2024-01-01 00:00:00'),
           (8, 3, -7, -7, -7, 199, -2.5, -0.1, -1.005, 0, 'e', 'e', 'e', 'it''s', 'it''s', '2024-01-31', '2024-01-31 23:59:59.5', '2024-01-31 23:59:59.5'),
           (9, 78, 78, 78, 78, 5, 100, 78, 2, 1, 'x\\y', 'x\\y', 'x\\y', 'MAIL', 'ß', '2024-12-31', '2024-12-31 23:59:59.999999', '2024-12-31 23:59:59.999999'),
           (10, 99, 199, 199, 199, 0, 0.1, 199, 78, 0, 'MAIL', 'MAIL ', 'ss', 'mail', 'MAIL', '9999-12-31', '9999-12-31 23:59:59.999999', '2000-01-01 00:00:00');"#,
    )
    .await;
    run_matrix(
        &format!("{}/moltres_matrix", common::mysql_url()),
        "m",
        "MySQL",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differential_matrix_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            r#"CREATE TABLE m (id INTEGER PRIMARY KEY, i INTEGER, r REAL, t TEXT,
                 tn TEXT COLLATE NOCASE, tr TEXT COLLATE RTRIM, v VARCHAR(10), d DATE,
                 ts TIMESTAMP, b BOOLEAN);
               INSERT INTO m VALUES
               (1, 0, 0.0, '', '', '', '', '2024-01-05', '2024-01-05 00:00:00', 0),
               (2, -9223372036854775808, -1.5, 'a', 'a', 'a', 'a', '2024-1-5', '2024-01-05T00:00:00', 1),
               (3, 9223372036854775807, 1e300, 'A', 'A', 'A ', 'A', '2024-01-05 13:45:00', '2024-01-05 00:00:00.250', 0),
               (4, -1, -0.0, 'a ', 'a ', 'a ', 'a ', ' 2024-01-05', '1969-12-31 23:59:59', 1),
               (5, 1, 2.5, ' a', ' a', ' a', 'é', '1969-12-31', '2100-01-01 00:00:00', NULL),
               (6, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
               (7, 7, 0.1, 'é', 'é', 'é', 'it''s', '2100-01-01', '2024-01-05 00:00:00', 1),
               (8, -7, -0.1, 'it''s', 'IT''S', 'x', 'x\y', '2024-02-29', '2024-02-29 12:00:00', 0),
               (9, 78, 78.0, 'MAIL', 'mail', 'MAIL', 'MAIL', '2024-01-06', '2024-01-06 00:00:00', 1),
               (10, 199, 199.5, 'ß', 'SS', 'ß  ', 'B', '2024-01-05', '2024-01-05', 0);"#,
        )
        .unwrap();
    run_matrix(&format!("sqlite:{}", path.display()), "m", "SQLite").await;
}

/// A source attached READ_ONLY is read-only at the database, passthrough
/// included: data-changing statements fail there, and statements that are
/// not queries (which run outside a transaction or are allowed in a
/// read-only one) are refused before they are sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_sources_are_read_only_at_the_database() {
    common::postgres_schema(
        "moltres_readonly",
        "CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2);",
    )
    .await;
    common::mysql_database(
        "moltres_readonly",
        "CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2);",
    )
    .await;
    let db = common::session().await;
    db.attach(&common::postgres_url(), "pg", true)
        .await
        .unwrap();
    db.attach(
        &format!("{}/moltres_readonly", common::mysql_url()),
        "my",
        true,
    )
    .await
    .unwrap();
    let file = std::env::temp_dir().join(format!("moltres-ro-{}", std::process::id()));
    let refused = [
        // In a read-only transaction, the database refuses.
        (
            "pg",
            "postgres_query",
            "WITH d AS (DELETE FROM moltres_readonly.t RETURNING id) SELECT id FROM d",
            "read-only",
        ),
        ("my", "mysql_query", "UPDATE t SET id = 3", "READ_ONLY"),
        // Not queries: refused before they are sent.
        (
            "pg",
            "postgres_query",
            &format!("COPY (SELECT 1) TO '{}'", file.display()),
            "only queries",
        ),
        (
            "pg",
            "postgres_query",
            "ALTER SYSTEM SET work_mem = '5MB'",
            "only queries",
        ),
        (
            "pg",
            "postgres_query",
            "VACUUM moltres_readonly.t",
            "only queries",
        ),
        (
            "my",
            "mysql_query",
            &format!("SELECT 1 INTO OUTFILE '{}'", file.display()),
            "only queries",
        ),
        (
            "my",
            "mysql_query",
            "SET GLOBAL wait_timeout = 28805",
            "only queries",
        ),
    ];
    for (source, function, native, expected) in refused {
        let sql = format!(
            "SELECT * FROM {function}('{source}', '{}')",
            native.replace('\'', "''")
        );
        let err = common::error(&db, &sql).await;
        assert!(
            err.contains(expected) && err.contains(&format!("'{source}'")),
            "{native}: {err}"
        );
    }
    assert!(!file.exists(), "a file was written");
    for table in ["pg.moltres_readonly.t", "my.t"] {
        assert_eq!(
            query(&db, &format!("SELECT count(*) FROM {table}")).await,
            [["2"]]
        );
    }
    // Queries still run.
    assert_eq!(
        query(
            &db,
            "SELECT * FROM mysql_query('my', 'SELECT count(*) AS n FROM t')"
        )
        .await,
        [["2"]]
    );
}
