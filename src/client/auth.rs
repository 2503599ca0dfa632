//! Request credentials. Static ones are computed once; token files and exec plugins are refreshed:
//! projected tokens rotate under us, and plugin credentials expire.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use hyper::header::HeaderValue;
use serde_json::{Value, json};

use super::config::{Auth, ExecConfig};
use super::error::{Error, Result};
use crate::util::{base64, time};

/// client-go re-reads token files this often.
pub const TOKEN_FILE_REFRESH: Duration = Duration::from_secs(60);
/// A plugin that hangs (waiting for a browser login, say) must not hang the controller.
const EXEC_TIMEOUT: Duration = Duration::from_secs(60);

pub(crate) enum AuthProvider {
    None,
    Static(HeaderValue),
    TokenFile(TokenFile),
    Exec(ExecProvider),
}

fn bearer(token: &str) -> Result<HeaderValue> {
    let mut v = HeaderValue::from_str(&format!("Bearer {}", token.trim()))
        .map_err(|_| Error::Decode("bearer token contains characters not allowed in an HTTP header".into()))?;
    v.set_sensitive(true);
    Ok(v)
}

impl AuthProvider {
    pub(crate) fn new(auth: &Auth) -> Result<AuthProvider> {
        Ok(match auth {
            Auth::None => AuthProvider::None,
            Auth::Token(t) => AuthProvider::Static(bearer(t)?),
            Auth::Basic { username, password } => {
                let raw = base64::encode(format!("{username}:{password}").as_bytes());
                let mut v = HeaderValue::from_str(&format!("Basic {raw}"))
                    .map_err(|_| Error::Decode("basic auth header is not valid".into()))?;
                v.set_sensitive(true);
                AuthProvider::Static(v)
            }
            Auth::TokenFile(path) => AuthProvider::TokenFile(TokenFile::new(path.clone())),
            Auth::Exec(cfg) => AuthProvider::Exec(ExecProvider::new(cfg.clone())),
        })
    }

    /// The Authorization header for the next request, if any.
    pub(crate) async fn header(&self) -> Result<Option<HeaderValue>> {
        match self {
            AuthProvider::None => Ok(None),
            AuthProvider::Static(v) => Ok(Some(v.clone())),
            AuthProvider::TokenFile(f) => f.token(Instant::now()).and_then(|t| bearer(&t)).map(Some),
            AuthProvider::Exec(e) => e.token().await.and_then(|t| bearer(&t)).map(Some),
        }
    }

    /// After a 401: drop cached credentials. True when a retry may present different ones.
    pub(crate) fn invalidate(&self) -> bool {
        match self {
            AuthProvider::None | AuthProvider::Static(_) => false,
            AuthProvider::TokenFile(f) => {
                f.invalidate();
                true
            }
            AuthProvider::Exec(e) => {
                e.invalidate();
                true
            }
        }
    }
}

pub(crate) struct TokenFile {
    path: PathBuf,
    cache: Mutex<Option<(String, Instant)>>,
}

impl TokenFile {
    pub(crate) fn new(path: PathBuf) -> Self {
        TokenFile { path, cache: Mutex::new(None) }
    }

    pub(crate) fn token(&self, now: Instant) -> Result<String> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((tok, read_at)) = cache.as_ref()
            && now.saturating_duration_since(*read_at) < TOKEN_FILE_REFRESH
        {
            return Ok(tok.clone());
        }
        let read = super::config::read_bounded(&self.path).map(|b| String::from_utf8_lossy(&b).into_owned());
        match read {
            Ok(text) if !text.trim().is_empty() => {
                let tok = text.trim().to_string();
                *cache = Some((tok.clone(), now));
                Ok(tok)
            }
            // A rotation in progress can leave the file briefly unreadable; the old token is
            // better than none (client-go does the same).
            result => match cache.as_ref() {
                Some((tok, _)) => {
                    log::warn!("token file {}: cannot re-read, keeping the previous token", self.path.display());
                    Ok(tok.clone())
                }
                None => Err(Error::Transport(match result {
                    Err(e) => format!("reading token file {}: {e}", self.path.display()),
                    Ok(_) => format!("token file {} is empty", self.path.display()),
                })),
            },
        }
    }

    pub(crate) fn invalidate(&self) {
        // Keep the token as a fallback but force a re-read on the next request.
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, read_at)) = cache.as_mut() {
            *read_at = Instant::now().checked_sub(TOKEN_FILE_REFRESH * 2).unwrap_or(*read_at);
        }
    }
}

struct Credential {
    token: String,
    expires: Option<SystemTime>,
}

pub(crate) struct ExecProvider {
    cfg: ExecConfig,
    cache: Mutex<Option<Credential>>,
    /// Serialises plugin runs so a burst of requests runs the plugin once.
    running: tokio::sync::Mutex<()>,
}

impl ExecProvider {
    pub(crate) fn new(cfg: ExecConfig) -> Self {
        ExecProvider { cfg, cache: Mutex::new(None), running: tokio::sync::Mutex::new(()) }
    }

