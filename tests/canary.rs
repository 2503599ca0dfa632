//! The Secret canary: a unique value planted in a Secret's data, then driven through every path
//! where a controller could leak it: error bodies that echo the object (a 422's `Invalid value`,
//! an admission webhook's denial, a proxy's non-Status page), watch lines and list bodies that do
//! not parse, exec credential plugins whose output is garbage. The real binary runs with debug
//! logging; the canary, raw or base64-encoded, must reach none of: its log, the Events it writes,
//! the sync-status annotation, the metrics text.
#![cfg(feature = "testkit")]

#[path = "common/wait.rs"]
mod wait;

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kubemirror::testkit::{ApiServer, Matcher, ServerOptions};
use kubemirror::util::base64;
use serde_json::{Value, json};
use wait::eventually;

const CANARY: &str = "kmcanary-5f1e0c2a9b7d";
const STATUS: &str = "kubemirror.raczylo.com/sync-status";

fn canary_b64() -> String {
    base64::encode(CANARY.as_bytes())
}

/// Every form the canary could take in text.
fn leaks(text: &str) -> Vec<String> {
    [CANARY.to_string(), canary_b64(), CANARY.replace('-', "\\u002d")]
        .into_iter()
        .filter(|c| text.contains(c.as_str()))
        .collect()
}

fn assert_clean(what: &str, text: &str) {
    let found = leaks(text);
    assert!(found.is_empty(), "the canary leaked into {what} as {found:?}:\n{text}");
}

async fn server() -> ApiServer {
    ApiServer::start(ServerOptions {
        seed: Some(31),
        namespaces: ["default", "kube-system", "app1", "app2", "app3"].map(String::from).to_vec(),
        bookmark_interval: Duration::from_millis(200),
        ..Default::default()
    })
    .await
    .unwrap()
}

fn secret() -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": "db", "namespace": "default",
            "labels": {"kubemirror.raczylo.com/enabled": "true"},
            "annotations": {"kubemirror.raczylo.com/sync": "true",
                "kubemirror.raczylo.com/target-namespaces": "app1,app2,app3"}},
        "data": {"password": canary_b64()}})
}

/// A 422 as the API server writes it when validation echoes the rejected value.
fn invalid_echo() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "code": 422,
        "reason": "Invalid",
        "message": format!("Secret \"db\" is invalid: data[password]: Invalid value: \"{CANARY}\": rejected ({})", canary_b64()),
        "details": {"name": "db", "kind": "Secret", "causes": [
            {"reason": "FieldValueInvalid", "message": format!("Invalid value: \"{CANARY}\""), "field": "data[password]"}]}})
}

