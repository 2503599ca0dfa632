//! Which resource types to watch: API discovery filtered to what can and should be mirrored, or the
//! explicit `--resource-types` list resolved against the server.
//!
//! A type is mirrorable when it is namespaced, not a subresource, supports get, list, watch,
//! create, update, patch and delete, and is not deny-listed. One version per group (the preferred
//! one), so no resource is ever watched twice. A group whose discovery fails (an aggregated API
//! answering 503 is common) is logged and skipped, and rediscovery does not treat its types as
//! removed.
//!
//! The deny list matches by group *and* kind: kinds like `Policy` or `Plan` exist in several groups.
//! A group entry covers its subdomains (`external-secrets.io` covers
//! `generators.external-secrets.io`).

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;

use serde_json::Value;

use crate::client::{self, ApiResource, Client};
use crate::kinds::{KindList, looks_like_version};

const REQUIRED_VERBS: [&str; 7] = ["get", "list", "watch", "create", "update", "patch", "delete"];

/// Kinds that are unsafe or pointless to mirror (BEHAVIOR.md §J's list, placed in their groups), by
/// group domain. Built-in cluster-scoped kinds (Node, Namespace, ClusterRole...) are left out: they
/// never pass the namespaced filter anyway.
const DENY: &[(&str, &[&str])] = &[
    // Workload internals and cluster plumbing: copies would run, bind or report things twice.
    ("", &["Pod", "Event", "Endpoints", "Binding", "ReplicationController", "PersistentVolumeClaim"]),
    ("events.k8s.io", &["Event"]),
    ("discovery.k8s.io", &["EndpointSlice"]),
    ("apps", &["ReplicaSet", "ControllerRevision"]),
    ("batch", &["Job", "CronJob"]),
    ("coordination.k8s.io", &["Lease"]),
    // Access control: a mirrored Role or RoleBinding would grant in the target namespace whatever its
    // author could grant in the source one, written with the controller's privileges and so past
    // RBAC's escalation check. Pushing rights across namespaces is never a mirroring job.
    ("rbac.authorization.k8s.io", &["Role", "RoleBinding"]),
    ("metrics.k8s.io", &["PodMetrics", "NodeMetrics"]),
    // Allocated per namespace by the scheduler and kubelets (dynamic resource allocation, pod
    // certificates): a copy would claim devices or request certificates a second time.
    ("resource.k8s.io", &["ResourceClaim", "ResourceClaimTemplate"]),
    ("certificates.k8s.io", &["PodCertificateRequest"]),
    ("storage.k8s.io", &["CSIStorageCapacity"]),
    ("snapshot.storage.k8s.io", &["VolumeSnapshot"]),
    (
        "longhorn.io",
        &[
            "Engine",
            "Replica",
            "InstanceManager",
            "ShareManager",
            "BackingImageManager",
            "BackingImageDataSource",
            "Orphan",
            "RecurringJob",
            "EngineImage",
            "BackingImage",
            "BackupTarget",
            "BackupVolume",
            "Setting",
        ],
    ),
    (
        "argoproj.io",
        &[
            "Application",
            "ApplicationSet",
            "AppProject",
            "Workflow",
            "WorkflowTemplate",
            "CronWorkflow",
            "EventSource",
            "EventBus",
            "Sensor",
            "AnalysisRun",
            "AnalysisTemplate",
            "Experiment",
            "Rollout",
            "WorkflowArtifactGCTask",
            "WorkflowEventBinding",
            "WorkflowTaskResult",
            "WorkflowTaskSet",
        ],
    ),
    ("cert-manager.io", &["Certificate", "CertificateRequest", "Issuer", "ClusterIssuer"]),
    (
        "external-secrets.io",
        &[
            "ExternalSecret",
            "SecretStore",
            "ClusterSecretStore",
            "PushSecret",
            "ACRAccessToken",
            "CloudsmithAccessToken",
            "ECRAuthorizationToken",
            "Fake",
            "GCRAccessToken",
            "GeneratorState",
            "GithubAccessToken",
            "Grafana",
            "MFA",
            "Password",
            "QuayAccessToken",
            "SSHKey",
            "STSSessionToken",
            "UUID",
            "VaultDynamicSecret",
            "Webhook",
        ],
    ),
    (
        "kyverno.io",
        &[
            "Policy",
            "ClusterPolicy",
            "PolicyException",
            "NamespacedDeletingPolicy",
            "NamespacedImageValidatingPolicy",
            "NamespacedValidatingPolicy",
            "CleanupPolicy",
            "AdmissionReport",
            "BackgroundScanReport",
            "ClusterAdmissionReport",
            "ClusterBackgroundScanReport",
            "EphemeralReport",
            "UpdateRequest",
        ],
    ),
    ("wgpolicyk8s.io", &["PolicyReport"]),
    (
        "cilium.io",
        &[
            "CiliumNetworkPolicy",
            "CiliumClusterwideNetworkPolicy",
            "CiliumEndpoint",
            "CiliumIdentity",
            "CiliumNode",
            "CiliumExternalWorkload",
            "CiliumLocalRedirectPolicy",
            "CiliumEgressGatewayPolicy",
            "CiliumGatewayClassConfig",
            "CiliumNodeConfig",
            "CiliumEnvoyConfig",
            "CiliumClusterwideEnvoyConfig",
        ],
    ),
    (
        "hub.traefik.io",
        &[
            "API",
            "APIAccess",
            "APIAuth",
            "APIBundle",
            "APICatalogItem",
            "APIPlan",
            "APIPortal",
            "APIPortalAuth",
            "APIRateLimit",
            "APIVersion",
            "AIService",
            "ManagedApplication",
            "ManagedSubscription",
        ],
    ),
    (
        "konghq.com",
        &[
            "KongConsumer",
            "KongIngress",
            "KongPlugin",
            "KongClusterPlugin",
            "KongUpstreamPolicy",
            "KongConsumerGroup",
            "TCPIngress",
            "UDPIngress",
            "IngressClassParameters",
        ],
    ),
    ("upgrade.cattle.io", &["Plan"]),
    ("torproject.org", &["OnionService", "OnionBalancedService", "Tor"]),
    (
        "gateway.networking.k8s.io",
        &[
            "Gateway",
            "GatewayClass",
            "HTTPRoute",
            "TLSRoute",
            "TCPRoute",
            "UDPRoute",
            "GRPCRoute",
            "ReferenceGrant",
            "BackendTLSPolicy",
        ],
    ),
    (
        "victoriametrics.com",
        &[
            "VMAgent",
            "VMAlert",
            "VMAlertmanager",
            "VMAlertmanagerConfig",
            "VMAuth",
            "VMCluster",
            "VMNodeScrape",
            "VMPodScrape",
            "VMProbe",
            "VMRule",
            "VMServiceScrape",
            "VMSingle",
            "VMStaticScrape",
            "VMScrapeConfig",
            "VMUser",
            "VMAnomaly",
        ],
    ),
];

