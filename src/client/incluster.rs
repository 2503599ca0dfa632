//! In-cluster config: the API server's service address from the environment, the CA, token and
//! namespace from the mounted service account.

use std::path::Path;

use super::config::{Auth, Config, ConfigError, Env, TlsOptions};
use super::tls::parse_certs;

pub fn available(env: &Env) -> bool {
    env.var("KUBERNETES_SERVICE_HOST").is_some()
        && env.var("KUBERNETES_SERVICE_PORT").is_some()
        && env.service_account_dir.join("token").exists()
}

/// `https://host:port`, with IPv6 literals bracketed.
pub fn server_url(host: &str, port: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("https://[{host}]:{port}")
    } else {
        format!("https://{host}:{port}")
    }
}

pub fn load(env: &Env) -> Result<Config, ConfigError> {
    let err = |m: String| ConfigError { message: m, context: Some("in-cluster".into()), ..Default::default() };
    let host = env.var("KUBERNETES_SERVICE_HOST").ok_or_else(|| err("KUBERNETES_SERVICE_HOST is not set".into()))?;
    let port = env.var("KUBERNETES_SERVICE_PORT").ok_or_else(|| err("KUBERNETES_SERVICE_PORT is not set".into()))?;
    let dir: &Path = &env.service_account_dir;
    let ca_path = dir.join("ca.crt");
    let ca_pem =
        super::config::read_bounded(&ca_path).map_err(|e| err(format!("reading {}: {e}", ca_path.display())))?;
    let ca_certs = parse_certs(&ca_pem).map_err(|e| err(format!("{}: {e}", ca_path.display())))?;
    let token_path = dir.join("token");
    // Fail early on an unreadable token; the client re-reads it as the kubelet rotates it.
    super::config::read_bounded(&token_path).map_err(|e| err(format!("reading {}: {e}", token_path.display())))?;
    let namespace = std::fs::read_to_string(dir.join("namespace"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".into());
    Ok(Config {
        cluster_url: server_url(host, port),
        default_namespace: namespace,
        tls: TlsOptions { ca_certs, ..Default::default() },
        auth: Auth::TokenFile(token_path),
        origin: "in-cluster".into(),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::PathBuf;

    use super::*;
    use crate::client::{Config, LoadOptions};

    fn sa_dir(tag: &str, namespace: Option<&str>) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("km-incluster-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/kubeconfig/pki/ca.crt");
        std::fs::copy(ca, dir.join("ca.crt")).unwrap();
        std::fs::write(dir.join("token"), "sa-token\n").unwrap();
        if let Some(ns) = namespace {
            std::fs::write(dir.join("namespace"), ns).unwrap();
        }
        dir
    }

    fn env(host: &str, dir: &Path) -> Env {
        let vars: HashMap<String, String> = [("KUBERNETES_SERVICE_HOST", host), ("KUBERNETES_SERVICE_PORT", "443")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Env { vars, home: None, service_account_dir: dir.to_path_buf() }
    }

    #[test]
    fn ipv4_and_ipv6_hosts() {
        assert_eq!(server_url("10.96.0.1", "443"), "https://10.96.0.1:443");
        assert_eq!(server_url("fd00:10:96::1", "443"), "https://[fd00:10:96::1]:443");
        assert_eq!(server_url("[fd00::1]", "6443"), "https://[fd00::1]:6443");
    }

    #[test]
    fn service_account_config() {
        let dir = sa_dir("ok", Some("kubemirror-system\n"));
        let c = Config::load_with(&LoadOptions::default(), &env("fd00:10:96::1", &dir)).unwrap();
        assert_eq!(c.cluster_url, "https://[fd00:10:96::1]:443");
        assert_eq!(c.default_namespace, "kubemirror-system");
        assert_eq!(c.auth, Auth::TokenFile(dir.join("token")));
        assert_eq!(c.tls.ca_certs.len(), 1);
        assert_eq!(c.origin, "in-cluster");
        crate::client::Client::new(c, Default::default()).unwrap();
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn missing_pieces() {
        let dir = sa_dir("partial", None);
        std::fs::remove_file(dir.join("ca.crt")).unwrap();
        let e = Config::load_with(&LoadOptions::default(), &env("10.0.0.1", &dir)).unwrap_err();
        assert!(e.to_string().contains("ca.crt") && e.context.as_deref() == Some("in-cluster"), "{e}");
        // Without a token the pod is not considered in-cluster at all.
        std::fs::remove_file(dir.join("token")).unwrap();
        let e = Config::load_with(&LoadOptions::default(), &env("10.0.0.1", &dir)).unwrap_err();
        assert!(e.to_string().contains("no configuration found"), "{e}");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn namespace_defaults() {
        let dir = sa_dir("nons", None);
        let c = load(&env("10.0.0.1", &dir)).unwrap();
        assert_eq!(c.default_namespace, "default");
        std::fs::remove_dir_all(dir).ok();
    }
}
