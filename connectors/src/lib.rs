//! Moltres source connectors: each kind of source as Apache DataFusion table
//! providers.
//!
//! * [`files`]: CSV, Parquet and JSON files, local or in object storage;
//! * [`remote`]: what every SQL database connector shares;
//! * [`mysql`], MySQL and MariaDB;
//! * [`postgres`], PostgreSQL;
//! * [`sqlite`], SQLite;
//! * [`source`]: the [`SourceKind`](source::SourceKind) trait the engine's
//!   `ATTACH` registry is keyed by.

pub mod files;
pub mod mysql;
pub mod postgres;
pub mod remote;
pub mod source;
pub mod sqlite;

/// `url` with its password (userinfo or a `password=` parameter) replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return url.to_string();
    };
    let mut changed = false;
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("***"));
        changed = true;
    }
    if parsed
        .query_pairs()
        .any(|(k, _)| k.eq_ignore_ascii_case("password"))
    {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                if k.eq_ignore_ascii_case("password") {
                    (k.into_owned(), "***".to_string())
                } else {
                    (k.into_owned(), v.into_owned())
                }
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
        changed = true;
    }
    if changed {
        parsed.to_string()
    } else {
        url.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://bob:s3cret@db:5432/x"),
            "postgres://bob:***@db:5432/x"
        );
        assert_eq!(
            redact_url("mysql://db/x?user=a&password=s3cret"),
            "mysql://db/x?user=a&password=***"
        );
        assert_eq!(redact_url("testdata/"), "testdata/");
        assert_eq!(redact_url("s3://bucket/prefix/"), "s3://bucket/prefix/");
    }
}
