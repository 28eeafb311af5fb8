#!/usr/bin/env python3
"""Runs the 22 TPC-H queries in DuckDB, for `moltres-benches tpch`.

Two modes, on the same files and databases Moltres reads:

  parquet    views over the eight Parquet files;
  federated  the very same split Moltres reads: PostgreSQL, MariaDB and
             SQLite through DuckDB's postgres, mysql and sqlite extensions
             (installed from the PyPI wheels duckdb-extension-postgres,
             -mysql and -sqlite with INSTALL '<file>', since DuckDB cannot
             download extensions here), supplier as CSV, region as Parquet.

Prints one JSON object: {"version", "queries": {name: {"times": [s...],
"rows": [[text...]...]} or {"error": text}}}. Values are printed as text the
way the Rust side prints them (NULL, ISO dates, plain decimals).
"""

import argparse
import datetime
import decimal
import glob
import json
import os
import site
import sys
import threading
import time

try:
    import duckdb
except ImportError:
    sys.exit(
        "DuckDB is not installed: pip install duckdb==1.5.5 duckdb-extension-postgres==1.5.5 "
        "duckdb-extension-mysql==1.5.5 duckdb-extension-sqlite==1.5.5"
    )

TABLES = ["lineitem", "orders", "customer", "nation", "part", "partsupp", "supplier", "region"]

SUPPLIER_COLUMNS = {
    "s_suppkey": "BIGINT",
    "s_name": "VARCHAR",
    "s_address": "VARCHAR",
    "s_nationkey": "BIGINT",
    "s_phone": "VARCHAR",
    "s_acctbal": "DECIMAL(15,2)",
    "s_comment": "VARCHAR",
}


def extension_file(name):
    """The .duckdb_extension file of the PyPI wheel duckdb-extension-<name>."""
    for base in site.getsitepackages() + [site.getusersitepackages()]:
        pattern = os.path.join(base, f"duckdb_extension_{name}", "**", f"{name}.duckdb_extension")
        found = glob.glob(pattern, recursive=True)
        if found:
            return found[0]
    sys.exit(
        f"the DuckDB {name} extension is not installed: "
        f"pip install duckdb-extension-{name}=={duckdb.__version__}"
    )


def text(value):
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    return str(value)


def setup(con, args):
    parquet = lambda t: os.path.join(args.data, "parquet", f"{t}.parquet")
    if args.mode == "parquet":
        for table in TABLES:
            con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{parquet(table)}')")
        return
    for name in ["postgres", "mysql", "sqlite"]:
        con.execute(f"INSTALL '{extension_file(name)}'")
        con.execute(f"LOAD {name}")
    con.execute(f"ATTACH '{args.postgres}' AS pg (TYPE postgres, READ_ONLY)")
    con.execute(f"ATTACH '{args.mysql}' AS my (TYPE mysql, READ_ONLY)")
    con.execute(f"ATTACH '{args.sqlite}' AS lite (TYPE sqlite, READ_ONLY)")
    views = {
        "lineitem": f"pg.{args.pg_schema}.lineitem",
        "orders": "my.orders" if args.orders_apart else f"pg.{args.pg_schema}.orders",
        "customer": "my.customer",
        "nation": "my.nation",
        "part": "lite.part",
        "partsupp": "lite.partsupp",
        "supplier": "read_csv('{}', header = true, columns = {})".format(
            os.path.join(args.data, "csv", "supplier.csv"), SUPPLIER_COLUMNS
        ),
        "region": f"read_parquet('{parquet('region')}')",
    }
    for table, source in views.items():
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM {source}")


def run(con, sql, timeout):
    """Runs sql to completion; interrupts it after timeout seconds."""
    timer = threading.Timer(timeout, con.interrupt)
    timer.start()
    try:
        started = time.perf_counter()
        rows = con.execute(sql).fetchall()
        return rows, time.perf_counter() - started
    finally:
        timer.cancel()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["parquet", "federated"], required=True)
    parser.add_argument("--data", required=True, help="the data directory (parquet/, csv/)")
    parser.add_argument("--queries", required=True, help="the directory of q01.sql ... q22.sql")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--only", default="", help="comma-separated query names")
    parser.add_argument("--postgres", default="host=127.0.0.1 port=5432 user=postgres dbname=test")
    parser.add_argument("--pg-schema", default="moltres_tpch")
    parser.add_argument("--mysql", default="host=127.0.0.1 port=3306 user=root database=moltres_tpch")
    parser.add_argument("--sqlite", default="")
    parser.add_argument("--orders-apart", action="store_true", help="orders from MariaDB (the second split)")
    args = parser.parse_args()

    con = duckdb.connect()
    con.execute(f"SET threads = {os.cpu_count()}")
    setup(con, args)
    only = [q for q in args.only.split(",") if q]
    out = {"version": duckdb.__version__, "queries": {}}
    for path in sorted(glob.glob(os.path.join(args.queries, "q*.sql"))):
        name = os.path.splitext(os.path.basename(path))[0]
        if only and name not in only:
            continue
        with open(path) as f:
            sql = f.read()
        times, answer = [], None
        try:
            for _ in range(args.runs):
                rows, seconds = run(con, sql, args.timeout)
                times.append(seconds)
                if answer is None:
                    answer = [[text(v) for v in row] for row in rows]
            out["queries"][name] = {"times": times, "rows": answer}
        except Exception as e:  # a failed query is a result, not the end of the run
            out["queries"][name] = {"times": times, "error": str(e).splitlines()[0]}
        print(f"duckdb {args.mode} {name}: {times}", file=sys.stderr)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
