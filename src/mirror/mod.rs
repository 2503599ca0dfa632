//! Mirroring decisions, free of I/O: which namespaces a source targets, what each mirror must look
//! like, which writes bring the cluster there, and how the outcome is reported. The runtime feeds
//! these functions from its caches and executes what they return.
//!
//! - [`targets`]: target resolution and the precedence of the targeting rules.
//! - [`target_index`]: which sources a namespace event concerns, parsed once per source change.
//! - [`build`]: the desired mirror for one namespace, drift and recreate decisions.
//! - [`hash`]: the Go-compatible content hash stored on mirrors.
//! - [`plan`]: one pass for one source: operations, finalizer patches, per-target results.
//! - [`ops`]: the operations of a plan and the request bodies they carry.
//! - [`drift`]: the write ledger, verification of live mirrors, the mirror-side verdict.
//! - [`status`]: the sync-status annotation and Events.
//! - [`transform`]: the transformation rules, compiled once per source per pass.
//!
//! # Executor contract (one pass for one source, per watched type)
//! 1. `plan::plan(ctx, state, namespaces, mirrors_of(source), &ledger)`; a no-op plan
//!    ([`plan::Plan::is_noop`]) with an unchanged status costs no request at all.
//! 2. `recheck_source` (Gone plans only): GET the source; if it exists, plan again with it.
//!    `add_finalizer`: merge-patch the source; on any failure stop and requeue.
//! 3. Each op in order, one outcome each ([`plan::Outcome`]), its mirror built just before sending
//!    ([`plan::Plan::materialize`], with the rules the plan compiled; one copy at a time):
//!    Create = POST, Update = PUT of
//!    [`plan::MirrorOp::body`], Recreate = DELETE (uid precondition) then POST, Verify = GET then
//!    [`drift::verify`], Delete = DELETE (uid precondition; 404 is success). Record every successful
//!    write with [`drift::LastWrite::of_write`] in the ledger; on a Create 409 GET the object and
//!    block the key if [`drift::verify`] says `NotOurs`; on an Update 422 that
//!    [`build::is_immutable_rejection`] recognises, recreate instead.
//! 4. `remove_finalizer` only if [`plan::Plan::may_release_finalizer`].
//! 5. [`plan::Plan::status`] then [`status::SyncStatus::patch_for`]: merge-patch the source only when
//!    the text changed; [`plan::Plan::events`] through the Event rate limiter.
//! 6. Any Stale/Failed outcome: requeue the source with backoff (never retried in place).
//!
//! Source watch events go through [`plan::source_changed`] (our own patches are not a reason to
//! plan again). Mirror watch events go through [`drift::mirror_verdict`]; a mirror DELETED event must also
//! [`drift::Ledger::forget`] its key.

pub mod build;
pub mod drift;
pub mod hash;
pub mod ops;
pub mod plan;
pub mod status;
pub mod target_index;
pub mod targets;
#[cfg(test)]
pub(crate) mod testutil;
pub mod transform;
