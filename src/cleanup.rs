//! `kubemirror cleanup`: the uninstall step (BEHAVIOR.md §G.9). Deletes every mirror this
//! controller owns and removes our finalizer from every source, touching nothing else, then exits;
//! running it again finds nothing to do.
//!
//! - A mirror is ours when it carries `managed-by=kubemirror` AND source annotations naming a
//!   source; it is deleted with a uid precondition (a replacement created meanwhile is left alone).
//!   An object of the same name without that label, or with it but naming no source, is untouched.
//! - The finalizer is removed by a merge patch listing the object's other finalizers, with a
//!   resourceVersion precondition (a concurrent change is re-read, never overwritten); nothing else
//!   of the source changes.
//! - Types: `--resource-types`, or the controller's auto-discovery with the same deny list.
//!
//! # The one writer without the Lease
//! The controller writes only through its fenced `Writer` while it holds the leader Lease. Cleanup
//! runs after the controller is stopped, so it cannot hold that Lease; its writes are the two
//! methods of [`Writes`] and nothing else. It refuses to start while another instance holds the
//! Lease (holder set, renewed within its duration by our clock), because that instance would
//! recreate the mirrors and re-add the finalizers; `--force` overrides (e.g. a Lease left by a
//! crashed pod, or a clock known to be skewed). `--dry-run` prints the same lines and sends no write.

use std::fmt;
use std::io::Write;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use crate::client::{self, ApiResource, Client, DeleteParams, ListParams, ObjectExt, Patch, PatchParams};
use crate::discovery::{self, DenyList};
use crate::keys;
use crate::leader::{self, LeaseRecord};
use crate::model::MirrorRecord;
use crate::options::Options;
use crate::util::time;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mode {
    pub dry_run: bool,
    pub force: bool,
}

/// What one run did (or, dry, would do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    pub mirrors_deleted: usize,
    pub finalizers_removed: usize,
    /// Labelled objects that name no source, and mirrors replaced meanwhile.
    pub left_alone: usize,
    pub errors: usize,
}

#[derive(Debug)]
pub enum CleanupError {
    Config(String),
    /// Another instance holds the leader Lease.
    LeaseHeld {
        lease: String,
        holder: String,
        renewed_ago: Duration,
    },
    Api {
        what: String,
        error: client::Error,
    },
    Write(std::io::Error),
}

impl fmt::Display for CleanupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CleanupError::Config(m) => f.write_str(m),
            CleanupError::LeaseHeld { lease, holder, renewed_ago } => write!(
                f,
                "lease {lease} is held by {holder} (renewed {}s ago): stop the controller first \
                 (scale its Deployment to 0), or pass --force",
                renewed_ago.as_secs()
            ),
            CleanupError::Api { what, error } => write!(f, "{what}: {error}"),
            CleanupError::Write(e) => write!(f, "writing the output: {e}"),
        }
    }
}

impl std::error::Error for CleanupError {}

/// The holder of a Lease that is still valid at `now`, and how long ago it was renewed. A Lease
/// without a holder, renew time or duration, or renewed longer than its duration ago, is free.
pub fn lease_holder(lease: &Value, now: SystemTime) -> Option<(String, Duration)> {
    let rec = LeaseRecord::from_lease(lease);
    if rec.holder.is_empty() || rec.lease_duration_seconds <= 0 {
        return None;
    }
    let renewed = time::parse_rfc3339(rec.renew_time.as_deref()?).ok()?;
    let ago = now.duration_since(renewed).unwrap_or(Duration::ZERO);
    (ago < Duration::from_secs(rec.lease_duration_seconds.unsigned_abs())).then_some((rec.holder, ago))
}

fn out_err(e: std::io::Error) -> CleanupError {
    CleanupError::Write(e)
}

