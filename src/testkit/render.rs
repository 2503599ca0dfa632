//! Response representations: full objects, PartialObjectMetadata(List) and meta.k8s.io/v1 Table,
//! chosen from the Accept header as the apiserver's content negotiation does. Lists are assembled
//! from the stored bytes without re-serializing items.

use std::sync::Arc;
use std::time::SystemTime;

use hyper::body::Bytes;
use serde_json::{Value, json};

use super::discovery::ResourceInfo;
use super::store::Obj;
use crate::util::time;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Full,
    Metadata,
    Table,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Full => "application/json",
            Format::Metadata => "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
            Format::Table => "application/json;as=Table;g=meta.k8s.io;v=v1",
        }
    }
}

/// Picks the first representation of the Accept list that we serve; None: nothing acceptable
/// (e.g. protobuf only), which the caller answers with 406.
pub fn negotiate(accept: Option<&str>) -> Option<Format> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else { return Some(Format::Full) };
    for part in accept.split(',') {
        let mut it = part.split(';').map(str::trim);
        let media = it.next().unwrap_or("");
        let mut as_ = None;
        let mut g = None;
        for p in it {
            match p.split_once('=') {
                Some(("as", v)) => as_ = Some(v),
                Some(("g", v)) => g = Some(v),
                _ => {}
            }
        }
        if !matches!(media, "application/json" | "*/*" | "application/*") {
            continue;
        }
        match (as_, g) {
            (None, _) => return Some(Format::Full),
            (Some("Table"), Some("meta.k8s.io")) => return Some(Format::Table),
            (Some("PartialObjectMetadata" | "PartialObjectMetadataList"), Some("meta.k8s.io")) => {
                return Some(Format::Metadata);
            }
            // Aggregated discovery and anything else we do not serve: the next alternative.
            _ => continue,
        }
    }
    None
}

#[derive(serde::Deserialize)]
struct MetadataOnly<'a> {
    #[serde(borrow)]
    metadata: Option<&'a serde_json::value::RawValue>,
}

/// PartialObjectMetadata straight from stored bytes: the metadata is sliced out, not re-encoded, and
/// the rest of the object is skipped by the parser (metadata-only lists of 50k objects stay cheap).
pub fn partial_metadata_bytes(obj: &[u8]) -> Vec<u8> {
    let meta =
        serde_json::from_slice::<MetadataOnly>(obj).ok().and_then(|m| m.metadata).map(|r| r.get()).unwrap_or("{}");
    let mut out = Vec::with_capacity(meta.len() + 80);
    out.extend_from_slice(br#"{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":"#);
    out.extend_from_slice(meta.as_bytes());
    out.push(b'}');
    out
}

pub fn partial_metadata(obj: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"].clone()})
}

/// k8s.io/apimachinery/pkg/util/duration.HumanDuration, as the Age column shows it.
pub fn human_duration(secs: u64) -> String {
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86400);
    if secs < 120 {
        format!("{secs}s")
    } else if m < 10 {
        if secs % 60 == 0 { format!("{m}m") } else { format!("{m}m{}s", secs % 60) }
    } else if h < 3 {
        format!("{m}m")
    } else if h < 8 {
        if m % 60 == 0 { format!("{h}h") } else { format!("{h}h{}m", m % 60) }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 192 {
        if h % 24 == 0 { format!("{d}d") } else { format!("{d}d{}h", h % 24) }
    } else if d < 365 * 2 {
        format!("{d}d")
    } else if d < 365 * 8 {
        let y = d / 365;
        if d % 365 == 0 { format!("{y}y") } else { format!("{y}y{}d", d % 365) }
    } else {
        format!("{}y", d / 365)
    }
}

fn age(obj: &Value) -> String {
    let created = obj.pointer("/metadata/creationTimestamp").and_then(Value::as_str).unwrap_or("");
    match time::parse_rfc3339(created) {
        Ok(t) => human_duration(SystemTime::now().duration_since(t).map(|d| d.as_secs()).unwrap_or(0)),
        Err(_) => "<unknown>".into(),
    }
}

const NAME_DESC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const AGE_DESC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

/// The columns `kubectl get` shows: the built-in printers' for Secrets, ConfigMaps and Namespaces,
/// the default Name/Age for everything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Columns {
    Default,
    Secret,
    ConfigMap,
    Namespace,
}

impl Columns {
    pub fn for_resource(group: &str, plural: &str) -> Self {
        match (group, plural) {
            ("", "secrets") => Columns::Secret,
            ("", "configmaps") => Columns::ConfigMap,
            ("", "namespaces") => Columns::Namespace,
            _ => Columns::Default,
        }
    }

    fn definitions(self) -> Value {
        let col = |name: &str, ty: &str, format: &str, desc: &str| json!({"name": name, "type": ty, "format": format, "description": desc, "priority": 0});
        let mut cols = vec![col("Name", "string", "name", NAME_DESC)];
        match self {
            Columns::Secret => {
                cols.push(col("Type", "string", "", "Used to facilitate programmatic handling of secret data."));
                cols.push(col("Data", "string", "", "Data contains the secret data."));
            }
            Columns::ConfigMap => cols.push(col("Data", "string", "", "Data contains the configuration data.")),
            Columns::Namespace => {
                cols.push(col("Status", "string", "", "The status of the namespace"));
            }
            Columns::Default => {}
        }
        cols.push(col("Age", "date", "", AGE_DESC));
        Value::Array(cols)
    }