    fn cached(&self) -> Option<String> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let c = cache.as_ref()?;
        match c.expires {
            Some(t) if SystemTime::now() >= t => None,
            _ => Some(c.token.clone()),
        }
    }

    pub(crate) async fn token(&self) -> Result<String> {
        if let Some(t) = self.cached() {
            return Ok(t);
        }
        let _running = self.running.lock().await;
        if let Some(t) = self.cached() {
            return Ok(t);
        }
        let cred = run_plugin(&self.cfg).await?;
        let token = cred.token.clone();
        *self.cache.lock().unwrap_or_else(|p| p.into_inner()) = Some(cred);
        Ok(token)
    }

    pub(crate) fn invalidate(&self) {
        *self.cache.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

fn exec_info(cfg: &ExecConfig) -> Value {
    let mut spec = json!({"interactive": false});
    if let Some(cluster) = &cfg.cluster {
        spec["cluster"] = cluster.clone();
    }
    json!({"apiVersion": cfg.api_version, "kind": "ExecCredential", "spec": spec})
}

async fn run_plugin(cfg: &ExecConfig) -> Result<Credential> {
    let fail = |m: String| Error::Transport(format!("exec credential plugin {:?}: {m}", cfg.command));
    let mut cmd = tokio::process::Command::new(&cfg.command);
    cmd.args(&cfg.args)
        .envs(cfg.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("KUBERNETES_EXEC_INFO", exec_info(cfg).to_string())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = match tokio::time::timeout(EXEC_TIMEOUT, cmd.output()).await {
        Err(_) => return Err(fail(format!("no answer within {}s", EXEC_TIMEOUT.as_secs()))),
        Ok(Err(e)) => {
            let hint = cfg.install_hint.as_deref().map(|h| format!(" ({})", h.trim())).unwrap_or_default();
            return Err(fail(format!("cannot run: {e}{hint}")));
        }
        Ok(Ok(out)) => out,
    };
    if !out.status.success() {
        // The plugin's output may hold the credential or anything else: its size only.
        return Err(fail(format!("{} ({} bytes on stderr, not shown)", out.status, out.stderr.len())));
    }
    parse_credential(&out.stdout, &cfg.api_version).map_err(fail)
}

/// The plugin's ExecCredential: a token, and when it expires.
fn parse_credential(stdout: &[u8], api_version: &str) -> Result<Credential, String> {
    // Errors describe the output's shape and size, never its content: it carries the credential.
    let v: Value =
        serde_json::from_slice(stdout).map_err(|e| format!("output ({} bytes) is not JSON: {e}", stdout.len()))?;
    if v.get("kind").and_then(Value::as_str) != Some("ExecCredential") {
        return Err(format!("output ({} bytes) is not an ExecCredential", stdout.len()));
    }
    let got = v.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    if got != api_version {
        return Err(format!("output has another apiVersion than the {api_version:?} the kubeconfig asked for"));
    }
    let status = v.get("status").ok_or("output has no status")?;
    let token = status.get("token").and_then(Value::as_str).unwrap_or_default();
    if token.is_empty() {
        return Err(if status.get("clientCertificateData").is_some() {
            "returned a client certificate; only token credentials are supported".into()
        } else {
            "output has no status.token".into()
        });
    }
    let expires = match status.get("expirationTimestamp").and_then(Value::as_str) {
        Some(ts) => Some(
            time::parse_rfc3339(ts).map_err(|_| "status.expirationTimestamp is not an RFC 3339 time".to_string())?,
        ),
        None => None,
    };
    Ok(Credential { token: token.to_string(), expires })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exec_credentials() {
        let out = br#"{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential",
            "status":{"token":"abc","expirationTimestamp":"2030-01-01T00:00:00Z"}}"#;
        let c = parse_credential(out, "client.authentication.k8s.io/v1").unwrap();
        assert_eq!(c.token, "abc");
        assert!(c.expires.is_some());
        let e = parse_credential(out, "client.authentication.k8s.io/v1beta1").err().unwrap();
        assert!(e.contains("apiVersion"), "{e}");
        let e = parse_credential(b"hello", "x").err().unwrap();
        assert!(e.contains("not JSON") && e.contains("5 bytes") && !e.contains("hello"), "{e}");
        let e = parse_credential(br#"{"kind":"Secret","data":{"token":"c2VjcmV0"}}"#, "x").err().unwrap();
        assert!(!e.contains("c2VjcmV0"), "{e}");
        let e = parse_credential(
            br#"{"apiVersion":"v","kind":"ExecCredential","status":{"clientCertificateData":"x"}}"#,
            "v",
        )
        .err()
        .unwrap();
        assert!(e.contains("client certificate"), "{e}");
    }

    #[test]
    fn token_file_is_reread_after_the_refresh_period_and_on_invalidate() {
        let dir = std::env::temp_dir().join(format!("km-tokfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        std::fs::write(&path, "one\n").unwrap();
        let f = TokenFile::new(path.clone());
        let t0 = Instant::now();
        assert_eq!(f.token(t0).unwrap(), "one");
        std::fs::write(&path, "two").unwrap();
        assert_eq!(f.token(t0 + Duration::from_secs(30)).unwrap(), "one", "cached within the period");
        assert_eq!(f.token(t0 + Duration::from_secs(61)).unwrap(), "two", "re-read after a minute");
        std::fs::write(&path, "three").unwrap();
        f.invalidate();
        assert_eq!(f.token(Instant::now()).unwrap(), "three", "re-read after a 401");
        std::fs::remove_file(&path).unwrap();
        f.invalidate();
        assert_eq!(f.token(Instant::now()).unwrap(), "three", "old token kept while the file is missing");
        let missing = TokenFile::new(dir.join("nope"));
        assert!(missing.token(Instant::now()).unwrap_err().to_string().contains("nope"));
        std::fs::remove_dir_all(&dir).ok();
    }
}
