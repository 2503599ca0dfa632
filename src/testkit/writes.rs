//! Write semantics on top of the storage: what create, update, server-side apply and delete do to an
//! object before it is committed — defaults, validation, server-owned metadata, generation,
//! optimistic concurrency, finalizers, and the kind-specific rules (Secrets, Namespaces, CRDs).

use std::sync::Arc;

use serde_json::{Value, json};

use super::apply;
use super::discovery::ResourceInfo;
use super::errors::{ApiError, FieldError};
use super::store::{EventType, Obj, Store, now_string};
use super::validate;
use crate::util::base64;

#[derive(Debug, Clone, Default)]
pub struct WriteOpts {
    pub dry_run: bool,
    pub manager: String,
}

#[derive(Debug, Clone, Default)]
pub struct DeleteOpts {
    pub dry_run: bool,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
}

pub enum DeleteOutcome {
    /// Removed; the last state of the object.
    Gone(Value),
    /// Finalizers keep it; deletionTimestamp is set.
    Pending(Value),
}

/// `v.a.b = val`, replacing anything in the way that is not an object. Objects come from outside:
/// indexing into a string with serde_json's IndexMut would panic.
pub(super) fn set_in(v: &mut Value, path: &[&str], val: Value) {
    let mut cur = v;
    for seg in path {
        if !cur.is_object() {
            *cur = json!({});
        }
        cur = &mut cur[*seg];
    }
    *cur = val;
}

impl Store {
    fn check_namespace(&self, info: &ResourceInfo, ns: &str, name: &str) -> Result<(), ApiError> {
        if !info.namespaced {
            return Ok(());
        }
        let nsinfo = self.namespaces_info();
        match self.lookup(&nsinfo, "", ns) {
            None => Err(ApiError::not_found("", "namespaces", ns)),
            Some(n) if n.deleting => {
                let mut e = ApiError::forbidden(
                    &info.group,
                    &info.plural,
                    name,
                    &format!("unable to create new content in namespace {ns} because it is being terminated"),
                );
                e.body["details"]["causes"] = json!([{
                    "reason": "NamespaceTerminating",
                    "message": format!("namespace {ns} is being terminated"),
                    "field": "metadata.namespace"
                }]);
                Err(e)
            }
            Some(_) => Ok(()),
        }
    }

