//! A raw HTTPS client for the in-memory API server (hyper + rustls trusting the server's CA), so the
//! server is tested on the wire independently of our own Kubernetes client.
#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{HeaderMap, Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kubemirror::testkit::{ApiServer, ServerOptions};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;

pub const JSON: &str = "application/json";
pub const MERGE: &str = "application/merge-patch+json";
pub const JSONPATCH: &str = "application/json-patch+json";
pub const STRATEGIC: &str = "application/strategic-merge-patch+json";
pub const APPLY: &str = "application/apply-patch+yaml";
pub const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
pub const META: &str = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json";
pub const META_LIST: &str = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";

pub async fn server() -> ApiServer {
    ApiServer::start(ServerOptions { seed: Some(7), ..Default::default() }).await.unwrap()
}

pub async fn server_with(opts: ServerOptions) -> ApiServer {
    ApiServer::start(ServerOptions { seed: Some(7), ..opts }).await.unwrap()
}

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

pub struct Api {
    client: Client<Https, Full<Bytes>>,
    base: String,
    token: Option<String>,
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub http2: bool,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(String::from)
    }
}

fn tls_config(server: &ApiServer, cert_user: Option<&str>) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(server.ca_der().to_vec())).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    match cert_user.and_then(|u| server.client_cert(u)) {
        Some(c) => {
            let key = PrivateKeyDer::from_pem_slice(c.key_pem.as_bytes()).unwrap();
            b.with_client_auth_cert(vec![CertificateDer::from(c.der.clone())], key).unwrap()
        }
        None => b.with_no_client_auth(),
    }
}

impl Api {
    /// As `user` (its token), over HTTP/2 when offered.
    pub fn new(server: &ApiServer, user: &str) -> Api {
        Api::build(server, server.token(user), true)
    }

    pub fn admin(server: &ApiServer) -> Api {
        Api::new(server, "admin")
    }

    pub fn anonymous(server: &ApiServer) -> Api {
        Api::build(server, None, true)
    }

    pub fn http1(server: &ApiServer) -> Api {
        Api::build(server, server.token("admin"), false)
    }

    /// Authenticated by `user`'s client certificate, no token.
    pub fn with_client_cert(server: &ApiServer, user: &str) -> Api {
        Api::build_with(server, None, true, Some(user))
    }

    fn build(server: &ApiServer, token: Option<String>, h2: bool) -> Api {
        Api::build_with(server, token, h2, None)
    }

    fn build_with(server: &ApiServer, token: Option<String>, h2: bool, cert_user: Option<&str>) -> Api {
        let b = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls_config(server, cert_user)).https_only();
        // Without TCP_NODELAY a request whose body is a second write waits for a delayed ACK (~40 ms).
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.enforce_http(false);
        let connector =
            if h2 { b.enable_all_versions().wrap_connector(http) } else { b.enable_http1().wrap_connector(http) };
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Api { client, base: server.url(), token }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        ct: Option<&str>,
        accept: Option<&str>,
        body: Vec<u8>,
    ) -> hyper::Response<Incoming> {
        let mut b = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("user-agent", "testkit-tests/v0");
        if let Some(t) = &self.token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        if let Some(ct) = ct {
            b = b.header("content-type", ct);
        }
        if let Some(a) = accept {
            b = b.header("accept", a);
        }
        let req = b.body(Full::new(Bytes::from(body))).unwrap();
        tokio::time::timeout(Duration::from_secs(20), self.client.request(req))
            .await
            .expect("request timed out")
            .unwrap()
    }

    pub async fn raw(&self, method: Method, path: &str, ct: Option<&str>, accept: Option<&str>, body: Vec<u8>) -> Resp {
        let r = self.send(method, path, ct, accept, body).await;
        let status = r.status().as_u16();
        let http2 = r.version() == hyper::Version::HTTP_2;
        let headers = r.headers().clone();
        let body = r.into_body().collect().await.unwrap().to_bytes().to_vec();
        Resp { status, headers, body, http2 }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.raw(Method::GET, path, None, None, vec![]).await
    }

    pub async fn get_as(&self, path: &str, accept: &str) -> Resp {
        self.raw(Method::GET, path, None, Some(accept), vec![]).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.raw(Method::POST, path, Some(JSON), None, body.to_string().into_bytes()).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Resp {
        self.raw(Method::PUT, path, Some(JSON), None, body.to_string().into_bytes()).await
    }

    pub async fn patch(&self, path: &str, ct: &str, body: &Value) -> Resp {
        self.raw(Method::PATCH, path, Some(ct), None, body.to_string().into_bytes()).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.raw(Method::DELETE, path, None, None, vec![]).await
    }

    pub async fn delete_with(&self, path: &str, opts: &Value) -> Resp {
        self.raw(Method::DELETE, path, Some(JSON), None, opts.to_string().into_bytes()).await
    }

    pub async fn watch(&self, path: &str) -> Watch {
        self.watch_as(path, JSON).await
    }

    pub async fn watch_as(&self, path: &str, accept: &str) -> Watch {
        let r = self.send(Method::GET, path, None, Some(accept), vec![]).await;
        assert_eq!(r.status().as_u16(), 200, "watch {path}");
        Watch { body: r.into_body(), buf: Vec::new() }
    }
}

/// Reads a watch stream event by event.
pub struct Watch {
    body: Incoming,
    buf: Vec<u8>,
}

impl Watch {
    /// The next event; None when the server ended the stream. Panics after `within`.
    pub async fn next_within(&mut self, within: Duration) -> Option<Value> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                return Some(serde_json::from_slice(&line).unwrap());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let frame = tokio::time::timeout(left, self.body.frame()).await.expect("no watch event in time");
            match frame {
                None => return None,
                Some(Err(_)) => return None,
                Some(Ok(f)) => {
                    if let Ok(d) = f.into_data() {
                        self.buf.extend_from_slice(&d);
                    }
                }
            }
        }
    }

    pub async fn next(&mut self) -> Option<Value> {
        self.next_within(Duration::from_secs(10)).await
    }

    /// The next event that is not a BOOKMARK.
    pub async fn next_event(&mut self) -> Option<Value> {
        loop {
            let e = self.next().await?;
            if e["type"] != "BOOKMARK" {
                return Some(e);
            }
        }
    }

    /// True when the server closes the stream within `within` (events before the end are skipped).
    pub async fn ends_within(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.body.frame()).await {
                Err(_) => return false,
                Ok(None) | Ok(Some(Err(_))) => return true,
                Ok(Some(Ok(_))) => continue,
            }
        }
    }
}

/// Polls `cond` until it holds or the deadline passes.
pub async fn eventually<F, Fut>(within: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if cond().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub fn rv_of(v: &Value) -> u64 {
    v["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap()
}
