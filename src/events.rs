//! Kubernetes Events on sources ("why didn't it copy?"), deduplicated and rate-limited so a broken
//! source cannot flood the API server: a repeat of the same reason and message within the
//! correlation window bumps the existing Event's count (one PATCH) instead of creating a new one,
//! and each object has a small token bucket (client-go's spam filter does the same).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};

use crate::client::{ApiResource, Client, Patch, PatchParams, PostParams};
use crate::util::ratelimit::TokenBucket;
use crate::util::time::format_rfc3339;

/// Repeats within this window update the existing Event.
const CORRELATION_WINDOW: Duration = Duration::from_secs(600);
/// Per object: a burst of 10, then one Event per 5 minutes.
const PER_OBJECT_BURST: u32 = 10;
const PER_OBJECT_QPS: f64 = 1.0 / 300.0;
/// Bound on remembered objects; entries idle for a window are dropped first.
const MAX_TRACKED: usize = 4096;
/// The API server rejects longer messages.
const MAX_MESSAGE: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// The object an Event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvolvedObject {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

struct Seen {
    event_name: String,
    count: u64,
    last: Instant,
}

struct PerObject {
    bucket: TokenBucket,
    last_used: Instant,
}

pub struct EventRecorder {
    client: Client,
    instance: String,
    seen: Mutex<HashMap<(String, String, String), Seen>>,
    limits: Mutex<HashMap<String, PerObject>>,
}

fn truncate(message: &str) -> String {
    if message.len() <= MAX_MESSAGE {
        return message.to_string();
    }
    let mut end = MAX_MESSAGE - 3;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &message[..end])
}

/// `<object>.<stamp>` as client-go names Events, cut so it stays a valid name (at most 253
/// characters) for objects whose own name is already near the limit.
pub fn event_name(object: &str, stamp: u128) -> String {
    let suffix = format!(".{stamp:x}");
    let mut room = 253usize.saturating_sub(suffix.len()).min(object.len());
    while !object.is_char_boundary(room) {
        room -= 1;
    }
    let mut head = &object[..room];
    // A cut must not leave a trailing '.' or '-'.
    while head.ends_with(['.', '-']) {
        head = &head[..head.len() - 1];
    }
    format!("{head}{suffix}")
}

/// The Event body the API server expects (core/v1, as client-go's recorder writes it).
/// A new Event (count 1); repeats are PATCHed.
pub fn event_body(
    obj: &InvolvedObject,
    name: &str,
    ty: EventType,
    reason: &str,
    message: &str,
    instance: &str,
) -> Value {
    let now = format_rfc3339(SystemTime::now());
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": obj.namespace},
        "involvedObject": {
            "apiVersion": obj.api_version, "kind": obj.kind, "namespace": obj.namespace,
            "name": obj.name, "uid": obj.uid,
        },
        "reason": reason,
        "message": truncate(message),
        "type": ty.as_str(),
        "source": {"component": crate::keys::MANAGED_BY_VALUE},
        "reportingComponent": crate::keys::MANAGED_BY_VALUE,
        "reportingInstance": instance,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    })
}

impl EventRecorder {
    pub fn new(client: Client, instance: &str) -> Self {
        EventRecorder {
            client,
            instance: instance.to_string(),
            seen: Mutex::new(HashMap::new()),
            limits: Mutex::new(HashMap::new()),
        }
    }

    fn allowed(&self, uid: &str, now: Instant) -> bool {
        let mut limits = self.limits.lock().unwrap_or_else(|p| p.into_inner());
        if limits.len() >= MAX_TRACKED {
            limits.retain(|_, p| now.duration_since(p.last_used) < CORRELATION_WINDOW);
        }
        let entry = limits.entry(uid.to_string()).or_insert_with(|| PerObject {
            bucket: TokenBucket::new(PER_OBJECT_QPS, PER_OBJECT_BURST),
            last_used: now,
        });
        entry.last_used = now;
        // Over budget: drop the Event rather than queue it (the sync-status annotation on the
        // source still says what is wrong).
        entry.bucket.try_acquire_at(now)
    }

    /// Records an Event; failures are logged, never returned: reporting must not fail a reconcile.
    pub async fn record(&self, obj: &InvolvedObject, ty: EventType, reason: &str, message: &str) {
        let now = Instant::now();
        let dedup = (obj.uid.clone(), reason.to_string(), message.to_string());
        let repeat = {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            if seen.len() >= MAX_TRACKED {
                seen.retain(|_, s| now.duration_since(s.last) < CORRELATION_WINDOW);
            }
            match seen.get_mut(&dedup) {
                Some(s) if now.duration_since(s.last) < CORRELATION_WINDOW => {
                    s.count += 1;
                    s.last = now;
                    Some((s.event_name.clone(), s.count))
                }
                _ => None,
            }
        };
        if repeat.is_none() && !self.allowed(&obj.uid, now) {
            log::debug!(
                "{} {}/{}: event {reason} dropped by the per-object rate limit",
                obj.kind,
                obj.namespace,
                obj.name
            );
            return;
        }
        let events = ApiResource::events();
        let ns = Some(obj.namespace.as_str());
        let result = match repeat {
            Some((event_name, count)) => {
                let patch = json!({"count": count, "lastTimestamp": format_rfc3339(SystemTime::now()), "message": truncate(message)});
                self.client
                    .patch(&events, ns, &event_name, &Patch::Merge(patch), &PatchParams::default())
                    .await
                    .map(|_| ())
            }
            None => {
                let stamp = SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
                let event_name = event_name(&obj.name, stamp);
                let body = event_body(obj, &event_name, ty, reason, message, &self.instance);
                let r = self.client.create(&events, ns, &body, &PostParams::default()).await.map(|_| ());
                if r.is_ok() {
                    let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
                    seen.insert(dedup, Seen { event_name, count: 1, last: now });
                }
                r
            }
        };
        if let Err(e) = result {
            log::warn!("{} {}/{}: event {reason} not recorded: {e}", obj.kind, obj.namespace, obj.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_stay_valid_for_names_at_the_limit() {
        assert_eq!(event_name("db", 0xabc), "db.abc");
        let long = format!("{}.{}", "a".repeat(200), "b".repeat(52));
        let stamp = 0x1876_5432_1abc_def0_u128;
        let name = event_name(&long, stamp);
        assert!(name.len() <= 253 && name.ends_with(".187654321abcdef0"), "{} {name}", name.len());
        let cut_at_dot = format!("{}.{}", "a".repeat(235), "b".repeat(17));
        let name = event_name(&cut_at_dot, stamp);
        assert!(!name.contains("..") && name.len() <= 253, "{name}");
        // Not a valid name, but from the server: never a panic.
        let _ = event_name(&"é".repeat(200), stamp);
    }
}