    /// Defaults and kind-specific rules shared by create and update.
    fn normalize(&self, info: &ResourceInfo, v: &mut Value, creating: bool) -> Result<(), ApiError> {
        v["apiVersion"] = json!(info.api_version());
        v["kind"] = json!(info.kind);
        if info.group.is_empty() && info.plural == "secrets" {
            // stringData is write-only: merged into data, never stored.
            if let Some(sd) = v.as_object_mut().and_then(|m| m.remove("stringData")) {
                if let Some(sd) = sd.as_object() {
                    for (k, val) in sd {
                        let s = val.as_str().unwrap_or("");
                        set_in(v, &["data", k.as_str()], json!(base64::encode(s.as_bytes())));
                    }
                }
            }
            if v.get("type").is_none_or(Value::is_null) {
                v["type"] = json!("Opaque");
            }
        }
        check_byte_fields(info, v)?;
        if info.group == "apiextensions.k8s.io" && info.plural == "customresourcedefinitions" {
            let name = v["metadata"]["name"].as_str().unwrap_or("").to_string();
            let plural = v.pointer("/spec/names/plural").and_then(Value::as_str).unwrap_or("");
            let group = v.pointer("/spec/group").and_then(Value::as_str).unwrap_or("");
            if name != format!("{plural}.{group}") {
                return Err(ApiError::invalid(
                    &info.group,
                    &info.kind,
                    &name,
                    &[FieldError::invalid("metadata.name", &name, "must be spec.names.plural+\".\"+spec.group")],
                ));
            }
            if !creating {
                return Ok(());
            }
            let names = v["spec"]["names"].clone();
            let storage: Vec<Value> = v["spec"]["versions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|x| x["storage"].as_bool() == Some(true))
                .map(|x| x["name"].clone())
                .collect();
            let now = now_string();
            v["status"] = json!({
                "conditions": [
                    {"type": "NamesAccepted", "status": "True", "lastTransitionTime": now, "reason": "NoConflicts", "message": "no conflicts found"},
                    {"type": "Established", "status": "True", "lastTransitionTime": now, "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"}
                ],
                "acceptedNames": names,
                "storedVersions": storage,
            });
        }
        Ok(())
    }

    /// Metadata and kind rules; `old`: the stored object, for the rules that only apply to updates.
    fn validate(&self, info: &ResourceInfo, v: &Value, old: Option<&Value>) -> Result<(), ApiError> {
        let is_ns = info.group.is_empty() && info.plural == "namespaces";
        let mut errs = validate::object_meta(v, is_ns);
        errs.extend(validate::kind_rules(&info.group, &info.plural, v, old));
        if errs.is_empty() {
            return Ok(());
        }
        let name = v["metadata"]["name"].as_str().unwrap_or("");
        Err(ApiError::invalid(&info.group, &info.kind, name, &errs))
    }

    /// Service defaults and clusterIP/nodePort allocation (see services.rs).
    fn admit_service(
        &mut self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        old: Option<&Value>,
        v: &mut Value,
        dry_run: bool,
    ) -> Result<(), ApiError> {
        if !(info.group.is_empty() && info.plural == "services") {
            return Ok(());
        }
        self.allocations
            .admit(&format!("{ns}/{name}"), old, v, dry_run)
            .map_err(|errs| ApiError::invalid("", &info.kind, name, &errs))
    }

    fn after_write(&mut self, info: &ResourceInfo, v: &Value, deleted: bool) -> Result<(), ApiError> {
        if deleted && info.group.is_empty() && info.plural == "services" {
            let key = format!(
                "{}/{}",
                v["metadata"]["namespace"].as_str().unwrap_or(""),
                v["metadata"]["name"].as_str().unwrap_or("")
            );
            self.allocations.release(&key);
        }
        check_byte_fields(info, v)?;
        if info.group == "apiextensions.k8s.io" && info.plural == "customresourcedefinitions" {
            let name = v["metadata"]["name"].as_str().unwrap_or("").to_string();
            if deleted {
                self.drop_custom_resources(v)?;
                self.registry.remove_crd(&name);
            } else {
                self.registry.install_crd(v).map_err(|e| ApiError::internal(&e))?;
            }
        }
        Ok(())
    }

    /// A CRD going away takes its objects with it (the real server does it in a finalizer).
    fn drop_custom_resources(&mut self, crd: &Value) -> Result<(), ApiError> {
        let group = crd.pointer("/spec/group").and_then(Value::as_str).unwrap_or("");
        let plural = crd.pointer("/spec/names/plural").and_then(Value::as_str).unwrap_or("");
        let Some(info) = self.registry.lookup_any(group, plural) else { return Ok(()) };
        let all: Vec<Arc<Obj>> = self
            .tables
            .get(&info.key())
            .map(|t| t.values().flat_map(|m| m.values().cloned()).collect())
            .unwrap_or_default();
        for o in all {
            self.commit(&info, EventType::Deleted, o.value())?;
        }
        Ok(())
    }

    pub fn create(&mut self, info: &ResourceInfo, ns: &str, mut v: Value, opts: &WriteOpts) -> Result<Value, ApiError> {
        if !v.is_object() {
            return Err(ApiError::bad_request("the request body must be a JSON object"));
        }
        if !v["metadata"].is_object() {
            v["metadata"] = json!({});
        }
        if info.namespaced {
            match v["metadata"]["namespace"].as_str() {
                Some(n) if !n.is_empty() && n != ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => v["metadata"]["namespace"] = json!(ns),
            }
        } else if let Some(m) = v["metadata"].as_object_mut() {
            m.remove("namespace");
        }
        // etcd3 store.Create refuses a set resourceVersion; the handler turns that into a 500.
        if v["metadata"]["resourceVersion"].as_str().and_then(|r| r.parse::<u64>().ok()).is_some_and(|r| r != 0) {
            // The storage error's text as it is, without "Internal error occurred: " (kube-apiserver 1.37).
            let msg = "resourceVersion should not be set on objects to be created";
            return Err(ApiError::new(500, "InternalError", msg, None));
        }
        let name_empty = v["metadata"]["name"].as_str().unwrap_or("").is_empty();
        if name_empty {
            if let Some(prefix) = v["metadata"]["generateName"].as_str().filter(|p| !p.is_empty()) {
                let name = format!("{prefix}{}", self.rng.suffix(5));
                v["metadata"]["name"] = json!(name);
            }
        }
        self.normalize(info, &mut v, true)?;
        self.validate(info, &v, None)?;
        let name = v["metadata"]["name"].as_str().unwrap_or("").to_string();
        self.check_namespace(info, ns, &name)?;
        if self.lookup(info, ns, &name).is_some() {
            return Err(ApiError::already_exists(&info.group, &info.plural, &name));
        }
        self.admit_service(info, ns, &name, None, &mut v, opts.dry_run)?;
        let now = now_string();
        let uid = self.uid();
        {
            let meta = &mut v["metadata"];
            meta["uid"] = json!(uid);
            meta["creationTimestamp"] = json!(now);
            if let Some(m) = meta.as_object_mut() {
                m.remove("deletionTimestamp");
                m.remove("deletionGracePeriodSeconds");
                m.remove("resourceVersion");
                if info.generation {
                    m.insert("generation".into(), json!(1));
                } else {
                    m.remove("generation");
                }
            }
        }
        if info.group.is_empty() && info.plural == "namespaces" {
            set_in(&mut v, &["metadata", "labels", "kubernetes.io/metadata.name"], json!(name));
            v["spec"] = json!({"finalizers": ["kubernetes"]});
            v["status"] = json!({"phase": "Active"});
        } else if info.custom && info.has_status {
            if let Some(m) = v.as_object_mut() {
                m.remove("status");
            }
        }
        if v["metadata"].get("managedFields").is_none() {
            apply::record_update(None, &mut v, &opts.manager, &info.api_version(), &now, apply::Scope::Main);
        }
        if opts.dry_run {
            // Never stored, so no resourceVersion at all (kube-apiserver 1.37 leaves the field out).
            if let Some(m) = v["metadata"].as_object_mut() {
                m.remove("resourceVersion");
            }
            return Ok(v);
        }
        let obj = self.commit(info, EventType::Added, v)?;
        let out = obj.value();
        self.after_write(info, &out, false)?;
        Ok(out)
    }

    /// PUT (and the tail of PATCH). `status_only`: the /status subresource. `is_patch`: the write need
    /// not carry a resourceVersion (a PUT of a custom resource must: AllowUnconditionalUpdate is false).
    #[allow(clippy::too_many_arguments)]
    pub fn update(
        &mut self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        mut v: Value,
        opts: &WriteOpts,
        status_only: bool,
        is_patch: bool,
    ) -> Result<Value, ApiError> {
        if !v.is_object() || !v["metadata"].is_object() {
            return Err(ApiError::bad_request("the request body must be an object with metadata"));
        }
        let body_name = v["metadata"]["name"].as_str().unwrap_or("");
        if body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        if info.namespaced {
            match v["metadata"]["namespace"].as_str() {
                Some(n) if !n.is_empty() && n != ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => v["metadata"]["namespace"] = json!(ns),
            }
        }
        // A patch whose result does not decode is the patch's fault: 422 on the field `patch`, with
        // the patched object in the message, as the apiserver's patcher reports it.
        if is_patch && let Err(at) = bad_byte_field(info, &v) {
            let cause =
                FieldError::invalid("patch", &v.to_string(), &format!("illegal base64 data at input byte {at}"));
            return Err(ApiError::invalid("", "", "", &[cause]));
        }
        let cur = self.get(info, ns, name)?;
        let old = cur.value();
        // The storage layer's precondition check, wrapped in its StorageError text.
        if let Some(uid) = v["metadata"]["uid"].as_str().filter(|u| !u.is_empty() && *u != cur.uid) {
            return Err(ApiError::conflict(
                &info.group,
                &info.plural,
                name,
                &format!(
                    "StorageError: invalid object, Code: 4, Key: {}, ResourceVersion: 0, AdditionalErrorMsg: \
                     Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    storage_key(info, ns, name),
                    cur.uid
                ),
            ));
        }
        match v["metadata"]["resourceVersion"].as_str().filter(|s| !s.is_empty()) {
            Some(rv) if rv != cur.rv.to_string() => return Err(ApiError::modified(&info.group, &info.plural, name)),
            Some(_) => {}
            None if info.custom && !is_patch => {
                return Err(ApiError::invalid(
                    &info.group,
                    &info.kind,
                    name,
                    &[FieldError::invalid("metadata.resourceVersion", "0x0", "must be specified for an update")],
                ));
            }
            None => {}
        }
        if status_only {
            let status = v.get("status").cloned();
            v = old.clone();
            match status {
                Some(s) => v["status"] = s,
                None => {
                    if let Some(m) = v.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
        } else if info.has_status {
            carry_over(&mut v, &old, "status");
        }
        self.normalize(info, &mut v, false)?;
        self.validate(info, &v, Some(&old))?;
        if cur.deleting {
            refuse_new_finalizers(info, name, &old, &v)?;
        }
        // Immutable and server-owned metadata comes from the stored object.
        for k in ["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"] {
            carry_over(&mut v["metadata"], &old["metadata"], k);
        }
        if info.group.is_empty() && info.plural == "namespaces" {
            // The namespace strategy keeps spec.finalizers from the stored object on update.
            set_in(&mut v, &["metadata", "labels", "kubernetes.io/metadata.name"], json!(name));
            set_in(&mut v, &["spec", "finalizers"], old.pointer("/spec/finalizers").cloned().unwrap_or(json!([])));
        }
        match old["metadata"].get("managedFields") {
            Some(mf) => v["metadata"]["managedFields"] = mf.clone(),
            None => {
                if let Some(m) = v["metadata"].as_object_mut() {
                    m.remove("managedFields");
                }
            }
        }
        v["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
        if !status_only {
            self.admit_service(info, ns, name, Some(&old), &mut v, opts.dry_run)?;
        }
        if info.generation && spec_changed(&old, &v) {
            let g = old["metadata"]["generation"].as_i64().unwrap_or(0);
            v["metadata"]["generation"] = json!(g + 1);
        }
        if strip_managed(&old) == strip_managed(&v) {
            // A no-op write: nothing stored, no new resourceVersion, no event (as the apiserver does).
            return Ok(old);
        }
        let scope = if status_only { apply::Scope::Status } else { apply::Scope::Main };
        apply::record_update(Some(&old), &mut v, &opts.manager, &info.api_version(), &now_string(), scope);
        let finalizers_left = v["metadata"]["finalizers"].as_array().is_some_and(|f| !f.is_empty());
        if cur.deleting && !finalizers_left && !is_namespace_pending(info, &v) {
            if opts.dry_run {
                return Ok(v);
            }
            let obj = self.commit(info, EventType::Deleted, v)?;
            let out = obj.value();
            self.after_write(info, &out, true)?;
            return Ok(out);
        }
        if opts.dry_run {
            return Ok(v);
        }
        let obj = self.commit(info, EventType::Modified, v)?;
        let out = obj.value();
        self.after_write(info, &out, false)?;
        Ok(out)
    }

    /// Server-side apply: merges with managed-field tracking, creating when absent.
    #[allow(clippy::too_many_arguments)]
    pub fn apply(
        &mut self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        config: &Value,
        opts: &WriteOpts,
        force: bool,
        status_only: bool,
    ) -> Result<(Value, bool), ApiError> {
        let now = now_string();
        let current = self.lookup(info, ns, name).map(|o| o.value());
        if status_only && current.is_none() {
            return Err(ApiError::not_found(&info.group, &info.plural, name));
        }
        let scope = if status_only { apply::Scope::Status } else { apply::Scope::Main };
        let mut merged =
            apply::apply(current.as_ref(), config, &opts.manager, force, &info.api_version(), &now, scope)?;
        if merged["metadata"]["name"].as_str().unwrap_or("").is_empty() {
            merged["metadata"]["name"] = json!(name);
        }
        match current {
            // The merged object carries the applier's managedFields, which create() keeps.
            None => Ok((self.create(info, ns, merged, opts)?, true)),
            Some(old) => {
                merged["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
                Ok((self.update_prepared(info, ns, name, merged, opts, status_only)?, false))
            }
        }
    }

    /// update() for apply: ownership was computed already, so the stored managedFields are replaced.
    fn update_prepared(
        &mut self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        merged: Value,
        opts: &WriteOpts,
        status_only: bool,
    ) -> Result<Value, ApiError> {
        let cur = self.get(info, ns, name)?;
        let old = cur.value();
        let mut v = merged;
        if info.has_status && !status_only {
            carry_over(&mut v, &old, "status");
        }
        self.normalize(info, &mut v, false)?;
        self.validate(info, &v, Some(&old))?;
        if cur.deleting {
            refuse_new_finalizers(info, name, &old, &v)?;
        }
        for k in ["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"] {
            carry_over(&mut v["metadata"], &old["metadata"], k);
        }
        if !status_only {
            self.admit_service(info, ns, name, Some(&old), &mut v, opts.dry_run)?;
        }
        if info.generation && spec_changed(&old, &v) {
            let g = old["metadata"]["generation"].as_i64().unwrap_or(0);
            v["metadata"]["generation"] = json!(g + 1);
        }
        v["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
        if strip_managed(&old) == strip_managed(&v)
            && old["metadata"]["managedFields"] == v["metadata"]["managedFields"]
        {
            return Ok(old);
        }
        if opts.dry_run {
            return Ok(v);
        }
        let finalizers_left = v["metadata"]["finalizers"].as_array().is_some_and(|f| !f.is_empty());
        let etype = if cur.deleting && !finalizers_left { EventType::Deleted } else { EventType::Modified };
        let obj = self.commit(info, etype, v)?;
        let out = obj.value();
        self.after_write(info, &out, etype == EventType::Deleted)?;
        Ok(out)
    }

    pub fn delete(
        &mut self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        opts: &DeleteOpts,
    ) -> Result<DeleteOutcome, ApiError> {
        let cur = self.get(info, ns, name)?;
        // rest.BeforeDelete checks the preconditions and names the Kind, not the resource (unlike the
        // storage layer's precondition errors on updates).
        if let Some(uid) = &opts.uid {
            if *uid != cur.uid {
                return Err(ApiError::conflict(
                    &info.group,
                    &info.kind,
                    name,
                    &format!(
                        "the UID in the precondition ({uid}) does not match the UID in record ({}). \
                         The object might have been deleted and then recreated",
                        cur.uid
                    ),
                ));
            }
        }
        if let Some(rv) = &opts.resource_version {
            if *rv != cur.rv.to_string() {
                return Err(ApiError::conflict(
                    &info.group,
                    &info.kind,
                    name,
                    &format!(
                        "the ResourceVersion in the precondition ({rv}) does not match the ResourceVersion in \
                         record ({}). The object might have been modified",
                        cur.rv
                    ),
                ));
            }
        }
        let mut v = cur.value();
        let has_finalizers = v["metadata"]["finalizers"].as_array().is_some_and(|f| !f.is_empty());
        let is_ns = info.group.is_empty() && info.plural == "namespaces";
        if has_finalizers || is_ns {
            if cur.deleting {
                return Ok(DeleteOutcome::Pending(v));
            }
            v["metadata"]["deletionTimestamp"] = json!(now_string());
            // A Namespace gets a deletionTimestamp only; other kinds a zero grace period too.
            if !is_ns {
                v["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            }
            if let Some(g) = v["metadata"]["generation"].as_i64() {
                v["metadata"]["generation"] = json!(g + 1);
            }
            if is_ns {
                set_in(&mut v, &["status", "phase"], json!("Terminating"));
            }
            if opts.dry_run {
                return Ok(DeleteOutcome::Pending(v));
            }
            let obj = self.commit(info, EventType::Modified, v)?;
            return Ok(DeleteOutcome::Pending(obj.value()));
        }
        if opts.dry_run {
            return Ok(DeleteOutcome::Gone(v));
        }
        let obj = self.commit(info, EventType::Deleted, v)?;
        let out = obj.value();
        self.after_write(info, &out, true)?;
        Ok(DeleteOutcome::Gone(out))
    }
}

/// ValidateObjectMetaUpdate: an object being deleted may lose finalizers but not gain new ones.
fn refuse_new_finalizers(info: &ResourceInfo, name: &str, old: &Value, new: &Value) -> Result<(), ApiError> {
    let list = |v: &Value| -> Vec<String> {
        v.pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|f| f.as_str().map(String::from)).collect())
            .unwrap_or_default()
    };
    let before = list(old);
    let added: Vec<String> = list(new).into_iter().filter(|f| !before.contains(f)).collect();
    if added.is_empty() {
        return Ok(());
    }
    let quoted: Vec<String> = added.iter().map(|f| format!("{f:?}")).collect();
    let detail = format!(
        "no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
        quoted.join(", ")
    );
    Err(ApiError::invalid(&info.group, &info.kind, name, &[FieldError::forbidden("metadata.finalizers", &detail)]))
}

/// base64.StdEncoding's rules (padding required, no whitespace); Err carries the offending offset.
fn strict_base64(v: &Value) -> Result<(), usize> {
    let Some(s) = v.as_str() else { return Err(0) };
    let b = s.as_bytes();
    let pad = b.iter().rev().take_while(|&&c| c == b'=').count();
    if pad > 2 {
        return Err(b.len() - pad);
    }
    let body = &b[..b.len() - pad];
    if let Some(i) = body.iter().position(|&c| !(c.is_ascii_alphanumeric() || c == b'+' || c == b'/')) {
        return Err(i);
    }
    if b.len() % 4 != 0 {
        return Err(b.len() / 4 * 4);
    }
    Ok(())
}

fn is_namespace_pending(info: &ResourceInfo, v: &Value) -> bool {
    info.group.is_empty()
        && info.plural == "namespaces"
        && v.pointer("/spec/finalizers").and_then(Value::as_array).is_some_and(|f| !f.is_empty())
}

fn strip_managed(v: &Value) -> Value {
    let mut c = v.clone();
    if let Some(m) = c["metadata"].as_object_mut() {
        m.remove("managedFields");
    }
    c
}

/// Whether anything but metadata and status differs: what bumps metadata.generation.
fn spec_changed(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut m = v.as_object().cloned().unwrap_or_default();
        for k in ["metadata", "status", "apiVersion", "kind"] {
            m.remove(k);
        }
        m
    };
    strip(old) != strip(new)
}

/// Secret `data` and ConfigMap `binaryData` are `[]byte` in Go, decoded with base64.StdEncoding when
/// the request body is read: bad base64 is a 400 before any validation.
fn check_byte_fields(info: &ResourceInfo, v: &Value) -> Result<(), ApiError> {
    bad_byte_field(info, v).map_err(|at| {
        ApiError::bad_request(format!(
            "{kind} in version \"v1\" cannot be handled as a {kind}: illegal base64 data at input byte {at}",
            kind = info.kind
        ))
    })
}

/// The offset of the first bad base64 byte in a `[]byte` field.
fn bad_byte_field(info: &ResourceInfo, v: &Value) -> Result<(), usize> {
    let byte_fields: &[&str] = match (info.group.as_str(), info.plural.as_str()) {
        ("", "secrets") => &["data"],
        ("", "configmaps") => &["binaryData"],
        _ => &[],
    };
    for field in byte_fields {
        for val in v[*field].as_object().into_iter().flat_map(|m| m.values()) {
            strict_base64(val)?;
        }
    }
    Ok(())
}

/// The object's etcd key, as storage errors name it: `/registry/<resource>/[<ns>/]<name>`, custom
/// resources under their group, Services under `services/specs`.
fn storage_key(info: &ResourceInfo, ns: &str, name: &str) -> String {
    let resource = match (info.custom, info.plural.as_str()) {
        (true, plural) => format!("{}/{plural}", info.group),
        (false, "services") if info.group.is_empty() => "services/specs".to_string(),
        (false, plural) => plural.to_string(),
    };
    if info.namespaced { format!("/registry/{resource}/{ns}/{name}") } else { format!("/registry/{resource}/{name}") }
}

/// Server-owned fields come from the stored object whatever the request says: copied when the
/// stored object has them, removed when it does not.
fn carry_over(dst: &mut Value, stored: &Value, key: &str) {
    match stored.get(key) {
        Some(x) => dst[key] = x.clone(),
        None => {
            if let Some(m) = dst.as_object_mut() {
                m.remove(key);
            }
        }
    }
}
