//! TPC-H across sources: data, the split, the 22 queries, answer checks.
//!
//! The data comes from `tpchgen` (dbgen's rules, in Rust) as Parquet, one
//! file per table. The split puts each table where a team would plausibly
//! keep it ([`PLACEMENT`]); [`load_split`] loads it through Moltres itself and
//! then adds the keys and indexes a DBA would ([`Table::indexes`]).
//! [`split_session`] and [`parquet_session`] give Moltres sessions in which
//! the eight bare table names resolve to the split or to the Parquet files,
//! so the query texts under `benches/tpch/queries/` run unchanged in both,
//! in PostgreSQL and in DuckDB. [`compare`] decides whether two answers
//! agree (the tolerance is documented there).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use datafusion::arrow::array::RecordBatchReader;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::file::properties::WriterProperties;
use moltres::Moltres;

/// The 22 queries (TPC-H's validation parameters), by name.
pub const QUERIES: [(&str, &str); 22] = [
    ("q01", include_str!("../tpch/queries/q01.sql")),
    ("q02", include_str!("../tpch/queries/q02.sql")),
    ("q03", include_str!("../tpch/queries/q03.sql")),
    ("q04", include_str!("../tpch/queries/q04.sql")),
    ("q05", include_str!("../tpch/queries/q05.sql")),
    ("q06", include_str!("../tpch/queries/q06.sql")),
    ("q07", include_str!("../tpch/queries/q07.sql")),
    ("q08", include_str!("../tpch/queries/q08.sql")),
    ("q09", include_str!("../tpch/queries/q09.sql")),
    ("q10", include_str!("../tpch/queries/q10.sql")),
    ("q11", include_str!("../tpch/queries/q11.sql")),
    ("q12", include_str!("../tpch/queries/q12.sql")),
    ("q13", include_str!("../tpch/queries/q13.sql")),
    ("q14", include_str!("../tpch/queries/q14.sql")),
    ("q15", include_str!("../tpch/queries/q15.sql")),
    ("q16", include_str!("../tpch/queries/q16.sql")),
    ("q17", include_str!("../tpch/queries/q17.sql")),
    ("q18", include_str!("../tpch/queries/q18.sql")),
    ("q19", include_str!("../tpch/queries/q19.sql")),
    ("q20", include_str!("../tpch/queries/q20.sql")),
    ("q21", include_str!("../tpch/queries/q21.sql")),
    ("q22", include_str!("../tpch/queries/q22.sql")),
];

/// Where each table lives in the split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    Postgres,
    Mysql,
    Sqlite,
    Csv,
    Parquet,
}

impl Place {
    pub fn label(self) -> &'static str {
        match self {
            Place::Postgres => "PostgreSQL",
            Place::Mysql => "MariaDB",
            Place::Sqlite => "SQLite",
            Place::Csv => "CSV file",
            Place::Parquet => "Parquet file",
        }
    }
}

/// The split: the two big fact tables in PostgreSQL, customers and nations
/// in MariaDB, the parts catalogue in SQLite, suppliers as a CSV export and
/// regions as a Parquet file.
pub const PLACEMENT: [(&str, Place); 8] = [
    ("lineitem", Place::Postgres),
    ("orders", Place::Postgres),
    ("customer", Place::Mysql),
    ("nation", Place::Mysql),
    ("part", Place::Sqlite),
    ("partsupp", Place::Sqlite),
    ("supplier", Place::Csv),
    ("region", Place::Parquet),
];

/// The column types of the official TPC-H DDL (`dss.ddl`).
#[derive(Clone, Copy)]
enum Type {
    /// Keys: integer.
    Key,
    Int,
    /// Money and quantities: decimal(15,2).
    Money,
    Date,
    /// Text up to n characters: varchar(n).
    Text(u32),
    /// Text of n characters, padded with spaces: char(n) (flags, modes,
    /// brands, containers, segments, priorities, names of nations).
    Char(u32),
}

/// One TPC-H table: columns, primary key and secondary indexes.
pub struct Table {
    pub name: &'static str,
    columns: &'static [(&'static str, Type)],
    pub primary_key: &'static [&'static str],
    /// Indexes on the foreign keys and on the date columns queries range
    /// over, as a DBA would add for this workload.
    pub indexes: &'static [&'static [&'static str]],
}

