//! One HTTP exchange with the API server, and the policy around it: credentials, rate limit,
//! timeouts, retries, request counting.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER, USER_AGENT};
use hyper::{Method, Request, Response, Uri};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde_json::Value;

use super::auth::AuthProvider;
use super::config::Config;
use super::error::{Error, Result, Status, error_chain, parse_retry_after};
use super::watch::WatchStream;
use super::{ClientOptions, RetryPolicy, tls};
use crate::util::backoff::Backoff;
use crate::util::rand::with_global;
use crate::util::ratelimit::TokenBucket;

type Http = HyperClient<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

const POOL_IDLE: Duration = Duration::from_secs(90);
const TCP_KEEPALIVE: Duration = Duration::from_secs(30);
/// HTTP/2 pings find a dead connection under a silent watch long before TCP does.
const H2_PING_INTERVAL: Duration = Duration::from_secs(30);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(15);

pub(crate) struct Req {
    pub verb: &'static str,
    pub method: Method,
    pub path: String,
    pub accept: &'static str,
    pub body: Option<(Bytes, &'static str)>,
}

impl Req {
    pub(crate) fn new(verb: &'static str, method: Method, path: String, accept: &'static str) -> Req {
        Req { verb, method, path, accept, body: None }
    }

    pub(crate) fn json(mut self, v: &Value, content_type: &'static str) -> Result<Req> {
        let bytes = serde_json::to_vec(v).map_err(|e| Error::Decode(format!("encoding request body: {e}")))?;
        self.body = Some((Bytes::from(bytes), content_type));
        Ok(self)
    }

