//! The kubeconfig fixture matrix (tests/fixtures/kubeconfig): every auth and TLS form, the error
//! cases, and kubectl's merge order.

use std::collections::HashMap;
use std::path::PathBuf;

use super::*;
use crate::client::{Client, ClientOptions, LoadOptions};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/kubeconfig")).join(name)
}

fn env(vars: &[(&str, &str)]) -> Env {
    Env {
        vars: vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<HashMap<_, _>>(),
        home: None,
        service_account_dir: PathBuf::from("/nonexistent/serviceaccount"),
    }
}

fn load_fixture(name: &str, context: Option<&str>) -> Result<Config, ConfigError> {
    load(&[fixture(name)], context, &env(&[]))
}

fn load_err(name: &str, context: Option<&str>) -> ConfigError {
    match load_fixture(name, context) {
        Ok(c) => panic!("{name}: expected an error, got {c:?}"),
        Err(e) => e,
    }
}

/// The loaded config must also produce a working TLS setup (key matches certificate, etc.).
fn builds_client(cfg: &Config) {
    if let Err(e) = Client::new(cfg.clone(), ClientOptions::default()) {
        panic!("{}: {e}", cfg.origin);
    }
}

#[tokio::test]
async fn token_and_ca_data() {
    let c = load_fixture("ca-data-token.yaml", None).unwrap();
    assert_eq!(c.cluster_url, "https://api.example.test:6443");
    assert_eq!(c.default_namespace, "team-a");
    assert_eq!(c.auth, Auth::Token("static-token".into()));
    assert_eq!(c.tls.ca_certs.len(), 1);
    assert!(c.tls.client_cert.is_none() && !c.tls.insecure_skip_verify);
    assert!(c.origin.contains("ca-data-token.yaml") && c.origin.contains("main"), "{}", c.origin);
    builds_client(&c);
}

#[tokio::test]
async fn client_certificates_in_every_key_form() {
    for name in ["ca-file-rsa-pkcs1-files.yaml", "rsa-pkcs8-data.yaml", "ec-sec1-files.yaml", "ec-pkcs8-data.yaml"] {
        let c = load_fixture(name, None).unwrap_or_else(|e| panic!("{name}: {e}"));
        let cc = c.tls.client_cert.as_ref().unwrap_or_else(|| panic!("{name}: no client cert"));
        assert_eq!(cc.chain.len(), 1, "{name}");
        assert_eq!(c.auth, Auth::None, "{name}");
        assert_eq!(c.default_namespace, "default");
        builds_client(&c);
    }
    let c = load_fixture("ec-sec1-files.yaml", None).unwrap();
    assert_eq!(c.cluster_url, "https://[::1]:6443");
}

#[tokio::test]
async fn token_file_is_relative_to_the_kubeconfig() {
    let c = load_fixture("token-file.yaml", None).unwrap();
    assert_eq!(c.auth, Auth::TokenFile(fixture("token")));
    builds_client(&c);
}

#[tokio::test]
async fn basic_auth() {
    let c = load_fixture("basic-auth.yaml", None).unwrap();
    assert_eq!(c.auth, Auth::Basic { username: "admin".into(), password: "s3cret".into() });
    builds_client(&c);
}

#[tokio::test]
async fn insecure_with_server_name() {
    let c = load_fixture("insecure-server-name.yaml", None).unwrap();
    assert!(c.tls.insecure_skip_verify);
    assert!(c.tls.ca_certs.is_empty());
    assert_eq!(c.tls.server_name.as_deref(), Some("kubernetes.default.svc"));
    builds_client(&c);
}

#[tokio::test]
async fn no_ca_uses_the_system_bundle() {
    let ca = fixture("pki/ca.crt");
    let c = load(&[fixture("no-ca.yaml")], None, &env(&[("SSL_CERT_FILE", ca.to_str().unwrap())])).unwrap();
    assert_eq!(c.tls.ca_certs.len(), 1);
    builds_client(&c);
    let e = load(&[fixture("no-ca.yaml")], None, &env(&[("SSL_CERT_FILE", "/nonexistent/ca.pem")])).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("clusters[c1].cluster.certificate-authority"));
    assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
}

#[test]
fn exec_v1_with_cluster_info() {
    let c = load_fixture("exec-v1.yaml", None).unwrap();
    let Auth::Exec(x) = c.auth else { panic!("{:?}", c.auth) };
    assert_eq!(x.api_version, "client.authentication.k8s.io/v1");
    assert_eq!(PathBuf::from(&x.command), fixture("./bin/get-token"));
    assert_eq!(x.args, vec!["--cluster", "c1"]);
    assert_eq!(x.env, vec![("REGION".to_string(), "eu-west-1".to_string())]);
    assert_eq!(x.install_hint.as_deref(), Some("install get-token"));
    let info = x.cluster.unwrap();
    assert_eq!(info["server"], "https://api.example.test");
    assert_eq!(info["config"]["audience"], "kubemirror");
    assert!(info["certificate-authority-data"].as_str().is_some_and(|s| !s.is_empty()));
}

#[test]
fn exec_v1beta1_looks_up_path() {
    let c = load_fixture("exec-v1beta1.yaml", None).unwrap();
    let Auth::Exec(x) = c.auth else { panic!() };
    assert_eq!(x.api_version, "client.authentication.k8s.io/v1beta1");
    assert_eq!(x.command, "aws", "a bare command stays a $PATH lookup");
    assert!(x.cluster.is_none());
}