/// What an admission webhook's denial looks like once the API server has wrapped it.
fn webhook_denial() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "code": 400,
        "message": format!("admission webhook \"secrets.policy.example.com\" denied the request: data.password {CANARY} is on the deny list"),
        "reason": "BadRequest"})
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn spawn(s: &ApiServer, metrics_port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_kubemirror"))
        .arg("--kubeconfig")
        .arg(s.kubeconfig_path("admin"))
        .args(["--resource-types", "Secret.v1", "--leader-elect", "false", "--rate-limit-qps", "0"])
        .args(["--metrics-bind-address", &format!("127.0.0.1:{metrics_port}"), "--health-probe-bind-address", "0"])
        // Everything the controller logs, at every level.
        .env("RUST_LOG", "debug")
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

fn status(s: &ApiServer) -> String {
    s.get_object("v1", "Secret", Some("default"), "db")
        .and_then(|o| o.pointer("/metadata/annotations").and_then(|a| a.get(STATUS)).cloned())
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

/// Every Event the controller wrote, and the status, must be clean now.
fn check_reports(s: &ApiServer, phase: &str) {
    assert_clean(&format!("the sync-status ({phase})"), &status(s));
    let events = Value::Array(s.list_objects("v1", "Event", None)).to_string();
    assert_clean(&format!("the Events ({phase})"), &events);
}

async fn http_get(port: u16, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut c = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    c.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_canary_never_leaves_the_secret() {
    let s = server().await;
    s.create_object(secret()).unwrap();
    let create = || Matcher::new(Some("create"), Some("secrets"));
    // Phase 1: every mirror create is refused by validation that echoes the value.
    s.respond_next(create(), 1_000, 422, invalid_echo().to_string());
    let metrics_port = free_port();
    let mut child = spawn(&s, metrics_port);
    eventually("the echoing 422 reported", || status(&s).contains("failed:3") && status(&s).contains("Invalid")).await;
    eventually("a MirrorFailed Event", || !s.list_objects("v1", "Event", Some("default")).is_empty()).await;
    check_reports(&s, "422 echo");

    // Phase 2: an admission webhook denies, quoting the value.
    s.clear_failures();
    s.respond_next(create(), 1_000, 400, webhook_denial().to_string());
    eventually("the webhook's denial reported", || status(&s).contains("secrets.policy.example.com")).await;
    check_reports(&s, "webhook denial");

    // Phase 3: something in between answers with a page that is not a Status, echoing the request.
    s.clear_failures();
    let page = format!(
        "<html><body>upstream rejected {{\"data\":{{\"password\":\"{}\"}}}} {CANARY}</body></html>",
        canary_b64()
    );
    s.respond_next(create(), 6, 502, page);
    eventually("the non-Status answers used up", || s.pending_faults() == 0).await;
    check_reports(&s, "non-Status body");

    // Phase 4: watch lines that do not parse or are not what was watched, carrying the value. A
    // line that is not an event ends the stream (the watcher re-watches after a backoff), so each
    // stream gets lines it can read first and one it cannot last. (Every other malformed line is
    // in the decoder's unit tests.)
    let first = vec![
        format!(
            "{{\"type\":\"MODIFIED\",\"object\":{{\"metadata\":\"{CANARY}\",\"data\":{{\"p\":\"{}\"}}}}}}\n",
            canary_b64()
        ),
        format!(
            "{{\"type\":\"ADDED\",\"object\":{{\"kind\":\"Pod\",\"metadata\":{{\"name\":\"x\"}},\"spec\":\"{CANARY}\"}}}}\n"
        ),
        format!("{{\"type\":\"ADDED\",\"object\":{{\"kind\":\"Secret\",\"data\":{{\"password\":\"{}\"\n", canary_b64()),
    ];
    let second = vec![format!("{{\"type\":\"ADDED\",\"object\":\"{CANARY}\"}}\n")];
    for lines in [first, second] {
        s.inject_watch(Matcher::new(Some("watch"), Some("secrets")), 2, lines.into_iter().map(Into::into).collect());
        s.close_watches();
        eventually("the watch garbage delivered", || s.pending_faults() == 0).await;
    }

    // Phase 5: list bodies that are not lists, carrying the value; a compaction forces the relist.
    let truncated = format!(
        "{{\"kind\":\"SecretList\",\"apiVersion\":\"v1\",\"metadata\":{{\"resourceVersion\":\"1\"}},\"items\":[{{\"data\":{{\"password\":\"{}\"",
        canary_b64()
    );
    let odd_items = format!(
        "{{\"kind\":\"SecretList\",\"apiVersion\":\"v1\",\"metadata\":{{\"resourceVersion\":\"9999999\"}},\"items\":[\"{CANARY}\",7,{{\"metadata\":\"{CANARY}\"}}]}}"
    );
    s.respond_next(Matcher::new(Some("list"), Some("secrets")), 1, 200, truncated);
    s.respond_next(Matcher::new(Some("list"), Some("secrets")), 1, 200, odd_items);
    s.hang(Matcher::new(Some("watch"), None));
    s.close_watches();
    eventually("the watches closed", || s.open_watches() == 0).await;
    s.compact();
    s.release();
    eventually("the list garbage delivered", || s.pending_faults() == 0).await;

    // Healed: the mirrors converge (the garbage did not stop anything).
    s.clear_failures();
    eventually("converged", || {
        status(&s).starts_with("synced:3,failed:0")
            && ["app1", "app2", "app3"].iter().all(|ns| {
                s.get_object("v1", "Secret", Some(ns), "db").is_some_and(|m| m["data"]["password"] == canary_b64())
            })
    })
    .await;
    check_reports(&s, "after healing");
    let metrics = http_get(metrics_port, "/metrics").await;
    assert!(metrics.contains("kubemirror_"), "{metrics}");
    assert_clean("the metrics", &metrics);

    let kill = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let mut log = String::new();
    child.stderr.take().unwrap().read_to_string(&mut log).unwrap();
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0), "{log}");
    // The paths were really taken, and logged: each left its line.
    for evidence in ["withheld", "admission webhook", "(HTTP 502)", "is not JSON", "without an object"] {
        assert!(log.contains(evidence), "no log line shows {evidence:?}:\n{log}");
    }
    assert_clean("the log", &log);
    assert_clean("stdout", &out);
}

/// A kubeconfig whose user runs `script` as an exec credential plugin.
fn exec_kubeconfig(s: &ApiServer, dir: &std::path::Path, script: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let plugin = dir.join("plugin.sh");
    std::fs::write(&plugin, script).unwrap();
    let ca = base64::encode(s.ca_pem().as_bytes());
    let text = format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: k\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\ncontexts:\n- name: c\n  context:\n    cluster: k\n    user: u\nusers:\n- name: u\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: /bin/sh\n      args: [{}]\n",
        s.url(),
        plugin.display()
    );
    let path = dir.join("kubeconfig");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_plugin_output_never_reaches_the_log() {
    let s = server().await;
    let cases = [
        ("garbage on stdout", format!("echo 'token: {CANARY}'\n")),
        ("garbage on stderr and a failure", format!("echo 'cannot refresh {CANARY}' >&2\nexit 1\n")),
        (
            "a credential of the wrong version",
            format!(
                "printf '{{\"apiVersion\":\"{CANARY}\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"{CANARY}\"}}}}'\n"
            ),
        ),
        (
            "a bad expiry",
            format!(
                "printf '{{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"t\",\"expirationTimestamp\":\"{CANARY}\"}}}}'\n"
            ),
        ),
        ("not a credential", format!("printf '{{\"kind\":\"{CANARY}\"}}'\n")),
    ];
    for (i, (what, script)) in cases.iter().enumerate() {
        let dir = s.dir().join(format!("exec-{i}"));
        let kubeconfig = exec_kubeconfig(&s, &dir, script);
        let out = Command::new(env!("CARGO_BIN_EXE_kubemirror"))
            .arg("check-connection")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .env("RUST_LOG", "debug")
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: {log}");
        assert!(log.contains("exec credential plugin"), "{what}: the failure is reported: {log}");
        assert_clean(&format!("the log ({what})"), &log);
        assert_clean(&format!("stdout ({what})"), &String::from_utf8_lossy(&out.stdout));
    }
}
