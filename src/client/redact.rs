//! What of a server's error may be shown. A `Status` message can echo what it was sent: a 422
//! quotes the rejected value (`Invalid value: "..."`), an admission webhook's denial is free text
//! that may quote anything, a proxy's error page anything at all. Logs, Events, the sync-status
//! annotation and metric labels get sizes, reasons and field names only, plus the few messages the
//! API server writes from fixed templates that carry no object content (RBAC denials, the name of
//! a denying webhook), rebuilt from the parts they are known to contain.

use serde_json::Value;

use super::error::{Reason, Status};

/// Longest identifier shown (an object name is at most 253 characters).
const MAX_TOKEN: usize = 253;
/// Causes named in a summary; the rest are counted.
const MAX_CAUSES: usize = 3;

/// `s` if it looks like an identifier the API server put there (object, user, resource, webhook or
/// field names): no spaces, quotes or control characters, bounded length.
fn token(s: &str) -> Option<&str> {
    let ok = !s.is_empty()
        && s.len() <= MAX_TOKEN
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '/' | '@' | '[' | ']'));
    ok.then_some(s)
}

/// The reason as shown: the known ones by name, anything else as `Other` (a reason string from an
/// unknown server or a webhook is free text too).
pub fn reason(r: &Reason) -> &str {
    match r {
        Reason::Other(_) => "Other",
        known => known.as_str(),
    }
}

/// `<resource> ["<name>"] is forbidden: User "<user>" cannot <verb> resource "<r>" in API group
/// "<g>"[ in the namespace "<ns>"]` (the authorizer's denial), rebuilt from its parts.
fn rbac(message: &str) -> Option<String> {
    let (head, tail) = message.split_once(" is forbidden: User \"")?;
    let mut words = head.split(' ');
    let resource = token(words.next()?)?;
    let name = match words.next() {
        None => None,
        Some(n) => Some(token(n.strip_prefix('"')?.strip_suffix('"')?)?),
    };
    if words.next().is_some() {
        return None;
    }
    let (user, rest) = tail.split_once('"')?;
    let rest = rest.strip_prefix(" cannot ")?;
    let (verb, rest) = rest.split_once(" resource \"")?;
    let verb = token(verb)?;
    let (res, rest) = rest.split_once("\" in API group \"")?;
    let (group, rest) = rest.split_once('"')?;
    let ns = match rest.strip_prefix(" in the namespace \"") {
        Some(r) => Some(token(r.split_once('"')?.0)?),
        None => None,
    };
    let mut out = resource.to_string();
    if let Some(n) = name {
        out.push_str(&format!(" {n:?}"));
    }
    out.push_str(&format!(" is forbidden: User {:?} cannot {verb} resource {:?}", token(user)?, token(res)?));
    out.push_str(&format!(" in API group {:?}", if group.is_empty() { "" } else { token(group)? }));
    if let Some(ns) = ns {
        out.push_str(&format!(" in the namespace {ns:?}"));
    }
    Some(out)
}

/// `admission webhook "<name>" denied the request...`: the webhook's name, never its words.
fn webhook(message: &str) -> Option<String> {
    let rest = message.strip_prefix("admission webhook \"")?;
    let (name, _) = rest.split_once("\" denied the request")?;
    Some(format!("admission webhook {:?} denied the request", token(name)?))
}

/// `unable to create new content in namespace <ns> because it is being terminated`.
/// The API server writes it as a Forbidden: `<resource> "<name>" is forbidden: unable to ...`.
fn terminating(message: &str) -> Option<String> {
    let (head, rest) = match message.split_once(" is forbidden: ") {
        Some((head, rest)) => (Some(head), rest),
        None => (None, message),
    };
    let prefix = match head {
        None => String::new(),
        Some(h) => {
            let (resource, name) = h.split_once(' ')?;
            let name = name.strip_prefix('"')?.strip_suffix('"')?;
            format!("{} {:?} is forbidden: ", token(resource)?, token(name)?)
        }
    };
    let ns = rest
        .strip_prefix("unable to create new content in namespace ")?
        .strip_suffix(" because it is being terminated")?;
    Some(format!("{prefix}unable to create new content in namespace {} because it is being terminated", token(ns)?))
}

