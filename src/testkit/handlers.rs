//! The resource verbs behind the router: get, list, watch, create, update, patch (all four kinds),
//! delete and deletecollection, each turning the request into store calls and the answer into the
//! negotiated representation.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::Response;
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use serde_json::{Value, json};

use super::Shared;
use super::auth;
use super::discovery::ResourceInfo;
use super::errors::{ApiError, FieldError};
use super::http::{Ctx, ResPath, RespBody, lock, respond, respond_json};
use super::patch;
use super::render::{self, Format};
use super::store::{DeleteOpts, DeleteOutcome, ListParams, WriteOpts};
use super::watch::{self, Start, WatchSpec};
use crate::selector::{FieldSelector, LabelSelector};
use crate::util::yaml;

fn selectors(q: &HashMap<String, String>) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let labels = LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or(""))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let fields = FieldSelector::parse(q.get("fieldSelector").map(String::as_str).unwrap_or(""))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok((labels, fields))
}

/// JSON or YAML request bodies for create and update, and protobuf for the few kinds
/// [`protobuf`](super::protobuf) knows; anything else is 415.
fn decode_object(ctx: &Ctx, body: &[u8]) -> Result<Value, ApiError> {
    let media = ctx.content_type.split(';').next().unwrap_or("").trim();
    let unsupported = || {
        ApiError::unsupported_media_type(&[
            "application/json",
            "application/yaml",
            "application/vnd.kubernetes.protobuf",
        ])
    };
    if media == "application/vnd.kubernetes.protobuf" {
        return super::protobuf::decode(body).map_err(|e| match e {
            super::protobuf::Error::UnknownKind(_) => unsupported(),
            super::protobuf::Error::Malformed(why) => {
                ApiError::bad_request(format!("the request body is not valid protobuf: {why}"))
            }
        });
    }
    let text = std::str::from_utf8(body).map_err(|_| ApiError::bad_request("the request body is not UTF-8"))?;
    match media {
        "application/json" | "" => serde_json::from_str(text)
            .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}"))),
        "application/yaml" => {
            yaml::load_one(text).map_err(|e| ApiError::bad_request(format!("the request body is not valid YAML: {e}")))
        }
        _ => Err(unsupported()),
    }
}

fn dry_run(q: &HashMap<String, String>) -> bool {
    q.get("dryRun").is_some_and(|d| !d.is_empty())
}

fn ok_object(shared: &Shared, ctx: &Ctx, info: &ResourceInfo, code: u16, obj: &Value) -> Response<RespBody> {
    let include = ctx.q.get("includeObject").map(String::as_str).unwrap_or("Metadata");
    let body = render::object_body(info, ctx.format, obj, include);
    respond(shared, code, ctx.format.content_type(), Bytes::from(body.to_string()))
}

