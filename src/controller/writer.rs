//! Every API call a pass makes goes through [`MirrorApi`]: the executor's reads and writes, the
//! re-check of a departed source, and the Events on sources. The real implementation, [`Writer`],
//! holds the only client the passes use (private to this module) and asks the leadership channel
//! right before every write or Event (fencing): a replica that is not — or no longer — the leader
//! sends nothing, whatever pass it is in the middle of. (The one other writer, `kubemirror cleanup`, is a
//! separate command for after the controller is stopped: see [`crate::cleanup`].) Tests drive the real executor and
//! reconciler against scripted implementations of the trait.

use std::future::Future;

use serde_json::Value;
use tokio::sync::watch;

use crate::client::{self, ApiResource, Client, DeleteParams, Patch, PatchParams, PostParams};
use crate::events::{EventRecorder, EventType, InvolvedObject};
use crate::keys;
use crate::leader::Leadership;

/// Why a write was not made or failed.
#[derive(Debug)]
pub enum WriteError {
    /// Leadership is not ours: the pass stops at once.
    NotLeader,
    Api(client::Error),
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteError::NotLeader => f.write_str("not the leader: write withheld"),
            WriteError::Api(e) => write!(f, "{e}"),
        }
    }
}

impl From<client::Error> for WriteError {
    fn from(e: client::Error) -> Self {
        WriteError::Api(e)
    }
}

pub type WriteResult<T> = Result<T, WriteError>;

/// The calls of one pass, and nothing else. Objects are namespaced (mirrors and sources).
pub trait MirrorApi: Send + Sync {
    /// GET one object (not fenced: reading is harmless on a standby).
    fn get(&self, r: &ApiResource, ns: &str, name: &str) -> impl Future<Output = client::Result<Value>> + Send;
    /// POST.
    fn create(&self, r: &ApiResource, ns: &str, obj: &Value) -> impl Future<Output = WriteResult<Value>> + Send;
    /// PUT (the body carries the resourceVersion precondition).
    fn update(
        &self,
        r: &ApiResource,
        ns: &str,
        name: &str,
        obj: &Value,
    ) -> impl Future<Output = WriteResult<Value>> + Send;
    /// JSON merge patch (sources: finalizer and sync-status).
    fn merge_patch(
        &self,
        r: &ApiResource,
        ns: &str,
        name: &str,
        patch: Value,
    ) -> impl Future<Output = WriteResult<Value>> + Send;
    /// DELETE with a uid precondition, so a replacement created meanwhile is never removed.
    fn delete(&self, r: &ApiResource, ns: &str, name: &str, uid: &str) -> impl Future<Output = WriteResult<()>> + Send;
    /// An Event on a source. Only fencing is an error: a failure to record is logged, never
    /// returned (reporting must not fail a pass).
    fn event(
        &self,
        obj: &InvolvedObject,
        ty: EventType,
        reason: &str,
        message: &str,
    ) -> impl Future<Output = WriteResult<()>> + Send;
}

/// [`MirrorApi`] on the cluster: the client and the Event recorder behind leadership fencing.
pub struct Writer {
    client: Client,
    events: EventRecorder,
    leadership: watch::Receiver<Leadership>,
}

fn post() -> PostParams {
    PostParams { field_manager: Some(keys::FIELD_MANAGER.to_string()), dry_run: false }
}

impl Writer {
    /// `instance`: this replica's identity, the Events' reporting instance.
    pub fn new(client: Client, leadership: watch::Receiver<Leadership>, instance: &str) -> Self {
        Writer { events: EventRecorder::new(client.clone(), instance), client, leadership }
    }

    fn fence(&self) -> WriteResult<()> {
        if self.leadership.borrow().is_leader() { Ok(()) } else { Err(WriteError::NotLeader) }
    }
}

impl MirrorApi for Writer {
    async fn get(&self, r: &ApiResource, ns: &str, name: &str) -> client::Result<Value> {
        self.client.get(r, Some(ns), name).await
    }

    async fn create(&self, r: &ApiResource, ns: &str, obj: &Value) -> WriteResult<Value> {
        self.fence()?;
        Ok(self.client.create(r, Some(ns), obj, &post()).await?)
    }

    async fn update(&self, r: &ApiResource, ns: &str, name: &str, obj: &Value) -> WriteResult<Value> {
        self.fence()?;
        Ok(self.client.update(r, Some(ns), name, obj, &post()).await?)
    }

    async fn merge_patch(&self, r: &ApiResource, ns: &str, name: &str, patch: Value) -> WriteResult<Value> {
        self.fence()?;
        let params = PatchParams { field_manager: Some(keys::FIELD_MANAGER.to_string()), ..PatchParams::default() };
        Ok(self.client.patch(r, Some(ns), name, &Patch::Merge(patch), &params).await?)
    }

    async fn delete(&self, r: &ApiResource, ns: &str, name: &str, uid: &str) -> WriteResult<()> {
        self.fence()?;
        let params = DeleteParams { precondition_uid: Some(uid.to_string()), ..DeleteParams::default() };
        self.client.delete(r, Some(ns), name, &params).await?;
        Ok(())
    }

    async fn event(&self, obj: &InvolvedObject, ty: EventType, reason: &str, message: &str) -> WriteResult<()> {
        self.fence()?;
        self.events.record(obj, ty, reason, message).await;
        Ok(())
    }
}
