//! What a user installs: the Helm chart (linted and rendered by a real helm 3), the kustomize
//! manifests in deploy/, the monitoring assets, all accepted by `kubectl apply --dry-run=server`
//! against the in-memory API server; the two installs agree on what matters; and every metric the
//! alerts, recording rules and dashboard query is one the running binary exposes.
//!
//! Needs helm and kubectl (see tests/common/tools.rs): skipped with a message where they are not
//! installed, a failure under `CI=true`.

#[path = "common/tools.rs"]
mod tools;
#[path = "common/wait.rs"]
mod wait;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use kubemirror::testkit::{ApiServer, ServerOptions};
use kubemirror::util::yaml;
use serde_json::{Value, json};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn chart() -> String {
    root().join("charts/kubemirror").display().to_string()
}

fn docs(text: &str) -> Vec<Value> {
    yaml::load_all(text).unwrap_or_else(|e| panic!("rendered YAML does not parse: {e}\n{text}"))
}

fn render(helm: &PathBuf, extra: &[&str]) -> String {
    let chart = chart();
    let mut args = vec!["template", "kubemirror", chart.as_str(), "--namespace", "kubemirror-system"];
    args.extend_from_slice(extra);
    tools::run(helm, &args, &[])
}

fn find<'a>(docs: &'a [Value], kind: &str, name_suffix: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"].as_str().is_some_and(|n| n.ends_with(name_suffix)))
        .unwrap_or_else(|| panic!("no {kind} *{name_suffix} among {:?}", kinds(docs)))
}

fn kinds(docs: &[Value]) -> Vec<String> {
    docs.iter().map(|d| format!("{}/{}", d["kind"].as_str().unwrap_or("?"), d["metadata"]["name"])).collect()
}

fn container(deployment: &Value) -> &Value {
    &deployment["spec"]["template"]["spec"]["containers"][0]
}

fn args(deployment: &Value) -> Vec<String> {
    container(deployment)["args"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect())
        .unwrap_or_default()
}

/// The controller's ClusterRole: the bound one that is not a hook's.
fn controller_role(docs: &[Value]) -> &Value {
    docs.iter()
        .find(|d| {
            d["kind"] == "ClusterRole"
                && d["metadata"]["annotations"]["helm.sh/hook"].is_null()
                && !d["metadata"]["name"].as_str().unwrap_or("").ends_with("-autodiscovery")
        })
        .expect("a ClusterRole")
}

fn verbs_of<'a>(role: &'a Value, group: &str, resource: &str) -> Vec<&'a str> {
    role["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| {
            r["apiGroups"].as_array().is_some_and(|g| g.iter().any(|g| g == group))
                && r["resources"].as_array().is_some_and(|x| x.iter().any(|x| x == resource))
        })
        .flat_map(|r| r["verbs"].as_array().into_iter().flatten().filter_map(Value::as_str))
        .collect()
}