/// `<resource> "<name>" not found` and `... already exists`.
fn named(message: &str) -> Option<String> {
    let (head, tail) = ["not found", "already exists"].iter().find_map(|t| Some((message.strip_suffix(t)?, *t)))?;
    let (resource, name) = head.strip_suffix(' ')?.split_once(' ')?;
    let name = name.strip_prefix('"')?.strip_suffix('"')?;
    Some(format!("{} {:?} {tail}", token(resource)?, if name.is_empty() { "" } else { token(name)? }))
}

/// The fields a 422 names (`data[password]`, `metadata.name`) with each cause's reason.
fn causes(details: Option<&Value>) -> Option<String> {
    let list = details?.get("causes")?.as_array()?;
    let shown: Vec<String> = list
        .iter()
        .take(MAX_CAUSES)
        .map(|c| {
            let field = c.get("field").and_then(Value::as_str).and_then(token).unwrap_or("?");
            let why = c.get("reason").and_then(Value::as_str).and_then(token).unwrap_or("?");
            format!("{field} ({why})")
        })
        .collect();
    if shown.is_empty() {
        return None;
    }
    let more = list.len().saturating_sub(MAX_CAUSES);
    let tail = if more > 0 { format!(" and {more} more") } else { String::new() };
    Some(format!("{}{tail}", shown.join(", ")))
}

/// Messages the client writes itself (never server text).
pub(crate) const NON_STATUS_PREFIX: &str = "non-Status body of ";

