//! Moltres integration tests: one test binary (each binary links all of
//! DataFusion), one module per topic. SQL behaviour lives in `slt/*.slt`
//! files run by `slt.rs`; the shell is tested by running the real binary.

mod cli;
mod common;
mod faults;
mod files;
mod fuzz;
mod library;
mod mysql;
mod object_store;
mod operations;
mod postgres;
mod query_shapes;
mod remote_sql;
mod session;
mod slt;
mod spill;
mod sqlite;
mod throwaway;
mod tpch;
mod writes;