#[test]
fn the_chart_lints_and_renders_least_privilege_defaults() {
    let Some(helm) = tools::helm() else { return };
    tools::run(&helm, &["lint", "--strict", &chart()], &[]);
    let d = docs(&render(&helm, &[]));

    let dep = find(&d, "Deployment", "kubemirror");
    assert_eq!(dep["spec"]["replicas"], 2, "two replicas with leader election by default");
    let a = args(dep);
    for want in ["--leader-elect", "--resource-types=Secret.v1,ConfigMap.v1", "--max-targets=100", "--log-format=text"]
    {
        assert!(a.iter().any(|x| x == want), "{want} missing from {a:?}");
    }
    let c = container(dep);
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
    let pod = &dep["spec"]["template"]["spec"]["securityContext"];
    assert_eq!(pod["runAsNonRoot"], true);
    assert_eq!(pod["seccompProfile"]["type"], "RuntimeDefault");
    // Sized from BENCHMARKS.md, not the Go original's 128Mi request.
    assert_eq!(c["resources"]["requests"]["memory"], "32Mi");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");

    // RBAC: only what the controller calls.
    let role = controller_role(&d);
    let text = role["rules"].to_string();
    assert!(!text.contains("\"*\""), "least privilege has no wildcard: {text}");
    assert!(!text.contains("events.k8s.io"), "core Events only: {text}");
    assert_eq!(verbs_of(role, "", "events"), ["create", "patch"]);
    assert_eq!(verbs_of(role, "", "namespaces"), ["list", "watch"]);
    assert_eq!(verbs_of(role, "", "secrets"), ["get", "list", "watch", "create", "update", "patch", "delete"]);
    let lease_role = find(&d, "Role", "-leader-election");
    assert_eq!(verbs_of(lease_role, "coordination.k8s.io", "leases"), ["get", "create", "update"]);

    let pdb = find(&d, "PodDisruptionBudget", "kubemirror");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    // Uninstall: the cleanup hook and its own short-lived RBAC.
    let job = find(&d, "Job", "-cleanup");
    assert_eq!(job["metadata"]["annotations"]["helm.sh/hook"], "post-delete");
    let job_args = args(job);
    assert_eq!(job_args.first().map(String::as_str), Some("cleanup"), "{job_args:?}");
    assert!(job_args.iter().any(|x| x == "--resource-types=Secret.v1,ConfigMap.v1"), "{job_args:?}");
    assert!(d.iter().all(|x| x["kind"] != "ServiceMonitor" && x["kind"] != "PrometheusRule"), "monitoring is opt-in");
}

const NON_DEFAULT: &[&str] = &[
    "--set",
    "replicaCount=1",
    "--set",
    "rbac.mode=autodiscovery",
    "--set",
    "controller.logFormat=json",
    "--set",
    "controller.logLevel=debug",
    "--set",
    "controller.requireTargetConsent=true",
    "--set-string",
    "controller.consentRequiredKinds=",
    "--set",
    "controller.stripMetadata=argocd.argoproj.io/*",
    "--set",
    "controller.includedNamespaces=app-*\\,prod-*",
    "--set",
    "controller.metricsBindAddress=:9090",
    "--set",
    "controller.transformMaxRules=20",
    "--set",
    "nodeSelector.kubernetes\\.io/os=linux",
    "--set",
    "tolerations[0].key=dedicated,tolerations[0].operator=Exists",
    "--set",
    "monitoring.serviceMonitor.enabled=true",
    "--set",
    "monitoring.prometheusRule.enabled=true",
    "--set",
    "monitoring.grafanaDashboard.enabled=true",
    "--set",
    "cleanupOnUninstall.enabled=false",
];

