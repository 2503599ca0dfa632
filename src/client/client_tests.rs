//! The client against a local server: TLS (rcgen certificates made here), credentials, retries,
//! error bodies, watch decoding and deadlines.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use super::testserver::{self, Pki, Reply, TestRequest};
use super::*;

fn tls_config(url: &str, pki: &Pki, auth: Auth) -> Config {
    let mut cfg = Config::new(url);
    cfg.tls.ca_certs = parse_certs(pki.ca_pem.as_bytes()).unwrap();
    cfg.auth = auth;
    cfg
}

fn fast_retries() -> ClientOptions {
    ClientOptions {
        retry: RetryPolicy {
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
            ..RetryPolicy::default()
        },
        ..ClientOptions::default()
    }
}

fn plain(handler: impl Fn(&TestRequest) -> Reply + Send + Sync + 'static) -> (testserver::TestServer, Client) {
    let srv = testserver::start(None, Arc::new(handler));
    let client = Client::new(Config::new(&srv.url), fast_retries()).unwrap();
    (srv, client)
}

fn version() -> Value {
    json!({"major": "1", "minor": "31", "gitVersion": "v1.31.0"})
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason, "message": message})
}

fn temp_dir(tag: &str) -> std::path::PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "km-client-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[tokio::test]
async fn tls_server_ca_verified_with_bearer_token() {
    let pki = testserver::pki();
    let srv =
        testserver::start(Some(testserver::server_tls(&pki)), Arc::new(|_: &TestRequest| Reply::json(200, &version())));
    let client =
        Client::new(tls_config(&srv.url, &pki, Auth::Token("secret-token".into())), ClientOptions::default()).unwrap();
    assert_eq!(client.get_path("/version").await.unwrap(), version());
    let reqs = srv.requests();
    assert_eq!(reqs[0].header("authorization"), Some("Bearer secret-token"));
    assert_eq!(reqs[0].header("accept"), Some("application/json"));
    assert_eq!(reqs[0].header("user-agent"), Some(concat!("kubemirror/", env!("CARGO_PKG_VERSION"))));
    assert!(!reqs[0].client_cert);
    assert_eq!(client.request_counts().get("get"), Some(&1));
    // Also by host name: the certificate's DNS SAN.
    let by_name = srv.url.replace("127.0.0.1", "localhost");
    let client = Client::new(tls_config(&by_name, &pki, Auth::None), ClientOptions::default()).unwrap();
    assert_eq!(client.get_path("/version").await.unwrap(), version());
}

#[tokio::test]
async fn tls_client_certificate_auth() {
    let pki = testserver::pki();
    let handler = |r: &TestRequest| {
        if r.client_cert {
            Reply::json(200, &version())
        } else {
            Reply::json(401, &status(401, "Unauthorized", "Unauthorized"))
        }
    };
    let srv = testserver::start(Some(testserver::server_tls(&pki)), Arc::new(handler));
    let mut cfg = tls_config(&srv.url, &pki, Auth::None);
    let anonymous = Client::new(cfg.clone(), ClientOptions::default()).unwrap();
    let err = anonymous.get_path("/version").await.unwrap_err();
    assert!(err.is_unauthorized(), "{err}");
    cfg.tls.client_cert = Some(ClientCert {
        chain: parse_certs(pki.client_cert_pem.as_bytes()).unwrap(),
        key: Arc::new(parse_key(pki.client_key_pem.as_bytes()).unwrap()),
    });
    let client = Client::new(cfg, ClientOptions::default()).unwrap();
    assert_eq!(client.get_path("/version").await.unwrap(), version());
    assert!(srv.requests().last().unwrap().client_cert);
}

