//! Kubeconfig files: parsing, kubectl-style merging, and resolution of one context into a Config.
//!
//! Merging follows kubectl: for each cluster, user and context name the first file that defines it
//! wins, and current-context comes from the first file that sets one. Relative paths are resolved
//! against the directory of the file that defined the entry. Every error names the file, the
//! context and the field.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::config::{Auth, ClientCert, Config, ConfigError, Env, ExecConfig, TlsOptions, read_bounded};
use super::tls::{parse_certs, parse_key, system_roots};
use crate::util::{base64, yaml};

pub const EXEC_API_VERSIONS: [&str; 2] = ["client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1"];

/// A cluster, user or context entry, with the file that defined it.
#[derive(Debug, Clone)]
struct Entry {
    name: String,
    body: Value,
    file: PathBuf,
}

#[derive(Debug, Default)]
struct Merged {
    clusters: Vec<Entry>,
    users: Vec<Entry>,
    contexts: Vec<Entry>,
    current_context: Option<(String, PathBuf)>,
}

impl Merged {
    fn find<'a>(list: &'a [Entry], name: &str) -> Option<&'a Entry> {
        list.iter().find(|e| e.name == name)
    }
}

/// Loads and merges `paths` (an explicit `--kubeconfig` is a one-element list that must exist;
/// missing files in a KUBECONFIG list are skipped, as kubectl does) and resolves `context`.
pub fn load(paths: &[PathBuf], context: Option<&str>, env: &Env) -> Result<Config, ConfigError> {
    let mut merged = Merged::default();
    let mut loaded = 0;
    for path in paths {
        let text = match read_bounded(path) {
            Ok(bytes) => {
                String::from_utf8(bytes).map_err(|_| ConfigError::new("not UTF-8 text: not a kubeconfig").file(path))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && paths.len() > 1 => continue,
            Err(e) => return Err(ConfigError::new(format!("cannot read: {e}")).file(path)),
        };
        merge_file(&mut merged, path, &text)?;
        loaded += 1;
    }
    if loaded == 0 {
        let list: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        return Err(ConfigError::new(format!("none of the KUBECONFIG files exist: {}", list.join(":"))));
    }
    resolve(&merged, context, env)
}

/// One kubeconfig given as text, as if read from `path` (relative paths resolve against its
/// directory). The entry point the kubeconfig fuzz target drives.
pub fn load_text(text: &str, path: &Path, context: Option<&str>, env: &Env) -> Result<Config, ConfigError> {
    let mut merged = Merged::default();
    merge_file(&mut merged, path, text)?;
    resolve(&merged, context, env)
}

fn merge_file(merged: &mut Merged, path: &Path, text: &str) -> Result<(), ConfigError> {
    let err = |m: String| ConfigError::new(m).file(path);
    let doc = yaml::load_one(text).map_err(|e| err(format!("invalid YAML: {e}")))?;
    let doc = match doc {
        Value::Null => return Ok(()),
        Value::Object(m) => m,
        _ => return Err(err("not a kubeconfig: the top level is not a mapping".into())),
    };
    for (key, inner, list) in [
        ("clusters", "cluster", &mut merged.clusters),
        ("users", "user", &mut merged.users),
        ("contexts", "context", &mut merged.contexts),
    ] {
        let entries = match doc.get(key) {
            None | Some(Value::Null) => continue,
            Some(Value::Array(a)) => a,
            Some(_) => return Err(err("must be a list".into()).field(key)),
        };
        for (i, entry) in entries.iter().enumerate() {
            let name = entry
                .get("name")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .ok_or_else(|| err("every entry needs a name".into()).field(format!("{key}[{i}].name")))?;
            let body = entry.get(inner).cloned().unwrap_or(Value::Null);
            if !body.is_object() && !body.is_null() {
                return Err(err("must be a mapping".into()).field(format!("{key}[{name}].{inner}")));
            }
            if Merged::find(list, name).is_none() {
                list.push(Entry { name: name.to_string(), body, file: path.to_path_buf() });
            }
        }
    }
    if merged.current_context.is_none()
        && let Some(cc) = doc.get("current-context").and_then(Value::as_str).filter(|c| !c.is_empty())
    {
        merged.current_context = Some((cc.to_string(), path.to_path_buf()));
    }
    Ok(())
}

/// Field accessors that turn wrong types into errors naming the field.
struct Fields<'a> {
    entry: &'a Entry,
    /// `clusters[name].cluster`
    prefix: String,
    context: &'a str,
}