pub async fn run(options: &Options, mode: Mode, out: &mut impl Write) -> Result<Summary, CleanupError> {
    let client = Client::from_options(&options.load_options(), options.client_options())
        .await
        .map_err(|e| CleanupError::Config(e.to_string()))?;
    if !mode.force {
        check_lease(&client, options).await?;
    }
    let mut deny = DenyList::builtin();
    deny.extend(&options.deny_resource_types).map_err(CleanupError::Config)?;
    let types = discovery::selected(&client, options.resource_types.as_deref(), &deny)
        .await
        .map_err(CleanupError::Config)?
        .resources;
    let writes = Writes { client: &client, dry_run: mode.dry_run };
    let mut summary = Summary::default();
    for r in &types {
        delete_mirrors(&writes, r, &mut summary, out).await?;
    }
    for r in &types {
        release_finalizers(&writes, r, &mut summary, out).await?;
    }
    let (would, did) = if mode.dry_run { ("would be ", "; nothing was changed (dry run)") } else { ("", "") };
    let line = if summary == Summary::default() {
        format!("cleanup: nothing to do ({} types looked at)", types.len())
    } else {
        format!(
            "cleanup: {} mirror(s) {would}deleted, {} finalizer(s) {would}removed, {} object(s) left alone, {} error(s){did}",
            summary.mirrors_deleted, summary.finalizers_removed, summary.left_alone, summary.errors
        )
    };
    writeln!(out, "{line}").map_err(out_err)?;
    Ok(summary)
}

async fn check_lease(client: &Client, options: &Options) -> Result<(), CleanupError> {
    let namespace = options
        .leader_election_namespace
        .clone()
        .unwrap_or_else(|| leader::namespace_from_env(client.default_namespace()));
    let name = &options.leader_election_id;
    let lease_ref = format!("{namespace}/{name}");
    let lease = match client.get(&ApiResource::leases(), Some(&namespace), name).await {
        Ok(l) => l,
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => {
            let what = format!("reading lease {lease_ref} (pass --force to skip this check)");
            return Err(CleanupError::Api { what, error: e });
        }
    };
    match lease_holder(&lease, SystemTime::now()) {
        Some((holder, renewed_ago)) => Err(CleanupError::LeaseHeld { lease: lease_ref, holder, renewed_ago }),
        None => Ok(()),
    }
}

/// Cleanup's only writes (see the module docs); with `dry_run` they are not sent.
struct Writes<'a> {
    client: &'a Client,
    dry_run: bool,
}

impl Writes<'_> {
    /// DELETE with a uid precondition.
    async fn delete_mirror(&self, r: &ApiResource, ns: &str, name: &str, uid: &str) -> client::Result<()> {
        if self.dry_run {
            return Ok(());
        }
        let params = DeleteParams { precondition_uid: Some(uid.to_string()), ..DeleteParams::default() };
        self.client.delete(r, Some(ns), name, &params).await.map(drop)
    }

    /// Merge patch of `metadata.finalizers` (the others kept) with a resourceVersion precondition.
    async fn remove_finalizer(&self, r: &ApiResource, ns: &str, name: &str, patch: Value) -> client::Result<()> {
        if self.dry_run {
            return Ok(());
        }
        let params = PatchParams { field_manager: Some(keys::FIELD_MANAGER.to_string()), ..PatchParams::default() };
        self.client.patch(r, Some(ns), name, &Patch::Merge(patch), &params).await.map(drop)
    }
}

async fn delete_mirrors(
    w: &Writes<'_>,
    r: &ApiResource,
    summary: &mut Summary,
    out: &mut impl Write,
) -> Result<(), CleanupError> {
    let params = ListParams {
        label_selector: Some(keys::mirror_label_selector()),
        metadata_only: true,
        ..ListParams::default()
    };
    let what = format!("listing {} mirrors", r.kind);
    let items = w.client.list_all(r, None, &params).await.map_err(|error| CleanupError::Api { what, error })?;
    for item in items {
        let Ok(m) = MirrorRecord::from_object(&item) else { continue };
        let Some(src) = m.source.as_ref().filter(|s| !s.namespace.is_empty() && !s.name.is_empty()) else {
            summary.left_alone += 1;
            writeln!(out, "left alone: {} {} has the managed-by label but names no source", r.kind, m.key)
                .map_err(out_err)?;
            continue;
        };
        let verb = if w.dry_run { "would delete" } else { "deleted" };
        let line = match w.delete_mirror(r, &m.key.namespace, &m.key.name, &m.uid.to_string()).await {
            Ok(()) => {
                summary.mirrors_deleted += 1;
                format!("{verb} {} {} (mirror of {}/{})", r.kind, m.key, src.namespace, src.name)
            }
            Err(e) if e.is_not_found() => format!("already gone: {} {}", r.kind, m.key),
            Err(e) if e.is_conflict() => {
                summary.left_alone += 1;
                format!("left alone: {} {} was replaced meanwhile", r.kind, m.key)
            }
            Err(e) => {
                summary.errors += 1;
                format!("FAILED to delete {} {}: {e}", r.kind, m.key)
            }
        };
        writeln!(out, "{line}").map_err(out_err)?;
    }
    Ok(())
}

