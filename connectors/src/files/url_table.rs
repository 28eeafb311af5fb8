//! A quoted path straight in FROM: `SELECT * FROM 'testdata/trips.parquet'`.
//!
//! DataFusion's dynamic file catalog asks a [`UrlTableFactory`] about every
//! table name it cannot otherwise resolve. [`PathTableFactory`] answers for
//! names that look like paths or URLs, and says which path is missing instead
//! of "table not found".

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use datafusion::catalog::{TableProvider, UrlTableFactory};
use datafusion::common::Result;

use super::{FileOptions, SessionHandle, file_name_info, open_file_table};

/// Resolves path-like table names to file tables.
///
/// The factory is part of the session's catalog list, so it exists before the
/// session does: [`PathTableFactory::bind`] connects it once the session is built.
#[derive(Debug, Default)]
pub struct PathTableFactory {
    session: OnceLock<SessionHandle>,
}

impl PathTableFactory {
    /// An unbound factory; it resolves nothing until [`Self::bind`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Resolves paths with `session`'s settings from now on.
    pub fn bind(&self, session: SessionHandle) {
        let _ = self.session.set(session);
    }
}

/// A name is a path when it has a URL scheme, a slash, or a file extension
/// Moltres reads; anything else is an ordinary (missing) table name.
fn looks_like_path(name: &str) -> bool {
    name.contains("://")
        || name.contains('/')
        || name.contains('*')
        || file_name_info(name).kind.is_some()
}

#[async_trait]
impl UrlTableFactory for PathTableFactory {
    async fn try_new(&self, url: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        if !looks_like_path(url) {
            return Ok(None);
        }
        let Some(session) = self.session.get() else {
            return Ok(None);
        };
        let state = session.state()?;
        open_file_table(&state, url, None, &FileOptions::new())
            .await
            .map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::looks_like_path;

    #[test]
    fn recognises_paths() {
        assert!(looks_like_path("x.parquet"));
        assert!(looks_like_path("data/"));
        assert!(looks_like_path("s3://b/k"));
        assert!(looks_like_path("logs/*.json"));
        assert!(!looks_like_path("orders"));
    }
}