/// `Kind.version` (core group) or `Kind.version.group`, the `--resource-types` syntax.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TypeRef {
    pub kind: String,
    pub version: String,
    pub group: String,
}

impl TypeRef {
    pub fn parse(entry: &str) -> Result<Self, String> {
        let entry = entry.trim();
        let mut parts = entry.splitn(3, '.');
        let (kind, version) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let group = parts.next().unwrap_or("");
        if kind.is_empty() || version.is_empty() || entry.ends_with('.') {
            return Err(format!("resource type {entry:?}: expected Kind.version or Kind.version.group"));
        }
        if !looks_like_version(version) {
            return Err(format!("resource type {entry:?}: {version:?} is not an API version (v1, v1beta1, ...)"));
        }
        Ok(TypeRef { kind: kind.to_string(), version: version.to_string(), group: group.to_string() })
    }

    pub fn of(r: &ApiResource) -> Self {
        TypeRef { kind: r.kind.clone(), version: r.version.clone(), group: r.group.clone() }
    }
}

impl fmt::Display for TypeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            write!(f, "{}.{}", self.kind, self.version)
        } else {
            write!(f, "{}.{}.{}", self.kind, self.version, self.group)
        }
    }
}

/// Comma-separated, entries trimmed, empty entries skipped.
pub fn parse_type_list(list: &str) -> Result<Vec<TypeRef>, String> {
    list.split(',').map(str::trim).filter(|e| !e.is_empty()).map(TypeRef::parse).collect()
}