#[test]
fn the_chart_renders_non_default_values() {
    let Some(helm) = tools::helm() else { return };
    let mut lint = vec!["lint", "--strict"];
    let chart = chart();
    lint.push(&chart);
    lint.extend_from_slice(NON_DEFAULT);
    tools::run(&helm, &lint, &[]);
    let d = docs(&render(&helm, NON_DEFAULT));

    let dep = find(&d, "Deployment", "kubemirror");
    let a = args(dep);
    assert!(!a.iter().any(|x| x.starts_with("--resource-types")), "auto-discovery: {a:?}");
    for want in [
        "--log-format=json",
        "--require-target-consent=true",
        "--consent-required-kinds=",
        "--strip-metadata=argocd.argoproj.io/*",
        "--included-namespaces=app-*,prod-*",
        "--metrics-bind-address=:9090",
        "--transform-max-rules=20",
    ] {
        assert!(a.iter().any(|x| x == want), "{want} missing from {a:?}");
    }
    let c = container(dep);
    assert!(c["env"].as_array().unwrap().iter().any(|e| e["name"] == "LOG_LEVEL" && e["value"] == "debug"));
    assert_eq!(c["ports"][0]["containerPort"], 9090);
    assert_eq!(dep["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"], "9090");
    assert_eq!(dep["spec"]["template"]["spec"]["nodeSelector"]["kubernetes.io/os"], "linux");
    assert_eq!(dep["spec"]["template"]["spec"]["tolerations"][0]["key"], "dedicated");

    assert!(controller_role(&d)["rules"].to_string().contains("\"*\""), "autodiscovery grants every type");
    assert!(d.iter().all(|x| x["kind"] != "PodDisruptionBudget"), "no PDB on a single replica");
    assert!(d.iter().all(|x| x["kind"] != "Job"), "cleanup hook disabled");

    // The ServiceMonitor finds the Service and its port.
    let sm = find(&d, "ServiceMonitor", "kubemirror");
    let svc = find(&d, "Service", "-metrics");
    for (k, v) in sm["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(&svc["metadata"]["labels"][k], v, "ServiceMonitor selects label {k}");
    }
    let port = sm["spec"]["endpoints"][0]["port"].as_str().unwrap();
    assert!(svc["spec"]["ports"].as_array().unwrap().iter().any(|p| p["name"] == port && p["port"] == 9090));

    // The templated monitoring assets are the files in the chart, unchanged.
    let rules_file =
        yaml::load_one(&std::fs::read_to_string(root().join("charts/kubemirror/files/prometheus-rules.yaml")).unwrap())
            .unwrap();
    assert_eq!(find(&d, "PrometheusRule", "kubemirror")["spec"]["groups"], rules_file["groups"]);
    let dash: Value =
        serde_json::from_str(find(&d, "ConfigMap", "-dashboard")["data"]["kubemirror.json"].as_str().unwrap()).unwrap();
    let dash_file: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("charts/kubemirror/files/grafana-dashboard.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(dash, dash_file);
}

/// examples/helm/*.yaml: the seed's configurations as values files, each linted and rendered.
#[test]
fn every_example_values_file_lints_and_renders() {
    let Some(helm) = tools::helm() else { return };
    let chart = chart();
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("examples/helm"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "{files:?}");
    for f in &files {
        let f = f.display().to_string();
        tools::run(&helm, &["lint", "--strict", &chart, "-f", &f], &[]);
        let d = docs(&render(&helm, &["-f", &f]));
        assert!(!args(find(&d, "Deployment", "kubemirror")).is_empty(), "{f}");
    }
    let tenant = root().join("examples/helm/multi-tenant.yaml").display().to_string();
    let a = args(find(&docs(&render(&helm, &["-f", &tenant])), "Deployment", "kubemirror"));
    assert!(a.iter().any(|x| x == "--require-target-consent=true"), "{a:?}");
}

#[test]
fn the_chart_rejects_invalid_values_with_a_clear_message() {
    let Some(helm) = tools::helm() else { return };
    let chart = chart();
    for (set, expect) in [
        ("rbac.mode=everything", "rbac.mode"),
        ("controller.logFormat=xml", "controller.logFormat"),
        ("controller.maxTargets=-1", "controller.maxTargets"),
        ("controller.discoveryInterval=5 minutes", "controller.discoveryInterval"),
        ("controller.metricsBindAddress=localhost", "controller.metricsBindAddress"),
    ] {
        let err = tools::run_failing(&helm, &["template", "x", &chart, "--set", set]);
        assert!(err.contains(expect), "--set {set}: {err}");
    }
}

/// The deploy/ (kustomize) install and the chart rendered with the same names agree on arguments,
/// RBAC, probes, security contexts, resources and ports.
#[test]
fn kustomize_and_the_chart_agree_on_the_essentials() {
    let (Some(helm), Some(kubectl)) = (tools::helm(), tools::kubectl()) else { return };
    let k = docs(&tools::run(&kubectl, &["kustomize", &root().join("deploy").display().to_string()], &[]));
    let h = docs(&render(&helm, &["--set", "fullnameOverride=kubemirror-controller"]));

    let (kd, hd) = (find(&k, "Deployment", "kubemirror-controller"), find(&h, "Deployment", "kubemirror-controller"));
    assert_eq!(args(kd), args(hd), "container arguments");
    let (kc, hc) = (container(kd), container(hd));
    for field in ["livenessProbe", "readinessProbe", "securityContext", "resources", "ports"] {
        assert_eq!(kc[field], hc[field], "container {field}");
    }
    let names = |c: &Value| -> Vec<Value> { c["env"].as_array().unwrap().iter().map(|e| e["name"].clone()).collect() };
    assert_eq!(names(kc), names(hc), "environment variables");
    for field in ["securityContext", "terminationGracePeriodSeconds", "serviceAccountName"] {
        assert_eq!(kd["spec"]["template"]["spec"][field], hd["spec"]["template"]["spec"][field], "pod {field}");
    }
    assert_eq!(kd["spec"]["replicas"], hd["spec"]["replicas"]);
    assert_eq!(controller_role(&k)["rules"], controller_role(&h)["rules"], "ClusterRole rules");
    assert_eq!(find(&k, "Role", "leader-election")["rules"], find(&h, "Role", "leader-election")["rules"]);
    assert_eq!(find(&k, "Service", "-metrics")["spec"]["ports"], find(&h, "Service", "-metrics")["spec"]["ports"]);

    // deploy/monitoring carries the chart's rules and dashboard.
    let rules = yaml::load_one(&std::fs::read_to_string(root().join("deploy/monitoring/prometheusrule.yaml")).unwrap())
        .unwrap();
    let chart_rules =
        yaml::load_one(&std::fs::read_to_string(root().join("charts/kubemirror/files/prometheus-rules.yaml")).unwrap())
            .unwrap();
    assert_eq!(rules["spec"]["groups"], chart_rules["groups"], "deploy/monitoring/prometheusrule.yaml is the chart's");
    assert_eq!(
        std::fs::read(root().join("deploy/monitoring/grafana-dashboard.json")).unwrap(),
        std::fs::read(root().join("charts/kubemirror/files/grafana-dashboard.json")).unwrap(),
        "deploy/monitoring/grafana-dashboard.json is the chart's"
    );
}

/// The image, README and CI build the binary with one command.
#[test]
fn the_dockerfile_readme_and_ci_build_the_same_static_binary() {
    let read = |p: &str| std::fs::read_to_string(root().join(p)).unwrap();
    let docker = read("Dockerfile");
    let flags = docker.lines().find_map(|l| l.strip_prefix("ENV RUSTFLAGS=")).expect("ENV RUSTFLAGS in the Dockerfile");
    let build = docker
        .lines()
        .find_map(|l| l.strip_prefix("RUN "))
        .filter(|l| l.starts_with("cargo build"))
        .expect("RUN cargo build");
    assert!(flags.contains("+crt-static") && build.contains("--target x86_64-unknown-linux-gnu"), "{flags} {build}");
    let command = format!("RUSTFLAGS={flags} {build}");
    assert!(read("README.md").contains(&command), "README's build command is the Dockerfile's: {command}");
    assert!(read(".ci/run").contains(&command), ".ci/run builds what the Dockerfile builds: {command}");
    assert!(docker.contains("distroless/static") && docker.contains("USER 65532:65532"), "static, non-root image");
}

fn crd(group: &str, kind: &str, plural: &str) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{group}")},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase(), "listKind": format!("{kind}List")},
            "versions": [{"name": "v1", "served": true, "storage": true,
                          "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]
        }
    })
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rendered_manifest_is_accepted_by_the_api_server() {
    let (Some(helm), Some(kubectl)) = (tools::helm(), tools::kubectl()) else { return };
    let s = ApiServer::start(ServerOptions { seed: Some(11), ..Default::default() }).await.unwrap();
    s.create_object(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kubemirror-system"}}))
        .unwrap();
    // The Prometheus Operator's types, as a cluster with it installed serves them.
    s.create_object(crd("monitoring.coreos.com", "ServiceMonitor", "servicemonitors")).unwrap();
    s.create_object(crd("monitoring.coreos.com", "PrometheusRule", "prometheusrules")).unwrap();

    let dir = s.dir().join("packaging");
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = s.kubeconfig_path("admin").display().to_string();
    let cache = dir.join("kube-cache").display().to_string();
    let files = [
        write(&dir, "chart-default.yaml", &render(&helm, &[])),
        write(&dir, "chart-non-default.yaml", &render(&helm, NON_DEFAULT)),
        write(
            &dir,
            "kustomize.yaml",
            &tools::run(&kubectl, &["kustomize", &root().join("deploy").display().to_string()], &[]),
        ),
        root().join("deploy/monitoring/servicemonitor.yaml").display().to_string(),
        root().join("deploy/monitoring/prometheusrule.yaml").display().to_string(),
        root().join("deploy/rbac-autodiscovery.yaml").display().to_string(),
    ];
    for f in &files {
        let out = tools::run(
            &kubectl,
            &["--kubeconfig", &kubeconfig, "--cache-dir", &cache, "apply", "--dry-run=server", "-f", f],
            &[],
        );
        assert!(out.contains("(server dry run)"), "{f}: {out}");
    }
    // Dry runs leave nothing behind.
    assert!(s.list_objects("apps/v1", "Deployment", Some("kubemirror-system")).is_empty());
}

fn metric_names(exposition: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in exposition.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split_whitespace();
            let (Some(name), Some(kind)) = (it.next(), it.next()) else { continue };
            names.insert(name.to_string());
            if kind == "histogram" || kind == "summary" {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
        }
    }
    names
}

