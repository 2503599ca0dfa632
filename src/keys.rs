//! Every label, annotation and finalizer key KubeMirror reads or writes. The names are the Go
//! original's, so existing manifests keep working (see BEHAVIOR.md §A).

pub const PREFIX: &str = "kubemirror.raczylo.com/";

// Labels.
/// On a source: first half of the opt-in (`"true"`), and the server-side watch filter.
pub const LABEL_ENABLED: &str = "kubemirror.raczylo.com/enabled";
/// On a mirror: ownership marker, value [`MANAGED_BY_VALUE`].
pub const LABEL_MANAGED_BY: &str = "kubemirror.raczylo.com/managed-by";
/// On a mirror: `"true"`. An object carrying it is never a source.
pub const LABEL_MIRROR: &str = "kubemirror.raczylo.com/mirror";
/// On a namespace: `"true"` opts in to `all-labeled`, `"false"` opts out of `all`.
pub const LABEL_ALLOW_MIRRORS: &str = "kubemirror.raczylo.com/allow-mirrors";

pub const MANAGED_BY_VALUE: &str = "kubemirror";
pub const FIELD_MANAGER: &str = "kubemirror";

// Annotations set by users on a source.
pub const ANN_SYNC: &str = "kubemirror.raczylo.com/sync";
pub const ANN_TARGET_NAMESPACES: &str = "kubemirror.raczylo.com/target-namespaces";
pub const ANN_TARGET_NAMESPACE_SELECTOR: &str = "kubemirror.raczylo.com/target-namespace-selector";
pub const ANN_TRANSFORM: &str = "kubemirror.raczylo.com/transform";
pub const ANN_TRANSFORM_STRICT: &str = "kubemirror.raczylo.com/transform-strict";

// Annotations written on mirrors.
pub const ANN_SOURCE_NAMESPACE: &str = "kubemirror.raczylo.com/source-namespace";
pub const ANN_SOURCE_NAME: &str = "kubemirror.raczylo.com/source-name";
pub const ANN_SOURCE_UID: &str = "kubemirror.raczylo.com/source-uid";
pub const ANN_SOURCE_CONTENT_HASH: &str = "kubemirror.raczylo.com/source-content-hash";
pub const ANN_SOURCE_GENERATION: &str = "kubemirror.raczylo.com/source-generation";
pub const ANN_SOURCE_RESOURCE_VERSION: &str = "kubemirror.raczylo.com/source-resource-version";
pub const ANN_LAST_SYNC_TIME: &str = "kubemirror.raczylo.com/last-sync-time";

// Annotations written on sources.
pub const ANN_SYNC_STATUS: &str = "kubemirror.raczylo.com/sync-status";

// On a namespace, for `--require-target-consent`: comma list of source namespaces (globs) allowed to push.
pub const ANN_ALLOW_MIRRORS_FROM: &str = "kubemirror.raczylo.com/allow-mirrors-from";

pub const FINALIZER: &str = "kubemirror.raczylo.com/finalizer";

pub const KEYWORD_ALL: &str = "all";
pub const KEYWORD_ALL_LABELED: &str = "all-labeled";

/// Namespaces never targeted, whatever the flags say.
pub const ALWAYS_EXCLUDED_NAMESPACES: [&str; 3] = ["kube-system", "kube-public", "kube-node-lease"];

/// Server-side selector for sources: only objects carrying the opt-in label are watched.
pub fn source_label_selector() -> String {
    format!("{LABEL_ENABLED}=true")
}

/// Server-side selector for mirrors (watched metadata-only).
pub fn mirror_label_selector() -> String {
    format!("{LABEL_MANAGED_BY}={MANAGED_BY_VALUE}")
}
