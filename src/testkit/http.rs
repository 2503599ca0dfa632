//! Request pipeline and routing: authentication, accounting, fault injection, authorization, then
//! discovery or a resource verb. Paths follow the apiserver's: /api/v1/[namespaces/NS/]PLURAL[/NAME[/SUB]]
//! and /apis/GROUP/VERSION/... . Everything read from the request is untrusted: errors, never panics.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, MutexGuard, PoisonError};
use std::time::Duration;

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER, USER_AGENT};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use super::Shared;
use super::auth::{self, Attributes};
use super::discovery::{Registry, ResourceInfo};
use super::errors::{ApiError, FieldError};
use super::openapi;
use super::patch;
use super::render::{self, Format};
use super::store::{DeleteOpts, DeleteOutcome, ListParams, Store, WriteOpts};
use super::watch::{self, Start, WatchSpec};
use crate::selector::{FieldSelector, LabelSelector};
use crate::util::yaml;

pub type RespBody = BoxBody<Bytes, Infallible>;

/// The apiserver's limit for JSON/YAML request bodies (3 MiB).
const MAX_BODY: usize = 3 * 1024 * 1024;

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Version,
    Api,
    Apis,
    Group(String),
    GroupVersion(String, String),
    OpenApiRoot,
    OpenApiDoc(String),
    Health,
    Resource(ResPath),
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct ResPath {
    group: String,
    version: String,
    plural: String,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

fn route(path: &str) -> Route {
    let segs: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, rest) = match segs.as_slice() {
        ["version"] => return Route::Version,
        ["healthz" | "livez" | "readyz", ..] => return Route::Health,
        ["openapi", "v3"] => return Route::OpenApiRoot,
        ["openapi", "v3", rest @ ..] => return Route::OpenApiDoc(rest.join("/")),
        ["openapi", ..] => return Route::Unknown,
        ["api"] => return Route::Api,
        ["apis"] => return Route::Apis,
        ["apis", g] => return Route::Group(g.to_string()),
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Route::Unknown,
    };
    let mut p = ResPath { group: group.into(), version: version.into(), ..Default::default() };
    let s = |x: &str| Some(x.to_string());
    match rest {
        [] => return Route::GroupVersion(group.into(), version.into()),
        ["namespaces", ns, plural, more @ ..] if !matches!(*plural, "status" | "finalize") => {
            p.namespace = s(ns);
            p.plural = plural.to_string();
            match more {
                [] => {}
                [name] => p.name = s(name),
                [name, sub] => {
                    p.name = s(name);
                    p.sub = s(sub);
                }
                _ => return Route::Unknown,
            }
        }
        [plural] => p.plural = plural.to_string(),
        [plural, name] => {
            p.plural = plural.to_string();
            p.name = s(name);
        }
        [plural, name, sub] => {
            p.plural = plural.to_string();
            p.name = s(name);
            p.sub = s(sub);
        }
        _ => return Route::Unknown,
    }
    Route::Resource(p)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    q.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn verb_for(method: &Method, p: &ResPath, q: &HashMap<String, String>) -> &'static str {
    let watch = q.get("watch").is_some_and(|w| w == "true" || w == "1");
    match (method, p.name.is_some()) {
        (&Method::GET, true) => {
            if watch {
                "watch"
            } else {
                "get"
            }
        }
        (&Method::GET, false) => {
            if watch {
                "watch"
            } else {
                "list"
            }
        }
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, true) => "delete",
        (&Method::DELETE, false) => "deletecollection",
        _ => "unknown",
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, Store> {
    shared.store.lock().unwrap_or_else(PoisonError::into_inner)
}

pub fn full(bytes: impl Into<Bytes>) -> RespBody {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

fn respond(shared: &Shared, code: u16, content_type: &str, body: Bytes) -> Response<RespBody> {
    shared.stats.sent(body.len());
    let mut r = Response::new(full(body));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(CONTENT_TYPE, v);
    }
    r
}

fn respond_json(shared: &Shared, code: u16, v: &Value) -> Response<RespBody> {
    respond(shared, code, "application/json", Bytes::from(v.to_string()))
}

pub fn error_response(shared: &Shared, e: ApiError) -> Response<RespBody> {
    let mut r = respond_json(shared, e.code, &e.body);
    if let Some(secs) = e.retry_after {
        r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    r
}

pub async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<RespBody>, Infallible> {
    let line = format!("{} {}", req.method(), req.uri());
    let resp = match serve(&shared, req).await {
        Ok(r) => r,
        Err(e) => error_response(&shared, e),
    };
    log::debug!("testkit: {line} -> {}", resp.status().as_u16());
    Ok(resp)
}

struct Ctx {
    q: HashMap<String, String>,
    format: Format,
    manager: String,
    content_type: String,
}

async fn serve(shared: &Arc<Shared>, req: Request<Incoming>) -> Result<Response<RespBody>, ApiError> {
    let header = |name| req.headers().get(name).and_then(|v: &HeaderValue| v.to_str().ok()).map(String::from);
    let user = auth::authenticate(&shared.users, header(AUTHORIZATION).as_deref())?.clone();
    let q = parse_query(req.uri().query());
    let path = req.uri().path().to_string();
    let r = route(&path);
    let (verb, resource) = match &r {
        Route::Resource(p) => (verb_for(req.method(), p, &q), p.plural.clone()),
        _ => ("get", String::new()),
    };
    shared.stats.record(verb, &resource, &user.name);

    let decision = shared.faults.decide(verb, &resource);
    if let Some(lat) = decision.latency {
        tokio::time::sleep(lat).await;
    }
    if let Some(mut rx) = decision.hang {
        // A dropped sender (server gone) also ends the wait.
        while !*rx.borrow() {
            if rx.changed().await.is_err() {
                break;
            }
        }
    }
    if let Some((code, retry)) = decision.fail {
        return Err(ApiError::for_code(code, retry));
    }

    if matches!(r, Route::Unknown) {
        return Err(ApiError::no_route());
    }
    let format = render::negotiate(header(ACCEPT).as_deref()).ok_or_else(|| {
        ApiError::new(
            406,
            "NotAcceptable",
            "only the following media types are accepted: application/json, application/yaml",
            None,
        )
    })?;
    let ua = header(USER_AGENT).unwrap_or_default();
    let default_manager = ua.split('/').next().unwrap_or("").to_string();
    let ctx = Ctx {
        manager: q.get("fieldManager").cloned().filter(|m| !m.is_empty()).unwrap_or(default_manager),
        content_type: header(CONTENT_TYPE).unwrap_or_default(),
        q,
        format,
    };

    match r {
        Route::Version => Ok(respond_json(shared, 200, &Registry::version_doc())),
        Route::Health => Ok(respond(shared, 200, "text/plain; charset=utf-8", Bytes::from_static(b"ok"))),
        Route::OpenApiRoot => Ok(respond_json(shared, 200, &openapi::root(&lock(shared).registry))),
        Route::OpenApiDoc(rest) => {
            let doc = openapi::gv_doc(&lock(shared).registry, &rest).ok_or_else(ApiError::no_route)?;
            Ok(respond_json(shared, 200, &doc))
        }
        Route::Api => Ok(respond_json(shared, 200, &Registry::api_versions(&shared.addr.to_string()))),
        Route::Apis => Ok(respond_json(shared, 200, &lock(shared).registry.api_group_list())),
        Route::Group(g) => {
            let doc = lock(shared).registry.api_group(&g).ok_or_else(ApiError::no_route)?;
            Ok(respond_json(shared, 200, &doc))
        }
        Route::GroupVersion(g, v) => {
            let doc = lock(shared).registry.resource_list(&g, &v).ok_or_else(ApiError::no_route)?;
            Ok(respond_json(shared, 200, &doc))
        }
        Route::Unknown => Err(ApiError::no_route()),
        Route::Resource(p) => {
            let attrs = Attributes {
                verb: verb.to_string(),
                group: p.group.clone(),
                resource: p.plural.clone(),
                subresource: p.sub.clone().unwrap_or_default(),
                namespace: p.namespace.clone().unwrap_or_default(),
                name: p.name.clone().unwrap_or_default(),
            };
            auth::authorize(&user, &attrs)?;
            let info = lock(shared).registry.lookup(&p.group, &p.version, &p.plural).ok_or_else(ApiError::no_route)?;
            if p.namespace.is_some() && !info.namespaced {
                return Err(ApiError::no_route());
            }
            if let Some(sub) = &p.sub {
                if sub != "status" || !info.has_status {
                    return Err(ApiError::no_route());
                }
            }
            if info.namespaced && p.namespace.is_none() {
                // The all-namespaces path only lists and watches.
                match verb {
                    "list" | "watch" if p.name.is_none() => {}
                    "create" | "deletecollection" => return Err(ApiError::method_not_allowed()),
                    _ => return Err(ApiError::no_route()),
                }
            }
            let method = req.method().clone();
            let body = match method {
                Method::POST | Method::PUT | Method::PATCH | Method::DELETE => {
                    match Limited::new(req.into_body(), MAX_BODY).collect().await {
                        Ok(b) => b.to_bytes(),
                        Err(e) if e.is::<LengthLimitError>() => {
                            return Err(ApiError::new(
                                413,
                                "RequestEntityTooLarge",
                                format!("Request entity too large: limit is {MAX_BODY}"),
                                None,
                            ));
                        }
                        Err(e) => return Err(ApiError::bad_request(format!("reading the request body: {e}"))),
                    }
                }
                _ => Bytes::new(),
            };
            resource_verb(shared, verb, &info, &p, &ctx, &body)
        }
    }
}

fn selectors(q: &HashMap<String, String>) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let labels = LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or(""))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let fields = FieldSelector::parse(q.get("fieldSelector").map(String::as_str).unwrap_or(""))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok((labels, fields))
}