use Type::{Char, Date, Int, Key, Money, Text};

pub const TABLES: [Table; 8] = [
    Table {
        name: "lineitem",
        columns: &[
            ("l_orderkey", Key),
            ("l_partkey", Key),
            ("l_suppkey", Key),
            ("l_linenumber", Int),
            ("l_quantity", Money),
            ("l_extendedprice", Money),
            ("l_discount", Money),
            ("l_tax", Money),
            ("l_returnflag", Char(1)),
            ("l_linestatus", Char(1)),
            ("l_shipdate", Date),
            ("l_commitdate", Date),
            ("l_receiptdate", Date),
            ("l_shipinstruct", Char(25)),
            ("l_shipmode", Char(10)),
            ("l_comment", Text(44)),
        ],
        primary_key: &["l_orderkey", "l_linenumber"],
        indexes: &[&["l_partkey", "l_suppkey"], &["l_suppkey"], &["l_shipdate"]],
    },
    Table {
        name: "orders",
        columns: &[
            ("o_orderkey", Key),
            ("o_custkey", Key),
            ("o_orderstatus", Char(1)),
            ("o_totalprice", Money),
            ("o_orderdate", Date),
            ("o_orderpriority", Char(15)),
            ("o_clerk", Char(15)),
            ("o_shippriority", Int),
            ("o_comment", Text(79)),
        ],
        primary_key: &["o_orderkey"],
        indexes: &[&["o_custkey"], &["o_orderdate"]],
    },
    Table {
        name: "customer",
        columns: &[
            ("c_custkey", Key),
            ("c_name", Text(25)),
            ("c_address", Text(40)),
            ("c_nationkey", Key),
            ("c_phone", Char(15)),
            ("c_acctbal", Money),
            ("c_mktsegment", Char(10)),
            ("c_comment", Text(117)),
        ],
        primary_key: &["c_custkey"],
        indexes: &[&["c_nationkey"]],
    },
    Table {
        name: "nation",
        columns: &[
            ("n_nationkey", Key),
            ("n_name", Char(25)),
            ("n_regionkey", Key),
            ("n_comment", Text(152)),
        ],
        primary_key: &["n_nationkey"],
        indexes: &[&["n_regionkey"]],
    },
    Table {
        name: "part",
        columns: &[
            ("p_partkey", Key),
            ("p_name", Text(55)),
            ("p_mfgr", Char(25)),
            ("p_brand", Char(10)),
            ("p_type", Text(25)),
            ("p_size", Int),
            ("p_container", Char(10)),
            ("p_retailprice", Money),
            ("p_comment", Text(23)),
        ],
        primary_key: &["p_partkey"],
        indexes: &[],
    },
    Table {
        name: "partsupp",
        columns: &[
            ("ps_partkey", Key),
            ("ps_suppkey", Key),
            ("ps_availqty", Int),
            ("ps_supplycost", Money),
            ("ps_comment", Text(199)),
        ],
        primary_key: &["ps_partkey", "ps_suppkey"],
        indexes: &[&["ps_suppkey"]],
    },
    Table {
        name: "supplier",
        columns: &[
            ("s_suppkey", Key),
            ("s_name", Char(25)),
            ("s_address", Text(40)),
            ("s_nationkey", Key),
            ("s_phone", Char(15)),
            ("s_acctbal", Money),
            ("s_comment", Text(101)),
        ],
        primary_key: &["s_suppkey"],
        indexes: &[&["s_nationkey"]],
    },
    Table {
        name: "region",
        columns: &[
            ("r_regionkey", Key),
            ("r_name", Char(25)),
            ("r_comment", Text(152)),
        ],
        primary_key: &["r_regionkey"],
        indexes: &[],
    },
];

/// A database dialect for the DDL.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Mysql,
    Sqlite,
    /// DataFusion's `CREATE EXTERNAL TABLE` column list.
    DataFusion,
}