#[tokio::test]
async fn tls_wrong_ca_is_rejected_with_the_cause() {
    let pki = testserver::pki();
    let srv =
        testserver::start(Some(testserver::server_tls(&pki)), Arc::new(|_: &TestRequest| Reply::json(200, &version())));
    let mut cfg = Config::new(&srv.url);
    cfg.tls.ca_certs = parse_certs(testserver::other_ca_pem().as_bytes()).unwrap();
    let client = Client::new(cfg, ClientOptions::default()).unwrap();
    match client.get_path("/version").await {
        Err(Error::Transport(m)) => {
            assert!(m.contains("invalid peer certificate") && m.contains("UnknownIssuer"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(client.request_counts()["get"], 1, "a certificate refusal is not retried");
    assert!(srv.requests().is_empty());
}

#[tokio::test]
async fn tls_insecure_skip_verify_and_server_name() {
    let pki = testserver::pki();
    let srv =
        testserver::start(Some(testserver::server_tls(&pki)), Arc::new(|_: &TestRequest| Reply::json(200, &version())));
    let mut cfg = Config::new(&srv.url);
    cfg.tls.insecure_skip_verify = true;
    assert!(Client::new(cfg, ClientOptions::default()).unwrap().get_path("/version").await.is_ok());
    // tls-server-name: an IP URL verified against the certificate's DNS name.
    let mut cfg = tls_config(&srv.url, &pki, Auth::None);
    cfg.tls.server_name = Some("localhost".into());
    assert!(Client::new(cfg.clone(), ClientOptions::default()).unwrap().get_path("/version").await.is_ok());
    cfg.tls.server_name = Some("api.example.test".into());
    let opts = ClientOptions { retry: RetryPolicy { max_retries: 0, ..Default::default() }, ..Default::default() };
    let err = Client::new(cfg, opts).unwrap().get_path("/version").await.unwrap_err();
    assert!(err.to_string().contains("api.example.test"), "{err}");
}

#[tokio::test]
async fn tls_rotated_token_file_is_reread_after_401() {
    let pki = testserver::pki();
    let dir = temp_dir("token");
    let token = dir.join("token");
    std::fs::write(&token, "old-token\n").unwrap();
    let accepted = Arc::new(std::sync::Mutex::new("Bearer old-token".to_string()));
    let acc = accepted.clone();
    let handler = move |r: &TestRequest| {
        if r.header("authorization") == Some(acc.lock().unwrap().as_str()) {
            Reply::json(200, &version())
        } else {
            Reply::json(401, &status(401, "Unauthorized", "token expired"))
        }
    };
    let srv = testserver::start(Some(testserver::server_tls(&pki)), Arc::new(handler));
    let client =
        Client::new(tls_config(&srv.url, &pki, Auth::TokenFile(token.clone())), ClientOptions::default()).unwrap();
    client.get_path("/version").await.unwrap();
    // The kubelet rotates the token; the server stops accepting the old one.
    std::fs::write(&token, "new-token\n").unwrap();
    *accepted.lock().unwrap() = "Bearer new-token".into();
    client.get_path("/version").await.unwrap();
    let auths: Vec<_> = srv.requests().iter().map(|r| r.header("authorization").unwrap_or("").to_string()).collect();
    assert_eq!(auths, vec!["Bearer old-token", "Bearer old-token", "Bearer new-token"]);
    // A token that stays wrong is an error after one refresh, not a loop.
    *accepted.lock().unwrap() = "Bearer nobody-has-this".into();
    let err = client.get_path("/version").await.unwrap_err();
    assert!(err.is_unauthorized() && err.to_string().contains("401 Unauthorized"), "{err}");
    assert_eq!(srv.requests().len(), 5);
    std::fs::remove_dir_all(dir).ok();
}

/// A plugin script run through /bin/sh (no exec of a just-written file: ETXTBSY under parallel tests).
fn exec_plugin(dir: &std::path::Path, body: &str, api_version: &str) -> ExecConfig {
    let script = dir.join("plugin.sh");
    std::fs::write(&script, body).unwrap();
    ExecConfig {
        api_version: api_version.into(),
        command: "/bin/sh".into(),
        args: vec![script.to_string_lossy().into_owned(), "arg1".into()],
        env: vec![("PLUGIN_DIR".into(), dir.to_string_lossy().into_owned())],
        cluster: None,
        install_hint: None,
    }
}

const COUNTING_PLUGIN: &str = r#"
echo run >> "$PLUGIN_DIR/runs"
n=$(wc -l < "$PLUGIN_DIR/runs" | tr -d ' ')
printf '%s|%s' "$1" "$KUBERNETES_EXEC_INFO" > "$PLUGIN_DIR/seen"
printf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"tok-%s","expirationTimestamp":"%s"}}' "$n" "$EXPIRY"
"#;

fn runs(dir: &std::path::Path) -> usize {
    std::fs::read_to_string(dir.join("runs")).map(|s| s.lines().count()).unwrap_or(0)
}

#[tokio::test]
async fn exec_plugin_is_cached_until_expiry() {
    let dir = temp_dir("exec");
    let mut exec = exec_plugin(&dir, COUNTING_PLUGIN, "client.authentication.k8s.io/v1");
    exec.env.push(("EXPIRY".into(), "2099-01-01T00:00:00Z".into()));
    // The server only accepts the second credential the plugin hands out.
    let (srv, _) = plain(|r| {
        if r.header("authorization") == Some("Bearer tok-1") {
            Reply::json(200, &version())
        } else {
            Reply::json(401, &status(401, "Unauthorized", "Unauthorized"))
        }
    });
    let mut cfg = Config::new(&srv.url);
    cfg.auth = Auth::Exec(exec);
    let client = Client::new(cfg, fast_retries()).unwrap();
    client.get_path("/version").await.unwrap();
    client.get_path("/version").await.unwrap();
    assert_eq!(runs(&dir), 1, "credential cached until its expiry");
    let seen = std::fs::read_to_string(dir.join("seen")).unwrap();
    let (arg, info) = seen.split_once('|').unwrap();
    assert_eq!(arg, "arg1");
    let info: Value = serde_json::from_str(info).unwrap();
    assert_eq!(info["apiVersion"], "client.authentication.k8s.io/v1");
    assert_eq!(info["kind"], "ExecCredential");
    assert_eq!(info["spec"]["interactive"], false);
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn exec_plugin_401_reruns_the_plugin() {
    let dir = temp_dir("exec401");
    let mut exec = exec_plugin(&dir, COUNTING_PLUGIN, "client.authentication.k8s.io/v1");
    exec.env.push(("EXPIRY".into(), "2099-01-01T00:00:00Z".into()));
    let (srv, _) = plain(|r| {
        if r.header("authorization") == Some("Bearer tok-2") {
            Reply::json(200, &version())
        } else {
            Reply::json(401, &status(401, "Unauthorized", "Unauthorized"))
        }
    });
    let mut cfg = Config::new(&srv.url);
    cfg.auth = Auth::Exec(exec);
    let client = Client::new(cfg, fast_retries()).unwrap();
    client.get_path("/version").await.unwrap();
    assert_eq!(runs(&dir), 2);
    let auths: Vec<_> = srv.requests().iter().map(|r| r.header("authorization").unwrap_or("").to_string()).collect();
    assert_eq!(auths, vec!["Bearer tok-1", "Bearer tok-2"]);
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn exec_plugin_expired_credential_is_refreshed() {
    let dir = temp_dir("exec-expired");
    let mut exec = exec_plugin(&dir, COUNTING_PLUGIN, "client.authentication.k8s.io/v1");
    exec.env.push(("EXPIRY".into(), "2001-01-01T00:00:00Z".into()));
    let (_srv, _) = plain(|_| Reply::json(200, &version()));
    let mut cfg = Config::new(&_srv.url);
    cfg.auth = Auth::Exec(exec);
    let client = Client::new(cfg, fast_retries()).unwrap();
    client.get_path("/version").await.unwrap();
    client.get_path("/version").await.unwrap();
    assert_eq!(runs(&dir), 2, "an expired credential is not reused");
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn exec_plugin_failure_names_command_and_status_but_never_its_output() {
    let dir = temp_dir("exec-fail");
    let exec =
        exec_plugin(&dir, "echo 'error: you must be logged in' >&2\nexit 3\n", "client.authentication.k8s.io/v1beta1");
    let (srv, _) = plain(|_| Reply::json(200, &version()));
    let mut cfg = Config::new(&srv.url);
    cfg.auth = Auth::Exec(exec);
    let err = Client::new(cfg, fast_retries()).unwrap().get_path("/version").await.unwrap_err();
    let msg = err.to_string();
    // The plugin's output is never shown (it may hold the credential): the command, status and size.
    assert!(msg.contains("/bin/sh") && msg.contains("status: 3") && msg.contains("29 bytes on stderr"), "{msg}");
    assert!(!msg.contains("logged in"), "{msg}");
    assert!(srv.requests().is_empty(), "no request without a credential");
    let mut missing = exec_plugin(&dir, "", "client.authentication.k8s.io/v1");
    missing.command = "/nonexistent/kubelogin".into();
    missing.install_hint = Some("install kubelogin".into());
    let mut cfg = Config::new(&srv.url);
    cfg.auth = Auth::Exec(missing);
    let msg = Client::new(cfg, fast_retries()).unwrap().get_path("/version").await.unwrap_err().to_string();
    assert!(msg.contains("/nonexistent/kubelogin") && msg.contains("install kubelogin"), "{msg}");
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn throttled_requests_are_retried_after_retry_after_even_writes() {
    let n = Arc::new(AtomicUsize::new(0));
    let c = n.clone();
    let (srv, client) = plain(move |r| {
        if c.fetch_add(1, Ordering::SeqCst) == 0 {
            Reply::json(429, &status(429, "TooManyRequests", "slow down")).with_header("Retry-After", "0")
        } else {
            Reply::json(201, &serde_json::from_slice::<Value>(&r.body).unwrap())
        }
    });
    let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "ns"}});
    let created = client.create(&ApiResource::configmaps(), Some("ns"), &obj, &PostParams::default()).await.unwrap();
    assert_eq!(created.name(), Some("a"));
    let reqs = srv.requests();
    assert_eq!(reqs.len(), 2);
    assert!(reqs.iter().all(|r| r.method == "POST" && r.path == "/api/v1/namespaces/ns/configmaps"));
    assert_eq!(reqs[0].header("content-type"), Some("application/json"));
    assert_eq!(client.request_counts().get("create"), Some(&2));
}

#[tokio::test]
async fn retries_give_up_after_the_cap() {
    let (srv, client) =
        plain(|_| Reply::json(503, &status(503, "ServiceUnavailable", "busy")).with_header("Retry-After", "0"));
    let err = client.get_path("/version").await.unwrap_err();
    assert_eq!(err.code(), Some(503));
    assert_eq!(srv.requests().len(), 1 + RetryPolicy::default().max_retries as usize);
}

#[tokio::test]
async fn server_errors_retried_for_reads_never_for_writes() {
    let n = Arc::new(AtomicUsize::new(0));
    let c = n.clone();
    let (srv, client) = plain(move |r| {
        let first = c.fetch_add(1, Ordering::SeqCst) == 0;
        if r.method == "GET" && !first {
            Reply::json(200, &json!({"metadata": {"name": "a"}}))
        } else {
            Reply::json(500, &status(500, "InternalError", "etcd hiccup"))
        }
    });
    let got = client.get(&ApiResource::secrets(), Some("ns"), "a").await.unwrap();
    assert_eq!(got.name(), Some("a"));
    assert_eq!(srv.requests().len(), 2);
    let patch = Patch::Merge(json!({"metadata": {"labels": {"x": "1"}}}));
    let err =
        client.patch(&ApiResource::secrets(), Some("ns"), "a", &patch, &PatchParams::default()).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.reason.clone()), Some(Reason::InternalError));
    assert!(err.to_string().contains("500 InternalError") && !err.to_string().contains("etcd hiccup"), "{err}");
    let reqs = srv.requests();
    assert_eq!(reqs.len(), 3, "the PATCH was sent once");
    assert_eq!(reqs[2].header("content-type"), Some("application/merge-patch+json"));
}

#[tokio::test]
async fn non_status_bodies_still_give_clear_errors() {
    let (_srv, client) = plain(|_| Reply::Full {
        status: 404,
        headers: vec![("content-type".into(), "text/plain".into())],
        body: b"404 page not found\n".to_vec(),
    });
    let err = client.get_path("/apis/nope/v1").await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    assert_eq!(err.to_string(), "API error 404 NotFound: non-Status body of 19 bytes");
    let (_srv, client) = plain(|_| Reply::Full { status: 200, headers: vec![], body: b"<html>".to_vec() });
    let err = client.get_path("/version").await.unwrap_err();
    assert!(matches!(&err, Error::Decode(m) if m.contains("6 bytes") && !m.contains("html")), "{err:?}");
}

#[tokio::test]
async fn typed_errors_from_status_bodies() {
    let (_srv, client) = plain(|r| match r.method.as_str() {
        "POST" => Reply::json(409, &status(409, "AlreadyExists", "configmaps \"a\" already exists")),
        "PUT" => Reply::json(409, &status(409, "Conflict", "the object has been modified")),
        _ => Reply::json(410, &status(410, "Expired", "too old resource version")),
    });
    let r = ApiResource::configmaps();
    let obj = json!({"metadata": {"name": "a"}});
    assert!(client.create(&r, Some("ns"), &obj, &PostParams::default()).await.unwrap_err().is_already_exists());
    assert!(client.update(&r, Some("ns"), "a", &obj, &PostParams::default()).await.unwrap_err().is_conflict());
    let err = client.list(&r, Some("ns"), &ListParams::default()).await.unwrap_err();
    assert!(err.is_gone(), "{err:?}");
}

#[tokio::test]
async fn request_timeout() {
    let (_srv, client) = plain(|_| Reply::Hang);
    let registry = prometheus::Registry::new();
    let client = Client::new(
        Config::new(client.inner.base_url()),
        ClientOptions {
            request_timeout: Duration::from_millis(100),
            retry: RetryPolicy { max_retries: 0, ..Default::default() },
            registry: Some(registry.clone()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(client.get_path("/version").await.unwrap_err(), Error::Timeout(Duration::from_millis(100)));
    assert_eq!(client.request_counts()["get"], 1);
    let text = prometheus::TextEncoder::new().encode_to_string(&registry.gather()).unwrap();
    assert!(text.contains(r#"kubemirror_api_requests_total{code="timeout",verb="get"} 1"#), "{text}");
}

#[tokio::test]
async fn metadata_only_requests_ask_for_partial_object_metadata() {
    let (srv, client) = plain(|r| {
        if r.path.contains("watch=true") {
            Reply::Stream { chunks: vec![], hold: false }
        } else if r.path.ends_with("/a") {
            Reply::json(
                200,
                &json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": {"name": "a"}}),
            )
        } else {
            Reply::json(
                200,
                &json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
                "metadata": {"resourceVersion": "5"}, "items": [{"kind": "PartialObjectMetadata", "metadata": {"name": "a"}}]}),
            )
        }
    });
    let r = ApiResource::secrets();
    client.get_metadata(&r, Some("ns"), "a").await.unwrap();
    let page =
        client.list(&r, None, &ListParams { metadata_only: true, limit: Some(2), ..Default::default() }).await.unwrap();
    assert_eq!((page.resource_version.as_str(), page.items.len()), ("5", 1));
    let mut w = client.watch(&r, Some("ns"), &WatchParams { metadata_only: true, ..Default::default() }).await.unwrap();
    assert!(w.next().await.is_none());
    let reqs = srv.requests();
    assert_eq!(reqs[0].header("accept"), Some(ACCEPT_METADATA));
    assert_eq!(reqs[1].header("accept"), Some(ACCEPT_METADATA_LIST));
    assert_eq!(reqs[1].path, "/api/v1/secrets?limit=2");
    assert_eq!(reqs[2].header("accept"), Some(ACCEPT_METADATA));
    assert_eq!(reqs[2].path, "/api/v1/namespaces/ns/secrets?watch=true");
    let counts = client.request_counts();
    assert_eq!((counts["get"], counts["list"], counts["watch"]), (1, 1, 1));
}

fn event(typ: &str, obj: Value) -> String {
    format!("{}\n", json!({"type": typ, "object": obj}))
}

#[tokio::test]
async fn watch_events_split_across_chunks() {
    let body = [
        event("ADDED", json!({"metadata": {"name": "a", "resourceVersion": "11"}})),
        event("MODIFIED", json!({"metadata": {"name": "a", "resourceVersion": "12"}})),
        event(
            "BOOKMARK",
            json!({"metadata": {"resourceVersion": "13", "annotations": {"k8s.io/initial-events-end": "true"}}}),
        ),
        event("DELETED", json!({"metadata": {"name": "a", "resourceVersion": "14"}})),
        event("ERROR", status(410, "Expired", "too old resource version: 1 (14)")),
    ]
    .concat()
    .into_bytes();
    // Cut mid-event, mid-string and at line ends.
    let chunks: Vec<Vec<u8>> = [0, 5, 40, 41, 90, 150, 200, body.len()]
        .windows(2)
        .map(|w| body[w[0].min(body.len())..w[1].min(body.len())].to_vec())
        .filter(|c| !c.is_empty())
        .collect();
    let (srv, client) = plain(move |_| Reply::Stream { chunks: chunks.clone(), hold: false });
    let p = WatchParams {
        resource_version: Some("10".into()),
        allow_bookmarks: true,
        timeout_seconds: Some(60),
        ..Default::default()
    };
    let mut w = client.watch(&ApiResource::secrets(), Some("ns"), &p).await.unwrap();
    let mut got = Vec::new();
    while let Some(ev) = w.next().await {
        got.push(ev.unwrap());
    }
    assert_eq!(got.len(), 5);
    assert!(matches!(&got[0], WatchEvent::Added(o) if o.resource_version() == Some("11")));
    assert!(matches!(&got[1], WatchEvent::Modified(_)));
    assert_eq!(got[2], WatchEvent::Bookmark { resource_version: "13".into(), initial_events_end: true });
    assert!(matches!(&got[3], WatchEvent::Deleted(o) if o.name() == Some("a")));
    assert!(matches!(&got[4], WatchEvent::Error(s) if s.code == 410 && s.reason == Reason::Expired));
    assert_eq!(
        srv.requests()[0].path,
        "/api/v1/namespaces/ns/secrets?watch=true&resourceVersion=10&allowWatchBookmarks=true&timeoutSeconds=60"
    );
}

#[tokio::test]
async fn watch_idle_deadline_ends_a_silent_stream() {
    let first = event("ADDED", json!({"metadata": {"name": "a", "resourceVersion": "1"}})).into_bytes();
    let (_srv, client) = plain(move |_| Reply::Stream { chunks: vec![first.clone()], hold: true });
    let idle = Duration::from_millis(200);
    let p = WatchParams { idle_timeout: Some(idle), ..Default::default() };
    let mut w = client.watch(&ApiResource::secrets(), None, &p).await.unwrap();
    assert!(matches!(w.next().await, Some(Ok(WatchEvent::Added(_)))));
    assert_eq!(w.next().await, Some(Err(Error::Timeout(idle))));
    assert!(w.next().await.is_none());
}

#[tokio::test]
async fn watch_errors_are_typed() {
    let (_srv, client) = plain(|_| Reply::json(403, &status(403, "Forbidden", "secrets is forbidden")));
    let err = client.watch(&ApiResource::secrets(), None, &WatchParams::default()).await.err().unwrap();
    assert!(err.is_forbidden(), "{err:?}");
}

#[tokio::test]
async fn watches_bypass_the_rate_limit() {
    let (_srv, client) = plain(|r| {
        if r.path.contains("watch=true") {
            Reply::Stream { chunks: vec![], hold: false }
        } else {
            Reply::json(200, &version())
        }
    });
    let client =
        Client::new(Config::new(client.inner.base_url()), ClientOptions { qps: 0.001, burst: 1, ..Default::default() })
            .unwrap();
    client.get_path("/version").await.unwrap();
    // The bucket is empty now: a second GET waits ~1000 s, a watch goes straight through.
    let blocked = tokio::time::timeout(Duration::from_millis(100), client.get_path("/version")).await;
    assert!(blocked.is_err(), "the second GET should wait for a token");
    let w = tokio::time::timeout(
        Duration::from_secs(10),
        client.watch(&ApiResource::secrets(), None, &WatchParams::default()),
    )
    .await;
    assert!(matches!(w, Ok(Ok(_))));
}

#[tokio::test]
async fn delete_reports_pending_finalizers() {
    let (srv, client) = plain(|r| {
        if r.path.ends_with("/held") {
            Reply::json(
                202,
                &json!({"metadata": {"name": "held", "finalizers": ["x"], "deletionTimestamp": "2026-01-01T00:00:00Z"}}),
            )
        } else {
            Reply::json(200, &json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}))
        }
    });
    let r = ApiResource::configmaps();
    let p = DeleteParams {
        precondition_uid: Some("u1".into()),
        propagation_policy: Some("Background".into()),
        ..Default::default()
    };
    assert!(client.delete(&r, Some("ns"), "gone", &p).await.unwrap().is_none());
    let held = client.delete(&r, Some("ns"), "held", &p).await.unwrap().unwrap();
    assert_eq!(held.finalizers(), vec!["x"]);
    let body: Value = serde_json::from_slice(&srv.requests()[0].body).unwrap();
    assert_eq!(body["preconditions"]["uid"], "u1");
    assert_eq!(body["propagationPolicy"], "Background");
}

#[tokio::test]
async fn apply_patch_sends_field_manager_and_force() {
    let (srv, client) = plain(|_| Reply::json(200, &json!({"metadata": {"name": "a"}})));
    let patch = Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}));
    let p = PatchParams { field_manager: Some("kubemirror".into()), force: true, dry_run: false };
    client.patch(&ApiResource::configmaps(), Some("ns"), "a", &patch, &p).await.unwrap();
    let req = &srv.requests()[0];
    assert_eq!(req.method, "PATCH");
    assert_eq!(req.path, "/api/v1/namespaces/ns/configmaps/a?fieldManager=kubemirror&force=true");
    assert_eq!(req.header("content-type"), Some("application/apply-patch+yaml"));
}