/// The merge patch that removes our finalizer and keeps the others, conditional on `rv`.
pub fn finalizer_patch(obj: &Value) -> Value {
    let rest: Vec<&str> = obj.finalizers().into_iter().filter(|f| *f != keys::FINALIZER).collect();
    let list = if rest.is_empty() { Value::Null } else { json!(rest) };
    json!({"metadata": {"finalizers": list, "resourceVersion": obj.resource_version().unwrap_or_default()}})
}

async fn release_finalizers(
    w: &Writes<'_>,
    r: &ApiResource,
    summary: &mut Summary,
    out: &mut impl Write,
) -> Result<(), CleanupError> {
    // Every object of the type: a source that lost its label may still carry our finalizer.
    let params = ListParams { metadata_only: true, ..ListParams::default() };
    let what = format!("listing {}", r.plural);
    let items = w.client.list_all(r, None, &params).await.map_err(|error| CleanupError::Api { what, error })?;
    for mut obj in items.into_iter().filter(|o| o.finalizers().contains(&keys::FINALIZER)) {
        let (ns, name) = (obj.namespace().unwrap_or_default().to_string(), obj.name().unwrap_or_default().to_string());
        let verb = if w.dry_run { "would remove" } else { "removed" };
        let mut attempts = 0;
        let line = loop {
            attempts += 1;
            match w.remove_finalizer(r, &ns, &name, finalizer_patch(&obj)).await {
                Ok(()) => {
                    summary.finalizers_removed += 1;
                    break format!("{verb} the finalizer of {} {ns}/{name}", r.kind);
                }
                Err(e) if e.is_not_found() => break format!("already gone: {} {ns}/{name}", r.kind),
                // Changed since listed: read it again and patch what is there now.
                Err(e) if e.is_conflict() && attempts < 3 => match w.client.get_metadata(r, Some(&ns), &name).await {
                    Ok(fresh) if fresh.finalizers().contains(&keys::FINALIZER) => obj = fresh,
                    Ok(_) => break format!("already released: {} {ns}/{name}", r.kind),
                    Err(e) if e.is_not_found() => break format!("already gone: {} {ns}/{name}", r.kind),
                    Err(e) => {
                        summary.errors += 1;
                        break format!("FAILED to re-read {} {ns}/{name}: {e}", r.kind);
                    }
                },
                Err(e) => {
                    summary.errors += 1;
                    break format!("FAILED to remove the finalizer of {} {ns}/{name}: {e}", r.kind);
                }
            }
        };
        writeln!(out, "{line}").map_err(out_err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: &str, renew: &str, secs: i64) -> Value {
        json!({"spec": {"holderIdentity": holder, "renewTime": renew, "leaseDurationSeconds": secs}})
    }

    #[test]
    fn a_lease_is_held_only_while_renewed_within_its_duration() {
        let now = time::parse_rfc3339("2025-01-01T00:00:20Z").unwrap();
        let held = lease_holder(&lease("pod-a", "2025-01-01T00:00:10.000000Z", 15), now);
        assert_eq!(held, Some(("pod-a".into(), Duration::from_secs(10))));
        assert_eq!(lease_holder(&lease("pod-a", "2025-01-01T00:00:04Z", 15), now), None, "expired");
        assert_eq!(lease_holder(&lease("", "2025-01-01T00:00:19Z", 15), now), None, "released");
        assert_eq!(lease_holder(&json!({"spec": {"holderIdentity": "x"}}), now), None, "no renew time");
    }

    #[test]
    fn the_finalizer_patch_keeps_the_others_and_is_conditional() {
        let obj = json!({"metadata": {"resourceVersion": "9", "finalizers": ["a", keys::FINALIZER, "b"]}});
        assert_eq!(finalizer_patch(&obj), json!({"metadata": {"finalizers": ["a", "b"], "resourceVersion": "9"}}));
        let only = json!({"metadata": {"resourceVersion": "3", "finalizers": [keys::FINALIZER]}});
        assert_eq!(finalizer_patch(&only), json!({"metadata": {"finalizers": null, "resourceVersion": "3"}}));
    }
}
