//! The operations a plan is made of, and the request bodies they carry.
//!
//! An op names its mirror and the hash it must end up with, not the object: a plan for many
//! targets of a large Secret would otherwise hold one full copy per target at once. The executor
//! builds each body just before sending it ([`materialize`], or [`Plan::materialize_reusing`](crate::mirror::plan::Plan::materialize_reusing) which
//! copies one built mirror for the next target when no rule depends on the target).

use std::fmt;

use serde_json::Value;

use crate::mirror::build::{self, BuildError, Desired, RecreateReason};
use crate::mirror::plan::PlanContext;
use crate::mirror::transform::SourceTransform;
use crate::model::{ObjectKey, SourceObject, Str};
use crate::util::compact::ShortStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteReason {
    NotTargeted,
    SourceGone,
    SourceDisabled,
    SourceDeleting,
    SourceRefused,
}

impl fmt::Display for DeleteReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeleteReason::NotTargeted => "namespace is no longer a target",
            DeleteReason::SourceGone => "source no longer exists",
            DeleteReason::SourceDisabled => "mirroring was turned off on the source",
            DeleteReason::SourceDeleting => "source is being deleted",
            DeleteReason::SourceRefused => "source may not be mirrored",
        })
    }
}

/// One request (or, for Recreate/Verify, a short fixed sequence) against a mirror. Ops carry the
/// desired hash, not the desired object: a plan for many targets of a large Secret would otherwise
/// hold one full copy per target at once. The executor builds each body when it sends it
/// ([`materialize`]), so at most one copy is alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MirrorOp {
    /// POST. On 409 AlreadyExists see [`Outcome::AlreadyExists`](crate::mirror::plan::Outcome::AlreadyExists).
    Create { key: ObjectKey, hash: Str },
    /// PUT with `metadata.resourceVersion` = `resource_version`.
    Update { key: ObjectKey, hash: Str, resource_version: ShortStr },
    /// DELETE with a uid precondition, then POST.
    Recreate { key: ObjectKey, hash: Str, uid: Str, reason: RecreateReason },
    /// GET, then act on [`verify`](crate::mirror::drift::verify).
    Verify { key: ObjectKey, hash: Str, resource_version: ShortStr },
    /// DELETE with a uid precondition (never deletes a replacement created meanwhile).
    Delete { key: ObjectKey, uid: Str, reason: DeleteReason },
}

impl MirrorOp {
    /// The request body for Create, Update and the create half of Recreate, from the
    /// [`materialize`]d mirror: for an Update, with the resourceVersion precondition.
    pub fn body(&self, desired: &Desired) -> Option<Value> {
        match self {
            MirrorOp::Create { .. } | MirrorOp::Recreate { .. } => Some(desired.object.clone()),
            MirrorOp::Update { resource_version, .. } => {
                let mut obj = desired.object.clone();
                if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                    meta.insert("resourceVersion".into(), Value::String(resource_version.to_string()));
                }
                Some(obj)
            }
            MirrorOp::Verify { .. } | MirrorOp::Delete { .. } => None,
        }
    }

    /// The desired hash the op was planned with (none for Delete).
    pub fn hash(&self) -> Option<&str> {
        self.shared_hash().map(|h| &**h)
    }

    pub(crate) fn shared_hash(&self) -> Option<&Str> {
        match self {
            MirrorOp::Create { hash, .. }
            | MirrorOp::Update { hash, .. }
            | MirrorOp::Recreate { hash, .. }
            | MirrorOp::Verify { hash, .. } => Some(hash),
            MirrorOp::Delete { .. } => None,
        }
    }

    pub fn key(&self) -> &ObjectKey {
        match self {
            MirrorOp::Create { key, .. }
            | MirrorOp::Update { key, .. }
            | MirrorOp::Recreate { key, .. }
            | MirrorOp::Verify { key, .. }
            | MirrorOp::Delete { key, .. } => key,
        }
    }
}

/// Builds the mirror an op writes or verifies, for the source the plan was made from. `None` for a
/// Delete. The hash equals the op's unless the transform is not deterministic; the executor may
/// compare [`MirrorOp::hash`] and re-plan if they differ.
/// Compiles the source's rules itself: prefer [`Plan::materialize`], which reuses the plan's.
pub fn materialize(ctx: &PlanContext<'_>, src: &SourceObject, op: &MirrorOp) -> Option<Result<Desired, BuildError>> {
    materialize_with(ctx, &ctx.transform.for_source(src), src, op)
}

pub(crate) fn materialize_with(
    ctx: &PlanContext<'_>,
    transform: &SourceTransform,
    src: &SourceObject,
    op: &MirrorOp,
) -> Option<Result<Desired, BuildError>> {
    op.hash()?;
    if let Some(e) = transform.error() {
        return Some(Err(BuildError::Transform(e.clone())));
    }
    let built = build::build_mirror(src, &op.key().namespace, ctx.build, transform.transform(), ctx.now);
    // The planned hash is one copy shared by every target of the source; the ledger keeps it.
    Some(built.map(|mut d| {
        if let Some(h) = op.shared_hash().filter(|h| ***h == *d.hash) {
            d.hash = h.clone();
        }
        d
    }))
}
