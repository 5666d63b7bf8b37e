//! The lake on object storage: `--lake s3://bucket/prefix` as well as a local directory.
//!
//! Every process that touches the lake (client, scheduler, executors) resolves `s3://` URLs itself,
//! from its own environment: the usual `AWS_*` variables (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ENDPOINT_URL`,
//! `AWS_ALLOW_HTTP`, `AWS_VIRTUAL_HOSTED_STYLE_REQUEST`...) and the options given to the process
//! with `--storage-option KEY=VALUE` ([`set_storage_options`]). Credentials are never put in a plan,
//! a URL or a log line: a plan carries `s3://bucket/path` only, and each executor signs its own
//! requests.
//!
//! **Commits on S3 are safe without a lock service.** A Delta commit is a put-if-absent of
//! `_delta_log/<version>.json`. S3 has supported conditional writes (`If-None-Match: *`) since
//! August 2024, object_store sends them for `PutMode::Create`, and delta-rs's default log store
//! commits with exactly that. So backbeat registers delta-rs's *default* log store for `s3://`
//! rather than delta-rs's S3 crate, whose DynamoDB lock exists for the S3 of before 2024 (and
//! whose AWS SDK would add ~10 minutes to a clean build). A store without conditional writes
//! refuses the commit with an error instead of risking a lost update; the object-storage tests
//! race two writers against moto's S3 server to show it.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex, Once, OnceLock};

use datafusion::common::{DataFusionError, Result};
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use deltalake::logstore::{LogStore, LogStoreFactory, ObjectStoreFactory, ObjectStoreRef, StorageConfig};
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use url::Url;

/// Options every `s3://` store of this process is built with, over the `AWS_*` environment.
static STORAGE_OPTIONS: OnceLock<Vec<(String, String)>> = OnceLock::new();

/// Sets the process's storage options (`--storage-option KEY=VALUE`: object_store's S3 keys such as
/// `aws_endpoint`, `aws_region`, `aws_allow_http`, `aws_virtual_hosted_style_request`). The first
/// call wins; call it before the first lake is opened.
pub fn set_storage_options(options: Vec<(String, String)>) {
    if STORAGE_OPTIONS.set(options).is_err() {
        tracing::debug!("storage options were already set; keeping the first");
    }
}

/// Parses `KEY=VALUE` (for clap).
pub fn parse_storage_option(text: &str) -> std::result::Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| "a storage option is not KEY=VALUE (e.g. aws_endpoint=http://127.0.0.1:9000)".to_string())?;
    let key = key.trim().to_ascii_lowercase();
    if matches!(key.as_str(), "aws_secret_access_key" | "secret_access_key" | "aws_session_token" | "aws_token" | "session_token" | "token") {
        return Err(format!(
            "{key} is a credential: set it in the environment (AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), not on the command line, where `ps` shows it"
        ));
    }
    key.parse::<object_store::aws::AmazonS3ConfigKey>()
        .map_err(|_| format!("unknown storage option '{key}': use object_store's S3 keys, e.g. aws_endpoint, aws_region, aws_allow_http"))?;
    Ok((key, value.to_string()))
}

/// Builds the store for the bucket of `url` (`s3://bucket/...`), rooted at the bucket.
pub fn s3_store(url: &Url) -> Result<Arc<dyn ObjectStore>> {
    let bucket = url.host_str().filter(|b| !b.is_empty()).ok_or_else(|| {
        DataFusionError::Configuration(format!("{url}: an S3 URL needs a bucket, as in s3://bucket/lake"))
    })?;
    static STORES: OnceLock<Mutex<HashMap<String, Arc<dyn ObjectStore>>>> = OnceLock::new();
    let mut stores = STORES.get_or_init(Default::default).lock().expect("store cache lock");
    if let Some(store) = stores.get(bucket) {
        return Ok(store.clone());
    }
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    for (key, value) in STORAGE_OPTIONS.get().into_iter().flatten() {
        let key = key.parse().map_err(|e| DataFusionError::Configuration(format!("storage option {key}: {e}")))?;
        builder = builder.with_config(key, value);
    }
    // The builder's error names the missing or bad setting; it never contains a secret.
    let store: Arc<dyn ObjectStore> = Arc::new(
        builder.build().map_err(|e| DataFusionError::Configuration(format!("cannot configure S3 for {url}: {e}")))?,
    );
    stores.insert(bucket.to_string(), store.clone());
    Ok(store)
}