impl Table {
    pub fn by_name(name: &str) -> &'static Table {
        TABLES
            .iter()
            .find(|t| t.name == name)
            .expect("a TPC-H table")
    }

    /// The column list with types, for `CREATE TABLE name (...)`.
    pub fn columns(&self, dialect: Dialect) -> String {
        self.columns
            .iter()
            .map(|(name, ty)| {
                let ty = match (ty, dialect) {
                    // Parquet and CSV keep the generator's 64-bit keys.
                    (Key, Dialect::DataFusion) => "BIGINT".to_string(),
                    (Key, _) => "INTEGER".to_string(),
                    (Int, _) => "INTEGER".to_string(),
                    (Money, _) => "DECIMAL(15,2)".to_string(),
                    (Date, _) => "DATE".to_string(),
                    (Text(_) | Char(_), Dialect::DataFusion) => "VARCHAR".to_string(),
                    (Text(n), _) => format!("VARCHAR({n})"),
                    (Char(n), _) => format!("CHAR({n})"),
                };
                format!("{name} {ty} NOT NULL")
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `CREATE TABLE` with the primary key (the secondary indexes come
    /// after the load, as for any bulk load).
    pub fn create(&self, qualified: &str, dialect: Dialect) -> String {
        let suffix = if dialect == Dialect::Mysql {
            " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
        } else {
            ""
        };
        format!(
            "CREATE TABLE {qualified} ({}, PRIMARY KEY ({})){suffix}",
            self.columns(dialect),
            self.primary_key.join(", ")
        )
    }

    /// `CREATE INDEX` statements for the secondary indexes.
    /// (PostgreSQL, MariaDB and SQLite all take this form.)
    pub fn create_indexes(&self, schema: Option<&str>) -> Vec<String> {
        self.indexes
            .iter()
            .map(|columns| {
                let index = format!("{}_{}_idx", self.name, columns.join("_"));
                let table = schema.map_or(self.name.to_string(), |s| format!("{s}.{}", self.name));
                format!(
                    "CREATE INDEX IF NOT EXISTS {index} ON {table} ({})",
                    columns.join(", ")
                )
            })
            .collect()
    }
}

/// Generated data for one scale factor: `parquet/<table>.parquet` for all
/// eight tables and `supplier.csv` (with a header) for the split.
pub struct Data {
    pub dir: PathBuf,
    pub sf: f64,
}

impl Data {
    pub fn parquet(&self, table: &str) -> PathBuf {
        self.dir.join("parquet").join(format!("{table}.parquet"))
    }

    pub fn csv(&self, table: &str) -> PathBuf {
        self.dir.join("csv").join(format!("{table}.csv"))
    }

    /// The data of an earlier [`generate`] under `dir`; an error naming the
    /// first missing file otherwise.
    pub fn existing(dir: &Path, sf: f64) -> std::io::Result<Data> {
        let data = Data {
            dir: dir.to_path_buf(),
            sf,
        };
        for file in TABLES
            .iter()
            .map(|t| data.parquet(t.name))
            .chain([data.csv("supplier")])
        {
            if !file.exists() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!(
                        "no TPC-H data at scale factor {sf}: {} is missing",
                        file.display()
                    ),
                ));
            }
        }
        Ok(data)
    }

    /// Rows of `table` (from the Parquet footer).
    pub fn rows(&self, table: &str) -> std::io::Result<u64> {
        use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
        let file = std::fs::File::open(self.parquet(table))?;
        let reader = SerializedFileReader::new(file).map_err(std::io::Error::other)?;
        Ok(reader.metadata().file_metadata().num_rows() as u64)
    }
}