/// A `Status` for logs, Events and the sync-status: code, reason, the object it names, the
/// fields a 422 names, an RBAC denial or a webhook's name; any other message only by its size.
pub fn summary(s: &Status) -> String {
    let mut out = format!("{} {}", s.code, reason(&s.reason));
    let d = s.details.as_ref();
    let kind = d.and_then(|d| d.get("kind")).and_then(Value::as_str).and_then(token);
    let name = d.and_then(|d| d.get("name")).and_then(Value::as_str).and_then(token);
    let message = s.message.trim();
    let known = if message.starts_with(NON_STATUS_PREFIX) && message.len() < 64 {
        Some(message.to_string())
    } else {
        rbac(message).or_else(|| webhook(message)).or_else(|| terminating(message)).or_else(|| named(message))
    };
    match (&known, kind, name) {
        (Some(m), _, _) => out.push_str(&format!(": {m}")),
        (None, Some(k), Some(n)) => out.push_str(&format!(": {k} {n:?}")),
        (None, None, Some(n)) => out.push_str(&format!(": {n:?}")),
        _ => {}
    }
    if let Some(c) = causes(d) {
        let label = if s.reason == Reason::Invalid { "invalid" } else { "causes" };
        out.push_str(&format!("; {label}: {c}"));
    }
    if known.is_none() && !message.is_empty() {
        out.push_str(&format!(" (message of {} bytes withheld)", message.len()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn status(code: u16, reason: &str, message: &str, details: Option<Value>) -> Status {
        Status { code, reason: Reason::parse(reason), message: message.into(), details, retry_after: None }
    }

    const CANARY: &str = "kmcanary7Qx9";

    #[test]
    fn rbac_denials_are_rebuilt_from_their_parts() {
        let m = r#"secrets "db" is forbidden: User "system:serviceaccount:km:km" cannot create resource "secrets" in API group "" in the namespace "app1""#;
        assert_eq!(summary(&status(403, "Forbidden", m, None)), format!("403 Forbidden: {m}"));
        let m = r#"configmaps is forbidden: User "a" cannot list resource "configmaps" in API group "" at the cluster scope"#;
        assert_eq!(
            summary(&status(403, "Forbidden", m, None)),
            r#"403 Forbidden: configmaps is forbidden: User "a" cannot list resource "configmaps" in API group """#
        );
        // Anything odd in a quoted part: the whole message is withheld.
        let m = format!(r#"secrets is forbidden: User "{CANARY} x" cannot get resource "secrets" in API group """#);
        let s = summary(&status(403, "Forbidden", &m, None));
        assert!(!s.contains(CANARY) && s.contains("withheld"), "{s}");
    }

    #[test]
    fn webhook_denials_keep_only_the_webhook_name() {
        let m = format!(r#"admission webhook "policy.example.com" denied the request: value "{CANARY}" is banned"#);
        let s = summary(&status(400, "BadRequest", &m, None));
        assert_eq!(s, format!("400 BadRequest: admission webhook \"policy.example.com\" denied the request"));
        assert!(!s.contains(CANARY));
    }

    #[test]
    fn invalid_values_show_fields_and_reasons_never_values() {
        let m = format!(r#"Secret "db" is invalid: data[password]: Invalid value: "{CANARY}": too long"#);
        let d = json!({"kind": "Secret", "name": "db", "causes": [
            {"reason": "FieldValueInvalid", "message": format!("Invalid value: \"{CANARY}\""), "field": "data[password]"},
            {"reason": "FieldValueTooLong", "message": CANARY, "field": "metadata.annotations"},
            {"reason": "FieldValueInvalid", "message": CANARY, "field": format!("bad field {CANARY}")},
            {"reason": "FieldValueInvalid", "message": CANARY, "field": "x"},
        ]});
        let s = summary(&status(422, "Invalid", &m, Some(d)));
        assert!(!s.contains(CANARY), "{s}");
        assert!(s.starts_with("422 Invalid: Secret \"db\"; invalid: data[password] (FieldValueInvalid)"), "{s}");
        assert!(s.contains("metadata.annotations (FieldValueTooLong), ? (FieldValueInvalid) and 1 more"), "{s}");
        assert!(s.ends_with(&format!("(message of {} bytes withheld)", m.len())), "{s}");
    }

    #[test]
    fn not_found_and_already_exists_are_named() {
        for m in [r#"namespaces "nowhere" not found"#, r#"secrets "db" already exists"#] {
            assert_eq!(summary(&status(404, "NotFound", m, None)), format!("404 NotFound: {m}"));
        }
        let m = format!(r#"secrets "{CANARY} x" not found"#);
        assert!(!summary(&status(404, "NotFound", &m, None)).contains(CANARY));
    }

    #[test]
    fn a_terminating_namespace_is_named() {
        let m = "unable to create new content in namespace doomed because it is being terminated";
        let d = json!({"name": "new", "kind": "configmaps",
            "causes": [{"reason": "NamespaceTerminating", "message": m, "field": "metadata.namespace"}]});
        assert_eq!(
            summary(&status(403, "Forbidden", m, Some(d))),
            format!("403 Forbidden: {m}; causes: metadata.namespace (NamespaceTerminating)")
        );
        let m = format!("configmaps \"new\" is forbidden: {m}");
        assert_eq!(summary(&status(403, "Forbidden", &m, None)), format!("403 Forbidden: {m}"));
    }

    #[test]
    fn unknown_reasons_and_free_text_are_withheld() {
        let s = summary(&status(418, CANARY, &format!("I am a teapot holding {CANARY}"), None));
        assert!(!s.contains(CANARY), "{s}");
        assert!(s.starts_with("418 Other (message of"), "{s}");
        assert_eq!(
            summary(&status(409, "Conflict", "", Some(json!({"name": "x", "kind": "secrets"})))),
            "409 Conflict: secrets \"x\""
        );
        let own = format!("{NON_STATUS_PREFIX}12 bytes");
        assert_eq!(summary(&status(502, "", &own, None)), format!("502 Other: {own}"));
    }
}