/// The store holding `url` (rooted at its scheme and authority) and the object path of `url` in it.
pub fn store_for_url(url: &Url) -> Result<(Arc<dyn ObjectStore>, Path)> {
    match url.scheme() {
        "s3" | "s3a" => Ok((s3_store(url)?, Path::from_url_path(url.path()).map_err(path_err)?)),
        "file" => Ok((Arc::new(LocalFileSystem::new()), Path::from_url_path(url.path()).map_err(path_err)?)),
        other => Err(DataFusionError::NotImplemented(format!(
            "{url}: {other}:// storage is not supported; use a local path, file:// or s3://"
        ))),
    }
}

fn path_err(e: object_store::path::Error) -> DataFusionError {
    DataFusionError::Plan(format!("bad object path: {e}"))
}

/// Makes `s3://` URLs work in delta-rs (table loads, writers, commits) in this process. Idempotent;
/// every entry point that opens a lake calls it.
pub fn register_object_stores() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for scheme in ["s3://", "s3a://"] {
            let url = Url::parse(scheme).expect("static URL");
            deltalake::logstore::object_store_factories().insert(url.clone(), Arc::new(S3Factory));
            deltalake::logstore::logstore_factories().insert(url, Arc::new(S3Factory));
        }
    });
}

/// delta-rs factories for `s3://`: the same cached stores as DataFusion's, and the default
/// (put-if-absent) log store.
struct S3Factory;

impl ObjectStoreFactory for S3Factory {
    fn parse_url_opts(&self, url: &Url, _config: &StorageConfig) -> deltalake::DeltaResult<(ObjectStoreRef, Path)> {
        store_for_url(url).map_err(|e| deltalake::DeltaTableError::Generic(e.to_string()))
    }
}

impl LogStoreFactory for S3Factory {
    fn with_options(
        &self,
        prefixed_store: ObjectStoreRef,
        root_store: ObjectStoreRef,
        location: &Url,
        options: &StorageConfig,
    ) -> deltalake::DeltaResult<Arc<dyn LogStore>> {
        Ok(deltalake::logstore::default_logstore(prefixed_store, root_store, location, options))
    }
}

/// DataFusion's object-store registry with `s3://` buckets resolved on first use, for the client,
/// scheduler and executor sessions.
#[derive(Debug, Default)]
pub struct LakeObjectStoreRegistry {
    inner: DefaultObjectStoreRegistry,
}

impl ObjectStoreRegistry for LakeObjectStoreRegistry {
    fn register_store(&self, url: &Url, store: Arc<dyn ObjectStore>) -> Option<Arc<dyn ObjectStore>> {
        self.inner.register_store(url, store)
    }

    fn deregister_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        self.inner.deregister_store(url)
    }

    fn get_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        match self.inner.get_store(url) {
            Ok(store) => Ok(store),
            Err(_) if matches!(url.scheme(), "s3" | "s3a") => {
                let store = s3_store(url)?;
                self.inner.register_store(url, store.clone());
                Ok(store)
            }
            Err(e) => Err(e),
        }
    }
}

/// Where the lake is: a directory, or a prefix in a bucket.
#[derive(Clone)]
pub struct LakeRoot {
    /// `file:///abs/dir/` or `s3://bucket/prefix/`, always ending in `/`.
    url: Url,
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    local: Option<PathBuf>,
}