/// Generates the data for scale factor `sf` under `dir` (once: files that
/// exist are kept; each is written under a temporary name and renamed, so
/// an interrupted run leaves no half file behind).
pub fn generate(dir: &Path, sf: f64) -> std::io::Result<Data> {
    use tpchgen::generators::*;
    use tpchgen_arrow::*;
    let data = Data {
        dir: dir.to_path_buf(),
        sf,
    };
    std::fs::create_dir_all(dir.join("parquet"))?;
    std::fs::create_dir_all(dir.join("csv"))?;
    let batch = 8192;
    for table in TABLES.iter().map(|t| t.name) {
        let csv = (table == "supplier").then(|| data.csv(table));
        let parquet = data.parquet(table);
        if parquet.exists() && csv.as_ref().is_none_or(|c| c.exists()) {
            continue;
        }
        let reader: Box<dyn RecordBatchReader> = match table {
            "lineitem" => Box::new(
                LineItemArrow::new(LineItemGenerator::new(sf, 1, 1)).with_batch_size(batch),
            ),
            "orders" => {
                Box::new(OrderArrow::new(OrderGenerator::new(sf, 1, 1)).with_batch_size(batch))
            }
            "customer" => Box::new(
                CustomerArrow::new(CustomerGenerator::new(sf, 1, 1)).with_batch_size(batch),
            ),
            "nation" => {
                Box::new(NationArrow::new(NationGenerator::new(sf, 1, 1)).with_batch_size(batch))
            }
            "part" => Box::new(PartArrow::new(PartGenerator::new(sf, 1, 1)).with_batch_size(batch)),
            "partsupp" => Box::new(
                PartSuppArrow::new(PartSuppGenerator::new(sf, 1, 1)).with_batch_size(batch),
            ),
            "supplier" => Box::new(
                SupplierArrow::new(SupplierGenerator::new(sf, 1, 1)).with_batch_size(batch),
            ),
            _ => Box::new(RegionArrow::new(RegionGenerator::new(sf, 1, 1)).with_batch_size(batch)),
        };
        write_files(reader, &parquet, csv.as_deref())?;
    }
    Ok(data)
}

fn write_files(
    reader: Box<dyn RecordBatchReader>,
    parquet: &Path,
    csv: Option<&Path>,
) -> std::io::Result<()> {
    // A name of this process's own: concurrent runs never share a half file.
    let partial = |p: &Path| p.with_extension(format!("partial-{}", std::process::id()));
    let mut parquet_writer = ArrowWriter::try_new(
        std::fs::File::create(partial(parquet))?,
        reader.schema(),
        Some(WriterProperties::builder().build()),
    )
    .map_err(std::io::Error::other)?;
    let mut csv_writer = match csv {
        Some(csv) => Some(
            datafusion::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(std::io::BufWriter::new(std::fs::File::create(partial(
                    csv,
                ))?)),
        ),
        None => None,
    };
    for batch in reader {
        let batch = batch.map_err(std::io::Error::other)?;
        parquet_writer
            .write(&batch)
            .map_err(std::io::Error::other)?;
        if let Some(writer) = csv_writer.as_mut() {
            writer.write(&batch).map_err(std::io::Error::other)?;
        }
    }
    parquet_writer.close().map_err(std::io::Error::other)?;
    drop(csv_writer);
    std::fs::rename(partial(parquet), parquet)?;
    if let Some(csv) = csv {
        std::fs::rename(partial(csv), csv)?;
    }
    Ok(())
}

/// Where the split's databases are: a PostgreSQL URL and schema, a
/// MySQL/MariaDB server URL (no database) and database, a SQLite file.
#[derive(Clone, Debug)]
pub struct Split {
    pub postgres: String,
    pub pg_schema: String,
    pub mysql: String,
    pub my_database: String,
    pub sqlite: PathBuf,
    /// The second split: `orders` in MariaDB (beside `customer`), apart
    /// from `lineitem` in PostgreSQL, so the two largest tables are joined
    /// across databases.
    pub orders_apart: bool,
}

impl Split {
    /// Where `table` lives in this split.
    pub fn place(&self, table: &str) -> Place {
        match table {
            "orders" if self.orders_apart => Place::Mysql,
            _ => place(table),
        }
    }

    /// Every table and where it lives in this split.
    pub fn placement(&self) -> Vec<(&'static str, Place)> {
        PLACEMENT
            .iter()
            .map(|(table, _)| (*table, self.place(table)))
            .collect()
    }

    fn mysql_url(&self) -> String {
        format!("{}/{}", self.mysql.trim_end_matches('/'), self.my_database)
    }

    /// The SQLite file; created when `create`, else it must exist.
    fn sqlite_url(&self, create: bool) -> String {
        let mode = if create { "rwc" } else { "ro" };
        format!("sqlite:{}?mode={mode}", self.sqlite.display())
    }