/// The kinds that are never mirrored: [`DENY`] plus `--deny-resource-types` (syntax: [`crate::kinds`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenyList {
    kinds: KindList,
}

impl Default for DenyList {
    fn default() -> Self {
        DenyList::builtin()
    }
}

impl DenyList {
    pub fn builtin() -> Self {
        DenyList { kinds: KindList::of_groups(DENY) }
    }

    pub fn empty() -> Self {
        DenyList { kinds: KindList::empty() }
    }

    /// `--deny-resource-types`: comma-separated `Kind` (every group), `Kind.group`, `*.group` (the
    /// whole group), or the `--resource-types` forms `Kind.version` (core) / `Kind.version.group`
    /// (version ignored).
    pub fn extend(&mut self, list: &str) -> Result<(), String> {
        self.kinds.extend(list).map_err(|e| format!("deny {e}"))
    }

    pub fn denies(&self, group: &str, kind: &str) -> bool {
        self.kinds.matches(group, kind)
    }
}

/// A resource entry of an `APIResourceList` with what the filter looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub resource: ApiResource,
    pub verbs: BTreeSet<String>,
}

/// The resources of one `APIResourceList` document, subresources dropped.
pub fn resources_of(doc: &Value, group: &str, version: &str) -> Vec<Candidate> {
    let Some(items) = doc.get("resources").and_then(Value::as_array) else { return Vec::new() };
    items
        .iter()
        .filter_map(|r| {
            let plural = r.get("name")?.as_str()?;
            let kind = r.get("kind")?.as_str()?;
            if plural.contains('/') || plural.is_empty() || kind.is_empty() {
                return None;
            }
            let verbs = r
                .get("verbs")
                .and_then(Value::as_array)
                .map(|v| v.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default();
            let namespaced = r.get("namespaced").and_then(Value::as_bool).unwrap_or(false);
            Some(Candidate { resource: ApiResource::new(group, version, kind, plural, namespaced), verbs })
        })
        .collect()
}

/// Why a candidate cannot be mirrored, if it cannot.
pub fn rejection(c: &Candidate, deny: &DenyList) -> Option<String> {
    let r = &c.resource;
    if !r.namespaced {
        return Some("not namespaced".into());
    }
    let missing: Vec<&str> = REQUIRED_VERBS.iter().copied().filter(|v| !c.verbs.contains(*v)).collect();
    if !missing.is_empty() {
        return Some(format!("does not support {}", missing.join(", ")));
    }
    if deny.denies(&r.group, &r.kind) {
        return Some("deny-listed".into());
    }
    None
}

/// The preferred version of each group of an `APIGroupList` (`/apis`).
pub fn preferred_versions(apis: &Value) -> Vec<(String, String)> {
    let Some(groups) = apis.get("groups").and_then(Value::as_array) else { return Vec::new() };
    groups
        .iter()
        .filter_map(|g| {
            let name = g.get("name")?.as_str()?;
            let version = g
                .pointer("/preferredVersion/version")
                .and_then(Value::as_str)
                .or_else(|| g.pointer("/versions/0/version").and_then(Value::as_str))?;
            Some((name.to_string(), version.to_string()))
        })
        .collect()
}

/// The outcome of one discovery pass.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Discovery {
    /// Mirrorable types, sorted by their `Kind.version.group` form.
    pub resources: Vec<ApiResource>,
    /// Group/versions whose discovery failed this time (their types are neither added nor removed).
    pub failed: Vec<String>,
}