impl LakeRoot {
    /// A lake from a `--lake` argument: a path, a `file://` URL or `s3://bucket/prefix`. A local
    /// lake must exist (see [`LakeRoot::local`]); a bucket is checked by [`LakeRoot::check`].
    pub fn parse(arg: &str) -> Result<Self> {
        match Url::parse(arg) {
            Ok(url) if url.scheme() == "file" => {
                let path = url
                    .to_file_path()
                    .map_err(|_| DataFusionError::Configuration(format!("lake URL {arg} is not a local path")))?;
                Self::local(&path)
            }
            Ok(url) if matches!(url.scheme(), "s3" | "s3a") => {
                register_object_stores();
                let mut url = url;
                if !url.path().ends_with('/') {
                    url.set_path(&format!("{}/", url.path()));
                }
                let (store, prefix) = store_for_url(&url)?;
                Ok(Self { url, store, prefix, local: None })
            }
            // A one-letter "scheme" is a Windows drive, not a URL.
            Ok(url) if url.scheme().len() > 1 => Err(DataFusionError::NotImplemented(format!(
                "lake {arg}: {}:// lakes are not supported; use a local path, file:// or s3://bucket/prefix",
                url.scheme()
            ))),
            _ => Self::local(FsPath::new(arg)),
        }
    }

    /// A lake in directory `root`, which must exist.
    pub fn local(root: &FsPath) -> Result<Self> {
        let root = std::fs::canonicalize(root).map_err(|e| {
            DataFusionError::Configuration(format!("lake root {} is not readable: {e}", root.display()))
        })?;
        if !root.is_dir() {
            return Err(DataFusionError::Configuration(format!("lake root {} is not a directory", root.display())));
        }
        let url = Url::from_directory_path(&root)
            .map_err(|_| DataFusionError::Configuration(format!("lake root {} is not absolute", root.display())))?;
        let (store, prefix) = store_for_url(&url)?;
        Ok(Self { url, store, prefix, local: Some(root) })
    }

    /// Fails with the store's own message (bad credentials, no such bucket, unreachable endpoint)
    /// if the lake cannot be listed.
    pub async fn check(&self) -> Result<()> {
        if self.local.is_some() {
            return Ok(());
        }
        self.store
            .list_with_delimiter(Some(&self.prefix))
            .await
            .map(|_| ())
            .map_err(|e| DataFusionError::Configuration(format!("cannot list lake {}: {}", self.url, first_line(&e))))
    }

    /// The lake's URL, ending in `/` (safe to print: credentials are never part of it).
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The lake's directory, for a local lake.
    pub fn local_dir(&self) -> Option<&FsPath> {
        self.local.as_deref()
    }

    /// The lake's directory, or an error naming `what` for features that need a local lake.
    pub fn require_local(&self, what: &str) -> Result<&FsPath> {
        self.local_dir().ok_or_else(|| {
            DataFusionError::NotImplemented(format!("{what} needs a lake on a local or shared file system, not {}", self.url))
        })
    }

    /// The store the lake is in (rooted at the bucket or `/`).
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// `name` (`/`-separated segments) under the lake, as a directory URL (ending in `/`). Each
    /// segment is percent-encoded as a path segment, never read as URL syntax.
    pub fn child_url(&self, name: &str) -> Result<Url> {
        let mut url = self.url.clone();
        {
            let mut segments = url
                .path_segments_mut()
                .map_err(|_| DataFusionError::Plan(format!("{} cannot hold paths", self.url)))?;
            segments.pop_if_empty();
            for part in name.split('/').filter(|p| !p.is_empty()) {
                if part == "." || part == ".." {
                    return Err(DataFusionError::Plan(format!("'{name}' cannot be a path under {}", self.url)));
                }
                segments.push(part);
            }
            segments.push("");
        }
        Ok(url)
    }

    /// The object path of `relative` (a `/`-separated path under the lake).
    pub fn path(&self, relative: &str) -> Path {
        relative.split('/').filter(|p| !p.is_empty()).fold(self.prefix.clone(), |p, part| p.join(part))
    }