/// (fixture, --context, expected field, text the message must contain)
const ERROR_CASES: &[(&str, Option<&str>, Option<&str>, &str)] = &[
    ("bad-base64.yaml", None, Some("users[u1].user.client-key-data"), "invalid base64"),
    ("bad-pem.yaml", None, Some("clusters[c1].cluster.certificate-authority-data"), "CERTIFICATE"),
    ("bad-key-pem.yaml", None, Some("users[u1].user.client-key-data"), "private key"),
    ("missing-ca-file.yaml", None, Some("clusters[c1].cluster.certificate-authority"), "nope.crt"),
    ("cert-without-key.yaml", None, Some("users[u1].user.client-key"), "client-key is not"),
    ("no-server.yaml", None, Some("clusters[c1].cluster.server"), "missing"),
    ("exec-v1alpha1.yaml", None, Some("users[u1].user.exec.apiVersion"), "v1alpha1"),
    ("auth-provider.yaml", None, Some("users[u1].user.auth-provider"), "exec plugin"),
    ("missing-cluster.yaml", None, Some("contexts[main].context.cluster"), "cluster \"c1\" not found"),
    ("ca-data-token.yaml", Some("nope"), Some("--context"), "context \"nope\" not found"),
];

#[test]
fn broken_kubeconfigs_name_file_context_and_field() {
    for (name, ctx, field, text) in ERROR_CASES {
        let e = load_err(name, *ctx);
        let msg = e.to_string();
        assert_eq!(e.file.as_deref(), Some(fixture(name).as_path()), "{name}: {msg}");
        assert_eq!(e.context.as_deref(), Some(ctx.unwrap_or("main")), "{name}: {msg}");
        assert_eq!(e.field.as_deref(), *field, "{name}: {msg}");
        assert!(msg.contains(text), "{name}: {msg:?} lacks {text:?}");
        assert!(msg.contains(name), "{name}: the message names the file: {msg}");
    }
}

#[test]
fn unreadable_and_malformed_files() {
    let e = load_err("does-not-exist.yaml", None);
    assert!(e.to_string().contains("does-not-exist.yaml") && e.to_string().contains("cannot read"), "{e}");
    let e = load_err("bad-yaml.yaml", None);
    assert!(e.to_string().contains("bad-yaml.yaml") && e.to_string().contains("invalid YAML: line"), "{e}");
    let e = load_err("merge-no-current.yaml", None);
    assert_eq!(e.field.as_deref(), Some("current-context"));
}

#[test]
fn merge_first_file_wins() {
    let paths = [fixture("merge-a.yaml"), fixture("merge-b.yaml")];
    let c = load(&paths, None, &env(&[])).unwrap();
    // current-context and the "shared" cluster and "ctx-a" context come from the first file.
    assert_eq!(c.cluster_url, "https://from-a.example.test");
    assert_eq!(c.default_namespace, "from-a");
    // Entries only the second file defines are still there.
    let c = load(&paths, Some("ctx-b"), &env(&[])).unwrap();
    assert_eq!(c.cluster_url, "https://only-b.example.test");
    assert_eq!(c.auth, Auth::Token("token-b".into()));
    // Reversed order: the other file wins.
    let c = load(&[fixture("merge-b.yaml"), fixture("merge-a.yaml")], None, &env(&[])).unwrap();
    assert_eq!((c.cluster_url.as_str(), c.default_namespace.as_str()), ("https://only-b.example.test", "from-b"));
    // A file without current-context does not hide a later one's.
    let c = load(&[fixture("merge-no-current.yaml"), fixture("merge-a.yaml")], None, &env(&[])).unwrap();
    assert_eq!(c.default_namespace, "from-a");
}

#[test]
fn kubeconfig_env_list_skips_missing_files() {
    let list = format!("{}:{}", fixture("missing.yaml").display(), fixture("merge-a.yaml").display());
    let c = Config::load_with(&LoadOptions::default(), &env(&[("KUBECONFIG", &list)])).unwrap();
    assert_eq!(c.cluster_url, "https://from-a.example.test");
    let e = Config::load_with(&LoadOptions::default(), &env(&[("KUBECONFIG", "/nonexistent/a:/nonexistent/b")]))
        .unwrap_err();
    assert!(e.to_string().contains("/nonexistent/a:/nonexistent/b"), "{e}");
}

#[test]
fn resolution_order() {
    let list = fixture("merge-b.yaml").display().to_string();
    let vars = [("KUBECONFIG", list.as_str())];
    // --kubeconfig beats KUBECONFIG.
    let opts = LoadOptions { kubeconfig: Some(fixture("merge-a.yaml")), context: None };
    assert_eq!(Config::load_with(&opts, &env(&vars)).unwrap().default_namespace, "from-a");
    // KUBECONFIG beats ~/.kube/config.
    let mut e = env(&vars);
    e.home = Some(PathBuf::from("/nonexistent-home"));
    assert_eq!(Config::load_with(&LoadOptions::default(), &e).unwrap().default_namespace, "from-b");
    // Nothing at all: a clear error.
    let e = Config::load_with(&LoadOptions::default(), &env(&[])).unwrap_err();
    assert!(e.to_string().contains("no configuration found"), "{e}");
}