/// JSON or YAML request bodies for create and update; anything else is 415.
fn decode_object(ctx: &Ctx, body: &[u8]) -> Result<Value, ApiError> {
    let media = ctx.content_type.split(';').next().unwrap_or("").trim();
    let text = std::str::from_utf8(body).map_err(|_| ApiError::bad_request("the request body is not UTF-8"))?;
    match media {
        "application/json" | "" => serde_json::from_str(text)
            .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}"))),
        "application/yaml" => {
            yaml::load_one(text).map_err(|e| ApiError::bad_request(format!("the request body is not valid YAML: {e}")))
        }
        other => Err(ApiError::unsupported_media_type(
            other,
            &["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"],
        )),
    }
}

fn dry_run(q: &HashMap<String, String>) -> bool {
    q.get("dryRun").is_some_and(|d| !d.is_empty())
}

fn ok_object(shared: &Shared, ctx: &Ctx, code: u16, obj: &Value) -> Response<RespBody> {
    let include = ctx.q.get("includeObject").map(String::as_str).unwrap_or("Metadata");
    let body = render::object_body(ctx.format, obj, include);
    respond(shared, code, ctx.format.content_type(), Bytes::from(body.to_string()))
}

fn resource_verb(
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
            Ok(ok_object(shared, ctx, 200, &obj.value()))
        }
        "list" => list(shared, info, p, ctx),
        "watch" => watch_request(shared, info, p, ctx),
        "create" => {
            if p.name.is_some() {
                return Err(ApiError::method_not_allowed());
            }
            let obj = decode_object(ctx, body)?;
            let out = lock(shared).create(info, ns, obj, &opts)?;
            Ok(ok_object(shared, ctx, 201, &out))
        }
        "update" => {
            let obj = decode_object(ctx, body)?;
            let out = lock(shared).update(info, ns, name, obj, &opts, status_only, false)?;
            Ok(ok_object(shared, ctx, 200, &out))
        }
        "patch" => patch_request(shared, info, ns, name, ctx, body, &opts, status_only),
        "delete" => {
            let dopts = delete_options(ctx, body)?;
            match lock(shared).delete(info, ns, name, &dopts)? {
                DeleteOutcome::Pending(v) => Ok(ok_object(shared, ctx, 200, &v)),
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
        return Err(ApiError::unsupported_media_type(&media, &accepted));
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
        return Ok(ok_object(shared, ctx, if created { 201 } else { 200 }, &out));
    }
    let mut st = lock(shared);
    let current = st.get(info, ns, name)?.value();
    let mut next = current.clone();
    match media.as_str() {
        "application/json-patch+json" => patch::json_patch(&mut next, &patch_doc).map_err(|e| {
            ApiError::new(
                422,
                "Invalid",
                format!("the server rejected our request due to an error in our request: {e}"),
                None,
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
    Ok(ok_object(shared, ctx, 200, &out))
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
    let (mut labels, mut fields) = selectors(q)?;
    if let Some(name) = &p.name {
        // GET .../NAME?watch=true is the deprecated single-object watch: a name field selector.
        fields.requirements.push(("metadata.name".into(), false, name.clone()));
    }
    let bookmarks = q.get("allowWatchBookmarks").is_some_and(|b| b == "true");
    let initial = q.get("sendInitialEvents").map(|s| s == "true");
    let rv = q.get("resourceVersion").cloned().unwrap_or_default();
    if initial == Some(true) {
        let mut errs = Vec::new();
        if q.get("resourceVersionMatch").map(String::as_str) != Some("NotOlderThan") {
            errs.push(FieldError::forbidden(
                "resourceVersionMatch",
                "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            ));
        }
        if !bookmarks {
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
        labels: std::mem::take(&mut labels),
        fields: std::mem::take(&mut fields),
        format: ctx.format,
        include: q.get("includeObject").cloned().unwrap_or_else(|| "Metadata".into()),
        bookmarks,
        bookmark_interval: shared.opts.bookmark_interval,
        timeout,
    };
    let st = lock(shared);
    let (start, rx) = if initial == Some(true) || (initial.is_none() && (rv.is_empty() || rv == "0")) {
        let (items, rx) = st.watch_initial(info, p.namespace.as_deref());
        (Start::Initial { items, rv: st.current_rv(), end_bookmark: initial == Some(true) }, rx)
    } else if rv.is_empty() || rv == "0" {
        let (evs, rx) = st.watch_from(st.current_rv())?;
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
        match st.watch_from(n) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let r = route("/api/v1/namespaces/a/secrets/x");
        let Route::Resource(p) = r else { panic!("{r:?}") };
        assert_eq!((p.namespace.as_deref(), p.plural.as_str(), p.name.as_deref()), (Some("a"), "secrets", Some("x")));
        let Route::Resource(p) = route("/api/v1/namespaces/a") else { panic!() };
        assert_eq!((p.plural.as_str(), p.name.as_deref()), ("namespaces", Some("a")));
        let Route::Resource(p) = route("/api/v1/namespaces/a/status") else { panic!() };
        assert_eq!((p.name.as_deref(), p.sub.as_deref()), (Some("a"), Some("status")));
        let Route::Resource(p) = route("/apis/apps/v1/deployments") else { panic!() };
        assert_eq!((p.group.as_str(), p.namespace), ("apps", None));
        assert_eq!(route("/apis/apps/v1"), Route::GroupVersion("apps".into(), "v1".into()));
        assert_eq!(route("/nope"), Route::Unknown);
    }

    #[test]
    fn query_decoding() {
        let q = parse_query(Some("labelSelector=a%3Db%2Cc+in+%28x%29&limit=5&bad=%zz"));
        assert_eq!(q["labelSelector"], "a=b,c in (x)");
        assert_eq!(q["limit"], "5");
        assert_eq!(q["bad"], "%zz");
        assert_eq!(percent_decode("%4"), "%4");
    }
}
