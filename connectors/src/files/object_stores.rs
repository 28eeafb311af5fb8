//! Object stores created on first use from the URL's scheme: `file://`,
//! `s3://bucket` (configured from the usual `AWS_*` environment variables,
//! including `AWS_ENDPOINT` / `AWS_ENDPOINT_URL` for S3-compatible servers) and
//! `http(s)://host`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use datafusion::common::{DataFusionError, Result};
use datafusion::execution::object_store::ObjectStoreRegistry;
use object_store::ClientOptions;
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::http::HttpBuilder;
use object_store::local::LocalFileSystem;
use url::Url;

/// URL schemes [`LazyObjectStoreRegistry`] can create stores for.
pub const SUPPORTED_STORE_SCHEMES: &[&str] = &["file", "s3", "s3a", "http", "https"];

/// An [`ObjectStoreRegistry`] that builds the store for a URL the first time
/// it is asked for, so `SELECT * FROM 's3://bucket/x.parquet'` needs no setup.
#[derive(Debug, Default)]
pub struct LazyObjectStoreRegistry {
    stores: RwLock<HashMap<String, Arc<dyn ObjectStore>>>,
}

impl LazyObjectStoreRegistry {
    /// An empty registry; stores are created on demand.
    pub fn new() -> Self {
        Self::default()
    }
}

/// `scheme://host` identifies one store (one bucket, one web server).
fn store_key(url: &Url) -> String {
    format!(
        "{}://{}",
        url.scheme(),
        &url[url::Position::BeforeHost..url::Position::AfterPort]
    )
}

fn build_store(url: &Url) -> Result<Arc<dyn ObjectStore>> {
    match url.scheme() {
        "file" => Ok(Arc::new(LocalFileSystem::new())),
        "s3" | "s3a" => {
            let bucket = url.host_str().ok_or_else(|| {
                DataFusionError::Configuration(format!("S3 URL '{url}' has no bucket name"))
            })?;
            let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
            // AWS_ENDPOINT is read by from_env; AWS_ENDPOINT_URL is the name
            // the AWS CLI and SDKs use, so accept it too.
            let endpoint = std::env::var("AWS_ENDPOINT")
                .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
                .ok();
            if let Some(endpoint) = endpoint {
                if endpoint.starts_with("http://") {
                    builder = builder.with_allow_http(true);
                }
                builder = builder.with_endpoint(endpoint);
            }
            let store = builder.build().map_err(|e| {
                DataFusionError::Configuration(format!("cannot open S3 bucket '{bucket}': {e}"))
            })?;
            Ok(Arc::new(store))
        }
        "http" | "https" => {
            let base = store_key(url);
            let client = ClientOptions::new().with_allow_http(url.scheme() == "http");
            let store = HttpBuilder::new()
                .with_url(&base)
                .with_client_options(client)
                .build()
                .map_err(|e| {
                    DataFusionError::Configuration(format!("cannot open '{base}': {e}"))
                })?;
            Ok(Arc::new(store))
        }
        other => Err(DataFusionError::Configuration(format!(
            "no object store for URL scheme '{other}' in '{url}'; supported: {}",
            SUPPORTED_STORE_SCHEMES.join(", ")
        ))),
    }
}

impl ObjectStoreRegistry for LazyObjectStoreRegistry {
    fn register_store(
        &self,
        url: &Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        self.stores
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(store_key(url), store)
    }

    fn deregister_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        self.stores
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&store_key(url))
            .ok_or_else(|| {
                DataFusionError::Execution(format!("no object store registered for {url}"))
            })
    }

    fn get_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        let key = store_key(url);
        if let Some(store) = self
            .stores
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(Arc::clone(store));
        }
        let mut stores = self.stores.write().unwrap_or_else(|e| e.into_inner());
        if let Some(store) = stores.get(&key) {
            return Ok(Arc::clone(store));
        }
        let store = build_store(url)?;
        stores.insert(key, Arc::clone(&store));
        Ok(store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_by_scheme_and_host() {
        let url = Url::parse("s3://bucket/a/b.parquet").unwrap();
        assert_eq!(store_key(&url), "s3://bucket");
        let url = Url::parse("http://127.0.0.1:9000/x.csv").unwrap();
        assert_eq!(store_key(&url), "http://127.0.0.1:9000");
        let url = Url::parse("file:///tmp/x.csv").unwrap();
        assert_eq!(store_key(&url), "file://");
    }

    #[test]
    fn unknown_scheme_lists_supported() {
        let registry = LazyObjectStoreRegistry::new();
        let err = registry
            .get_store(&Url::parse("gopher://x/y").unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("gopher") && err.contains("s3"), "{err}");
    }
}