/// Types to start and stop watching after a rediscovery.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    pub added: Vec<ApiResource>,
    pub removed: Vec<ApiResource>,
}

impl Discovery {
    /// Compared with what is watched now. Types of groups that failed this pass are kept, so an
    /// aggregated API having a bad minute does not stop (and later relist) their watches.
    pub fn changes_from(&self, watched: &[ApiResource]) -> Changes {
        let failed_group = |r: &ApiResource| self.failed.iter().any(|gv| *gv == r.api_version());
        let added = self.resources.iter().filter(|r| !watched.contains(r)).cloned().collect();
        let removed = watched.iter().filter(|r| !self.resources.contains(r) && !failed_group(r)).cloned().collect();
        Changes { added, removed }
    }
}

/// The group/version documents to fetch: core v1 and each group's preferred version.
fn group_versions(api: &Value, apis: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let core =
        api.get("versions").and_then(Value::as_array).is_some_and(|v| v.iter().any(|x| x.as_str() == Some("v1")));
    if core {
        out.push((String::new(), "v1".into()));
    }
    out.extend(preferred_versions(apis));
    out
}

/// The discovery document path of a group/version (`/api/v1`, `/apis/apps/v1`).
pub fn path_of(group: &str, version: &str) -> String {
    if group.is_empty() { format!("/api/{version}") } else { format!("/apis/{group}/{version}") }
}

/// The one request discovery makes: a GET of an API path (a fake in tests).
pub trait DiscoveryApi: Sync {
    fn get_path(&self, path: &str) -> impl Future<Output = client::Result<Value>> + Send;
}

impl DiscoveryApi for Client {
    fn get_path(&self, path: &str) -> impl Future<Output = client::Result<Value>> + Send {
        Client::get_path(self, path)
    }
}

/// Fetches the documents of `gvs` one after the other: a few dozen small GETs every few minutes,
/// not worth a burst against the API server.
async fn fetch_all(
    api: &impl DiscoveryApi,
    gvs: Vec<(String, String)>,
) -> Vec<((String, String), client::Result<Value>)> {
    let mut out = Vec::with_capacity(gvs.len());
    for (g, v) in gvs {
        let doc = api.get_path(&path_of(&g, &v)).await;
        out.push(((g, v), doc));
    }
    out
}

/// Auto-discovery. `/api` or `/apis` failing is an error (retry later); a failing group is skipped.
pub async fn discover(client: &impl DiscoveryApi, deny: &DenyList) -> client::Result<Discovery> {
    let api = client.get_path("/api").await?;
    let apis = client.get_path("/apis").await?;
    let mut found = Discovery::default();
    for ((group, version), doc) in fetch_all(client, group_versions(&api, &apis)).await {
        let gv = if group.is_empty() { version.clone() } else { format!("{group}/{version}") };
        let doc = match doc {
            Ok(doc) => doc,
            Err(e) => {
                log::warn!("discovery of {gv} failed, skipping it: {e}");
                found.failed.push(gv);
                continue;
            }
        };
        for c in resources_of(&doc, &group, &version) {
            match rejection(&c, deny) {
                None => found.resources.push(c.resource),
                Some(why) => log::debug!("not mirroring {}: {why}", TypeRef::of(&c.resource)),
            }
        }
    }
    found.resources.sort_by_cached_key(|r| TypeRef::of(r).to_string());
    found.resources.dedup();
    Ok(found)
}

/// The types to watch: the explicit `--resource-types` list resolved, or auto-discovery.
pub async fn selected(client: &Client, explicit: Option<&str>, deny: &DenyList) -> Result<Discovery, String> {
    match explicit {
        Some(list) => {
            let types = parse_type_list(list).map_err(|e| format!("--resource-types: {e}"))?;
            Ok(Discovery { resources: resolve(client, &types, deny).await?, failed: Vec::new() })
        }
        None => discover(client, deny).await.map_err(|e| format!("discovering the API resources: {e}")),
    }
}