    /// The qualified Moltres name of `table` in the split, when it lives in
    /// a database (attached as `pg`, `my` and `lite`).
    fn remote_name(&self, table: &str) -> Option<String> {
        match self.place(table) {
            Place::Postgres => Some(format!("pg.{}.{table}", self.pg_schema)),
            Place::Mysql => Some(format!("my.{}.{table}", self.my_database)),
            Place::Sqlite => Some(format!("lite.main.{table}")),
            _ => None,
        }
    }
}

pub fn place(table: &str) -> Place {
    PLACEMENT
        .iter()
        .find(|(t, _)| *t == table)
        .map(|(_, p)| *p)
        .expect("a TPC-H table")
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn context(what: &str) -> impl FnOnce(moltres::Error) -> BoxError + '_ {
    move |e| format!("{what}: {e}").into()
}

/// Makes the PostgreSQL schema `schema` and the MySQL database (when
/// given) exist.
async fn create_containers(
    db: &Moltres,
    postgres: &str,
    schema: &str,
    mysql: Option<(&str, &str)>,
) -> Result<(), BoxError> {
    db.attach(postgres, "pg_setup", false)
        .await
        .map_err(context(&format!("PostgreSQL at {postgres}")))?;
    db.source("pg_setup")?
        .execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
        .await
        .map_err(context("CREATE SCHEMA"))?;
    db.detach("pg_setup")?;
    if let Some((server, database)) = mysql {
        let url = format!("{}/information_schema", server.trim_end_matches('/'));
        db.attach(&url, "my_setup", false)
            .await
            .map_err(context(&format!("MySQL/MariaDB at {server}")))?;
        db.source("my_setup")?
            .execute(&format!("CREATE DATABASE IF NOT EXISTS {database}"))
            .await
            .map_err(context("CREATE DATABASE"))?;
        db.detach("my_setup")?;
    }
    Ok(())
}

/// What a load did, table by table.
pub struct LoadReport {
    /// (table, where, rows, seconds; 0 when it was already loaded).
    pub tables: Vec<(String, String, u64, f64)>,
}

/// Loads the split through Moltres (`INSERT INTO db.table SELECT * FROM
/// 'table.parquet'`), then indexes and analyzes each table. A table whose
/// row count already matches its file is kept, unless `reload`.
pub async fn load_split(data: &Data, split: &Split, reload: bool) -> Result<LoadReport, BoxError> {
    let db = Moltres::builder().without_env().build().await?;
    create_containers(
        &db,
        &split.postgres,
        &split.pg_schema,
        Some((&split.mysql, &split.my_database)),
    )
    .await?;
    db.attach(&split.postgres, "pg", false)
        .await
        .map_err(context("PostgreSQL"))?;
    db.attach(&split.mysql_url(), "my", false)
        .await
        .map_err(context("MySQL/MariaDB"))?;
    db.attach(&split.sqlite_url(true), "lite", false)
        .await
        .map_err(context("SQLite"))?;
    let mut report = LoadReport { tables: Vec::new() };
    for (table, place) in split.placement() {
        let Some(name) = split.remote_name(table) else {
            continue;
        };
        let (alias, dialect, schema) = match place {
            Place::Postgres => ("pg", Dialect::Postgres, Some(split.pg_schema.as_str())),
            Place::Mysql => ("my", Dialect::Mysql, None),
            _ => ("lite", Dialect::Sqlite, None),
        };
        let native = match schema {
            Some(schema) => format!("{schema}.{table}"),
            None => table.to_string(),
        };
        let entry = load_table(&db, data, alias, &name, &native, dialect, schema, reload).await?;
        report.tables.push((
            table.to_string(),
            place.label().to_string(),
            entry.0,
            entry.1,
        ));
    }
    Ok(report)
}

