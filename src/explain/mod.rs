//! `kubemirror explain`: "why didn't it copy?" answered without writing anything.
//!
//! - `explain KIND NAMESPACE/NAME` explains a live source;
//! - `explain -f FILE` explains the namespaced objects of a manifest as if it were applied (a live
//!   object of the same name lends its identity: uid, resourceVersion, finalizers). Namespaces and
//!   existing mirrors still come from the cluster, so `-f` needs one too.
//!
//! The report is computed by the controller's planner ([`report`]) with the settings the same flags
//! give the controller, so pass the controller's flags (or set the same `KUBEMIRROR_*` variables)
//! for the same answer. `-o yaml|json` prints the mirror(s) the controller would write, built by
//! the controller's own build path ([`Settings::context`]), `--namespace` picks one.
//!
//! Requests: discovery documents, one GET of the source, one LIST of namespaces, one LIST of the
//! objects of the source's kind and name (field selector); GETs and LISTs only, never a write.

pub mod report;

use std::fmt;
use std::io::{Read, Write};
use std::path::Path;

use serde_json::{Value, json};

use crate::cli::{ExplainSource, Output};
use crate::client::{self, ApiResource, Client, ListParams, ObjectExt};
use crate::controller::executor::Settings;
use crate::discovery::{self, Candidate, DenyList, TypeRef};
use crate::mirror::build;
use crate::model::{NamespaceRecord, SourceObject};
use crate::options::Options;
use crate::util::{base64, yaml};

use report::{Action, Explanation, Input};

/// What to explain and how to print it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub source: ExplainSource,
    pub output: Output,
    pub namespace: Option<String>,
}

#[derive(Debug)]
pub enum ExplainError {
    /// Client configuration or flags.
    Config(String),
    File {
        path: String,
        reason: String,
    },
    Api {
        what: String,
        error: client::Error,
    },
    /// The kind is unknown to the cluster, or not a namespaced kind.
    Kind(String),
    NotFound(String),
    /// `-o` for a namespace that receives no mirror.
    NotATarget {
        namespace: String,
        why: String,
    },
    /// `-o` for a source that is not mirrored at all.
    NotMirrored(String),
    Write(std::io::Error),
}

impl fmt::Display for ExplainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExplainError::Config(m) | ExplainError::Kind(m) => f.write_str(m),
            ExplainError::File { path, reason } => write!(f, "{path}: {reason}"),
            ExplainError::Api { what, error } => write!(f, "{what}: {error}"),
            ExplainError::NotFound(what) => write!(f, "{what} not found"),
            ExplainError::NotATarget { namespace, why } => write!(f, "{namespace} receives no mirror: {why}"),
            ExplainError::NotMirrored(why) => write!(f, "nothing is mirrored: {why}"),
            ExplainError::Write(e) => write!(f, "writing the output: {e}"),
        }
    }
}

impl std::error::Error for ExplainError {}

fn api(what: String) -> impl FnOnce(client::Error) -> ExplainError {
    move |error| ExplainError::Api { what, error }
}

/// A source to explain with its type.
struct Loaded {
    candidate: Candidate,
    source: SourceObject,
    live: bool,
}