pub(super) fn resource_verb(
    shared: &Arc<Shared>,
    verb: &str,
    info: &Arc<ResourceInfo>,
    p: &ResPath,
    ctx: &Ctx,
    body: &[u8],
) -> Result<Response<RespBody>, ApiError> {
    let ns = p.namespace.as_deref().unwrap_or("");
    let name = p.name.as_deref().unwrap_or("");
    let status_only = p.sub.as_deref() == Some("status");
    let opts = WriteOpts { dry_run: dry_run(&ctx.q), manager: ctx.manager.clone() };
    match verb {
        "get" => {
            let obj = lock(shared).get(info, ns, name)?;
            Ok(ok_object(shared, ctx, info, 200, &obj.value_as(&info.api_version())))
        }
        "list" => list(shared, info, p, ctx),
        "watch" => watch_request(shared, info, p, ctx),
        "create" => {
            if p.name.is_some() {
                return Err(ApiError::method_not_allowed());
            }
            let obj = decode_object(ctx, body)?;
            if info.group == "authorization.k8s.io" && info.plural.ends_with("subjectaccessreviews") {
                return Ok(ok_object(shared, ctx, info, 201, &access_review(shared, ctx, info, obj)));
            }
            let out = lock(shared).create(info, ns, obj, &opts)?;
            Ok(ok_object(shared, ctx, info, 201, &out))
        }
        "update" => {
            let obj = decode_object(ctx, body)?;
            let out = lock(shared).update(info, ns, name, obj, &opts, status_only, false)?;
            Ok(ok_object(shared, ctx, info, 200, &out))
        }
        "patch" => patch_request(shared, info, ns, name, ctx, body, &opts, status_only),
        "delete" => {
            let dopts = delete_options(ctx, body)?;
            match lock(shared).delete(info, ns, name, &dopts)? {
                DeleteOutcome::Pending(v) => Ok(ok_object(shared, ctx, info, 200, &v)),
                DeleteOutcome::Gone(v) => Ok(respond_json(shared, 200, &deleted_status(info, &v))),
            }
        }
        "deletecollection" => {
            let dopts = delete_options(ctx, body)?;
            let (labels, fields) = selectors(&ctx.q)?;
            let mut st = lock(shared);
            let params = ListParams {
                labels: &labels,
                fields: &fields,
                limit: None,
                continue_token: None,
                resource_version: None,
                rv_match: None,
            };
            let targets = st.list(info, p.namespace.as_deref(), &params)?;
            let mut items = Vec::new();
            for o in targets.items {
                match st.delete(info, &o.namespace, &o.name, &dopts)? {
                    DeleteOutcome::Gone(v) | DeleteOutcome::Pending(v) => items.push(v),
                }
            }
            let rv = st.current_rv();
            drop(st);
            let list = json!({
                "kind": format!("{}List", info.kind), "apiVersion": info.api_version(),
                "metadata": {"resourceVersion": rv.to_string()}, "items": items
            });
            Ok(respond_json(shared, 200, &list))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// SelfSubjectAccessReview / SubjectAccessReview (what `kubectl auth can-i` sends): never stored,
/// answered with status.allowed from the same allow-lists that authorize requests.
fn access_review(shared: &Shared, ctx: &Ctx, info: &ResourceInfo, mut review: Value) -> Value {
    let spec = &review["spec"];
    let user = if info.plural == "selfsubjectaccessreviews" {
        Some(ctx.user.clone())
    } else {
        let name = spec["user"].as_str().unwrap_or("");
        let users = shared.users.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        users.iter().find(|u| u.name == name).cloned()
    };
    let allowed = match (&user, spec.get("resourceAttributes")) {
        (None, _) => false,
        // Non-resource URLs (/healthz, /api, ...) are open to every authenticated user here.
        (Some(_), None) => true,
        (Some(u), Some(ra)) => {
            let s = |k: &str| ra[k].as_str().unwrap_or("").to_string();
            let attrs = auth::Attributes {
                verb: s("verb"),
                group: s("group"),
                resource: s("resource"),
                subresource: s("subresource"),
                namespace: s("namespace"),
                name: s("name"),
            };
            auth::authorize(u, &attrs).is_ok()
        }
    };
    if !review.is_object() {
        review = json!({});
    }
    review["apiVersion"] = json!(info.api_version());
    review["kind"] = json!(info.kind);
    if !review["metadata"].is_object() {
        review["metadata"] = json!({});
    }
    review["status"] = json!({"allowed": allowed});
    review
}

/// What `finalizeDelete` returns when the object is gone (ReturnDeletedObject=false).
fn deleted_status(info: &ResourceInfo, v: &Value) -> Value {
    let mut details = json!({"name": v["metadata"]["name"], "kind": info.plural, "uid": v["metadata"]["uid"]});
    if !info.group.is_empty() {
        details["group"] = json!(info.group);
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
}

fn delete_options(ctx: &Ctx, body: &[u8]) -> Result<DeleteOpts, ApiError> {
    let mut o = DeleteOpts { dry_run: dry_run(&ctx.q), ..Default::default() };
    let trimmed = body.iter().any(|b| !b.is_ascii_whitespace());
    let mut policy = ctx.q.get("propagationPolicy").cloned();
    if trimmed {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the DeleteOptions body is not valid JSON: {e}")))?;
        o.uid = v.pointer("/preconditions/uid").and_then(Value::as_str).map(String::from);
        o.resource_version = v.pointer("/preconditions/resourceVersion").and_then(Value::as_str).map(String::from);
        if v["dryRun"].as_array().is_some_and(|a| !a.is_empty()) {
            o.dry_run = true;
        }
        if let Some(p) = v["propagationPolicy"].as_str() {
            policy = Some(p.to_string());
        }
    }
    // Accepted for compatibility; there is no garbage collector, so all three behave as Background.
    if let Some(p) = policy.filter(|p| !matches!(p.as_str(), "Orphan" | "Background" | "Foreground")) {
        return Err(ApiError::invalid(
            "meta.k8s.io",
            "DeleteOptions",
            "",
            &[FieldError {
                field: "propagationPolicy".into(),
                reason: "FieldValueNotSupported",
                detail: format!(
                    "Unsupported value: {p:?}: supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
                ),
            }],
        ));
    }
    Ok(o)
}

#[allow(clippy::too_many_arguments)]
fn patch_request(
    shared: &Arc<Shared>,
    info: &Arc<ResourceInfo>,
    ns: &str,
    name: &str,
    ctx: &Ctx,
    body: &[u8],
    opts: &WriteOpts,
    status_only: bool,
) -> Result<Response<RespBody>, ApiError> {
    let media = ctx.content_type.split(';').next().unwrap_or("").trim().to_string();
    let mut accepted = vec!["application/json-patch+json", "application/merge-patch+json"];
    if !info.custom {
        accepted.push("application/strategic-merge-patch+json");
    }
    accepted.push("application/apply-patch+yaml");
    if !accepted.contains(&media.as_str()) {
        return Err(ApiError::unsupported_media_type(&accepted));
    }
    let text = std::str::from_utf8(body).map_err(|_| ApiError::bad_request("the patch is not UTF-8"))?;
    let patch_doc: Value = if media == "application/apply-patch+yaml" {
        serde_json::from_str(text)
            .or_else(|_| yaml::load_one(text))
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?
    } else {
        serde_json::from_str(text).map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?
    };
    if media == "application/apply-patch+yaml" {
        if ctx.q.get("fieldManager").is_none_or(|m| m.is_empty()) {
            return Err(ApiError::invalid(
                "meta.k8s.io",
                "PatchOptions",
                "",
                &[FieldError::required("fieldManager", "is required for apply patch")],
            ));
        }
        let force = ctx.q.get("force").is_some_and(|f| f == "true");
        let (out, created) = lock(shared).apply(info, ns, name, &patch_doc, opts, force, status_only)?;
        return Ok(ok_object(shared, ctx, info, if created { 201 } else { 200 }, &out));
    }
    let mut st = lock(shared);
    let current = st.get(info, ns, name)?.value();
    let mut next = current.clone();
    match media.as_str() {
        // kube-apiserver 1.37 says no more than this (empty details), whatever the operation's error.
        "application/json-patch+json" => patch::json_patch(&mut next, &patch_doc).map_err(|_| {
            ApiError::new(
                422,
                "Invalid",
                "the server rejected our request due to an error in our request",
                Some(json!({})),
            )
        })?,
        "application/merge-patch+json" => patch::merge_patch(&mut next, &patch_doc),
        _ => patch::strategic_merge_patch(&mut next, &patch_doc),
    }
    // A patch only checks resourceVersion when it sets one itself.
    if next["metadata"]["resourceVersion"] == current["metadata"]["resourceVersion"] {
        if let Some(m) = next["metadata"].as_object_mut() {
            m.insert("resourceVersion".into(), current["metadata"]["resourceVersion"].clone());
        }
    }
    let out = st.update(info, ns, name, next, opts, status_only, true)?;
    drop(st);
    Ok(ok_object(shared, ctx, info, 200, &out))
}

fn list(
    shared: &Arc<Shared>,
    info: &Arc<ResourceInfo>,
    p: &ResPath,
    ctx: &Ctx,
) -> Result<Response<RespBody>, ApiError> {
    let (labels, fields) = selectors(&ctx.q)?;
    let limit = match ctx.q.get("limit").filter(|l| !l.is_empty()) {
        Some(l) => Some(l.parse::<usize>().map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?),
        None => None,
    };
    let params = ListParams {
        labels: &labels,
        fields: &fields,
        limit,
        continue_token: ctx.q.get("continue").map(String::as_str),
        resource_version: ctx.q.get("resourceVersion").map(String::as_str),
        rv_match: ctx.q.get("resourceVersionMatch").map(String::as_str),
    };
    let res = lock(shared).list(info, p.namespace.as_deref(), &params)?;
    let meta = render::list_meta(res.rv, res.continue_token.as_deref(), res.remaining);
    let include = ctx.q.get("includeObject").map(String::as_str).unwrap_or("Metadata");
    let body = render::list_body(info, ctx.format, &res.items, meta, include);
    let ct = match ctx.format {
        Format::Metadata => "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
        f => f.content_type(),
    };
    Ok(respond(shared, 200, ct, body))
}

fn watch_request(
    shared: &Arc<Shared>,
    info: &Arc<ResourceInfo>,
    p: &ResPath,
    ctx: &Ctx,
) -> Result<Response<RespBody>, ApiError> {
    let q = &ctx.q;
    let (labels, mut fields) = selectors(q)?;
    if let Some(name) = &p.name {
        // GET .../NAME?watch=true is the deprecated single-object watch: a name field selector.
        fields.requirements.push(("metadata.name".into(), false, name.clone()));
    }
    let bookmarks = q.get("allowWatchBookmarks").is_some_and(|b| b == "true");
    let initial = q.get("sendInitialEvents").map(|s| s == "true");
    let rv = q.get("resourceVersion").cloned().unwrap_or_default();
    let gate = shared.opts.watch_list_enabled();
    // As kube-apiserver 1.37 answers with the WatchList gate off: any sendInitialEvents is refused.
    if initial == Some(true) || (initial.is_some() && !gate) {
        let mut errs = Vec::new();
        if q.get("resourceVersionMatch").map(String::as_str) != Some("NotOlderThan") {
            errs.push(FieldError::forbidden(
                "resourceVersionMatch",
                "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            ));
        }
        if !gate {
            errs.push(FieldError::forbidden(
                "sendInitialEvents",
                "sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled",
            ));
        } else if !bookmarks {
            errs.push(FieldError::forbidden(
                "allowWatchBookmarks",
                "sendInitialEvents requires setting allowWatchBookmarks to true",
            ));
        }
        if !errs.is_empty() {
            return Err(ApiError::invalid("meta.k8s.io", "ListOptions", "", &errs));
        }
    }
    // timeoutSeconds=0 means "the server's default", as in the apiserver's watch handler.
    let timeout = match q.get("timeoutSeconds").and_then(|t| t.parse::<u64>().ok()).filter(|t| *t > 0) {
        Some(t) => Duration::from_secs(t),
        None => shared.opts.default_watch_timeout,
    };
    let spec = WatchSpec {
        info: info.clone(),
        namespace: p.namespace.clone(),
        labels,
        fields,
        format: ctx.format,
        include: q.get("includeObject").cloned().unwrap_or_else(|| "Metadata".into()),
        bookmarks,
        bookmark_interval: shared.opts.bookmark_interval,
        timeout,
        user: ctx.user.name.clone(),
    };
    let st = lock(shared);
    let (start, rx) = if initial == Some(true) || (initial.is_none() && (rv.is_empty() || rv == "0")) {
        let (items, rx) = st.watch_initial(info, p.namespace.as_deref());
        (Start::Initial { items, rv: st.current_rv(), end_bookmark: initial == Some(true) }, rx)
    } else if rv.is_empty() || rv == "0" {
        let (evs, rx) = st.watch_from(info, st.current_rv())?;
        (Start::Replay(evs, st.current_rv()), rx)
    } else {
        let n: u64 = rv.parse().map_err(|_| {
            ApiError::invalid(
                "meta.k8s.io",
                "ListOptions",
                "",
                &[FieldError::invalid("resourceVersion", &rv, "must be a valid resource version")],
            )
        })?;
        match st.watch_from(info, n) {
            Ok((evs, rx)) => (Start::Replay(evs, n), rx),
            Err(e) => (Start::Expired(e), st.subscribe()),
        }
    };
    drop(st);
    let body =
        watch::spawn(spec, start, rx, shared.close_watches.subscribe(), shared.stats.clone(), shared.faults.clone());
    let mut r = Response::new(body.boxed());
    let ct = match ctx.format {
        Format::Full => "application/json",
        f => f.content_type(),
    };
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(ct));
    Ok(r)
}