/// Loads all eight tables into one PostgreSQL schema: what many users do
/// instead of federating.
pub async fn load_postgres_alone(
    data: &Data,
    postgres: &str,
    schema: &str,
    reload: bool,
) -> Result<LoadReport, BoxError> {
    let db = Moltres::builder().without_env().build().await?;
    create_containers(&db, postgres, schema, None).await?;
    db.attach(postgres, "pg", false)
        .await
        .map_err(context("PostgreSQL"))?;
    let mut report = LoadReport { tables: Vec::new() };
    for table in TABLES.iter().map(|t| t.name) {
        let entry = load_table(
            &db,
            data,
            "pg",
            &format!("pg.{schema}.{table}"),
            &format!("{schema}.{table}"),
            Dialect::Postgres,
            Some(schema),
            reload,
        )
        .await?;
        report.tables.push((
            table.to_string(),
            "PostgreSQL".to_string(),
            entry.0,
            entry.1,
        ));
    }
    Ok(report)
}

/// One table: skip it when loaded, else create, fill, index and analyze.
/// Returns (rows, seconds).
#[allow(clippy::too_many_arguments)]
async fn load_table(
    db: &Moltres,
    data: &Data,
    alias: &str,
    name: &str,
    native: &str,
    dialect: Dialect,
    schema: Option<&str>,
    reload: bool,
) -> Result<(u64, f64), BoxError> {
    let table_name = native.rsplit('.').next().unwrap_or(native);
    let table = Table::by_name(table_name);
    let expected = data.rows(table.name)?;
    let source = db.source(alias)?;
    if !reload && count(db, name).await.ok() == Some(expected) {
        return Ok((expected, 0.0));
    }
    let started = Instant::now();
    source
        .execute(&format!("DROP TABLE IF EXISTS {native}"))
        .await
        .map_err(context(&format!("dropping {name}")))?;
    source
        .execute(&table.create(native, dialect))
        .await
        .map_err(context(&format!("creating {name}")))?;
    db.refresh(alias)?;
    let insert = format!(
        "INSERT INTO {name} SELECT * FROM '{}'",
        data.parquet(table.name).display()
    );
    db.sql(&insert)
        .await
        .map_err(context(&insert))?
        .collect()
        .await
        .map_err(|e| format!("{insert}: {e}"))?;
    for index in table.create_indexes(schema) {
        source.execute(&index).await.map_err(context(&index))?;
    }
    let analyze = match dialect {
        Dialect::Mysql => format!("ANALYZE TABLE {native}"),
        _ => format!("ANALYZE {native}"),
    };
    source.execute(&analyze).await.map_err(context(&analyze))?;
    db.refresh(alias)?;
    let loaded = count(db, name).await?;
    if loaded != expected {
        return Err(format!("{name}: {loaded} rows loaded, the file has {expected}").into());
    }
    Ok((expected, started.elapsed().as_secs_f64()))
}

/// `SELECT count(*) FROM name`.
pub async fn count(db: &Moltres, name: &str) -> Result<u64, BoxError> {
    let batches = db
        .sql(&format!("SELECT count(*) FROM {name}"))
        .await?
        .collect()
        .await?;
    let column = batches
        .first()
        .map(|b| b.column(0).clone())
        .ok_or("no rows")?;
    let counts = column
        .as_any()
        .downcast_ref::<datafusion::arrow::array::Int64Array>()
        .ok_or("count(*) is not Int64")?;
    Ok(counts.value(0) as u64)
}

/// Drops the split's PostgreSQL schema, MySQL database and SQLite file.
pub async fn drop_split(split: &Split) -> Result<(), BoxError> {
    let db = Moltres::builder().without_env().build().await?;
    db.attach(&split.postgres, "pg", false).await?;
    db.source("pg")?
        .execute(&format!(
            "DROP SCHEMA IF EXISTS {} CASCADE",
            split.pg_schema
        ))
        .await?;
    let url = format!("{}/information_schema", split.mysql.trim_end_matches('/'));
    db.attach(&url, "my", false).await?;
    db.source("my")?
        .execute(&format!("DROP DATABASE IF EXISTS {}", split.my_database))
        .await?;
    let _ = std::fs::remove_file(&split.sqlite);
    Ok(())
}

fn session_builder() -> moltres::MoltresBuilder {
    Moltres::builder()
        .without_env()
        .query_timeout(Duration::from_secs(600))
}