/// `--resource-types`: each type must be served, namespaced, support the verbs and not be denied.
pub async fn resolve(
    client: &impl DiscoveryApi,
    types: &[TypeRef],
    deny: &DenyList,
) -> Result<Vec<ApiResource>, String> {
    let mut gvs: Vec<(String, String)> = types.iter().map(|t| (t.group.clone(), t.version.clone())).collect();
    gvs.sort();
    gvs.dedup();
    let docs = fetch_all(client, gvs).await;
    let mut out = Vec::new();
    for t in types {
        let doc = docs.iter().find(|((g, v), _)| *g == t.group && *v == t.version).map(|(_, d)| d);
        let doc = match doc {
            Some(Ok(doc)) => doc,
            Some(Err(e)) if e.is_not_found() => {
                return Err(format!("resource type {t}: the server does not serve {}", path_of(&t.group, &t.version)));
            }
            Some(Err(e)) => return Err(format!("resource type {t}: discovery failed: {e}")),
            None => return Err(format!("resource type {t}: discovery failed")),
        };
        let Some(c) = resources_of(doc, &t.group, &t.version).into_iter().find(|c| c.resource.kind == t.kind) else {
            return Err(format!("resource type {t}: unknown kind {} in {}", t.kind, path_of(&t.group, &t.version)));
        };
        if let Some(why) = rejection(&c, deny) {
            return Err(format!("resource type {t}: cannot be mirrored ({why})"));
        }
        if !out.contains(&c.resource) {
            out.push(c.resource);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn type_refs_parse_and_print() {
        let t = TypeRef::parse(" Ingress.v1.networking.k8s.io ").unwrap();
        assert_eq!((t.kind.as_str(), t.version.as_str(), t.group.as_str()), ("Ingress", "v1", "networking.k8s.io"));
        assert_eq!(t.to_string(), "Ingress.v1.networking.k8s.io");
        let t = TypeRef::parse("Middleware.v1alpha1.traefik.io").unwrap();
        assert_eq!(t.group, "traefik.io");
        assert_eq!(TypeRef::parse("Secret.v1").unwrap().to_string(), "Secret.v1");
        for bad in ["Secret", "Secret.", ".v1", "Secret.networking.k8s.io", "Secret.v1.", "Secret.vbeta1"] {
            assert!(TypeRef::parse(bad).is_err(), "{bad}");
        }
        let list = parse_type_list("Secret.v1, ,ConfigMap.v1,").unwrap();
        assert_eq!(list.len(), 2);
        assert!(parse_type_list("Secret.v1,Bogus").unwrap_err().contains("Bogus"));
    }

    #[test]
    fn deny_list_matches_group_and_kind() {
        let d = DenyList::builtin();
        assert!(d.denies("", "Pod"));
        assert!(d.denies("resource.k8s.io", "ResourceClaim") && d.denies("resource.k8s.io", "ResourceClaimTemplate"));
        assert!(d.denies("certificates.k8s.io", "PodCertificateRequest"));
        assert!(d.denies("kyverno.io", "Policy"));
        assert!(d.denies("policies.kyverno.io", "NamespacedValidatingPolicy"));
        assert!(d.denies("generators.external-secrets.io", "Password"));
        assert!(d.denies("upgrade.cattle.io", "Plan"));
        // Same kind, other group: not denied.
        assert!(!d.denies("policy.example.com", "Policy"));
        assert!(!d.denies("example.com", "Plan"));
        assert!(!d.denies("apps.example.com", "ReplicaSet"));
        // A group domain does not match a mere suffix that is not a subdomain.
        assert!(!d.denies("notkyverno.io", "Policy"));
        // Traefik's own CRDs stay mirrorable; only Traefik Hub's are denied.
        assert!(!d.denies("traefik.io", "Middleware"));
        assert!(d.denies("hub.traefik.io", "API"));
        assert!(!d.denies("", "Secret") && !d.denies("", "ConfigMap"));
    }

    #[test]
    fn deny_list_extends_from_the_flag() {
        let mut d = DenyList::empty();
        d.extend("Widget, Policy.example.com,Thing.v1beta1.acme.io, Event.v1").unwrap();
        assert!(d.denies("anything.io", "Widget") && d.denies("", "Widget"));
        assert!(d.denies("example.com", "Policy") && d.denies("sub.example.com", "Policy"));
        assert!(!d.denies("kyverno.io", "Policy"));
        assert!(d.denies("acme.io", "Thing") && !d.denies("other.io", "Thing"));
        assert!(d.denies("", "Event") && !d.denies("events.k8s.io", "Event"));
        d.extend("*.istio.io").unwrap();
        assert!(d.denies("networking.istio.io", "VirtualService") && d.denies("istio.io", "Anything"));
        assert!(!d.denies("", "Secret"));
        assert!(d.extend(".x").is_err());
        assert!(d.extend("Kind.").is_err());
        assert!(d.extend("*").is_err(), "denying everything is not a deny list");
    }

    fn doc(resources: Value) -> Value {
        json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": resources})
    }

    const ALL: [&str; 8] = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

    #[test]
    fn filter_keeps_namespaced_full_verb_non_denied_resources() {
        let d = doc(json!([
            {"name": "secrets", "kind": "Secret", "namespaced": true, "verbs": ALL},
            {"name": "secrets/status", "kind": "Secret", "namespaced": true, "verbs": ALL},
            {"name": "nodes", "kind": "Node", "namespaced": false, "verbs": ALL},
            {"name": "pods", "kind": "Pod", "namespaced": true, "verbs": ALL},
            {"name": "bindings", "kind": "Binding", "namespaced": true, "verbs": ["create"]},
            {"name": "nopatch", "kind": "NoPatch", "namespaced": true,
             "verbs": ["create", "delete", "get", "list", "update", "watch"]},
            {"kind": "Broken"}
        ]));
        let deny = DenyList::builtin();
        let cands = resources_of(&d, "", "v1");
        assert_eq!(cands.len(), 5, "subresources and malformed entries dropped");
        let verdicts: Vec<(String, Option<String>)> =
            cands.iter().map(|c| (c.resource.kind.clone(), rejection(c, &deny))).collect();
        assert_eq!(verdicts[0], ("Secret".into(), None));
        assert_eq!(verdicts[1].1.as_deref(), Some("not namespaced"));
        assert_eq!(verdicts[2].1.as_deref(), Some("deny-listed"));
        assert!(verdicts[3].1.as_deref().unwrap().contains("get, list, watch"));
        assert_eq!(verdicts[4].1.as_deref(), Some("does not support patch"));
    }

    #[test]
    fn one_preferred_version_per_group() {
        let apis = json!({"groups": [
            {"name": "apps", "preferredVersion": {"version": "v1"}, "versions": [{"version": "v1"}]},
            {"name": "example.com", "preferredVersion": {"version": "v2"},
             "versions": [{"version": "v2"}, {"version": "v1"}]},
            {"name": "nopref.io", "versions": [{"version": "v1beta1"}]},
            {"versions": []}
        ]});
        assert_eq!(
            preferred_versions(&apis),
            vec![
                ("apps".into(), "v1".into()),
                ("example.com".into(), "v2".into()),
                ("nopref.io".into(), "v1beta1".into())
            ]
        );
        let gvs = group_versions(&json!({"versions": ["v1"]}), &apis);
        assert_eq!(gvs[0], (String::new(), "v1".into()));
        assert_eq!(gvs.len(), 4);
    }

    /// Discovery documents by path; a path mapped to a status code fails with it.
    struct Fake(Vec<(&'static str, Result<Value, u16>)>);

    impl DiscoveryApi for Fake {
        fn get_path(&self, path: &str) -> impl Future<Output = client::Result<Value>> + Send {
            let found = self.0.iter().find(|(p, _)| *p == path).map(|(_, r)| r.clone()).unwrap_or(Err(404));
            let result = found.map_err(|code| {
                let reason = client::Reason::from_code(code);
                client::Error::Api(Box::new(client::Status {
                    code,
                    reason,
                    message: format!("{path}: {code}"),
                    details: None,
                    retry_after: None,
                }))
            });
            std::future::ready(result)
        }
    }

    fn fake_cluster() -> Fake {
        Fake(vec![
            ("/api", Ok(json!({"versions": ["v1"]}))),
            (
                "/apis",
                Ok(json!({"groups": [
                    {"name": "apps", "preferredVersion": {"version": "v1"}},
                    {"name": "metrics.k8s.io", "preferredVersion": {"version": "v1beta1"}},
                    {"name": "traefik.io", "preferredVersion": {"version": "v1alpha1"}}
                ]})),
            ),
            (
                "/api/v1",
                Ok(doc(json!([
                    {"name": "secrets", "kind": "Secret", "namespaced": true, "verbs": ALL},
                    {"name": "pods", "kind": "Pod", "namespaced": true, "verbs": ALL}
                ]))),
            ),
            (
                "/apis/apps/v1",
                Ok(doc(json!([
                    {"name": "deployments", "kind": "Deployment", "namespaced": true, "verbs": ALL},
                    {"name": "replicasets", "kind": "ReplicaSet", "namespaced": true, "verbs": ALL}
                ]))),
            ),
            ("/apis/metrics.k8s.io/v1beta1", Err(503)),
            (
                "/apis/traefik.io/v1alpha1",
                Ok(doc(json!([{"name": "middlewares", "kind": "Middleware", "namespaced": true, "verbs": ALL}]))),
            ),
        ])
    }

    #[tokio::test]
    async fn discovery_skips_a_failing_aggregated_api() {
        let found = discover(&fake_cluster(), &DenyList::builtin()).await.unwrap();
        let names: Vec<String> = found.resources.iter().map(|r| TypeRef::of(r).to_string()).collect();
        assert_eq!(names, vec!["Deployment.v1.apps", "Middleware.v1alpha1.traefik.io", "Secret.v1"]);
        assert_eq!(found.failed, vec!["metrics.k8s.io/v1beta1"]);
        // Without /apis there is no discovery at all: an error, not an empty (everything removed) result.
        let broken = Fake(vec![("/api", Ok(json!({"versions": ["v1"]}))), ("/apis", Err(500))]);
        assert!(discover(&broken, &DenyList::builtin()).await.is_err());
    }

    #[tokio::test]
    async fn explicit_types_must_exist_and_be_mirrorable() {
        let api = fake_cluster();
        let deny = DenyList::builtin();
        let ok = resolve(&api, &parse_type_list("Secret.v1,Middleware.v1alpha1.traefik.io").unwrap(), &deny).await;
        let ok = ok.unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[1].plural, "middlewares");
        let err = |list: &str| {
            let types = parse_type_list(list).unwrap();
            let (api, deny) = (&api, &deny);
            async move { resolve(api, &types, deny).await.unwrap_err() }
        };
        assert!(err("Pod.v1").await.contains("deny-listed"));
        assert!(err("Bogus.v1").await.contains("unknown kind Bogus"));
        assert!(err("Widget.v1.nope.io").await.contains("does not serve /apis/nope.io/v1"));
        assert!(err("Sample.v1beta1.metrics.k8s.io").await.contains("discovery failed"));
    }

    #[test]
    fn rediscovery_changes_spare_failed_groups() {
        let secrets = ApiResource::secrets();
        let widgets = ApiResource::new("example.com", "v1", "Widget", "widgets", true);
        let metrics = ApiResource::new("metrics.example.io", "v1beta1", "Sample", "samples", true);
        let gadgets = ApiResource::new("gadgets.io", "v1", "Gadget", "gadgets", true);
        let now = Discovery {
            resources: vec![secrets.clone(), gadgets.clone()],
            failed: vec!["metrics.example.io/v1beta1".into()],
        };
        let c = now.changes_from(&[secrets, widgets.clone(), metrics]);
        assert_eq!(c.added, vec![gadgets]);
        assert_eq!(c.removed, vec![widgets], "the failing group's type is kept");
    }
}
