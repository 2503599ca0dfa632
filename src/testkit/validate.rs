//! Object-metadata validation with the apiserver's messages (apimachinery's
//! pkg/util/validation/validation.go and pkg/api/validation/objectmeta.go).

use serde_json::Value;

use super::errors::FieldError;
use crate::selector::validate_label_key;
use crate::util::base64;

pub const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

/// IsValidLabelValue's messages, word for word (kube-apiserver reports them on `metadata.labels`).
fn label_value(s: &str) -> Vec<&'static str> {
    let b = s.as_bytes();
    let mut errs = Vec::new();
    if b.len() > 63 {
        errs.push("must be no more than 63 characters");
    }
    let ends = |c: &u8| c.is_ascii_alphanumeric();
    let ok = b.is_empty()
        || (b.first().is_some_and(ends)
            && b.last().is_some_and(ends)
            && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.')));
    if !ok {
        errs.push(LABEL_VALUE_MSG);
    }
    errs
}

fn is_label(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty() && alnum(b[0]) && alnum(b[b.len() - 1]) && b.iter().all(|&c| alnum(c) || c == b'-')
}

pub fn dns1123_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    if !is_label(s) {
        errs.push(LABEL_MSG.to_string());
    }
    errs
}

pub fn dns1123_subdomain(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push("must be no more than 253 characters".to_string());
    }
    if s.is_empty() || !s.split('.').all(is_label) {
        errs.push(SUBDOMAIN_MSG.to_string());
    }
    errs
}

/// Validates name, labels and annotations of an object about to be stored.
/// `label_names`: names must be DNS-1123 labels (namespaces) rather than subdomains.
pub fn object_meta(obj: &Value, label_names: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let meta = &obj["metadata"];
    let name = meta["name"].as_str().unwrap_or("");
    if name.is_empty() {
        errs.push(FieldError::required("metadata.name", "name or generateName is required"));
    } else {
        let msgs = if label_names { dns1123_label(name) } else { dns1123_subdomain(name) };
        for m in msgs {
            errs.push(FieldError::invalid("metadata.name", name, &m));
        }
    }
    for field in ["labels", "annotations"] {
        if meta.get(field).is_some_and(|m| !m.is_object() && !m.is_null()) {
            errs.push(FieldError::invalid(
                &format!("metadata.{field}"),
                &meta[field].to_string(),
                "must be a map of strings",
            ));
        }
    }
    if let Some(labels) = meta["labels"].as_object() {
        for (k, v) in labels {
            if let Err(m) = validate_label_key(k) {
                errs.push(FieldError::invalid("metadata.labels", k, &m));
            }
            match v.as_str() {
                Some(s) => {
                    for m in label_value(s) {
                        errs.push(FieldError::invalid("metadata.labels", s, m));
                    }
                }
                None => {
                    errs.push(FieldError::invalid(&format!("metadata.labels.{k}"), &v.to_string(), "must be a string"))
                }
            }
        }
    }
    if let Some(ann) = meta["annotations"].as_object() {
        let mut total = 0usize;
        for (k, v) in ann {
            if let Err(m) = validate_label_key(k) {
                errs.push(FieldError::invalid("metadata.annotations", k, &m));
            }
            match v.as_str() {
                Some(s) => total += k.len() + s.len(),
                None => errs.push(FieldError::invalid(
                    &format!("metadata.annotations.{k}"),
                    &v.to_string(),
                    "must be a string",
                )),
            }
        }
        if total > TOTAL_ANNOTATION_SIZE_LIMIT {
            errs.push(FieldError::too_long("metadata.annotations", TOTAL_ANNOTATION_SIZE_LIMIT));
        }
    }
    errs
}

/// Secrets and ConfigMaps hold at most this much data (api.MaxSecretSize).
pub const MAX_SECRET_SIZE: usize = 1024 * 1024;

const IMMUTABLE: &str = "field is immutable when `immutable` is set";

