//! `metav1.Status` failure bodies, shaped exactly as kube-apiserver writes them
//! (k8s.io/apimachinery/pkg/api/errors/errors.go). Clients branch on `reason`, `code` and `details`,
//! so every constructor here mirrors one of apimachinery's `New*` functions.

use serde_json::{Map, Value, json};

/// A failed request: the HTTP code, the Status body, and an optional Retry-After (seconds).
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub body: Value,
    pub retry_after: Option<u64>,
}

/// What apimachinery calls a qualified resource: `secrets`, `deployments.apps`.
pub fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() { resource.to_string() } else { format!("{resource}.{group}") }
}

fn details(group: &str, resource: &str, name: &str) -> Value {
    let mut d = Map::new();
    if !name.is_empty() {
        d.insert("name".into(), json!(name));
    }
    if !group.is_empty() {
        d.insert("group".into(), json!(group));
    }
    if !resource.is_empty() {
        d.insert("kind".into(), json!(resource));
    }
    Value::Object(d)
}

impl ApiError {
    pub fn new(code: u16, reason: &str, message: impl Into<String>, details: Option<Value>) -> Self {
        let mut body = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message.into(),
            "reason": reason,
        });
        if let Some(d) = details {
            body["details"] = d;
        }
        body["code"] = json!(code);
        ApiError { code, body, retry_after: None }
    }

    pub fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or("")
    }

    pub fn reason(&self) -> &str {
        self.body["reason"].as_str().unwrap_or("")
    }

    /// The authentication filter's body: no details.
    pub fn unauthorized() -> Self {
        ApiError::new(401, "Unauthorized", "Unauthorized", None)
    }

    pub fn forbidden(group: &str, resource: &str, name: &str, why: &str) -> Self {
        let gr = qualified(group, resource);
        let msg = if name.is_empty() {
            format!("{gr} is forbidden: {why}")
        } else {
            format!("{gr} {name:?} is forbidden: {why}")
        };
        ApiError::new(403, "Forbidden", msg, Some(details(group, resource, name)))
    }

    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        let msg = format!("{} {name:?} not found", qualified(group, resource));
        ApiError::new(404, "NotFound", msg, Some(details(group, resource, name)))
    }

    /// Unknown path or resource under a known prefix (the apiserver's NotFound handler).
    pub fn no_route() -> Self {
        ApiError::new(404, "NotFound", "the server could not find the requested resource", Some(json!({})))
    }

    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        let msg = format!("{} {name:?} already exists", qualified(group, resource));
        ApiError::new(409, "AlreadyExists", msg, Some(details(group, resource, name)))
    }

    /// `NewConflict`: optimistic-concurrency failures and failed delete preconditions.
    pub fn conflict(group: &str, resource: &str, name: &str, why: &str) -> Self {
        let msg = format!("Operation cannot be fulfilled on {} {name:?}: {why}", qualified(group, resource));
        ApiError::new(409, "Conflict", msg, Some(details(group, resource, name)))
    }

    pub fn modified(group: &str, resource: &str, name: &str) -> Self {
        ApiError::conflict(
            group,
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// `NewResourceExpired`: 410 with reason Expired (watch resumption and stale continue tokens).
    pub fn expired(message: impl Into<String>) -> Self {
        ApiError::new(410, "Expired", message, None)
    }

    /// `NewInvalid`: 422 listing every field error as a cause. `kind` is the group-qualified Kind.
    pub fn invalid(group: &str, kind: &str, name: &str, causes: &[FieldError]) -> Self {
        let qkind = if group.is_empty() { kind.to_string() } else { format!("{kind}.{group}") };
        let rendered: Vec<String> = causes.iter().map(FieldError::render).collect();
        let joined = if rendered.len() == 1 { rendered[0].clone() } else { format!("[{}]", rendered.join(", ")) };
        let msg = format!("{qkind} {name:?} is invalid: {joined}");
        let mut d = Map::new();
        if !name.is_empty() {
            d.insert("name".into(), json!(name));
        }
        if !group.is_empty() {
            d.insert("group".into(), json!(group));
        }
        d.insert("kind".into(), json!(kind));
        let causes: Vec<Value> = causes
            .iter()
            .map(|c| json!({"reason": c.reason, "message": c.detail_message(), "field": c.field}))
            .collect();
        d.insert("causes".into(), Value::Array(causes));
        ApiError::new(422, "Invalid", msg, Some(Value::Object(d)))
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(400, "BadRequest", message, None)
    }

    pub fn method_not_allowed() -> Self {
        ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
            Some(json!({})),
        )
    }

    pub fn unsupported_media_type(accepted: &[&str]) -> Self {
        let msg = format!(
            "the body of the request was in an unknown format - accepted media types include: {}",
            accepted.join(", ")
        );
        ApiError::new(415, "UnsupportedMediaType", msg, None)
    }

    /// `NewTooManyRequests`: the body carries retryAfterSeconds and the response a Retry-After header.
    pub fn too_many_requests(retry_after: u64) -> Self {
        let mut e = ApiError::new(
            429,
            "TooManyRequests",
            "Too many requests, please try again later.",
            Some(json!({"retryAfterSeconds": retry_after})),
        );
        e.retry_after = Some(retry_after);
        e
    }

    pub fn internal(cause: &str) -> Self {
        ApiError::new(
            500,
            "InternalError",
            format!("Internal error occurred: {cause}"),
            Some(json!({"causes": [{"message": cause}]})),
        )
    }

    pub fn service_unavailable(retry_after: Option<u64>) -> Self {
        let mut e = ApiError::new(503, "ServiceUnavailable", "The service is unavailable.", None);
        e.retry_after = retry_after;
        e
    }

    /// The watch cache's answer when a list asks for a resourceVersion it has not reached.
    pub fn too_large_rv(asked: u64, current: u64) -> Self {
        let mut e = ApiError::new(
            504,
            "Timeout",
            format!("Timeout: Too large resource version: {asked}, current: {current}"),
            Some(json!({
                "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                "retryAfterSeconds": 1
            })),
        );
        e.retry_after = Some(1);
        e
    }

    /// Any code the fault injector is asked for, with the reason the apiserver would use for it.
    pub fn for_code(code: u16, retry_after: Option<u64>) -> Self {
        match code {
            429 => ApiError::too_many_requests(retry_after.unwrap_or(1)),
            500 => ApiError::internal("injected fault"),
            503 => ApiError::service_unavailable(retry_after),
            504 => ApiError::new(504, "Timeout", "Timeout: request did not complete within the allotted timeout", None),
            c => {
                let mut e = ApiError::new(c, "", format!("injected fault ({c})"), None);
                e.retry_after = retry_after;
                e
            }
        }
    }
}

