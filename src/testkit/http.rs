//! Request pipeline and routing: authentication, accounting, fault injection, authorization, then
//! discovery or a resource verb. Paths follow the apiserver's: /api/v1/[namespaces/NS/]PLURAL[/NAME[/SUB]]
//! and /apis/GROUP/VERSION/... . Everything read from the request is untrusted: errors, never panics.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, MutexGuard, PoisonError};

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER, USER_AGENT};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::Value;

use super::Shared;
use super::auth::{self, Attributes};
use super::discovery::Registry;
use super::errors::ApiError;
use super::handlers;
use super::openapi;
use super::render::{self, Format};
use super::store::Store;

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
pub(super) struct ResPath {
    pub(super) group: String,
    pub(super) version: String,
    pub(super) plural: String,
    pub(super) namespace: Option<String>,
    pub(super) name: Option<String>,
    pub(super) sub: Option<String>,
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

pub(super) fn lock(shared: &Shared) -> MutexGuard<'_, Store> {
    shared.store.lock().unwrap_or_else(PoisonError::into_inner)
}

pub fn full(bytes: impl Into<Bytes>) -> RespBody {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

pub(super) fn respond(shared: &Shared, code: u16, content_type: &str, body: Bytes) -> Response<RespBody> {
    shared.stats.sent(body.len());
    let mut r = Response::new(full(body));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(CONTENT_TYPE, v);
    }
    r
}

pub(super) fn respond_json(shared: &Shared, code: u16, v: &Value) -> Response<RespBody> {
    respond(shared, code, "application/json", Bytes::from(v.to_string()))
}

pub fn error_response(shared: &Shared, e: ApiError) -> Response<RespBody> {
    let mut r = respond_json(shared, e.code, &e.body);
    if let Some(secs) = e.retry_after {
        r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    r
}

/// Serves one request; `cert_user` is the user named by the connection's client certificate.
pub async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    cert_user: Option<Arc<str>>,
) -> Result<Response<RespBody>, Infallible> {
    let line = format!("{} {}", req.method(), req.uri());
    let mut who = None;
    let resp = match serve(&shared, req, cert_user.as_deref(), &mut who).await {
        Ok(r) => r,
        Err(e) => error_response(&shared, e),
    };
    // Whole bodies are counted here; watch streams count their frames as they are sent.
    if let (Some((user, verb)), Some(n)) = (who, hyper::body::Body::size_hint(resp.body()).exact()) {
        shared.stats.sent_to(&user, verb, n as usize);
    }
    log::debug!("testkit: {line} -> {}", resp.status().as_u16());
    Ok(resp)
}

/// What the handlers need from the request besides the path and body.
pub(super) struct Ctx {
    pub(super) user: auth::User,
    pub(super) q: HashMap<String, String>,
    pub(super) format: Format,
    pub(super) manager: String,
    pub(super) content_type: String,
}

/// `who` is set to the authenticated user's name and the request's verb.
async fn serve(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    cert_user: Option<&str>,
    who: &mut Option<(String, &'static str)>,
) -> Result<Response<RespBody>, ApiError> {
    let header = |name| req.headers().get(name).and_then(|v: &HeaderValue| v.to_str().ok()).map(String::from);
    let user = {
        let users = shared.users.lock().unwrap_or_else(PoisonError::into_inner);
        auth::authenticate(&users, header(AUTHORIZATION).as_deref(), cert_user)?.clone()
    };
    let q = parse_query(req.uri().query());
    let path = req.uri().path().to_string();
    let r = route(&path);
    let (verb, resource) = match &r {
        Route::Resource(p) => (verb_for(req.method(), p, &q), p.plural.clone()),
        _ => ("get", String::new()),
    };
    shared.stats.record(verb, &resource, &user.name);
    *who = Some((user.name.clone(), verb));

    // Discovery and other non-resource requests are matched by their path, so a test can fail one
    // group's discovery document (an aggregated API answering 503) and nothing else.
    let fault_target = if resource.is_empty() { path.as_str() } else { resource.as_str() };
    let decision = shared.faults.decide(verb, fault_target);
    if let Some(lat) = decision.latency {
        tokio::time::sleep(lat).await;
    }
    if let Some(mut rx) = decision.hang {
        let _hung = shared.stats.hung();
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
    if let Some((code, body)) = decision.canned {
        return Ok(respond(shared, code, "application/json", body));
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
        user: user.clone(),
        manager: q.get("fieldManager").cloned().filter(|m| !m.is_empty()).unwrap_or(default_manager),
        content_type: header(CONTENT_TYPE).unwrap_or_default(),
        q,
        format,
    };

    match r {
        Route::Version => Ok(respond_json(shared, 200, &Registry::version_doc(shared.opts.minor_version))),
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
            handlers::resource_verb(shared, verb, &info, &p, &ctx, &body)
        }
    }
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
