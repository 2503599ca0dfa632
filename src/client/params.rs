//! Request parameters for each verb and their query strings.

use std::time::Duration;

use serde_json::{Value, json};

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ListParams {
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    pub limit: Option<u32>,
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    /// "NotOlderThan" or "Exact".
    pub resource_version_match: Option<String>,
    pub metadata_only: bool,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct WatchParams {
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    pub resource_version: Option<String>,
    pub allow_bookmarks: bool,
    pub timeout_seconds: Option<u32>,
    /// Streams the current state first (watch-list); also sets resourceVersionMatch=NotOlderThan.
    pub send_initial_events: bool,
    pub metadata_only: bool,
    /// Longest silence tolerated on the stream; default `timeout_seconds + 5 s`.
    pub idle_timeout: Option<Duration>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct PostParams {
    pub field_manager: Option<String>,
    pub dry_run: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Patch {
    /// RFC 7386 JSON merge patch.
    Merge(Value),
    /// RFC 6902 JSON patch (an array of operations).
    Json(Value),
    Strategic(Value),
    /// Server-side apply; needs a field manager.
    Apply(Value),
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct PatchParams {
    pub field_manager: Option<String>,
    /// Server-side apply only: take ownership of conflicting fields.
    pub force: bool,
    pub dry_run: bool,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeleteParams {
    pub precondition_uid: Option<String>,
    pub precondition_resource_version: Option<String>,
    /// "Orphan", "Background" or "Foreground".
    pub propagation_policy: Option<String>,
    pub dry_run: bool,
}

/// Watches without an explicit idle timeout and without timeoutSeconds still notice a dead
/// connection: the API server's own default watch timeout is 30-60 min, bookmarks come every minute.
const DEFAULT_WATCH_IDLE: Duration = Duration::from_secs(5 * 60);
const WATCH_IDLE_SLACK: Duration = Duration::from_secs(5);

/// Field manager used for server-side apply when the caller names none (the server requires one).
pub const DEFAULT_FIELD_MANAGER: &str = "kubemirror";

/// Builds `k=v&k=v` with values percent-encoded.
#[derive(Default)]
pub(crate) struct Query(String);

impl Query {
    pub(crate) fn push(&mut self, key: &str, value: &str) {
        self.0.push(if self.0.is_empty() { '?' } else { '&' });
        self.0.push_str(key);
        self.0.push('=');
        self.0.push_str(&encode_component(value));
    }

    fn opt(&mut self, key: &str, value: &Option<String>) {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            self.push(key, v);
        }
    }

    /// "" or "?a=b&c=d".
    pub(crate) fn finish(self) -> String {
        self.0
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub(crate) fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl ListParams {
    pub(crate) fn query(&self) -> String {
        let mut q = Query::default();
        q.opt("labelSelector", &self.label_selector);
        q.opt("fieldSelector", &self.field_selector);
        if let Some(l) = self.limit {
            q.push("limit", &l.to_string());
        }
        q.opt("continue", &self.continue_token);
        q.opt("resourceVersion", &self.resource_version);
        q.opt("resourceVersionMatch", &self.resource_version_match);
        q.finish()
    }
}

impl WatchParams {
    pub(crate) fn query(&self) -> String {
        let mut q = Query::default();
        q.push("watch", "true");
        q.opt("labelSelector", &self.label_selector);
        q.opt("fieldSelector", &self.field_selector);
        q.opt("resourceVersion", &self.resource_version);
        if self.allow_bookmarks || self.send_initial_events {
            q.push("allowWatchBookmarks", "true");
        }
        if let Some(t) = self.timeout_seconds {
            q.push("timeoutSeconds", &t.to_string());
        }
        if self.send_initial_events {
            q.push("sendInitialEvents", "true");
            q.push("resourceVersionMatch", "NotOlderThan");
        }
        q.finish()
    }

    pub fn effective_idle_timeout(&self) -> Duration {
        match (self.idle_timeout, self.timeout_seconds) {
            (Some(d), _) => d,
            (None, Some(t)) => Duration::from_secs(u64::from(t)) + WATCH_IDLE_SLACK,
            (None, None) => DEFAULT_WATCH_IDLE,
        }
    }
}

impl PostParams {
    pub(crate) fn query(&self) -> String {
        let mut q = Query::default();
        q.opt("fieldManager", &self.field_manager);
        if self.dry_run {
            q.push("dryRun", "All");
        }
        q.finish()
    }
}

impl Patch {
    pub fn content_type(&self) -> &'static str {
        match self {
            Patch::Merge(_) => "application/merge-patch+json",
            Patch::Json(_) => "application/json-patch+json",
            Patch::Strategic(_) => "application/strategic-merge-patch+json",
            Patch::Apply(_) => "application/apply-patch+yaml",
        }
    }

    pub fn body(&self) -> &Value {
        match self {
            Patch::Merge(v) | Patch::Json(v) | Patch::Strategic(v) | Patch::Apply(v) => v,
        }
    }

    pub(crate) fn query(&self, p: &PatchParams) -> String {
        let mut q = Query::default();
        match (self, p.field_manager.as_deref()) {
            (_, Some(m)) if !m.is_empty() => q.push("fieldManager", m),
            (Patch::Apply(_), _) => q.push("fieldManager", DEFAULT_FIELD_MANAGER),
            _ => {}
        }
        // The server rejects force on anything but apply.
        if p.force && matches!(self, Patch::Apply(_)) {
            q.push("force", "true");
        }
        if p.dry_run {
            q.push("dryRun", "All");
        }
        q.finish()
    }
}

impl DeleteParams {
    /// The `DeleteOptions` body.
    pub(crate) fn body(&self) -> Value {
        let mut o = json!({"kind": "DeleteOptions", "apiVersion": "v1"});
        let mut pre = serde_json::Map::new();
        if let Some(u) = &self.precondition_uid {
            pre.insert("uid".into(), json!(u));
        }
        if let Some(rv) = &self.precondition_resource_version {
            pre.insert("resourceVersion".into(), json!(rv));
        }
        if !pre.is_empty() {
            o["preconditions"] = Value::Object(pre);
        }
        if let Some(p) = &self.propagation_policy {
            o["propagationPolicy"] = json!(p);
        }
        if self.dry_run {
            o["dryRun"] = json!(["All"]);
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_query_encodes_selectors() {
        let p = ListParams {
            label_selector: Some("app in (a,b),!x".into()),
            field_selector: Some("metadata.name=foo".into()),
            limit: Some(500),
            continue_token: Some("abc=".into()),
            resource_version: Some("0".into()),
            resource_version_match: Some("NotOlderThan".into()),
            metadata_only: true,
        };
        assert_eq!(
            p.query(),
            "?labelSelector=app%20in%20%28a%2Cb%29%2C%21x&fieldSelector=metadata.name%3Dfoo&limit=500\
             &continue=abc%3D&resourceVersion=0&resourceVersionMatch=NotOlderThan"
        );
        assert_eq!(ListParams::default().query(), "");
    }

    #[test]
    fn watch_query_and_idle_timeout() {
        let p = WatchParams {
            resource_version: Some("10".into()),
            allow_bookmarks: true,
            timeout_seconds: Some(290),
            ..Default::default()
        };
        assert_eq!(p.query(), "?watch=true&resourceVersion=10&allowWatchBookmarks=true&timeoutSeconds=290");
        assert_eq!(p.effective_idle_timeout(), Duration::from_secs(295));
        let p = WatchParams { send_initial_events: true, ..Default::default() };
        assert_eq!(
            p.query(),
            "?watch=true&allowWatchBookmarks=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan"
        );
        assert_eq!(p.effective_idle_timeout(), DEFAULT_WATCH_IDLE);
        let p =
            WatchParams { idle_timeout: Some(Duration::from_secs(1)), timeout_seconds: Some(9), ..Default::default() };
        assert_eq!(p.effective_idle_timeout(), Duration::from_secs(1));
    }

    #[test]
    fn patch_queries() {
        let apply = Patch::Apply(json!({}));
        assert_eq!(
            apply.query(&PatchParams { force: true, ..Default::default() }),
            "?fieldManager=kubemirror&force=true"
        );
        let merge = Patch::Merge(json!({}));
        assert_eq!(merge.query(&PatchParams { force: true, dry_run: true, ..Default::default() }), "?dryRun=All");
        assert_eq!(merge.content_type(), "application/merge-patch+json");
        assert_eq!(Patch::Json(json!([])).content_type(), "application/json-patch+json");
    }

    #[test]
    fn post_query_and_delete_body() {
        let p = PostParams { field_manager: Some("kubemirror".into()), dry_run: true };
        assert_eq!(p.query(), "?fieldManager=kubemirror&dryRun=All");
        let d = DeleteParams {
            precondition_uid: Some("u1".into()),
            precondition_resource_version: Some("5".into()),
            propagation_policy: Some("Background".into()),
            dry_run: false,
        };
        assert_eq!(
            d.body(),
            json!({"kind":"DeleteOptions","apiVersion":"v1","preconditions":{"uid":"u1","resourceVersion":"5"},
                "propagationPolicy":"Background"})
        );
    }
}