/// One `field.Error`: rendered as `field: Type: detail` in the message, and as a cause.
#[derive(Debug, Clone)]
pub struct FieldError {
    pub field: String,
    /// StatusCause reason, e.g. `FieldValueInvalid`.
    pub reason: &'static str,
    /// The rendered `Invalid value: "x": detail` part (without the field path).
    pub detail: String,
}

impl FieldError {
    pub fn invalid(field: &str, value: &str, detail: &str) -> Self {
        FieldError {
            field: field.into(),
            reason: "FieldValueInvalid",
            detail: format!("Invalid value: {value:?}: {detail}"),
        }
    }

    pub fn required(field: &str, detail: &str) -> Self {
        let detail = if detail.is_empty() { "Required value".to_string() } else { format!("Required value: {detail}") };
        FieldError { field: field.into(), reason: "FieldValueRequired", detail }
    }

    pub fn too_long(field: &str, max: usize) -> Self {
        FieldError {
            field: field.into(),
            reason: "FieldValueTooLong",
            detail: format!("Too long: must have at most {max} bytes"),
        }
    }

    pub fn forbidden(field: &str, detail: &str) -> Self {
        FieldError { field: field.into(), reason: "FieldValueForbidden", detail: format!("Forbidden: {detail}") }
    }

    fn render(&self) -> String {
        format!("{}: {}", self.field, self.detail)
    }

    fn detail_message(&self) -> String {
        self.detail.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_matches_apimachinery() {
        let e = ApiError::not_found("apps", "deployments", "web");
        assert_eq!(e.message(), r#"deployments.apps "web" not found"#);
        assert_eq!(e.body["details"], json!({"name": "web", "group": "apps", "kind": "deployments"}));
        assert_eq!(e.body["code"], 404);
    }

    #[test]
    fn invalid_renders_one_or_many_causes() {
        let one = ApiError::invalid("", "Secret", "A", &[FieldError::invalid("metadata.name", "A", "bad")]);
        assert_eq!(one.message(), r#"Secret "A" is invalid: metadata.name: Invalid value: "A": bad"#);
        let two = ApiError::invalid(
            "",
            "Secret",
            "A",
            &[FieldError::required("metadata.name", ""), FieldError::too_long("metadata.annotations", 5)],
        );
        assert!(two.message().contains("is invalid: [metadata.name: Required value, metadata.annotations: Too long"));
        assert_eq!(two.body["details"]["causes"][1]["reason"], "FieldValueTooLong");
    }
}