/// Every identifier in a query that names one of our metric families.
fn queried_metrics(query: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut token = String::new();
    for ch in query.chars().chain(std::iter::once(' ')) {
        if ch.is_ascii_alphanumeric() || ch == '_' || ch == ':' {
            token.push(ch);
            continue;
        }
        if ["kubemirror_", "workqueue_", "controller_runtime_", "rest_client_", "leader_election_"]
            .iter()
            .any(|p| token.starts_with(p))
        {
            out.insert(std::mem::take(&mut token));
        }
        token.clear();
    }
    out
}

fn http_get(addr: &str, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.starts_with("HTTP/1.1 200").then_some(out)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitoring_queries_only_metrics_the_binary_exposes() {
    let rules = std::fs::read_to_string(root().join("charts/kubemirror/files/prometheus-rules.yaml")).unwrap();
    let rules = yaml::load_one(&rules).unwrap();
    let mut queries: Vec<String> = rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().iter())
        .map(|r| r["expr"].as_str().unwrap().to_string())
        .collect();
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("charts/kubemirror/files/grafana-dashboard.json")).unwrap(),
    )
    .unwrap();
    for panel in dash["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            queries.push(t["expr"].as_str().unwrap().to_string());
        }
    }
    let wanted: BTreeSet<String> = queries.iter().flat_map(|q| queried_metrics(q)).collect();
    assert!(wanted.len() > 10, "the extractor found the queried metrics: {wanted:?}");

    // The real binary, right after start-up: series must exist before the first error happens.
    let s = ApiServer::start(ServerOptions { seed: Some(12), ..Default::default() }).await.unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kubemirror"))
        .arg("--kubeconfig")
        .arg(s.kubeconfig_path("admin"))
        .args(["--resource-types", "Secret.v1,ConfigMap.v1", "--leader-election-namespace", "default"])
        .args(["--metrics-bind-address", &addr, "--health-probe-bind-address", "0"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut exposition = String::new();
    wait::eventually("the binary serves /metrics with the leader gauge set", || match http_get(&addr, "/metrics") {
        Some(text) if text.contains("kubemirror_leader 1") => {
            exposition = text;
            true
        }
        _ => false,
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();

    let exposed = metric_names(&exposition);
    let missing: Vec<&String> = wanted.iter().filter(|m| !exposed.contains(*m)).collect();
    assert!(missing.is_empty(), "queried but not exposed: {missing:?}\nexposed: {exposed:?}");
}
