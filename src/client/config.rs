//! Where the client connects and how it authenticates, resolved from a kubeconfig or the pod's
//! service account. Loading is separate from connecting so every input error is reported with its
//! origin (file, context, field) before any network traffic.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;

/// `--kubeconfig` and `--context`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadOptions {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Config {
    /// `https://host:port` (or `http://` for local test servers), no trailing slash.
    pub cluster_url: String,
    pub default_namespace: String,
    pub tls: TlsOptions,
    pub auth: Auth,
    /// Where this came from, for logs and errors: `kubeconfig /x (context "y")` or `in-cluster`.
    pub origin: String,
}

#[derive(Clone, Debug, Default)]
pub struct TlsOptions {
    /// Roots to verify the API server with.
    pub ca_certs: Vec<CertificateDer<'static>>,
    pub client_cert: Option<ClientCert>,
    pub insecure_skip_verify: bool,
    /// Name to verify the server certificate against instead of the URL's host.
    pub server_name: Option<String>,
}

#[derive(Clone)]
pub struct ClientCert {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: Arc<PrivateKeyDer<'static>>,
}

impl fmt::Debug for ClientCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientCert {{ chain: {} certificate(s), key: <redacted> }}", self.chain.len())
    }
}

#[derive(Clone, PartialEq)]
pub enum Auth {
    None,
    Basic {
        username: String,
        password: String,
    },
    /// A fixed bearer token.
    Token(String),
    /// A bearer token file, re-read periodically and after a 401 (projected tokens rotate).
    TokenFile(PathBuf),
    Exec(ExecConfig),
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
            Auth::Token(_) => f.write_str("Token(<redacted>)"),
            Auth::TokenFile(p) => write!(f, "TokenFile({})", p.display()),
            Auth::Exec(e) => write!(f, "Exec({:?})", e.command),
        }
    }
}

/// A `client.authentication.k8s.io` exec credential plugin.
#[derive(Clone, Debug, PartialEq)]
pub struct ExecConfig {
    /// `client.authentication.k8s.io/v1` or `/v1beta1`.
    pub api_version: String,
    pub command: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Passed in KUBERNETES_EXEC_INFO when the kubeconfig sets `provideClusterInfo`.
    pub cluster: Option<Value>,
    pub install_hint: Option<String>,
}

/// What loading reads from the process: environment variables, the home directory and the
/// service-account mount. Tests build their own instead of mutating the process environment.
#[derive(Clone, Debug, Default)]
pub struct Env {
    pub vars: HashMap<String, String>,
    pub home: Option<PathBuf>,
    pub service_account_dir: PathBuf,
}

/// Kubeconfigs, certificates, keys and tokens are a few KiB; a path naming a device or a huge file
/// (`/dev/zero`) must fail, not exhaust memory.
pub const MAX_CONFIG_FILE: u64 = 4 << 20;

/// Reads at most [`MAX_CONFIG_FILE`] bytes; a longer file is an error.
pub(crate) fn read_bounded(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    std::fs::File::open(path)?.take(MAX_CONFIG_FILE + 1).read_to_end(&mut out)?;
    if out.len() as u64 > MAX_CONFIG_FILE {
        return Err(std::io::Error::other(format!("larger than {MAX_CONFIG_FILE} bytes")));
    }
    Ok(out)
}

pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

impl Env {
    pub fn from_process() -> Env {
        let vars: HashMap<String, String> = std::env::vars().collect();
        let home = vars.get("HOME").filter(|h| !h.is_empty()).map(PathBuf::from);
        Env { vars, home, service_account_dir: PathBuf::from(SERVICE_ACCOUNT_DIR) }
    }

    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }
}

/// A config that could not be loaded, with enough context to fix it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigError {
    pub file: Option<PathBuf>,
    pub context: Option<String>,
    /// The kubeconfig field at fault, e.g. `users[alice].user.client-key-data`.
    pub field: Option<String>,
    pub message: String,
}

impl ConfigError {
    pub fn new(message: impl Into<String>) -> Self {
        ConfigError { message: message.into(), ..Default::default() }
    }

    #[must_use]
    pub fn file(mut self, file: impl Into<PathBuf>) -> Self {
        self.file = Some(file.into());
        self
    }

    #[must_use]
    pub fn context(mut self, context: impl Into<String>) -> Self {
        self.context = Some(context.into());
        self
    }

    #[must_use]
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("kubeconfig")?;
        if let Some(file) = &self.file {
            write!(f, " {}", file.display())?;
        }
        if let Some(ctx) = &self.context {
            write!(f, " (context {ctx:?})")?;
        }
        if let Some(field) = &self.field {
            write!(f, ", field {field}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// A config for `url` with no TLS material or credentials (tests, local servers).
    pub fn new(url: &str) -> Config {
        Config {
            cluster_url: url.trim_end_matches('/').to_string(),
            default_namespace: "default".into(),
            tls: TlsOptions::default(),
            auth: Auth::None,
            origin: url.to_string(),
        }
    }

    /// `--kubeconfig`, else KUBECONFIG (merged), else ~/.kube/config, else in-cluster.
    pub fn load(opts: &LoadOptions) -> Result<Config, ConfigError> {
        Config::load_with(opts, &Env::from_process())
    }

    /// One kubeconfig from its text, as if read from `path` (fuzzing, tests).
    pub fn from_kubeconfig_text(
        text: &str,
        path: &std::path::Path,
        context: Option<&str>,
        env: &Env,
    ) -> Result<Config, ConfigError> {
        super::kubeconfig::load_text(text, path, context, env)
    }

    pub fn load_with(opts: &LoadOptions, env: &Env) -> Result<Config, ConfigError> {
        if let Some(path) = &opts.kubeconfig {
            return super::kubeconfig::load(std::slice::from_ref(path), opts.context.as_deref(), env);
        }
        if let Some(list) = env.var("KUBECONFIG") {
            let paths: Vec<PathBuf> = list.split(':').filter(|p| !p.is_empty()).map(PathBuf::from).collect();
            if !paths.is_empty() {
                return super::kubeconfig::load(&paths, opts.context.as_deref(), env);
            }
        }
        if let Some(home) = &env.home {
            let path = home.join(".kube").join("config");
            if path.exists() {
                return super::kubeconfig::load(&[path], opts.context.as_deref(), env);
            }
        }
        if super::incluster::available(env) {
            return super::incluster::load(env);
        }
        Err(ConfigError::new(
            "no configuration found: pass --kubeconfig, set KUBECONFIG, create ~/.kube/config, \
             or run in a pod (KUBERNETES_SERVICE_HOST/PORT and a service-account token)",
        ))
    }
}