/// A session over the split: the databases attached read-only as `pg`,
/// `my` and `lite`, and the eight bare names registered in the default
/// schema (remote tables by their providers, so they federate as usual;
/// `supplier` as an external CSV table with its declared types; `region`
/// as an external Parquet table).
pub async fn split_session(data: &Data, split: &Split) -> Result<Moltres, BoxError> {
    let db = session_builder().build().await?;
    db.attach(&split.postgres, "pg", true)
        .await
        .map_err(context("PostgreSQL"))?;
    db.attach(&split.mysql_url(), "my", true)
        .await
        .map_err(context("MySQL/MariaDB"))?;
    db.attach(&split.sqlite_url(false), "lite", true)
        .await
        .map_err(context("SQLite"))?;
    for (table, place) in split.placement() {
        match split.remote_name(table) {
            Some(name) => {
                let provider = db
                    .context()
                    .table_provider(name.as_str())
                    .await
                    .map_err(|e| {
                        format!(
                            "{table} of the split ({name} in {}): {e}; load it with `moltres-benches tpch`",
                            place.label()
                        )
                    })?;
                db.context().register_table(table, provider)?;
            }
            None if place == Place::Csv => {
                let sql = format!(
                    "CREATE EXTERNAL TABLE {table} ({}) STORED AS CSV LOCATION '{}' \
                     OPTIONS ('format.has_header' 'true')",
                    Table::by_name(table).columns(Dialect::DataFusion),
                    data.csv(table).display()
                );
                db.sql(&sql).await.map_err(context(&sql))?.collect().await?;
            }
            None => register_parquet(&db, data, table).await?,
        }
    }
    Ok(db)
}

async fn register_parquet(db: &Moltres, data: &Data, table: &str) -> Result<(), BoxError> {
    let sql = format!(
        "CREATE EXTERNAL TABLE {table} STORED AS PARQUET LOCATION '{}'",
        data.parquet(table).display()
    );
    db.sql(&sql).await.map_err(context(&sql))?.collect().await?;
    Ok(())
}

/// A session with all eight tables as Parquet files: the reference answers
/// and the speed ceiling without remote sources.
pub async fn parquet_session(data: &Data) -> Result<Moltres, BoxError> {
    let db = session_builder().build().await?;
    for table in TABLES.iter().map(|t| t.name) {
        register_parquet(&db, data, table).await?;
    }
    Ok(db)
}

/// An answer: rows of values as text (NULL for nulls).
pub type Rows = Vec<Vec<String>>;

/// Runs `sql` to completion; returns its rows and the wall time from
/// planning to the last batch.
pub async fn run(db: &Moltres, sql: &str) -> Result<(Rows, Duration), BoxError> {
    let (rows, elapsed, _) = run_planned(db, sql).await?;
    Ok((rows, elapsed))
}

/// [`run`], with the time spent planning (parsing, optimizing, physical
/// planning, which reads remote statistics on first use) apart.
pub async fn run_planned(db: &Moltres, sql: &str) -> Result<(Rows, Duration, Duration), BoxError> {
    let started = Instant::now();
    let frame = db.sql(sql).await?;
    let context = std::sync::Arc::new(frame.task_ctx());
    let plan = frame.create_physical_plan().await?;
    let planning = started.elapsed();
    let batches = datafusion::physical_plan::collect(plan, context).await?;
    let elapsed = started.elapsed();
    Ok((rows(&batches)?, elapsed, planning))
}

pub fn rows(batches: &[RecordBatch]) -> Result<Rows, BoxError> {
    let options = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            out.push(
                formatters
                    .iter()
                    .map(|f| f.value(row).to_string())
                    .collect(),
            );
        }
    }
    Ok(out)
}