pub async fn run(options: &Options, req: &Request, out: &mut impl Write) -> Result<(), ExplainError> {
    let client = Client::from_options(&options.load_options(), options.client_options())
        .await
        .map_err(|e| ExplainError::Config(e.to_string()))?;
    let settings = crate::controller::run::settings(options).map_err(ExplainError::Config)?;
    let mut deny = DenyList::builtin();
    deny.extend(&options.deny_resource_types).map_err(ExplainError::Config)?;
    let (file, sources) = match &req.source {
        ExplainSource::File(path) => (Some(path.display().to_string()), from_file(&client, path).await?),
        ExplainSource::Live { kind, namespace, name } => (None, vec![live(&client, kind, namespace, name).await?]),
    };
    if sources.is_empty() {
        let path = file.unwrap_or_default();
        return Err(ExplainError::File { path, reason: "no namespaced object in it".into() });
    }
    let namespaces: Vec<NamespaceRecord> = client
        .list_all(&ApiResource::namespaces(), None, &ListParams { metadata_only: true, ..ListParams::default() })
        .await
        .map_err(api("listing namespaces".into()))?
        .iter()
        .filter_map(|n| NamespaceRecord::from_object(n).ok())
        .collect();
    let mut mirrors = Vec::new();
    for (i, l) in sources.iter().enumerate() {
        let r = &l.candidate.resource;
        let params = ListParams {
            field_selector: Some(format!("metadata.name={}", l.source.key.name)),
            ..ListParams::default()
        };
        let what = format!("listing {} named {}", r.plural, l.source.key.name);
        let same_named = client.list_all(r, None, &params).await.map_err(api(what))?;
        let kind = TypeRef::of(r).to_string();
        let input = Input {
            kind: &kind,
            file: file.as_deref(),
            source: &l.source,
            live: l.live,
            watched: watched(options, &l.candidate, &deny),
            namespaces: &namespaces,
            same_named: &same_named,
            settings: &settings,
            options,
        };
        let explanation = report::explain(&input);
        match req.output {
            Output::Text => {
                let sep = if i > 0 { "\n" } else { "" };
                write!(out, "{sep}{}", explanation.render(file.as_deref())).map_err(ExplainError::Write)?;
            }
            Output::Yaml | Output::Json => {
                mirrors.extend(built(&settings, &explanation, &l.source, req.namespace.as_deref())?);
            }
        }
    }
    let text = match req.output {
        Output::Text => return Ok(()),
        Output::Yaml => {
            let docs: Result<Vec<String>, _> = mirrors.iter().map(yaml::dump).collect();
            docs.map_err(|e| ExplainError::Config(e.to_string()))?.concat()
        }
        Output::Json => {
            let v = match <[Value; 1]>::try_from(mirrors) {
                Ok([one]) => one,
                Err(all) => json!({"apiVersion": "v1", "kind": "List", "items": all}),
            };
            format!("{}\n", serde_json::to_string_pretty(&v).map_err(|e| ExplainError::Config(e.to_string()))?)
        }
    };
    out.write_all(text.as_bytes()).map_err(ExplainError::Write)
}

/// The mirrors `-o yaml|json` prints: every target's, or `namespace`'s only.
fn built(
    settings: &Settings,
    e: &Explanation,
    src: &SourceObject,
    namespace: Option<&str>,
) -> Result<Vec<Value>, ExplainError> {
    if let Some(why) = e.not_mirrored.first() {
        return Err(ExplainError::NotMirrored(why.clone()));
    }
    let rows: Vec<&report::Row> = match namespace {
        None => e.targets.iter().filter(|r| r.action != Action::Skip).collect(),
        Some(ns) => match e.targets.iter().find(|r| r.namespace == ns) {
            Some(r) if r.action == Action::Skip => {
                return Err(ExplainError::NotATarget { namespace: ns.into(), why: r.why.clone() });
            }
            Some(r) => vec![r],
            None => {
                let why = e.others.iter().find(|r| r.namespace == ns).map(|r| r.why.clone());
                let why = why.unwrap_or_else(|| "there is no such namespace".into());
                return Err(ExplainError::NotATarget { namespace: ns.into(), why });
            }
        },
    };
    let ctx = settings.context();
    // Compiled once, as a pass does; rules that do not compile fail every target.
    let rules = ctx.transform.for_source(src);
    rows.iter()
        .map(|r| {
            if let Some(e) = rules.error() {
                let why = format!("its transformation rules do not compile: {e}");
                return Err(ExplainError::NotATarget { namespace: r.namespace.clone(), why });
            }
            build::build_mirror(src, &r.namespace, ctx.build, rules.transform(), ctx.now)
                .map(|d| d.object)
                .map_err(|e| ExplainError::NotATarget { namespace: r.namespace.clone(), why: e.to_string() })
        })
        .collect()
}

