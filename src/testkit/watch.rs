//! Watch streams. Each watcher is a task reading the store's event broadcast and writing frames into
//! the response body. Filtering follows the apiserver's watch cache (cacher.go `convertToWatchEvent`):
//! an object entering the selector is ADDED, leaving it is DELETED (its previous state at the event's
//! resourceVersion), otherwise MODIFIED. Full-object frames are the shared bytes of the event.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Bytes, Frame};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, watch};

use super::discovery::ResourceInfo;
use super::errors::ApiError;
use super::faults::Faults;
use super::render::{self, Format};
use super::stats::Stats;
use super::store::{Event, EventType, Obj, event_line};
use crate::selector::{FieldSelector, LabelSelector};

/// A streaming response body fed by a channel; ends when the sender is dropped.
pub struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

pub struct WatchSpec {
    pub info: Arc<ResourceInfo>,
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub format: Format,
    pub include: String,
    pub bookmarks: bool,
    pub bookmark_interval: Duration,
    pub timeout: Duration,
    /// Who watches (for the per-user byte accounting).
    pub user: String,
}

/// How the stream begins.
pub enum Start {
    /// Replay of history after the requested resourceVersion (the second field).
    Replay(Vec<Arc<Event>>, u64),
    /// Synthetic ADDED events for the current state; `end_bookmark` for sendInitialEvents.
    Initial { items: Vec<Arc<Obj>>, rv: u64, end_bookmark: bool },
    /// The requested resourceVersion is compacted away: one ERROR event, then the stream ends.
    Expired(ApiError),
}

impl WatchSpec {
    fn in_scope(&self, o: &Obj) -> bool {
        self.namespace.as_deref().is_none_or(|ns| !self.info.namespaced || o.namespace == ns)
    }

    fn passes(&self, o: &Obj) -> bool {
        self.in_scope(o) && o.matches(&self.labels, &self.fields)
    }

    fn frame(&self, etype: &str, obj: &Value) -> Bytes {
        let body = match self.format {
            Format::Full => obj.clone(),
            Format::Metadata => render::partial_metadata(obj),
            Format::Table => {
                let rv = obj.pointer("/metadata/resourceVersion").cloned().unwrap_or(json!(""));
                let columns = render::Columns::for_resource(&self.info.group, &self.info.plural);
                render::table(
                    columns,
                    vec![render::table_row(columns, obj, &self.include)],
                    json!({"resourceVersion": rv}),
                )
            }
        };
        event_line(etype, body.to_string().as_bytes())
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let (kind, api_version) = match self.format {
            Format::Metadata => ("PartialObjectMetadata".to_string(), "meta.k8s.io/v1".to_string()),
            _ => (self.info.kind.clone(), self.info.api_version()),
        };
        let mut meta = json!({"resourceVersion": rv.to_string(), "creationTimestamp": null});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj = json!({"kind": kind, "apiVersion": api_version, "metadata": meta});
        event_line("BOOKMARK", obj.to_string().as_bytes())
    }

    /// The frame this watcher sends for a committed event, if any.
    fn convert(&self, ev: &Event) -> Option<Bytes> {
        if ev.key != self.info.key() {
            return None;
        }
        let cur = ev.etype != EventType::Deleted && self.passes(&ev.obj);
        let old = match (&ev.prev, ev.etype) {
            (Some(p), _) => self.passes(p),
            (None, EventType::Deleted) => self.passes(&ev.obj),
            (None, _) => false,
        };
        let etype = match (cur, old) {
            (true, false) => EventType::Added,
            (true, true) => EventType::Modified,
            (false, true) => EventType::Deleted,
            (false, false) => return None,
        };
        let api_version = self.info.api_version();
        if etype == ev.etype {
            match self.format {
                Format::Full if ev.obj.api_version == api_version => return Some(ev.line.clone()),
                Format::Full => {}
                Format::Metadata => {
                    let line = ev
                        .meta_line
                        .get_or_init(|| event_line(etype.as_str(), &render::partial_metadata_bytes(&ev.obj.bytes)));
                    return Some(line.clone());
                }
                Format::Table => {}
            }
        }
        let mut obj = if etype == EventType::Deleted && ev.etype != EventType::Deleted {
            // Left the selector: the previous state, at this event's resourceVersion.
            let mut prev =
                ev.prev.as_ref().map(|p| p.value_as(&api_version)).unwrap_or_else(|| ev.obj.value_as(&api_version));
            prev["metadata"]["resourceVersion"] = json!(ev.rv.to_string());
            prev
        } else {
            ev.obj.value_as(&api_version)
        };
        if obj.is_null() {
            obj = json!({});
        }
        Some(self.frame(etype.as_str(), &obj))
    }
}