/// Whether `actual` is the same answer as `expected`: the same number of
/// rows and columns; values that both read as numbers agree within 1e-4
/// absolute plus 1e-6 relative (decimal division and float averages round
/// differently per engine, in the 7th significant digit at most); other
/// values are equal text once trailing blanks are dropped (CHAR(n)
/// padding). Rows are compared in order, and, only when that fails, as
/// sorted lists (rows that tie on the ORDER BY keys may come in any order).
pub fn compare(expected: &Rows, actual: &Rows) -> Result<(), String> {
    if expected.len() != actual.len() {
        return Err(format!(
            "{} rows, expected {}",
            actual.len(),
            expected.len()
        ));
    }
    let in_order = first_difference(expected, actual);
    let Some(difference) = in_order else {
        return Ok(());
    };
    let sort = |rows: &Rows| {
        let mut rows = rows.clone();
        rows.sort();
        rows
    };
    match first_difference(&sort(expected), &sort(actual)) {
        None => Ok(()),
        Some(_) => Err(difference),
    }
}

fn first_difference(expected: &Rows, actual: &Rows) -> Option<String> {
    for (i, (e, a)) in expected.iter().zip(actual).enumerate() {
        if e.len() != a.len() {
            return Some(format!(
                "row {i}: {} columns, expected {}",
                a.len(),
                e.len()
            ));
        }
        for (j, (x, y)) in e.iter().zip(a).enumerate() {
            if !same_value(x, y) {
                return Some(format!("row {i} column {j}: {y:?}, expected {x:?}"));
            }
        }
    }
    None
}

fn same_value(expected: &str, actual: &str) -> bool {
    let (e, a) = (expected.trim_end(), actual.trim_end());
    if e == a {
        return true;
    }
    match (e.parse::<f64>(), a.parse::<f64>()) {
        (Ok(x), Ok(y)) => (x - y).abs() <= 1e-4 + 1e-6 * x.abs().max(y.abs()),
        _ => false,
    }
}

/// One query's outcome in one system.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub times: Vec<Duration>,
    /// The planning part of each time (Moltres only; empty elsewhere).
    pub planning: Vec<Duration>,
    /// None when the answer matched the reference; the difference or the
    /// error otherwise.
    pub problem: Option<String>,
}

impl Outcome {
    pub fn median(&self) -> Option<Duration> {
        let mut times = self.times.clone();
        times.sort();
        times.get(times.len() / 2).copied()
    }

    /// The median planning time, where measured.
    pub fn median_planning(&self) -> Option<Duration> {
        let mut times = self.planning.clone();
        times.sort();
        times.get(times.len() / 2).copied()
    }

    pub fn correct(&self) -> bool {
        self.problem.is_none() && !self.times.is_empty()
    }
}

/// Runs each query `runs` times in `db`, checking the first answer
/// against `reference` (when given). Returns the outcomes in query order,
/// with the reference rows of each query as the answer of this run.
pub async fn run_all(
    db: &Moltres,
    runs: usize,
    reference: Option<&[Rows]>,
    mut progress: impl FnMut(&str, &Outcome),
) -> (Vec<Outcome>, Vec<Rows>) {
    let mut outcomes = Vec::new();
    let mut answers = Vec::new();
    for (i, (name, sql)) in QUERIES.iter().enumerate() {
        let mut outcome = Outcome {
            times: Vec::new(),
            planning: Vec::new(),
            problem: None,
        };
        let mut answer = Rows::new();
        for run_number in 0..runs.max(1) {
            match run_planned(db, sql).await {
                Ok((rows, time, planning)) => {
                    outcome.times.push(time);
                    outcome.planning.push(planning);
                    if run_number == 0 {
                        answer = rows;
                    }
                }
                Err(e) => {
                    outcome.problem = Some(format!("error: {e}"));
                    break;
                }
            }
        }
        if outcome.problem.is_none()
            && let Some(expected) = reference.and_then(|r| r.get(i))
        {
            outcome.problem = compare(expected, &answer).err();
        }
        progress(name, &outcome);
        outcomes.push(outcome);
        answers.push(answer);
    }
    (outcomes, answers)
}

/// The remote SQL each source receives for `sql` in `db` (EXPLAIN's remote
/// scans), for the report.
pub async fn remote_queries(db: &Moltres, sql: &str) -> Result<usize, BoxError> {
    let batches = db.sql(&format!("EXPLAIN {sql}")).await?.collect().await?;
    Ok(rows(&batches)?
        .iter()
        .flatten()
        .map(|cell| cell.matches("RemoteScanExec").count())
        .sum())
}