impl<'a> Fields<'a> {
    fn err(&self, field: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::new(message).file(&self.entry.file).context(self.context).field(format!("{}.{field}", self.prefix))
    }

    fn get(&self, field: &str) -> Option<&'a Value> {
        self.entry.body.get(field).filter(|v| !v.is_null())
    }

    fn str(&self, field: &str) -> Result<Option<&'a str>, ConfigError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.err(field, "must be a string")),
        }
    }

    fn bool(&self, field: &str) -> Result<bool, ConfigError> {
        match self.get(field) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(Value::String(s)) if s == "true" || s == "false" => Ok(s == "true"),
            Some(_) => Err(self.err(field, "must be true or false")),
        }
    }

    /// A path, relative to the file that defined the entry.
    fn path(&self, field: &str) -> Result<Option<PathBuf>, ConfigError> {
        Ok(self.str(field)?.map(|p| resolve_path(&self.entry.file, p)))
    }

    /// `<name>-data` (base64) or `<name>` (a file), as bytes.
    fn data_or_file(&self, name: &str) -> Result<Option<Vec<u8>>, ConfigError> {
        let data_field = format!("{name}-data");
        if let Some(data) = self.str(&data_field)? {
            return base64::decode(data.as_bytes())
                .map(Some)
                .map_err(|e| self.err(&data_field, format!("invalid base64: {e}")));
        }
        match self.path(name)? {
            Some(p) => read_bounded(&p).map(Some).map_err(|e| self.err(name, format!("reading {}: {e}", p.display()))),
            None => Ok(None),
        }
    }

    /// Which of `<name>-data`/`<name>` supplied the value, for error messages.
    fn source_field(&self, name: &str) -> String {
        let data = format!("{name}-data");
        if self.get(&data).is_some() { data } else { name.to_string() }
    }
}

fn resolve_path(file: &Path, p: &str) -> PathBuf {
    let path = PathBuf::from(p);
    if path.is_absolute() {
        return path;
    }
    file.parent().map(|d| d.join(&path)).unwrap_or(path)
}