/// Kind-specific rules of core/v1 validation that clients run into: the Secret size limit, the keys
/// each Secret type requires, the immutable Secret type, and `immutable: true` Secrets and ConfigMaps (ValidateSecretUpdate,
/// ValidateConfigMapUpdate). `old` is the stored object on updates.
pub fn kind_rules(group: &str, plural: &str, v: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if !group.is_empty() || !matches!(plural, "secrets" | "configmaps") {
        return errs;
    }
    if plural == "secrets" {
        let size: usize = v["data"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, d)| {
                        k.len() + d.as_str().and_then(|s| base64::decode(s.as_bytes()).ok()).map_or(0, |b| b.len())
                    })
                    .sum()
            })
            .unwrap_or(0);
        if size > MAX_SECRET_SIZE {
            errs.push(FieldError::too_long("data", MAX_SECRET_SIZE));
        }
    }
    // ValidateSecretUpdate: the update rules first, then those of a new Secret.
    let type_rules = |errs: &mut Vec<FieldError>| {
        if plural == "secrets" {
            errs.extend(secret_type_rules(v));
        }
    };
    let Some(old) = old else {
        type_rules(&mut errs);
        return errs;
    };
    if plural == "secrets" && old.get("type") != v.get("type") {
        let t = v["type"].as_str().unwrap_or("");
        errs.push(FieldError::invalid("type", t, "field is immutable"));
    }
    if old["immutable"].as_bool() == Some(true) {
        if v["immutable"].as_bool() != Some(true) {
            errs.push(FieldError::forbidden("immutable", IMMUTABLE));
        }
        let fields: &[&str] = if plural == "secrets" { &["data"] } else { &["data", "binaryData"] };
        for f in fields {
            if old.get(*f) != v.get(*f) {
                errs.push(FieldError::forbidden(f, IMMUTABLE));
            }
        }
    }
    type_rules(&mut errs);
    errs
}

