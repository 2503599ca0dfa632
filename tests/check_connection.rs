//! `kubemirror check-connection` end to end: the real binary, a kubeconfig, and a minimal local
//! HTTP server answering /version.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::sync::mpsc;

/// Answers one request with a fixed /version body and reports the request head it saw.
fn one_shot_server() -> (String, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut head = Vec::new();
        let mut b = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut b).unwrap();
            if n == 0 {
                break;
            }
            head.extend_from_slice(&b[..n]);
        }
        let body = r#"{"major":"1","minor":"31","gitVersion":"v1.31.4","platform":"linux/amd64"}"#;
        let resp = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(resp.as_bytes()).unwrap();
        tx.send(String::from_utf8_lossy(&head).into_owned()).unwrap();
    });
    (url, rx)
}

fn kubeconfig(server: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("km-check-{}-{}", std::process::id(), server.replace([':', '/', '.'], "")));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config");
    let text = format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: local\nclusters:\n- name: local\n  cluster:\n    server: {server}\n\
         users:\n- name: me\n  user:\n    token: check-token\ncontexts:\n- name: local\n  context:\n    cluster: local\n    user: me\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn prints_the_server_version() {
    let (url, seen) = one_shot_server();
    let cfg = kubeconfig(&url);
    let out = Command::new(env!("CARGO_BIN_EXE_kubemirror"))
        .args(["check-connection", "--kubeconfig"])
        .arg(&cfg)
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("\"gitVersion\": \"v1.31.4\""), "{stdout}");
    assert!(stderr.contains("connected to") && stderr.contains("v1.31.4"), "{stderr}");
    let head = seen.recv().unwrap().to_ascii_lowercase();
    assert!(head.starts_with("get /version http/1.1"), "{head}");
    assert!(head.contains("authorization: bearer check-token"), "{head}");
    assert!(head.contains("user-agent: kubemirror/"), "{head}");
}

#[test]
fn a_broken_config_fails_with_file_and_context() {
    let cfg = kubeconfig("http://127.0.0.1:1");
    let out = Command::new(env!("CARGO_BIN_EXE_kubemirror"))
        .args(["check-connection", "--context", "nope", "--kubeconfig"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(cfg.to_str().unwrap()) && stderr.contains("\"nope\""), "{stderr}");
}

#[test]
fn bad_flags_exit_2_with_one_line_naming_the_flag() {
    let out = Command::new(env!("CARGO_BIN_EXE_kubemirror"))
        .args(["check-connection", "--rate-limit-burst", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("kubemirror: --rate-limit-burst: "), "{stderr}");
}