fn resolve(m: &Merged, context: Option<&str>, env: &Env) -> Result<Config, ConfigError> {
    let (ctx_name, ctx_field, ctx_file) = match (context, &m.current_context) {
        (Some(c), _) => (c.to_string(), "--context", None),
        (None, Some((c, f))) => (c.clone(), "current-context", Some(f.clone())),
        (None, None) => {
            let mut e = ConfigError::new("no current-context is set and no --context was given");
            if let Some(f) = m.contexts.first().map(|c| &c.file) {
                e = e.file(f);
            }
            return Err(e.field("current-context"));
        }
    };
    let ctx_entry = Merged::find(&m.contexts, &ctx_name).ok_or_else(|| {
        let known: Vec<&str> = m.contexts.iter().map(|c| c.name.as_str()).collect();
        let mut e = ConfigError::new(format!("context {ctx_name:?} not found (known: {})", known.join(", ")))
            .context(&ctx_name)
            .field(ctx_field);
        if let Some(f) = ctx_file.or_else(|| m.contexts.first().map(|c| c.file.clone())) {
            e = e.file(f);
        }
        e
    })?;
    let ctx = Fields { entry: ctx_entry, prefix: format!("contexts[{ctx_name}].context"), context: &ctx_name };
    let cluster_name = ctx.str("cluster")?.ok_or_else(|| ctx.err("cluster", "the context names no cluster"))?;
    let cluster_entry = Merged::find(&m.clusters, cluster_name)
        .ok_or_else(|| ctx.err("cluster", format!("cluster {cluster_name:?} not found")))?;
    let cluster =
        Fields { entry: cluster_entry, prefix: format!("clusters[{cluster_name}].cluster"), context: &ctx_name };
    let user = match ctx.str("user")? {
        Some(u) => {
            let e = Merged::find(&m.users, u).ok_or_else(|| ctx.err("user", format!("user {u:?} not found")))?;
            Some(Fields { entry: e, prefix: format!("users[{u}].user"), context: &ctx_name })
        }
        None => None,
    };
    let server = cluster.str("server")?.ok_or_else(|| cluster.err("server", "missing"))?;
    let url: hyper::Uri = server.parse().map_err(|e| cluster.err("server", format!("invalid URL {server:?}: {e}")))?;
    if !matches!(url.scheme_str(), Some("https" | "http")) || url.host().is_none() {
        return Err(cluster.err("server", format!("{server:?} is not an http(s) URL")));
    }
    if cluster.get("proxy-url").is_some() {
        log::warn!("kubeconfig context {ctx_name}: proxy-url is not supported and is ignored");
    }
    let tls = tls_options(&cluster, user.as_ref(), url.scheme_str() == Some("https"), env)?;
    let auth = match &user {
        Some(u) => auth(u, cluster_entry, &cluster)?,
        None => Auth::None,
    };
    Ok(Config {
        cluster_url: server.trim_end_matches('/').to_string(),
        default_namespace: ctx.str("namespace")?.unwrap_or("default").to_string(),
        tls,
        auth,
        origin: format!("kubeconfig {} (context {ctx_name:?})", ctx_entry.file.display()),
    })
}

fn tls_options(cluster: &Fields, user: Option<&Fields>, https: bool, env: &Env) -> Result<TlsOptions, ConfigError> {
    let insecure = cluster.bool("insecure-skip-tls-verify")?;
    let ca_certs = match cluster.data_or_file("certificate-authority")? {
        Some(pem) => parse_certs(&pem).map_err(|e| cluster.err(&cluster.source_field("certificate-authority"), e))?,
        None if https && !insecure => system_roots(env.var("SSL_CERT_FILE"))
            .map_err(|e| cluster.err("certificate-authority", format!("not set, and {e}")))?,
        None => Vec::new(),
    };
    let client_cert = match user {
        None => None,
        Some(u) => match (u.data_or_file("client-certificate")?, u.data_or_file("client-key")?) {
            (None, None) => None,
            (Some(_), None) => return Err(u.err("client-key", "client-certificate is set but client-key is not")),
            (None, Some(_)) => {
                return Err(u.err("client-certificate", "client-key is set but client-certificate is not"));
            }
            (Some(cert), Some(key)) => Some(ClientCert {
                chain: parse_certs(&cert).map_err(|e| u.err(&u.source_field("client-certificate"), e))?,
                key: Arc::new(parse_key(&key).map_err(|e| u.err(&u.source_field("client-key"), e))?),
            }),
        },
    };
    Ok(TlsOptions {
        ca_certs,
        client_cert,
        insecure_skip_verify: insecure,
        server_name: cluster.str("tls-server-name")?.map(String::from),
    })
}

fn auth(u: &Fields, cluster_entry: &Entry, cluster: &Fields) -> Result<Auth, ConfigError> {
    if u.get("auth-provider").is_some() {
        return Err(u.err("auth-provider", "legacy auth-provider plugins are not supported; use an exec plugin"));
    }
    if let Some(t) = u.str("token")? {
        return Ok(Auth::Token(t.to_string()));
    }
    if let Some(p) = u.path("tokenFile")? {
        std::fs::metadata(&p).map_err(|e| u.err("tokenFile", format!("{}: {e}", p.display())))?;
        return Ok(Auth::TokenFile(p));
    }
    match (u.str("username")?, u.str("password")?) {
        (Some(user), pass) => {
            return Ok(Auth::Basic { username: user.to_string(), password: pass.unwrap_or_default().to_string() });
        }
        (None, Some(_)) => return Err(u.err("username", "password is set but username is not")),
        (None, None) => {}
    }
    if u.get("exec").is_some() {
        return exec(u, cluster_entry, cluster).map(Auth::Exec);
    }
    Ok(Auth::None)
}