/// Whether the controller with these options watches the type, and if not why.
fn watched(options: &Options, c: &Candidate, deny: &DenyList) -> Result<(), String> {
    if let Some(list) = &options.resource_types {
        let types = discovery::parse_type_list(list).unwrap_or_default();
        if !types.iter().any(|t| t.kind == c.resource.kind && t.group == c.resource.group) {
            return Err(format!("it is not in --resource-types {list:?}"));
        }
    }
    discovery::rejection(c, deny).map_or(Ok(()), Err)
}

/// The type of `t`, from its group/version discovery document.
async fn candidate(client: &Client, t: &TypeRef) -> Result<Candidate, ExplainError> {
    let path = discovery::path_of(&t.group, &t.version);
    let doc = match client.get_path(&path).await {
        Ok(doc) => doc,
        Err(e) if e.is_not_found() => {
            return Err(ExplainError::Kind(format!("{t}: the cluster does not serve {path} (is its CRD installed?)")));
        }
        Err(e) => return Err(ExplainError::Api { what: format!("GET {path}"), error: e }),
    };
    discovery::resources_of(&doc, &t.group, &t.version)
        .into_iter()
        .find(|c| c.resource.kind == t.kind)
        .ok_or_else(|| ExplainError::Kind(format!("{t}: {path} has no kind {}", t.kind)))
}

/// `KIND` as typed: `Kind.version[.group]`, or a kind or plural name (any case) with an optional
/// `.group` (`secret`, `Secrets`, `ingress.networking.k8s.io`), looked up in discovery.
async fn find_kind(client: &Client, name: &str) -> Result<Candidate, ExplainError> {
    if let Ok(t) = TypeRef::parse(name) {
        return candidate(client, &t).await;
    }
    let (short, group) = match name.split_once('.') {
        Some((n, g)) => (n, Some(g)),
        None => (name, None),
    };
    let short = short.to_ascii_lowercase();
    let apis = client.get_path("/apis").await.map_err(api("GET /apis".into()))?;
    let mut gvs = vec![(String::new(), "v1".to_string())];
    gvs.extend(discovery::preferred_versions(&apis));
    for (g, v) in gvs.into_iter().filter(|(g, _)| group.is_none_or(|want| want == g)) {
        let Ok(doc) = client.get_path(&discovery::path_of(&g, &v)).await else { continue };
        let found = discovery::resources_of(&doc, &g, &v)
            .into_iter()
            .find(|c| c.resource.kind.to_ascii_lowercase() == short || c.resource.plural == short);
        if let Some(c) = found {
            return Ok(c);
        }
    }
    Err(ExplainError::Kind(format!("the cluster serves no kind or resource named {name:?}")))
}

async fn live(client: &Client, kind: &str, namespace: &str, name: &str) -> Result<Loaded, ExplainError> {
    let candidate = find_kind(client, kind).await?;
    let r = &candidate.resource;
    if !r.namespaced {
        return Err(ExplainError::Kind(format!("{} is not namespaced: it is never mirrored", r.kind)));
    }
    let what = format!("{} {namespace}/{name}", r.kind);
    let obj = match client.get(r, Some(namespace), name).await {
        Ok(o) => o,
        Err(e) if e.is_not_found() => return Err(ExplainError::NotFound(what)),
        Err(e) => return Err(ExplainError::Api { what: format!("reading {what}"), error: e }),
    };
    let source = SourceObject::from_object(obj).map_err(|e| ExplainError::Kind(format!("{what}: {e}")))?;
    Ok(Loaded { candidate, source, live: true })
}

/// The uid a file's object shows while it does not exist in the cluster.
const NOT_CREATED_UID: &str = "(not created yet)";

