//! Every write the controller makes goes through [`Writer`], which asks the leadership channel
//! right before sending (fencing): a replica that is not — or no longer — the leader sends nothing,
//! whatever pass it is in the middle of. (The one other writer, `kubemirror cleanup`, is a separate
//! command for after the controller is stopped: see [`crate::cleanup`].)

use serde_json::Value;
use tokio::sync::watch;

use crate::client::{self, ApiResource, Client, DeleteParams, Patch, PatchParams, PostParams};
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

#[derive(Clone)]
pub struct Writer {
    pub client: Client,
    leadership: watch::Receiver<Leadership>,
}

fn post() -> PostParams {
    PostParams { field_manager: Some(keys::FIELD_MANAGER.to_string()), dry_run: false }
}

impl Writer {
    pub fn new(client: Client, leadership: watch::Receiver<Leadership>) -> Self {
        Writer { client, leadership }
    }

    pub fn is_leader(&self) -> bool {
        self.leadership.borrow().is_leader()
    }

    fn fence(&self) -> WriteResult<()> {
        if self.is_leader() { Ok(()) } else { Err(WriteError::NotLeader) }
    }

    pub async fn create(&self, r: &ApiResource, ns: &str, obj: &Value) -> WriteResult<Value> {
        self.fence()?;
        Ok(self.client.create(r, Some(ns), obj, &post()).await?)
    }

    pub async fn update(&self, r: &ApiResource, ns: &str, name: &str, obj: &Value) -> WriteResult<Value> {
        self.fence()?;
        Ok(self.client.update(r, Some(ns), name, obj, &post()).await?)
    }

    pub async fn merge_patch(&self, r: &ApiResource, ns: &str, name: &str, patch: Value) -> WriteResult<Value> {
        self.fence()?;
        let params = PatchParams { field_manager: Some(keys::FIELD_MANAGER.to_string()), ..PatchParams::default() };
        Ok(self.client.patch(r, Some(ns), name, &Patch::Merge(patch), &params).await?)
    }

    /// DELETE with a uid precondition, so a replacement created meanwhile is never removed.
    pub async fn delete(&self, r: &ApiResource, ns: &str, name: &str, uid: &str) -> WriteResult<()> {
        self.fence()?;
        let params = DeleteParams { precondition_uid: Some(uid.to_string()), ..DeleteParams::default() };
        self.client.delete(r, Some(ns), name, &params).await?;
        Ok(())
    }
}
