//! Our Kubernetes API client: hyper + rustls, JSON objects as `serde_json::Value`, typed errors.
//!
//! One `Client` holds one pooled connection set (HTTP/2 when the server offers it, so every watch
//! multiplexes over a single TLS connection), the client-side rate limit and the credentials.

mod auth;
pub mod config;
mod error;
mod incluster;
mod kubeconfig;
mod object;
mod params;
pub mod redact;
mod resource;
mod tls;
mod transport;
mod watch;

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
#[cfg(test)]
mod testserver;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hyper::Method;
use serde_json::Value;

pub use config::{Auth, ClientCert, Config, ConfigError, Env, ExecConfig, LoadOptions, TlsOptions};
pub use error::{Error, Reason, Result, Status};
pub use object::{ObjectExt, ObjectList, RawItem};
pub use params::{DEFAULT_FIELD_MANAGER, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchParams};
pub use resource::ApiResource;
pub use tls::{parse_certs, parse_key, system_roots};
pub use watch::{INITIAL_EVENTS_END, MAX_LINE, WatchDecoder, WatchEvent, WatchStream};

use transport::{Req, Transport};

/// Accept headers asking the server for `PartialObjectMetadata` instead of the full object: a
/// metadata-only cache of Secrets never holds secret data.
pub const ACCEPT_JSON: &str = "application/json";
pub const ACCEPT_METADATA: &str = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json";
pub const ACCEPT_METADATA_LIST: &str =
    "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";

/// How failed requests are retried. Writes are only retried when the server says it did not
/// process them (429/503 with Retry-After).
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Longest Retry-After honoured; longer values are cut to this.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 5,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

#[derive(Clone, Debug)]
pub struct ClientOptions {
    pub qps: f64,
    pub burst: u32,
    pub user_agent: String,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub registry: Option<prometheus::Registry>,
    pub retry: RetryPolicy,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            qps: 50.0,
            burst: 100,
            user_agent: format!("kubemirror/{}", env!("CARGO_PKG_VERSION")),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            registry: None,
            retry: RetryPolicy::default(),
        }
    }
}

/// Cheap to clone: all clones share connections, rate limit, credentials and counters.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Transport>,
    default_namespace: Arc<str>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("url", &self.inner.base_url()).finish_non_exhaustive()
    }
}

impl Client {
    /// `--kubeconfig`/`--context` aware loading: explicit file, KUBECONFIG list (merged, first
    /// wins), ~/.kube/config, then in-cluster.
    pub async fn from_options(cfg: &LoadOptions, opts: ClientOptions) -> Result<Client, ConfigError> {
        let config = Config::load(cfg)?;
        let origin = config.origin.clone();
        Client::new(config, opts).map_err(|e| ConfigError::new(e.to_string()).context(origin))
    }

    pub fn new(cfg: Config, opts: ClientOptions) -> Result<Client> {
        let default_namespace: Arc<str> = Arc::from(cfg.default_namespace.as_str());
        Ok(Client { inner: Arc::new(Transport::new(cfg, opts)?), default_namespace })
    }

    pub fn default_namespace(&self) -> &str {
        &self.default_namespace
    }

    pub async fn get(&self, r: &ApiResource, ns: Option<&str>, name: &str) -> Result<Value> {
        self.read_json(Req::new("get", Method::GET, r.object_path(ns, name), ACCEPT_JSON)).await
    }

    /// The object as `PartialObjectMetadata`: kind, apiVersion and metadata only.
    pub async fn get_metadata(&self, r: &ApiResource, ns: Option<&str>, name: &str) -> Result<Value> {
        self.read_json(Req::new("get", Method::GET, r.object_path(ns, name), ACCEPT_METADATA)).await
    }

    /// One page; follow `continue_token` for the next. Items stay JSON text until decoded (see
    /// [`RawItem`]).
    pub async fn list(&self, r: &ApiResource, ns: Option<&str>, p: &ListParams) -> Result<ObjectList> {
        let accept = if p.metadata_only { ACCEPT_METADATA_LIST } else { ACCEPT_JSON };
        let path = format!("{}{}", r.collection_path(ns), p.query());
        let (_, body) = self.inner.execute(Req::new("list", Method::GET, path, accept)).await?;
        let item_kind = if p.metadata_only { "PartialObjectMetadata" } else { r.kind.as_str() };
        let page = ObjectList::from_body(&body, Some(item_kind))
            .map_err(|e| Error::Decode(format!("listing {}: {e}", r.plural)))?;
        let want = if p.metadata_only { "PartialObjectMetadataList".to_string() } else { format!("{}List", r.kind) };
        if !page.kind.is_empty() && page.kind != want {
            let kind = &page.kind;
            let shown = if kind.len() <= 64 && kind.chars().all(|c| c.is_ascii_alphanumeric()) { kind } else { "?" };
            return Err(Error::Decode(format!("listing {} answered with a {shown}, not a {want}", r.plural)));
        }
        Ok(page)
    }