fn exec(u: &Fields, cluster_entry: &Entry, cluster: &Fields) -> Result<ExecConfig, ConfigError> {
    let Some(Value::Object(e)) = u.get("exec") else {
        return Err(u.err("exec", "must be a mapping"));
    };
    let exec = Fields {
        entry: &Entry { name: u.entry.name.clone(), body: Value::Object(e.clone()), file: u.entry.file.clone() },
        prefix: format!("{}.exec", u.prefix),
        context: u.context,
    };
    let api_version = exec.str("apiVersion")?.ok_or_else(|| exec.err("apiVersion", "missing"))?;
    if !EXEC_API_VERSIONS.contains(&api_version) {
        return Err(
            exec.err("apiVersion", format!("unsupported {api_version:?}; supported: {}", EXEC_API_VERSIONS.join(", ")))
        );
    }
    let command = exec.str("command")?.ok_or_else(|| exec.err("command", "missing"))?;
    // kubectl resolves a relative command only when it names a path, not a $PATH lookup.
    let command = if command.contains('/') {
        resolve_path(&u.entry.file, command).to_string_lossy().into_owned()
    } else {
        command.to_string()
    };
    let args = match exec.get("args") {
        None => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str().map(String::from).ok_or_else(|| exec.err(&format!("args[{i}]"), "must be a string"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(exec.err("args", "must be a list of strings")),
    };
    let env = match exec.get("env") {
        None => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, v)| match (v.get("name").and_then(Value::as_str), v.get("value")) {
                (Some(n), Some(Value::String(val))) => Ok((n.to_string(), val.clone())),
                (Some(n), None | Some(Value::Null)) => Ok((n.to_string(), String::new())),
                _ => Err(exec.err(&format!("env[{i}]"), "needs a string name and value")),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(exec.err("env", "must be a list of {name, value}")),
    };
    let cluster_info =
        if exec.bool("provideClusterInfo")? { Some(cluster_info(cluster_entry, cluster)?) } else { None };
    Ok(ExecConfig {
        api_version: api_version.to_string(),
        command,
        args,
        env,
        cluster: cluster_info,
        install_hint: exec.str("installHint")?.map(String::from),
    })
}

/// `spec.cluster` of KUBERNETES_EXEC_INFO (the ExecCredential `Cluster` type).
fn cluster_info(entry: &Entry, cluster: &Fields) -> Result<Value, ConfigError> {
    let mut info = Map::new();
    info.insert("server".into(), json!(cluster.str("server")?.unwrap_or_default()));
    if let Some(n) = cluster.str("tls-server-name")? {
        info.insert("tls-server-name".into(), json!(n));
    }
    info.insert("insecure-skip-tls-verify".into(), json!(cluster.bool("insecure-skip-tls-verify")?));
    if let Some(ca) = cluster.data_or_file("certificate-authority")? {
        info.insert("certificate-authority-data".into(), json!(base64::encode(&ca)));
    }
    let ext = entry.body.get("extensions").and_then(Value::as_array).and_then(|list| {
        list.iter().find(|x| x.get("name").and_then(Value::as_str) == Some("client.authentication.k8s.io/exec"))
    });
    if let Some(cfg) = ext.and_then(|x| x.get("extension")) {
        info.insert("config".into(), cfg.clone());
    }
    Ok(Value::Object(info))
}

#[cfg(test)]
#[path = "kubeconfig_tests.rs"]
mod tests;