/// Starts the watcher task and returns the response body it feeds.
pub fn spawn(
    spec: WatchSpec,
    start: Start,
    mut events: broadcast::Receiver<Arc<Event>>,
    mut closer: watch::Receiver<u64>,
    stats: Arc<Stats>,
    faults: Arc<Faults>,
) -> ChannelBody {
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    stats.watch_opened();
    tokio::spawn(async move {
        let resource = spec.info.plural.clone();
        let user = spec.user.clone();
        let closer_for_send = closer.clone();
        let send = |b: Bytes| {
            let tx = tx.clone();
            let stats = stats.clone();
            let user = user.clone();
            let partition = faults.hang_for("watch", &resource);
            let mut closing = closer_for_send.clone();
            async move {
                if let Some(mut rx) = partition {
                    // A partitioned stream delivers nothing until healed, the client gives up, or
                    // the server closes its watches.
                    while !*rx.borrow() {
                        tokio::select! {
                            r = rx.changed() => if r.is_err() { break },
                            _ = tx.closed() => return false,
                            _ = closing.changed() => return false,
                        }
                    }
                }
                stats.watch_event(&user, b.len());
                tx.send(b).await.is_ok()
            }
        };
        let mut last_rv = 0u64;
        let mut ok = true;
        let mut injections = faults.injections_changed();
        if let Some(frames) = faults.take_injection(&resource) {
            for f in frames {
                ok = ok && send(f).await;
            }
        }
        match start {
            Start::Expired(err) => {
                let _ = send(event_line("ERROR", err.body.to_string().as_bytes())).await;
                ok = false;
            }
            Start::Replay(evs, from) => {
                last_rv = from;
                for ev in evs {
                    last_rv = last_rv.max(ev.rv);
                    if let Some(f) = spec.convert(&ev) {
                        if !send(f).await {
                            ok = false;
                            break;
                        }
                    }
                }
            }
            Start::Initial { items, rv, end_bookmark } => {
                last_rv = rv;
                for o in items {
                    if !spec.passes(&o) {
                        continue;
                    }
                    let frame = match spec.format {
                        Format::Full => event_line("ADDED", &o.bytes_as(&spec.info.api_version())),
                        Format::Metadata => event_line("ADDED", &render::partial_metadata_bytes(&o.bytes)),
                        Format::Table => spec.frame("ADDED", &o.value()),
                    };
                    if !send(frame).await {
                        ok = false;
                        break;
                    }
                }
                if ok && end_bookmark {
                    ok = send(spec.bookmark(rv, true)).await;
                }
            }
        }
        let deadline = tokio::time::sleep(spec.timeout);
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval(spec.bookmark_interval.max(Duration::from_millis(10)));
        // After a stall (partition, slow client) one bookmark, not a burst of missed ones.
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        while ok {
            tokio::select! {
                ev = events.recv() => match ev {
                    Ok(ev) => {
                        if ev.rv <= last_rv {
                            continue;
                        }
                        last_rv = ev.rv;
                        if let Some(f) = spec.convert(&ev) {
                            ok = send(f).await;
                        }
                    }
                    // Too slow to keep up, or the server is going away: end the stream; the client
                    // re-watches from its last resourceVersion, as with a real apiserver.
                    Err(_) => break,
                },
                _ = ticker.tick(), if spec.bookmarks => {
                    if last_rv > 0 {
                        ok = send(spec.bookmark(last_rv, false)).await;
                    }
                }
                changed = injections.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    if let Some(frames) = faults.take_injection(&resource) {
                        for f in frames {
                            ok = ok && send(f).await;
                        }
                    }
                }
                _ = &mut deadline => break,
                _ = closer.changed() => break,
                _ = tx.closed() => break,
            }
        }
        stats.watch_closed();
    });
    ChannelBody { rx }
}