async fn from_file(client: &Client, path: &Path) -> Result<Vec<Loaded>, ExplainError> {
    let shown = path.display().to_string();
    let fail = |reason: String| ExplainError::File { path: shown.clone(), reason };
    let text = if path == Path::new("-") {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).map(|_| s)
    } else {
        std::fs::read_to_string(path)
    }
    .map_err(|e| fail(e.to_string()))?;
    let docs = yaml::load_all(&text).map_err(|e| fail(e.to_string()))?;
    let mut out = Vec::new();
    for (i, mut doc) in docs.into_iter().enumerate() {
        let (Some(api_version), Some(kind)) = (doc.api_version(), doc.kind()) else {
            return Err(fail(format!("document {} has no apiVersion or kind", i + 1)));
        };
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let t = TypeRef { kind: kind.to_string(), version: version.to_string(), group: group.to_string() };
        let candidate = candidate(client, &t).await?;
        let name = doc.name().unwrap_or_default().to_string();
        if !candidate.resource.namespaced {
            log::info!("{shown}: {} {name} is not namespaced, skipped", t.kind);
            continue;
        }
        if name.is_empty() {
            return Err(fail(format!("{} in document {} has no metadata.name", t.kind, i + 1)));
        }
        let namespace = doc.namespace().unwrap_or(client.default_namespace()).to_string();
        doc["metadata"]["namespace"] = json!(namespace);
        normalize_secret(&mut doc);
        let what = format!("{} {namespace}/{name}", t.kind);
        let existing = match client.get(&candidate.resource, Some(&namespace), &name).await {
            Ok(o) => Some(o),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(ExplainError::Api { what: format!("reading {what}"), error: e }),
        };
        lend_identity(&mut doc, existing.as_ref());
        let source = SourceObject::from_object(doc).map_err(|e| fail(format!("{what}: {e}")))?;
        out.push(Loaded { candidate, source, live: existing.is_some() });
    }
    Ok(out)
}

/// What the API server does to a Secret's `stringData` on write: merged into `data`, base64.
fn normalize_secret(doc: &mut Value) {
    if doc.api_version() != Some("v1") || doc.kind() != Some("Secret") {
        return;
    }
    let Some(Value::Object(string_data)) = doc.as_object_mut().and_then(|o| o.remove("stringData")) else { return };
    let data = doc.as_object_mut().map(|o| o.entry("data").or_insert_with(|| json!({})));
    if let Some(Value::Object(data)) = data {
        for (k, v) in string_data {
            let text = v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
            data.insert(k, Value::String(base64::encode(text.as_bytes())));
        }
    }
}

/// Server-owned metadata comes from the live object (an apply keeps it), or marks a new object.
fn lend_identity(doc: &mut Value, live: Option<&Value>) {
    let Some(meta) = doc.get_mut("metadata").and_then(Value::as_object_mut) else { return };
    match live.and_then(|l| l.get("metadata")) {
        Some(lm) => {
            for k in ["uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp", "finalizers"] {
                match lm.get(k) {
                    Some(v) => meta.insert(k.into(), v.clone()),
                    None => meta.remove(k),
                };
            }
        }
        None => {
            meta.insert("uid".into(), json!(NOT_CREATED_UID));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_data_becomes_data_as_the_server_does() {
        let mut s = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
            "data": {"a": "YQ=="}, "stringData": {"b": "b"}});
        normalize_secret(&mut s);
        assert_eq!(
            s,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
            "data": {"a": "YQ==", "b": "Yg=="}})
        );
        let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "stringData": {"b": "b"}});
        normalize_secret(&mut cm);
        assert!(cm.get("stringData").is_some());
    }

    #[test]
    fn a_file_object_takes_the_live_identity_or_a_placeholder() {
        let mut doc = json!({"metadata": {"name": "s", "uid": "fake", "finalizers": ["x"]}});
        let live = json!({"metadata": {"uid": "u1", "resourceVersion": "7", "finalizers": ["a", "b"]}});
        lend_identity(&mut doc, Some(&live));
        assert_eq!(
            doc["metadata"],
            json!({"name": "s", "uid": "u1", "resourceVersion": "7", "finalizers": ["a", "b"]})
        );
        let mut new = json!({"metadata": {"name": "s"}});
        lend_identity(&mut new, None);
        assert_eq!(new["metadata"]["uid"], NOT_CREATED_UID);
    }
}
