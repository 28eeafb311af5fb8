//! Moltres benchmark library: what the benchmark binary and the
//! integration tests share (the TPC-H data, split, queries and checks).

pub mod tpch;