    /// Every page of a list, followed to the end (`limit` per page), decoded.
    pub async fn list_all(&self, r: &ApiResource, ns: Option<&str>, p: &ListParams) -> Result<Vec<Value>> {
        let mut params = ListParams { limit: p.limit.or(Some(500)), ..p.clone() };
        let mut items = Vec::new();
        loop {
            let page = self.list(r, ns, &params).await?;
            items.extend(page.items.iter().map(RawItem::to_value));
            match page.continue_token {
                Some(token) => params.continue_token = Some(token),
                None => return Ok(items),
            }
        }
    }

    pub async fn watch(&self, r: &ApiResource, ns: Option<&str>, p: &WatchParams) -> Result<WatchStream> {
        let accept = if p.metadata_only { ACCEPT_METADATA } else { ACCEPT_JSON };
        let path = format!("{}{}", r.collection_path(ns), p.query());
        let kind = if p.metadata_only { "PartialObjectMetadata" } else { r.kind.as_str() };
        let stream = self.inner.watch(Req::new("watch", Method::GET, path, accept), p.effective_idle_timeout()).await?;
        Ok(stream.expecting_kind(kind))
    }

    pub async fn create(&self, r: &ApiResource, ns: Option<&str>, obj: &Value, p: &PostParams) -> Result<Value> {
        let path = format!("{}{}", r.collection_path(ns), p.query());
        let req = Req::new("create", Method::POST, path, ACCEPT_JSON).json(obj, ACCEPT_JSON)?;
        self.read_json(req).await
    }

    /// A full replace; the object's metadata.resourceVersion makes it conditional.
    pub async fn update(
        &self,
        r: &ApiResource,
        ns: Option<&str>,
        name: &str,
        obj: &Value,
        p: &PostParams,
    ) -> Result<Value> {
        let path = format!("{}{}", r.object_path(ns, name), p.query());
        let req = Req::new("update", Method::PUT, path, ACCEPT_JSON).json(obj, ACCEPT_JSON)?;
        self.read_json(req).await
    }

    pub async fn patch(
        &self,
        r: &ApiResource,
        ns: Option<&str>,
        name: &str,
        patch: &Patch,
        p: &PatchParams,
    ) -> Result<Value> {
        let path = format!("{}{}", r.object_path(ns, name), patch.query(p));
        let req = Req::new("patch", Method::PATCH, path, ACCEPT_JSON).json(patch.body(), patch.content_type())?;
        self.read_json(req).await
    }

    /// Ok(Some(obj)) while finalizers keep the object, Ok(None) when it is gone.
    pub async fn delete(
        &self,
        r: &ApiResource,
        ns: Option<&str>,
        name: &str,
        p: &DeleteParams,
    ) -> Result<Option<Value>> {
        let req =
            Req::new("delete", Method::DELETE, r.object_path(ns, name), ACCEPT_JSON).json(&p.body(), ACCEPT_JSON)?;
        let (code, body) = self.inner.execute(req).await?;
        let v: Value = decode_json(&body)?;
        Ok(still_there(code, v))
    }

    /// Raw GET of an absolute API path (discovery: "/api", "/apis/apps/v1", "/version").
    pub async fn get_path(&self, path: &str) -> Result<Value> {
        if !path.starts_with('/') {
            return Err(Error::Decode(format!("API path {path:?} must start with '/'")));
        }
        self.read_json(Req::new("get", Method::GET, path.to_string(), ACCEPT_JSON)).await
    }

    /// Requests sent, by verb ("get","list","watch","create","update","patch","delete"), retries included.
    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        self.inner.counts()
    }

    async fn read_json(&self, req: Req) -> Result<Value> {
        let (_, body) = self.inner.execute(req).await?;
        decode_json(&body)
    }
}

fn decode_json(body: &[u8]) -> Result<Value> {
    serde_json::from_slice(body)
        .map_err(|e| Error::Decode(format!("response of {} bytes is not JSON ({e})", body.len())))
}

/// Reads a DELETE answer: a Status means the object is gone; 202, or an object still held by
/// finalizers, means the deletion is pending.
fn still_there(code: u16, v: Value) -> Option<Value> {
    if v.kind() == Some("Status") {
        return None;
    }
    let pending = code == 202 || (v.deletion_timestamp().is_some() && !v.finalizers().is_empty());
    pending.then_some(v)
}