    fn cells(self, obj: &Value) -> Vec<Value> {
        let count = |k: &str| obj[k].as_object().map_or(0, |m| m.len());
        let mut cells = vec![obj.pointer("/metadata/name").cloned().unwrap_or(json!(""))];
        match self {
            Columns::Secret => {
                cells.push(obj["type"].clone());
                cells.push(json!(count("data")));
            }
            Columns::ConfigMap => cells.push(json!(count("data") + count("binaryData"))),
            Columns::Namespace => cells.push(obj.pointer("/status/phase").cloned().unwrap_or(json!(""))),
            Columns::Default => {}
        }
        cells.push(json!(age(obj)));
        cells
    }
}

/// `includeObject`: None, Metadata (default) or Object.
pub fn table_row(columns: Columns, obj: &Value, include: &str) -> Value {
    let mut row = json!({"cells": columns.cells(obj)});
    match include {
        "None" => {}
        "Object" => row["object"] = obj.clone(),
        _ => row["object"] = partial_metadata(obj),
    }
    row
}

pub fn table(columns: Columns, rows: Vec<Value>, list_meta: Value) -> Value {
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": columns.definitions(),
        "rows": rows,
    })
}

pub fn list_meta(rv: u64, continue_token: Option<&str>, remaining: Option<i64>) -> Value {
    let mut m = json!({"resourceVersion": rv.to_string()});
    if let Some(c) = continue_token {
        m["continue"] = json!(c);
    }
    if let Some(r) = remaining {
        m["remainingItemCount"] = json!(r);
    }
    m
}

/// A list body in the requested representation.
pub fn list_body(info: &ResourceInfo, format: Format, items: &[Arc<Obj>], meta: Value, include: &str) -> Bytes {
    match format {
        Format::Full => {
            let head =
                json!({"kind": format!("{}List", info.kind), "apiVersion": info.api_version(), "metadata": meta});
            let head = head.to_string();
            // `{"kind":..,"metadata":..}` -> `{"kind":..,"metadata":..,"items":[...]}` without re-encoding items.
            let api_version = info.api_version();
            let mut out = Vec::with_capacity(head.len() + items.iter().map(|o| o.bytes.len() + 1).sum::<usize>() + 16);
            out.extend_from_slice(&head.as_bytes()[..head.len() - 1]);
            out.extend_from_slice(b",\"items\":[");
            for (i, o) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(&o.bytes_as(&api_version));
            }
            out.extend_from_slice(b"]}");
            Bytes::from(out)
        }
        Format::Metadata => {
            let head = json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": meta});
            let head = head.to_string();
            let mut out = Vec::with_capacity(head.len() + items.len() * 256);
            out.extend_from_slice(&head.as_bytes()[..head.len() - 1]);
            out.extend_from_slice(b",\"items\":[");
            for (i, o) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(&partial_metadata_bytes(&o.bytes));
            }
            out.extend_from_slice(b"]}");
            Bytes::from(out)
        }
        Format::Table => {
            let columns = Columns::for_resource(&info.group, &info.plural);
            let rows = items.iter().map(|o| table_row(columns, &o.value(), include)).collect();
            Bytes::from(table(columns, rows, meta).to_string())
        }
    }
}

/// A single object in the requested representation.
pub fn object_body(info: &ResourceInfo, format: Format, obj: &Value, include: &str) -> Value {
    match format {
        Format::Full => obj.clone(),
        Format::Metadata => partial_metadata(obj),
        Format::Table => {
            let rv = obj.pointer("/metadata/resourceVersion").cloned().unwrap_or(json!(""));
            let columns = Columns::for_resource(&info.group, &info.plural);
            table(columns, vec![table_row(columns, obj, include)], json!({"resourceVersion": rv}))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        assert_eq!(negotiate(None), Some(Format::Full));
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(negotiate(Some(kubectl)), Some(Format::Table));
        let meta = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";
        assert_eq!(negotiate(Some(meta)), Some(Format::Metadata));
        let aggregated = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
        assert_eq!(negotiate(Some(aggregated)), Some(Format::Full));
        assert_eq!(negotiate(Some("application/vnd.kubernetes.protobuf")), None);
    }

    #[test]
    fn metadata_bytes_match_the_value_form() {
        let obj = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "a", "labels": {"x": "y"}}, "data": {"k": "dg=="}});
        let bytes = partial_metadata_bytes(obj.to_string().as_bytes());
        let parsed: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(parsed, partial_metadata(&obj));
    }

    #[test]
    fn durations_like_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(125), "2m5s");
        assert_eq!(human_duration(3 * 3600 + 60), "3h1m");
        assert_eq!(human_duration(50 * 3600), "2d2h");
    }
}