/// The keys each built-in Secret type requires (ValidateSecret), on create and update alike: a real
/// server refuses a `kubernetes.io/tls` Secret without `tls.key`, for instance.
fn secret_type_rules(v: &Value) -> Vec<FieldError> {
    let data = |k: &str| v["data"].get(k).and_then(Value::as_str);
    let missing = |k: &str| FieldError::required(&format!("data[{k}]"), "");
    let json_object = |k: &str| match data(k).map(|d| base64::decode(d.as_bytes())) {
        None => vec![missing(k)],
        Some(Ok(bytes)) => match serde_json::from_slice::<serde_json::Map<String, Value>>(&bytes) {
            Ok(_) => vec![],
            Err(e) => vec![FieldError::invalid(&format!("data[{k}]"), "<secret contents redacted>", &e.to_string())],
        },
        // Bad base64 is refused before validation.
        Some(Err(_)) => vec![],
    };
    match v["type"].as_str().unwrap_or("") {
        "kubernetes.io/service-account-token" => {
            let name = v.pointer("/metadata/annotations/kubernetes.io~1service-account.name").and_then(Value::as_str);
            if name.is_none_or(str::is_empty) {
                return vec![FieldError::required("metadata.annotations[kubernetes.io/service-account.name]", "")];
            }
            vec![]
        }
        "kubernetes.io/dockercfg" => json_object(".dockercfg"),
        "kubernetes.io/dockerconfigjson" => json_object(".dockerconfigjson"),
        // Either may be empty, but one must be there.
        "kubernetes.io/basic-auth" if data("username").is_none() && data("password").is_none() => {
            vec![missing("username"), missing("password")]
        }
        "kubernetes.io/ssh-auth" if data("ssh-privatekey").is_none_or(str::is_empty) => vec![missing("ssh-privatekey")],
        "kubernetes.io/tls" => ["tls.crt", "tls.key"].into_iter().filter(|k| data(k).is_none()).map(missing).collect(),
        _ => vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names() {
        assert!(dns1123_subdomain("a.b-c").is_empty());
        assert_eq!(dns1123_subdomain("Bad_Name").len(), 1);
        assert!(dns1123_label("a.b").len() == 1);
        assert_eq!(dns1123_label(&"a".repeat(64)).len(), 1);
    }

    #[test]
    fn immutable_secrets_and_configmaps() {
        let old = json!({"type": "Opaque", "immutable": true, "data": {"a": "YQ=="}});
        let same = old.clone();
        assert!(kind_rules("", "secrets", &same, Some(&old)).is_empty());
        let changed = json!({"type": "Opaque", "immutable": true, "data": {"a": "Yg=="}});
        let errs = kind_rules("", "secrets", &changed, Some(&old));
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "data");
        let retyped = json!({"type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}});
        assert_eq!(kind_rules("", "secrets", &retyped, Some(&json!({"type": "Opaque"})))[0].field, "type");
        let cm_old = json!({"immutable": true, "binaryData": {"b": "AA=="}});
        let cm_new = json!({"immutable": false});
        assert_eq!(kind_rules("", "configmaps", &cm_new, Some(&cm_old)).len(), 2);
        let big = json!({"data": {"k": crate::util::base64::encode(&vec![0u8; MAX_SECRET_SIZE])}});
        assert_eq!(kind_rules("", "secrets", &big, None).len(), 1);
    }

    #[test]
    fn secret_types_require_their_keys() {
        let secret = |t: &str, data: Value| json!({"type": t, "data": data});
        let fields = |v: &Value| kind_rules("", "secrets", v, None).into_iter().map(|e| e.field).collect::<Vec<_>>();
        assert_eq!(fields(&secret("kubernetes.io/tls", json!({"tls.crt": "eA=="}))), ["data[tls.key]"]);
        assert!(fields(&secret("kubernetes.io/tls", json!({"tls.crt": "", "tls.key": ""}))).is_empty());
        assert_eq!(fields(&secret("kubernetes.io/basic-auth", json!({}))), ["data[username]", "data[password]"]);
        assert!(fields(&secret("kubernetes.io/basic-auth", json!({"password": ""}))).is_empty());
        assert_eq!(fields(&secret("kubernetes.io/ssh-auth", json!({"ssh-privatekey": ""}))), ["data[ssh-privatekey]"]);
        let bad_json = secret("kubernetes.io/dockerconfigjson", json!({".dockerconfigjson": "eA=="}));
        let errs = kind_rules("", "secrets", &bad_json, None);
        assert_eq!(errs[0].field, "data[.dockerconfigjson]");
        assert!(errs[0].detail.starts_with("Invalid value: \"<secret contents redacted>\": "), "{}", errs[0].detail);
        let good_json = secret("kubernetes.io/dockercfg", json!({".dockercfg": "e30="}));
        assert!(fields(&good_json).is_empty());
        let token = secret("kubernetes.io/service-account-token", json!({}));
        assert_eq!(fields(&token), ["metadata.annotations[kubernetes.io/service-account.name]"]);
        assert!(fields(&secret("Opaque", json!({}))).is_empty());
        assert!(fields(&secret("example.com/anything", json!({}))).is_empty());
    }

    #[test]
    fn label_values_fail_with_the_apiservers_words_on_metadata_labels() {
        let errs = object_meta(&json!({"metadata": {"name": "ok", "labels": {"a": "not valid"}}}), false);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "metadata.labels");
        assert_eq!(errs[0].detail, format!("Invalid value: \"not valid\": {LABEL_VALUE_MSG}"));
        let long = "a".repeat(64) + "-";
        assert_eq!(label_value(&long), ["must be no more than 63 characters", LABEL_VALUE_MSG]);
        for good in ["", "MyValue", "my_value", "1.2-3"] {
            assert!(label_value(good).is_empty(), "{good}");
        }
    }

    #[test]
    fn annotation_budget() {
        let big = "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT);
        let obj = json!({"metadata": {"name": "ok", "annotations": {"a": big}}});
        let errs = object_meta(&obj, false);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "metadata.annotations");
        assert!(object_meta(&json!({"metadata": {"name": "ok", "labels": {"a": "b"}}}), false).is_empty());
        assert_eq!(object_meta(&json!({"metadata": {"name": "ok", "labels": "x"}}), false).len(), 1);
    }
}
