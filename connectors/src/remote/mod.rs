//! What every SQL database connector shares: the remote table provider, the
//! remote scan, the pushdown capability model and plan-to-SQL rendering.
//!
//! Empty until the first database connector lands; database kinds plug into
//! the engine through [`SourceKind`](crate::source::SourceKind).