    /// What is directly under `relative` ("" for the lake root): "directories" and objects.
    pub async fn list(&self, relative: &str) -> Result<object_store::ListResult> {
        self.store.list_with_delimiter(Some(&self.path(relative))).await.map_err(|e| self.storage_err(relative, e))
    }

    /// The names of the "directories" directly under `relative` ("" for the lake root).
    pub async fn child_dirs(&self, relative: &str) -> Result<Vec<String>> {
        Ok(self.list(relative).await?.common_prefixes.iter().filter_map(|p| p.filename().map(str::to_string)).collect())
    }

    /// The objects directly under `relative`.
    pub async fn files(&self, relative: &str) -> Result<Vec<ObjectMeta>> {
        Ok(self.list(relative).await?.objects)
    }

    /// Deletes everything under `relative` (best effort for a local lake's empty directories).
    pub async fn remove_all(&self, relative: &str) -> Result<()> {
        if let Some(dir) = &self.local {
            let dir = dir.join(relative);
            return match std::fs::remove_dir_all(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(DataFusionError::Execution(format!("cannot remove {}: {e}", dir.display())))
                }
                _ => Ok(()),
            };
        }
        let prefix = self.path(relative);
        let objects: Vec<Path> = self
            .store
            .list(Some(&prefix))
            .map_ok(|m| m.location)
            .try_collect()
            .await
            .map_err(|e| self.storage_err(relative, e))?;
        for location in objects {
            self.store.delete(&location).await.map_err(|e| self.storage_err(relative, e))?;
        }
        Ok(())
    }

    fn storage_err(&self, relative: &str, e: object_store::Error) -> DataFusionError {
        DataFusionError::Execution(format!("lake {}{relative}: {}", self.url, first_line(&e)))
    }
}

fn first_line(e: &impl fmt::Display) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}

impl fmt::Display for LakeRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.local {
            Some(dir) => write!(f, "{}", dir.display()),
            None => write!(f, "{}", self.url),
        }
    }
}

impl fmt::Debug for LakeRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LakeRoot").field("url", &self.url.as_str()).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_options_are_checked_against_the_s3_keys() {
        assert_eq!(parse_storage_option("AWS_ENDPOINT=http://h:9").unwrap(), ("aws_endpoint".into(), "http://h:9".into()));
        assert!(parse_storage_option("aws_endpoint").unwrap_err().contains("KEY=VALUE"));
        let secret = parse_storage_option("aws_secret_access_key=hunter2").unwrap_err();
        assert!(secret.contains("environment") && !secret.contains("hunter2"), "{secret}");
        assert!(parse_storage_option("colour=blue").unwrap_err().contains("unknown storage option"));
    }

    #[test]
    fn lake_urls_are_directories_and_other_schemes_are_refused() {
        let lake = LakeRoot::parse("s3://bucket-a/some/lake").unwrap();
        assert_eq!(lake.url().as_str(), "s3://bucket-a/some/lake/");
        assert_eq!(lake.child_url("orders").unwrap().as_str(), "s3://bucket-a/some/lake/orders/");
        assert_eq!(lake.child_url("_scratch/als-1/users-2").unwrap().as_str(), "s3://bucket-a/some/lake/_scratch/als-1/users-2/");
        assert_eq!(lake.child_url("a#b").unwrap().as_str(), "s3://bucket-a/some/lake/a%23b/");
        assert!(lake.child_url("..").is_err());
        assert_eq!(lake.path("orders/_delta_log").as_ref(), "some/lake/orders/_delta_log");
        let err = LakeRoot::parse("gs://bucket/lake").unwrap_err().to_string();
        assert!(err.contains("gs:// lakes are not supported"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let local = LakeRoot::parse(dir.path().to_str().unwrap()).unwrap();
        assert!(local.url().as_str().starts_with("file:///") && local.url().as_str().ends_with('/'));
        assert_eq!(local.local_dir(), Some(std::fs::canonicalize(dir.path()).unwrap().as_path()));
    }
}
