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
    let ca_pem = std::fs::read(&ca_path).map_err(|e| err(format!("reading {}: {e}", ca_path.display())))?;
    let ca_certs = parse_certs(&ca_pem).map_err(|e| err(format!("{}: {e}", ca_path.display())))?;
    let token_path = dir.join("token");
    // Fail early on an unreadable token; the client re-reads it as the kubelet rotates it.
    std::fs::read(&token_path).map_err(|e| err(format!("reading {}: {e}", token_path.display())))?;
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