#[tokio::test]
async fn requests_are_counted_in_the_registry() {
    let srv = testserver::start(
        None,
        Arc::new(|r: &TestRequest| {
            if r.path == "/version" {
                Reply::json(200, &version())
            } else {
                Reply::json(404, &status(404, "NotFound", "nope"))
            }
        }),
    );
    let registry = prometheus::Registry::new();
    let client =
        Client::new(Config::new(&srv.url), ClientOptions { registry: Some(registry.clone()), ..Default::default() })
            .unwrap();
    client.get_path("/version").await.unwrap();
    client.get(&ApiResource::secrets(), Some("ns"), "x").await.unwrap_err();
    let text = prometheus::TextEncoder::new().encode_to_string(&registry.gather()).unwrap();
    assert!(text.contains(r#"kubemirror_api_requests_total{code="200",verb="get"} 1"#), "{text}");
    assert!(text.contains(r#"kubemirror_api_requests_total{code="404",verb="get"} 1"#), "{text}");
    // A second client on the same registry still works (its requests are just not exported twice).
    let again =
        Client::new(Config::new(&srv.url), ClientOptions { registry: Some(registry), ..Default::default() }).unwrap();
    again.get_path("/version").await.unwrap();
}

#[tokio::test]
async fn connection_refused_is_a_transport_error_retried_for_reads() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let client = Client::new(Config::new(&url), fast_retries()).unwrap();
    match client.get_path("/version").await {
        Err(Error::Transport(m)) => assert!(m.to_lowercase().contains("refused"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(client.request_counts()["get"], 1 + u64::from(RetryPolicy::default().max_retries));
    let obj = json!({"metadata": {"name": "a"}});
    client.create(&ApiResource::configmaps(), Some("ns"), &obj, &PostParams::default()).await.unwrap_err();
    assert_eq!(client.request_counts()["create"], 1);
}

#[tokio::test]
async fn alpn_offers_http2_and_uses_it_when_chosen() {
    let pki = testserver::pki();
    let mut tls = (*testserver::server_tls(&pki)).clone();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let srv = testserver::start(Some(Arc::new(tls)), Arc::new(|_: &TestRequest| Reply::json(400, &json!({}))));
    let opts = ClientOptions { retry: RetryPolicy { max_retries: 0, ..Default::default() }, ..Default::default() };
    let client = Client::new(tls_config(&srv.url, &pki, Auth::None), opts).unwrap();
    // The toy server only speaks HTTP/1.1, so the request fails; what matters is what arrived:
    // the HTTP/2 connection preface, sent because the client offered h2 and the server took it.
    client.get_path("/version").await.unwrap_err();
    assert_eq!(srv.requests().first().map(|r| r.method.as_str()), Some("PRI"));
}

/// The runtime spawns these on a multi-threaded executor.
#[test]
fn client_and_futures_are_send() {
    fn send<T: Send>(_: &T) {}
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Client>();
    send_sync::<Error>();
    let client = Client::new(Config::new("http://127.0.0.1:1"), ClientOptions::default()).unwrap();
    let r = ApiResource::secrets();
    send(&client.get(&r, None, "a"));
    send(&client.list(&r, None, &ListParams::default()));
    send(&client.watch(&r, None, &WatchParams::default()));
    send(&client.delete(&r, None, "a", &DeleteParams::default()));
    fn stream_next_is_send(w: &mut WatchStream) {
        send(&w.next());
    }
    let _ = stream_next_is_send;
}