    /// Reads may be repeated freely; writes only when the server says it did not process them.
    fn idempotent(&self) -> bool {
        self.method == Method::GET
    }
}

pub(crate) struct Transport {
    http: Http,
    base: String,
    user_agent: HeaderValue,
    auth: AuthProvider,
    limiter: TokenBucket,
    request_timeout: Duration,
    retry: RetryPolicy,
    counts: Mutex<BTreeMap<String, u64>>,
    metric: Option<prometheus::IntCounterVec>,
}

impl Transport {
    pub(crate) fn new(cfg: Config, opts: ClientOptions) -> Result<Transport> {
        let base = cfg.cluster_url.trim_end_matches('/').to_string();
        let uri: Uri = base.parse().map_err(|e| Error::Decode(format!("cluster URL {base:?}: {e}")))?;
        if !matches!(uri.scheme_str(), Some("https" | "http")) || uri.host().is_none() {
            return Err(Error::Decode(format!("cluster URL {base:?} must be http(s)://host[:port]")));
        }
        let https = uri.scheme_str() == Some("https");
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(opts.connect_timeout));
        http.set_keepalive(Some(TCP_KEEPALIVE));
        http.set_nodelay(true);
        let tls_config = if https {
            tls::client_config(&cfg.tls).map_err(|e| Error::Decode(format!("{}: {e}", cfg.origin)))?
        } else {
            // Plain http (local test servers) still needs a connector; it is never used for TLS.
            tls::client_config(&super::TlsOptions { insecure_skip_verify: true, ..Default::default() })
                .map_err(Error::Decode)?
        };
        let builder = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls_config).https_or_http();
        let builder = match &cfg.tls.server_name {
            Some(name) => {
                let name = rustls::pki_types::ServerName::try_from(name.clone())
                    .map_err(|e| Error::Decode(format!("tls-server-name {name:?}: {e}")))?;
                builder.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name))
            }
            None => builder,
        };
        let connector = builder.enable_all_versions().wrap_connector(http);
        let client = HyperClient::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE)
            .http2_keep_alive_interval(H2_PING_INTERVAL)
            .http2_keep_alive_timeout(H2_PING_TIMEOUT)
            .build(connector);
        let user_agent = HeaderValue::from_str(&opts.user_agent)
            .map_err(|_| Error::Decode(format!("user agent {:?} is not a valid header", opts.user_agent)))?;
        Ok(Transport {
            http: client,
            base,
            user_agent,
            auth: AuthProvider::new(&cfg.auth)?,
            limiter: TokenBucket::new(opts.qps, opts.burst),
            request_timeout: opts.request_timeout,
            retry: opts.retry,
            counts: Mutex::new(BTreeMap::new()),
            metric: opts.registry.as_ref().and_then(register_metric),
        })
    }

    pub(crate) fn base_url(&self) -> &str {
        &self.base
    }

    pub(crate) fn counts(&self) -> BTreeMap<String, u64> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn record(&self, verb: &str, code: Option<u16>) {
        *self.counts.lock().unwrap_or_else(|p| p.into_inner()).entry(verb.to_string()).or_insert(0) += 1;
        if let Some(m) = &self.metric {
            let code = code.map_or_else(|| "error".to_string(), |c| c.to_string());
            m.with_label_values(&[verb, code.as_str()]).inc();
        }
    }

    /// One attempt: headers, credentials, send. Counted here so retries count too.
    async fn send(&self, req: &Req) -> Result<Response<Incoming>> {
        let uri: Uri = format!("{}{}", self.base, req.path)
            .parse()
            .map_err(|e| Error::Decode(format!("request path {:?}: {e}", req.path)))?;
        let mut b = Request::builder()
            .method(req.method.clone())
            .uri(uri)
            .header(ACCEPT, req.accept)
            .header(USER_AGENT, self.user_agent.clone());
        if let Some(auth) = self.auth.header().await? {
            b = b.header(AUTHORIZATION, auth);
        }
        let body = match &req.body {
            Some((bytes, ct)) => {
                b = b.header(CONTENT_TYPE, *ct);
                Full::new(bytes.clone())
            }
            None => Full::new(Bytes::new()),
        };
        let request = b.body(body).map_err(|e| Error::Decode(format!("building request: {e}")))?;
        match self.http.request(request).await {
            Ok(resp) => Ok(resp),
            Err(e) => {
                self.record(req.verb, None);
                Err(Error::transport(&e))
            }
        }
    }

    /// Sends and reads the whole answer within the request timeout.
    async fn attempt(&self, req: &Req) -> Result<(u16, Bytes)> {
        let exchange = async {
            let resp = self.send(req).await?;
            let code = resp.status().as_u16();
            self.record(req.verb, Some(code));
            let retry_after = resp.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(parse_retry_after);
            let body = resp.into_body().collect().await.map_err(|e| Error::Transport(error_chain(&e)))?.to_bytes();
            if (200..300).contains(&code) {
                Ok((code, body))
            } else {
                Err(Error::Api(Box::new(Status::from_response(code, &body, retry_after))))
            }
        };
        tokio::time::timeout(self.request_timeout, exchange).await.unwrap_or(Err(Error::Timeout(self.request_timeout)))
    }

    /// A non-watch request with rate limiting and retries; the 2xx code and body.
    pub(crate) async fn execute(&self, req: Req) -> Result<(u16, Bytes)> {
        let mut retries = 0;
        let mut reauthenticated = false;
        let mut backoff = Backoff::new(self.retry.initial_backoff, self.retry.max_backoff).with_jitter(0.5);
        loop {
            self.limiter.acquire().await;
            let err = match self.attempt(&req).await {
                Ok(ok) => return Ok(ok),
                Err(e) => e,
            };
            // A rotated token or an expired plugin credential: fetch a fresh one, once.
            if err.is_unauthorized() && !reauthenticated && self.auth.invalidate() {
                reauthenticated = true;
                log::info!("{} {}: 401, refreshing credentials and retrying", req.verb, req.path);
                continue;
            }
            let delay = if retries < self.retry.max_retries {
                retry_delay(&self.retry, req.idempotent(), &err, &mut backoff)
            } else {
                None
            };
            let Some(delay) = delay else { return Err(err) };
            retries += 1;
            log::debug!("{} {}: {err}; retry {retries} in {}ms", req.verb, req.path, delay.as_millis());
            tokio::time::sleep(delay).await;
        }
    }

    /// Opens a watch. Not rate limited (it is one long request) and without a request timeout:
    /// the stream's idle deadline guards it instead.
    pub(crate) async fn watch(&self, req: Req, idle: Duration) -> Result<WatchStream> {
        let mut reauthenticated = false;
        loop {
            let resp = tokio::time::timeout(idle, self.send(&req)).await.unwrap_or(Err(Error::Timeout(idle)))?;
            let code = resp.status().as_u16();
            self.record(req.verb, Some(code));
            if (200..300).contains(&code) {
                return Ok(WatchStream::new(resp.into_body(), idle));
            }
            let retry_after = resp.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(parse_retry_after);
            let body = tokio::time::timeout(self.request_timeout, resp.into_body().collect())
                .await
                .map_err(|_| Error::Timeout(self.request_timeout))?
                .map_err(|e| Error::Transport(error_chain(&e)))?
                .to_bytes();
            let err = Error::Api(Box::new(Status::from_response(code, &body, retry_after)));
            if err.is_unauthorized() && !reauthenticated && self.auth.invalidate() {
                reauthenticated = true;
                continue;
            }
            return Err(err);
        }
    }
}

/// Whether and when to retry after `err`. Throttling with Retry-After is safe for any verb (the
/// server did not process the request); other server errors and lost connections only for reads.
pub(crate) fn retry_delay(
    policy: &RetryPolicy,
    idempotent: bool,
    err: &Error,
    backoff: &mut Backoff,
) -> Option<Duration> {
    match err {
        Error::Api(s) if matches!(s.code, 429 | 503) && s.retry_after.is_some() => {
            s.retry_after.map(|d| d.min(policy.max_retry_after))
        }
        Error::Api(s) if idempotent && s.code >= 500 => {
            Some(with_global(|rng| backoff.next_delay(Instant::now(), rng)))
        }
        Error::Transport(_) | Error::Timeout(_) if idempotent => {
            Some(with_global(|rng| backoff.next_delay(Instant::now(), rng)))
        }
        _ => None,
    }
}

fn register_metric(registry: &prometheus::Registry) -> Option<prometheus::IntCounterVec> {
    let opts = prometheus::Opts::new(
        "kubemirror_api_requests_total",
        "Requests sent to the API server, by verb and HTTP code.",
    );
    let metric = prometheus::IntCounterVec::new(opts, &["verb", "code"]).ok()?;
    match registry.register(Box::new(metric.clone())) {
        Ok(()) => Some(metric),
        Err(e) => {
            log::warn!("kubemirror_api_requests_total not registered: {e}");
            None
        }
    }
}
