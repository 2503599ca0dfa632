//! The operator commands on the real binary against the in-memory API server: `explain` (its text
//! for every example and every reason a namespace gets no mirror, its mirrors, and that it never
//! writes) and `cleanup` (the uninstall: what it deletes, what it leaves, dry runs, the Lease).
#![cfg(feature = "testkit")]

#[path = "common/cluster.rs"]
mod cluster;
#[path = "common/proc.rs"]
mod proc;
#[path = "common/wait.rs"]
mod wait;

use std::time::Duration;

use cluster::{EXAMPLE_MIRRORS, all_examples, examples_dir, mirrored_in};
use kubemirror::client::{Client, ClientOptions, LoadOptions};
use kubemirror::controller::{self, Exit};
use kubemirror::options::Options;
use kubemirror::testkit::{ApiServer, ServerOptions};
use kubemirror::util::yaml;
use proc::{run, strings, until};
use serde_json::{Value, json};
use tokio::sync::oneshot;

const WAIT: Duration = Duration::from_secs(30);
const FINALIZER: &str = "kubemirror.raczylo.com/finalizer";

struct Cluster {
    rt: tokio::runtime::Runtime,
    s: ApiServer,
}

impl Cluster {
    fn new(namespaces: &[&str]) -> Cluster {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let mut all: Vec<String> =
            ["default", "kube-system", "kube-public", "kube-node-lease"].map(String::from).to_vec();
        all.extend(namespaces.iter().map(|n| n.to_string()));
        let s = rt
            .block_on(ApiServer::start(ServerOptions {
                seed: Some(41),
                namespaces: all,
                bookmark_interval: Duration::from_millis(200),
                ..Default::default()
            }))
            .unwrap();
        Cluster { rt, s }
    }

    fn cmd(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let mut a = strings(args);
        a.extend(strings(&["--kubeconfig", &self.s.kubeconfig_path("admin").display().to_string()]));
        run(&a, &[])
    }

    /// Runs the controller in-process (no Lease) until `done` holds, then stops it.
    fn controller_until(&self, types: Option<&str>, done: impl Fn(&ApiServer) -> bool) {
        let s = &self.s;
        self.rt.block_on(async {
            let load = LoadOptions { kubeconfig: Some(s.kubeconfig_path("admin")), context: None };
            let client = Client::from_options(&load, ClientOptions { qps: 0.0, ..Default::default() }).await.unwrap();
            let opts = Options {
                resource_types: types.map(String::from),
                leader_elect: false,
                metrics_bind_address: None,
                health_probe_bind_address: None,
                ..Options::default()
            };
            let (stop, stopped) = oneshot::channel::<()>();
            let task = tokio::spawn(controller::run(
                opts,
                client,
                None,
                async move {
                    let _ = stopped.await;
                },
                |_| {},
            ));
            let deadline = tokio::time::Instant::now() + WAIT;
            while !done(s) {
                assert!(tokio::time::Instant::now() < deadline, "the controller did not converge");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let _ = stop.send(());
            assert_eq!(task.await.unwrap().unwrap(), Exit::Clean);
        });
    }

    fn writes(&self) -> u64 {
        let st = self.s.stats();
        ["create", "update", "patch", "delete", "deletecollection"].iter().map(|v| st.verb(v)).sum()
    }
}

fn example(name: &str) -> String {
    examples_dir().join(name).display().to_string()
}

fn examples_cluster() -> Cluster {
    let c = Cluster::new(&[]);
    c.s.apply_yaml(&all_examples()).unwrap();
    c
}

/// Every example source mirrored where it should be.
fn all_converged(s: &ApiServer) -> bool {
    EXAMPLE_MIRRORS.iter().all(|(api_version, kind, name, want)| mirrored_in(s, api_version, kind, name) == *want)
}

#[rustfmt::skip]
const GOLDEN: &[(&str, bool, &str)] = &[
("configmap-all.yaml", false, r#"ConfigMap.v1 default/cluster-ca-bundle  (from examples/configmap-all.yaml)
  targets:    target-namespaces "all"
  type:       ConfigMap.v1 (watched)
  in cluster: yes
  finalizer:  kubemirror.raczylo.com/finalizer is added to the source first

TARGETS: 10 (10 to write)
  NAMESPACE         ACTION  WHY
  app-frontend      create  no mirror there yet
  app1              create  no mirror there yet
  app2              create  no mirror there yet
  app3              create  no mirror there yet
  dev-web           create  no mirror there yet
  eu-staging        create  no mirror there yet
  external-secrets  create  no mirror there yet
  preprod-web       create  no mirror there yet
  prod-api          create  no mirror there yet
  prod-web          create  no mirror there yet

NOT TARGETS: 5
  NAMESPACE        ACTION  WHY
  default          -       source namespace: a source is never mirrored into its own namespace
  kube-node-lease  -       excluded: kube-system, kube-public and kube-node-lease never receive mirrors
  kube-public      -       excluded: kube-system, kube-public and kube-node-lease never receive mirrors
  kube-system      -       excluded: kube-system, kube-public and kube-node-lease never receive mirrors
  legacy           -       not selected: opted out of "all" (label kubemirror.raczylo.com/allow-mirrors=false)

sync-status after this pass: synced:10,failed:0,conflicts:0,skipped:0
"#),
("configmap-patterns.yaml", false, r#"ConfigMap.v1 default/shared-config  (from examples/configmap-patterns.yaml)
  targets:    target-namespaces "app-*,prod-*"
  type:       ConfigMap.v1 (watched)
  in cluster: yes
  finalizer:  kubemirror.raczylo.com/finalizer is added to the source first

TARGETS: 3 (3 to write)
  NAMESPACE     ACTION  WHY
  app-frontend  create  no mirror there yet
  prod-api      create  no mirror there yet
  prod-web      create  no mirror there yet

NOT TARGETS: 12
  NAMESPACE         ACTION  WHY
  app1              -       not selected by target-namespaces "app-*,prod-*"
  app2              -       not selected by target-namespaces "app-*,prod-*"
  app3              -       not selected by target-namespaces "app-*,prod-*"
  default           -       not selected by target-namespaces "app-*,prod-*"
  dev-web           -       not selected by target-namespaces "app-*,prod-*"
  eu-staging        -       not selected by target-namespaces "app-*,prod-*"
  external-secrets  -       not selected by target-namespaces "app-*,prod-*"
  kube-node-lease   -       not selected by target-namespaces "app-*,prod-*"
  kube-public       -       not selected by target-namespaces "app-*,prod-*"
  kube-system       -       not selected by target-namespaces "app-*,prod-*"
  legacy            -       not selected by target-namespaces "app-*,prod-*"
  preprod-web       -       not selected by target-namespaces "app-*,prod-*"

sync-status after this pass: synced:3,failed:0,conflicts:0,skipped:0
"#),
("externalsecret-dockerconfig.yaml", false, r#"Secret.v1 external-secrets/multi-registry-secret  (from examples/externalsecret-dockerconfig.yaml)
  targets:    target-namespaces "all"
  type:       Secret.v1 (watched)
  in cluster: yes
  finalizer:  kubemirror.raczylo.com/finalizer is added to the source first

TARGETS: 10 (10 to write)
  NAMESPACE     ACTION  WHY
  app-frontend  create  no mirror there yet
  app1          create  no mirror there yet
  app2          create  no mirror there yet
  app3          create  no mirror there yet
  default       create  no mirror there yet
  dev-web       create  no mirror there yet
  eu-staging    create  no mirror there yet
  preprod-web   create  no mirror there yet
  prod-api      create  no mirror there yet
  prod-web      create  no mirror there yet

NOT TARGETS: 5
  NAMESPACE         ACTION  WHY
  external-secrets  -       source namespace: a source is never mirrored into its own namespace
  kube-node-lease   -       excluded: kube-system, kube-public and kube-node-lease never receive mirrors
  kube-public       -       excluded: kube-system, kube-public and kube-node-lease never receive mirrors
  kube-system       -       excluded: kube-system, kube-public and kube-node-lease never receive mirrors
  legacy            -       not selected: opted out of "all" (label kubemirror.raczylo.com/allow-mirrors=false)

sync-status after this pass: synced:10,failed:0,conflicts:0,skipped:0
"#),
("secret-specific-namespaces.yaml", false, r#"Secret.v1 default/database-credentials  (from examples/secret-specific-namespaces.yaml)
  targets:    target-namespaces "app1,app2,app3"
  type:       Secret.v1 (watched)
  in cluster: yes
  finalizer:  kubemirror.raczylo.com/finalizer is added to the source first

TARGETS: 3 (3 to write)
  NAMESPACE  ACTION  WHY
  app1       create  no mirror there yet
  app2       create  no mirror there yet
  app3       create  no mirror there yet

NOT TARGETS: 12
  NAMESPACE         ACTION  WHY
  app-frontend      -       not selected by target-namespaces "app1,app2,app3"
  default           -       not selected by target-namespaces "app1,app2,app3"
  dev-web           -       not selected by target-namespaces "app1,app2,app3"
  eu-staging        -       not selected by target-namespaces "app1,app2,app3"
  external-secrets  -       not selected by target-namespaces "app1,app2,app3"
  kube-node-lease   -       not selected by target-namespaces "app1,app2,app3"
  kube-public       -       not selected by target-namespaces "app1,app2,app3"
  kube-system       -       not selected by target-namespaces "app1,app2,app3"
  legacy            -       not selected by target-namespaces "app1,app2,app3"
  preprod-web       -       not selected by target-namespaces "app1,app2,app3"
  prod-api          -       not selected by target-namespaces "app1,app2,app3"
  prod-web          -       not selected by target-namespaces "app1,app2,app3"

sync-status after this pass: synced:3,failed:0,conflicts:0,skipped:0
"#),
("secret-tls-all-labeled.yaml", false, r#"Secret.v1 default/wildcard-tls  (from examples/secret-tls-all-labeled.yaml)
  targets:    target-namespaces "all-labeled"
  type:       Secret.v1 (watched)
  in cluster: yes
  finalizer:  kubemirror.raczylo.com/finalizer is added to the source first

TARGETS: 2 (2 to write)
  NAMESPACE     ACTION  WHY
  app-frontend  create  no mirror there yet
  prod-api      create  no mirror there yet

NOT TARGETS: 13
  NAMESPACE         ACTION  WHY
  app1              -       not selected by target-namespaces "all-labeled"
  app2              -       not selected by target-namespaces "all-labeled"
  app3              -       not selected by target-namespaces "all-labeled"
  default           -       not selected by target-namespaces "all-labeled"
  dev-web           -       not selected by target-namespaces "all-labeled"
  eu-staging        -       not selected by target-namespaces "all-labeled"
  external-secrets  -       not selected by target-namespaces "all-labeled"
  kube-node-lease   -       not selected by target-namespaces "all-labeled"
  kube-public       -       not selected by target-namespaces "all-labeled"
  kube-system       -       not selected by target-namespaces "all-labeled"
  legacy            -       not selected by target-namespaces "all-labeled"
  preprod-web       -       not selected by target-namespaces "all-labeled"
  prod-web          -       not selected by target-namespaces "all-labeled"

sync-status after this pass: synced:2,failed:0,conflicts:0,skipped:0
"#),
("traefik-middleware.yaml", false, r#"Middleware.v1alpha1.traefik.io default/compression  (from examples/traefik-middleware.yaml)
  targets:    target-namespaces "app-*"
  type:       Middleware.v1alpha1.traefik.io (watched)
  in cluster: yes
  finalizer:  kubemirror.raczylo.com/finalizer is added to the source first

TARGETS: 1 (1 to write)
  NAMESPACE     ACTION  WHY
  app-frontend  create  no mirror there yet

NOT TARGETS: 14
  NAMESPACE         ACTION  WHY
  app1              -       not selected by target-namespaces "app-*"
  app2              -       not selected by target-namespaces "app-*"
  app3              -       not selected by target-namespaces "app-*"
  default           -       not selected by target-namespaces "app-*"
  dev-web           -       not selected by target-namespaces "app-*"
  eu-staging        -       not selected by target-namespaces "app-*"
  external-secrets  -       not selected by target-namespaces "app-*"
  kube-node-lease   -       not selected by target-namespaces "app-*"
  kube-public       -       not selected by target-namespaces "app-*"
  kube-system       -       not selected by target-namespaces "app-*"
  legacy            -       not selected by target-namespaces "app-*"
  preprod-web       -       not selected by target-namespaces "app-*"
  prod-api          -       not selected by target-namespaces "app-*"
  prod-web          -       not selected by target-namespaces "app-*"

sync-status after this pass: synced:1,failed:0,conflicts:0,skipped:0
"#),
("transform-configmap-environments.yaml", false, r#"ConfigMap.v1 default/app-config  (from examples/transform-configmap-environments.yaml)
  targets:    target-namespaces "dev-*,staging-*,prod-*"
  type:       ConfigMap.v1 (watched)
  in cluster: yes
  transform:  4 rules (a failing rule is skipped)
  finalizer:  kubemirror.raczylo.com/finalizer is added to the source first

TARGETS: 3 (3 to write)
  NAMESPACE  ACTION  WHY
  dev-web    create  no mirror there yet
  prod-api   create  no mirror there yet
  prod-web   create  no mirror there yet

NOT TARGETS: 12
  NAMESPACE         ACTION  WHY
  app-frontend      -       not selected by target-namespaces "dev-*,staging-*,prod-*"
  app1              -       not selected by target-namespaces "dev-*,staging-*,prod-*"
  app2              -       not selected by target-namespaces "dev-*,staging-*,prod-*"
  app3              -       not selected by target-namespaces "dev-*,staging-*,prod-*"
  default           -       not selected by target-namespaces "dev-*,staging-*,prod-*"
  eu-staging        -       not selected by target-namespaces "dev-*,staging-*,prod-*"
  external-secrets  -       not selected by target-namespaces "dev-*,staging-*,prod-*"
  kube-node-lease   -       not selected by target-namespaces "dev-*,staging-*,prod-*"
  kube-public       -       not selected by target-namespaces "dev-*,staging-*,prod-*"
  kube-system       -       not selected by target-namespaces "dev-*,staging-*,prod-*"
  legacy            -       not selected by target-namespaces "dev-*,staging-*,prod-*"
  preprod-web       -       not selected by target-namespaces "dev-*,staging-*,prod-*"

sync-status after this pass: synced:3,failed:0,conflicts:0,skipped:0
"#),
("transform-deployment-array-indexes.yaml", false, r#"Deployment.v1.apps default/web  (from examples/transform-deployment-array-indexes.yaml)
  targets:    target-namespaces "app-frontend,prod-api"
  type:       Deployment.v1.apps (watched)
  in cluster: yes
  transform:  5 rules (a failing rule is skipped)
  finalizer:  kubemirror.raczylo.com/finalizer is added to the source first

TARGETS: 2 (2 to write)
  NAMESPACE     ACTION  WHY
  app-frontend  create  no mirror there yet
  prod-api      create  no mirror there yet

NOT TARGETS: 13
  NAMESPACE         ACTION  WHY
  app1              -       not selected by target-namespaces "app-frontend,prod-api"
  app2              -       not selected by target-namespaces "app-frontend,prod-api"
  app3              -       not selected by target-namespaces "app-frontend,prod-api"
  default           -       not selected by target-namespaces "app-frontend,prod-api"
  dev-web           -       not selected by target-namespaces "app-frontend,prod-api"
  eu-staging        -       not selected by target-namespaces "app-frontend,prod-api"
  external-secrets  -       not selected by target-namespaces "app-frontend,prod-api"
  kube-node-lease   -       not selected by target-namespaces "app-frontend,prod-api"
  kube-public       -       not selected by target-namespaces "app-frontend,prod-api"
  kube-system       -       not selected by target-namespaces "app-frontend,prod-api"
  legacy            -       not selected by target-namespaces "app-frontend,prod-api"
  preprod-web       -       not selected by target-namespaces "app-frontend,prod-api"
  prod-web          -       not selected by target-namespaces "app-frontend,prod-api"

sync-status after this pass: synced:2,failed:0,conflicts:0,skipped:0
"#),
("transform-namespace-patterns.yaml", false, r#"ConfigMap.v1 default/graphql-config  (from examples/transform-namespace-patterns.yaml)
  targets:    target-namespaces "preprod-web,prod-web,eu-staging,dev-web"
  type:       ConfigMap.v1 (watched)
  in cluster: yes
  transform:  4 rules (a failing rule is skipped)
  finalizer:  kubemirror.raczylo.com/finalizer is added to the source first

TARGETS: 4 (4 to write)
  NAMESPACE    ACTION  WHY
  dev-web      create  no mirror there yet
  eu-staging   create  no mirror there yet
  preprod-web  create  no mirror there yet
  prod-web     create  no mirror there yet

NOT TARGETS: 11
  NAMESPACE         ACTION  WHY
  app-frontend      -       not selected by target-namespaces "preprod-web,prod-web,eu-staging,dev-web"
  app1              -       not selected by target-namespaces "preprod-web,prod-web,eu-staging,dev-web"
  app2              -       not selected by target-namespaces "preprod-web,prod-web,eu-staging,dev-web"
  app3              -       not selected by target-namespaces "preprod-web,prod-web,eu-staging,dev-web"
  default           -       not selected by target-namespaces "preprod-web,prod-web,eu-staging,dev-web"
  external-secrets  -       not selected by target-namespaces "preprod-web,prod-web,eu-staging,dev-web"
  kube-node-lease   -       not selected by target-namespaces "preprod-web,prod-web,eu-staging,dev-web"
  kube-public       -       not selected by target-namespaces "preprod-web,prod-web,eu-staging,dev-web"
  kube-system       -       not selected by target-namespaces "preprod-web,prod-web,eu-staging,dev-web"
  legacy            -       not selected by target-namespaces "preprod-web,prod-web,eu-staging,dev-web"
  prod-api          -       not selected by target-namespaces "preprod-web,prod-web,eu-staging,dev-web"

sync-status after this pass: synced:4,failed:0,conflicts:0,skipped:0
"#),
("transform-secret-hardening.yaml", false, r#"Secret.v1 default/app-credentials  (from examples/transform-secret-hardening.yaml)
  targets:    target-namespaces "app1,app2,app3"
  type:       Secret.v1 (watched)
  in cluster: yes
  transform:  3 rules (strict: a failing rule fails its target)
  finalizer:  kubemirror.raczylo.com/finalizer is added to the source first

TARGETS: 3 (3 to write)
  NAMESPACE  ACTION  WHY
  app1       create  no mirror there yet
  app2       create  no mirror there yet
  app3       create  no mirror there yet

NOT TARGETS: 12
  NAMESPACE         ACTION  WHY
  app-frontend      -       not selected by target-namespaces "app1,app2,app3"
  default           -       not selected by target-namespaces "app1,app2,app3"
  dev-web           -       not selected by target-namespaces "app1,app2,app3"
  eu-staging        -       not selected by target-namespaces "app1,app2,app3"
  external-secrets  -       not selected by target-namespaces "app1,app2,app3"
  kube-node-lease   -       not selected by target-namespaces "app1,app2,app3"
  kube-public       -       not selected by target-namespaces "app1,app2,app3"
  kube-system       -       not selected by target-namespaces "app1,app2,app3"
  legacy            -       not selected by target-namespaces "app1,app2,app3"
  preprod-web       -       not selected by target-namespaces "app1,app2,app3"
  prod-api          -       not selected by target-namespaces "app1,app2,app3"
  prod-web          -       not selected by target-namespaces "app1,app2,app3"

sync-status after this pass: synced:3,failed:0,conflicts:0,skipped:0
"#),
("configmap-all.yaml", true, r#"ConfigMap.v1 default/cluster-ca-bundle  (from examples/configmap-all.yaml)
  targets:    target-namespaces "all"
  type:       ConfigMap.v1 (watched)
  in cluster: yes

TARGETS: 10 (0 to write)
  NAMESPACE         ACTION   WHY
  app-frontend      nothing  the mirror is up to date
  app1              nothing  the mirror is up to date
  app2              nothing  the mirror is up to date
  app3              nothing  the mirror is up to date
  dev-web           nothing  the mirror is up to date
  eu-staging        nothing  the mirror is up to date
  external-secrets  nothing  the mirror is up to date
  preprod-web       nothing  the mirror is up to date
  prod-api          nothing  the mirror is up to date
  prod-web          nothing  the mirror is up to date

NOT TARGETS: 5
  NAMESPACE        ACTION  WHY
  default          -       source namespace: a source is never mirrored into its own namespace
  kube-node-lease  -       excluded: kube-system, kube-public and kube-node-lease never receive mirrors
  kube-public      -       excluded: kube-system, kube-public and kube-node-lease never receive mirrors
  kube-system      -       excluded: kube-system, kube-public and kube-node-lease never receive mirrors
  legacy           -       not selected: opted out of "all" (label kubemirror.raczylo.com/allow-mirrors=false)

sync-status after this pass: synced:10,failed:0,conflicts:0,skipped:0
"#),
("configmap-patterns.yaml", true, r#"ConfigMap.v1 default/shared-config  (from examples/configmap-patterns.yaml)
  targets:    target-namespaces "app-*,prod-*"
  type:       ConfigMap.v1 (watched)
  in cluster: yes

TARGETS: 3 (0 to write)
  NAMESPACE     ACTION   WHY
  app-frontend  nothing  the mirror is up to date
  prod-api      nothing  the mirror is up to date
  prod-web      nothing  the mirror is up to date

NOT TARGETS: 12
  NAMESPACE         ACTION  WHY
  app1              -       not selected by target-namespaces "app-*,prod-*"
  app2              -       not selected by target-namespaces "app-*,prod-*"
  app3              -       not selected by target-namespaces "app-*,prod-*"
  default           -       not selected by target-namespaces "app-*,prod-*"
  dev-web           -       not selected by target-namespaces "app-*,prod-*"
  eu-staging        -       not selected by target-namespaces "app-*,prod-*"
  external-secrets  -       not selected by target-namespaces "app-*,prod-*"
  kube-node-lease   -       not selected by target-namespaces "app-*,prod-*"
  kube-public       -       not selected by target-namespaces "app-*,prod-*"
  kube-system       -       not selected by target-namespaces "app-*,prod-*"
  legacy            -       not selected by target-namespaces "app-*,prod-*"
  preprod-web       -       not selected by target-namespaces "app-*,prod-*"

sync-status after this pass: synced:3,failed:0,conflicts:0,skipped:0
"#),
("externalsecret-dockerconfig.yaml", true, r#"Secret.v1 external-secrets/multi-registry-secret  (from examples/externalsecret-dockerconfig.yaml)
  targets:    target-namespaces "all"
  type:       Secret.v1 (watched)
  in cluster: yes

TARGETS: 10 (0 to write)
  NAMESPACE     ACTION   WHY
  app-frontend  nothing  the mirror is up to date
  app1          nothing  the mirror is up to date
  app2          nothing  the mirror is up to date
  app3          nothing  the mirror is up to date
  default       nothing  the mirror is up to date
  dev-web       nothing  the mirror is up to date
  eu-staging    nothing  the mirror is up to date
  preprod-web   nothing  the mirror is up to date
  prod-api      nothing  the mirror is up to date
  prod-web      nothing  the mirror is up to date

NOT TARGETS: 5
  NAMESPACE         ACTION  WHY
  external-secrets  -       source namespace: a source is never mirrored into its own namespace
  kube-node-lease   -       excluded: kube-system, kube-public and kube-node-lease never receive mirrors
  kube-public       -       excluded: kube-system, kube-public and kube-node-lease never receive mirrors
  kube-system       -       excluded: kube-system, kube-public and kube-node-lease never receive mirrors
  legacy            -       not selected: opted out of "all" (label kubemirror.raczylo.com/allow-mirrors=false)

sync-status after this pass: synced:10,failed:0,conflicts:0,skipped:0
"#),
("secret-specific-namespaces.yaml", true, r#"Secret.v1 default/database-credentials  (from examples/secret-specific-namespaces.yaml)
  targets:    target-namespaces "app1,app2,app3"
  type:       Secret.v1 (watched)
  in cluster: yes

TARGETS: 3 (0 to write)
  NAMESPACE  ACTION   WHY
  app1       nothing  the mirror is up to date
  app2       nothing  the mirror is up to date
  app3       nothing  the mirror is up to date

NOT TARGETS: 12
  NAMESPACE         ACTION  WHY
  app-frontend      -       not selected by target-namespaces "app1,app2,app3"
  default           -       not selected by target-namespaces "app1,app2,app3"
  dev-web           -       not selected by target-namespaces "app1,app2,app3"
  eu-staging        -       not selected by target-namespaces "app1,app2,app3"
  external-secrets  -       not selected by target-namespaces "app1,app2,app3"
  kube-node-lease   -       not selected by target-namespaces "app1,app2,app3"
  kube-public       -       not selected by target-namespaces "app1,app2,app3"
  kube-system       -       not selected by target-namespaces "app1,app2,app3"
  legacy            -       not selected by target-namespaces "app1,app2,app3"
  preprod-web       -       not selected by target-namespaces "app1,app2,app3"
  prod-api          -       not selected by target-namespaces "app1,app2,app3"
  prod-web          -       not selected by target-namespaces "app1,app2,app3"

sync-status after this pass: synced:3,failed:0,conflicts:0,skipped:0
"#),
("secret-tls-all-labeled.yaml", true, r#"Secret.v1 default/wildcard-tls  (from examples/secret-tls-all-labeled.yaml)
  targets:    target-namespaces "all-labeled"
  type:       Secret.v1 (watched)
  in cluster: yes

TARGETS: 2 (0 to write)
  NAMESPACE     ACTION   WHY
  app-frontend  nothing  the mirror is up to date
  prod-api      nothing  the mirror is up to date

NOT TARGETS: 13
  NAMESPACE         ACTION  WHY
  app1              -       not selected by target-namespaces "all-labeled"
  app2              -       not selected by target-namespaces "all-labeled"
  app3              -       not selected by target-namespaces "all-labeled"
  default           -       not selected by target-namespaces "all-labeled"
  dev-web           -       not selected by target-namespaces "all-labeled"
  eu-staging        -       not selected by target-namespaces "all-labeled"
  external-secrets  -       not selected by target-namespaces "all-labeled"
  kube-node-lease   -       not selected by target-namespaces "all-labeled"
  kube-public       -       not selected by target-namespaces "all-labeled"
  kube-system       -       not selected by target-namespaces "all-labeled"
  legacy            -       not selected by target-namespaces "all-labeled"
  preprod-web       -       not selected by target-namespaces "all-labeled"
  prod-web          -       not selected by target-namespaces "all-labeled"

sync-status after this pass: synced:2,failed:0,conflicts:0,skipped:0
"#),
("traefik-middleware.yaml", true, r#"Middleware.v1alpha1.traefik.io default/compression  (from examples/traefik-middleware.yaml)
  targets:    target-namespaces "app-*"
  type:       Middleware.v1alpha1.traefik.io (watched)
  in cluster: yes

TARGETS: 1 (0 to write)
  NAMESPACE     ACTION   WHY
  app-frontend  nothing  the mirror is up to date

NOT TARGETS: 14
  NAMESPACE         ACTION  WHY
  app1              -       not selected by target-namespaces "app-*"
  app2              -       not selected by target-namespaces "app-*"
  app3              -       not selected by target-namespaces "app-*"
  default           -       not selected by target-namespaces "app-*"
  dev-web           -       not selected by target-namespaces "app-*"
  eu-staging        -       not selected by target-namespaces "app-*"
  external-secrets  -       not selected by target-namespaces "app-*"
  kube-node-lease   -       not selected by target-namespaces "app-*"
  kube-public       -       not selected by target-namespaces "app-*"
  kube-system       -       not selected by target-namespaces "app-*"
  legacy            -       not selected by target-namespaces "app-*"
  preprod-web       -       not selected by target-namespaces "app-*"
  prod-api          -       not selected by target-namespaces "app-*"
  prod-web          -       not selected by target-namespaces "app-*"

sync-status after this pass: synced:1,failed:0,conflicts:0,skipped:0
"#),
("transform-configmap-environments.yaml", true, r#"ConfigMap.v1 default/app-config  (from examples/transform-configmap-environments.yaml)
  targets:    target-namespaces "dev-*,staging-*,prod-*"
  type:       ConfigMap.v1 (watched)
  in cluster: yes
  transform:  4 rules (a failing rule is skipped)

TARGETS: 3 (0 to write)
  NAMESPACE  ACTION   WHY
  dev-web    nothing  the mirror is up to date
  prod-api   nothing  the mirror is up to date
  prod-web   nothing  the mirror is up to date

NOT TARGETS: 12
  NAMESPACE         ACTION  WHY
  app-frontend      -       not selected by target-namespaces "dev-*,staging-*,prod-*"
  app1              -       not selected by target-namespaces "dev-*,staging-*,prod-*"
  app2              -       not selected by target-namespaces "dev-*,staging-*,prod-*"
  app3              -       not selected by target-namespaces "dev-*,staging-*,prod-*"
  default           -       not selected by target-namespaces "dev-*,staging-*,prod-*"
  eu-staging        -       not selected by target-namespaces "dev-*,staging-*,prod-*"
  external-secrets  -       not selected by target-namespaces "dev-*,staging-*,prod-*"
  kube-node-lease   -       not selected by target-namespaces "dev-*,staging-*,prod-*"
  kube-public       -       not selected by target-namespaces "dev-*,staging-*,prod-*"
  kube-system       -       not selected by target-namespaces "dev-*,staging-*,prod-*"
  legacy            -       not selected by target-namespaces "dev-*,staging-*,prod-*"
  preprod-web       -       not selected by target-namespaces "dev-*,staging-*,prod-*"

sync-status after this pass: synced:3,failed:0,conflicts:0,skipped:0
"#),
("transform-deployment-array-indexes.yaml", true, r#"Deployment.v1.apps default/web  (from examples/transform-deployment-array-indexes.yaml)
  targets:    target-namespaces "app-frontend,prod-api"
  type:       Deployment.v1.apps (watched)
  in cluster: yes
  transform:  5 rules (a failing rule is skipped)

TARGETS: 2 (0 to write)
  NAMESPACE     ACTION   WHY
  app-frontend  nothing  the mirror is up to date
  prod-api      nothing  the mirror is up to date

NOT TARGETS: 13
  NAMESPACE         ACTION  WHY
  app1              -       not selected by target-namespaces "app-frontend,prod-api"
  app2              -       not selected by target-namespaces "app-frontend,prod-api"
  app3              -       not selected by target-namespaces "app-frontend,prod-api"
  default           -       not selected by target-namespaces "app-frontend,prod-api"
  dev-web           -       not selected by target-namespaces "app-frontend,prod-api"
  eu-staging        -       not selected by target-namespaces "app-frontend,prod-api"
  external-secrets  -       not selected by target-namespaces "app-frontend,prod-api"
  kube-node-lease   -       not selected by target-namespaces "app-frontend,prod-api"
  kube-public       -       not selected by target-namespaces "app-frontend,prod-api"
  kube-system       -       not selected by target-namespaces "app-frontend,prod-api"
  legacy            -       not selected by target-namespaces "app-frontend,prod-api"
  preprod-web       -       not selected by target-namespaces "app-frontend,prod-api"
  prod-web          -       not selected by target-namespaces "app-frontend,prod-api"

sync-status after this pass: synced:2,failed:0,conflicts:0,skipped:0
"#),
("transform-namespace-patterns.yaml", true, r#"ConfigMap.v1 default/graphql-config  (from examples/transform-namespace-patterns.yaml)
  targets:    target-namespaces "preprod-web,prod-web,eu-staging,dev-web"
  type:       ConfigMap.v1 (watched)
  in cluster: yes
  transform:  4 rules (a failing rule is skipped)

TARGETS: 4 (0 to write)
  NAMESPACE    ACTION   WHY
  dev-web      nothing  the mirror is up to date
  eu-staging   nothing  the mirror is up to date
  preprod-web  nothing  the mirror is up to date
  prod-web     nothing  the mirror is up to date

NOT TARGETS: 11
  NAMESPACE         ACTION  WHY
  app-frontend      -       not selected by target-namespaces "preprod-web,prod-web,eu-staging,dev-web"
  app1              -       not selected by target-namespaces "preprod-web,prod-web,eu-staging,dev-web"
  app2              -       not selected by target-namespaces "preprod-web,prod-web,eu-staging,dev-web"
  app3              -       not selected by target-namespaces "preprod-web,prod-web,eu-staging,dev-web"
  default           -       not selected by target-namespaces "preprod-web,prod-web,eu-staging,dev-web"
  external-secrets  -       not selected by target-namespaces "preprod-web,prod-web,eu-staging,dev-web"
  kube-node-lease   -       not selected by target-namespaces "preprod-web,prod-web,eu-staging,dev-web"
  kube-public       -       not selected by target-namespaces "preprod-web,prod-web,eu-staging,dev-web"
  kube-system       -       not selected by target-namespaces "preprod-web,prod-web,eu-staging,dev-web"
  legacy            -       not selected by target-namespaces "preprod-web,prod-web,eu-staging,dev-web"
  prod-api          -       not selected by target-namespaces "preprod-web,prod-web,eu-staging,dev-web"

sync-status after this pass: synced:4,failed:0,conflicts:0,skipped:0
"#),
("transform-secret-hardening.yaml", true, r#"Secret.v1 default/app-credentials  (from examples/transform-secret-hardening.yaml)
  targets:    target-namespaces "app1,app2,app3"
  type:       Secret.v1 (watched)
  in cluster: yes
  transform:  3 rules (strict: a failing rule fails its target)

TARGETS: 3 (0 to write)
  NAMESPACE  ACTION   WHY
  app1       nothing  the mirror is up to date
  app2       nothing  the mirror is up to date
  app3       nothing  the mirror is up to date

NOT TARGETS: 12
  NAMESPACE         ACTION  WHY
  app-frontend      -       not selected by target-namespaces "app1,app2,app3"
  default           -       not selected by target-namespaces "app1,app2,app3"
  dev-web           -       not selected by target-namespaces "app1,app2,app3"
  eu-staging        -       not selected by target-namespaces "app1,app2,app3"
  external-secrets  -       not selected by target-namespaces "app1,app2,app3"
  kube-node-lease   -       not selected by target-namespaces "app1,app2,app3"
  kube-public       -       not selected by target-namespaces "app1,app2,app3"
  kube-system       -       not selected by target-namespaces "app1,app2,app3"
  legacy            -       not selected by target-namespaces "app1,app2,app3"
  preprod-web       -       not selected by target-namespaces "app1,app2,app3"
  prod-api          -       not selected by target-namespaces "app1,app2,app3"
  prod-web          -       not selected by target-namespaces "app1,app2,app3"

sync-status after this pass: synced:3,failed:0,conflicts:0,skipped:0
"#),
];

#[test]
fn explain_prints_each_example_as_the_controller_sees_it_and_writes_nothing() {
    let c = examples_cluster();
    let mut files: Vec<String> = std::fs::read_dir(examples_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    files.sort();
    let mut got: Vec<(String, bool, String)> = Vec::new();
    for converged in [false, true] {
        if converged {
            c.controller_until(None, all_converged);
        }
        c.s.reset_stats();
        for f in &files {
            let (code, out, err) = c.cmd(&["explain", "-f", &example(f)]);
            if f == "namespaces.yaml" {
                assert_eq!(code, Some(1), "{err}");
                assert!(err.contains("no namespaced object in it"), "{err}");
                continue;
            }
            assert_eq!(code, Some(0), "{f}: {err}");
            got.push((f.clone(), converged, out.replace(&example(f), &format!("examples/{f}"))));
        }
        assert_eq!(c.writes(), 0, "explain never writes: {:?}", c.s.stats().requests);
    }
    for (f, converged, out) in &got {
        println!("==== ({f:?}, {converged}, r#\"{out}\"#),");
    }
    for (f, converged, out) in &got {
        let want = GOLDEN.iter().find(|(gf, gc, _)| gf == f && gc == converged).map(|(_, _, t)| *t);
        assert_eq!(Some(out.as_str()), want, "{f} (converged: {converged})");
    }
}

#[test]
fn explain_prints_the_exact_mirror_the_controller_writes() {
    let c = examples_cluster();
    c.controller_until(Some("Secret.v1,ConfigMap.v1"), |s| {
        mirrored_in(s, "v1", "Secret", "database-credentials") == ["app1", "app2", "app3"]
    });
    c.s.reset_stats();
    let file = example("secret-specific-namespaces.yaml");
    let (code, json_out, err) = c.cmd(&["explain", "-f", &file, "-o", "json", "--namespace", "app2"]);
    assert_eq!(code, Some(0), "{err}");
    let (code, yaml_out, err) =
        c.cmd(&["explain", "Secret", "default/database-credentials", "-o", "yaml", "--namespace=app2"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(c.writes(), 0);
    let strip = |mut v: Value| {
        let meta = v["metadata"].as_object_mut().unwrap();
        for k in ["uid", "resourceVersion", "creationTimestamp", "generation", "managedFields"] {
            meta.remove(k);
        }
        // When it is built, and from which resourceVersion of the source (our own status patch
        // moved it since the mirror was written): bookkeeping, not content.
        let ann = meta["annotations"].as_object_mut().unwrap();
        ann.remove("kubemirror.raczylo.com/last-sync-time");
        ann.remove("kubemirror.raczylo.com/source-resource-version");
        v
    };
    let written = strip(c.s.get_object("v1", "Secret", Some("app2"), "database-credentials").unwrap());
    let from_json: Value = serde_json::from_str(&json_out).unwrap();
    assert_eq!(strip(from_json), written);
    assert_eq!(strip(yaml::load_one(&yaml_out).unwrap()), written);
    // Every target's mirror: a List.
    let (code, all, _) = c.cmd(&["explain", "-f", &file, "-o", "json"]);
    assert_eq!(code, Some(0));
    let all: Value = serde_json::from_str(&all).unwrap();
    let namespaces: Vec<&str> =
        all["items"].as_array().unwrap().iter().map(|m| m["metadata"]["namespace"].as_str().unwrap()).collect();
    assert_eq!(namespaces, ["app1", "app2", "app3"]);
    // Not a target: the reason, exit 1.
    let (code, out, err) = c.cmd(&["explain", "-f", &file, "-o", "yaml", "--namespace", "default"]);
    assert_eq!((code, out.as_str()), (Some(1), ""));
    assert!(err.contains("default receives no mirror: not selected by target-namespaces \"app1,app2,app3\""), "{err}");
}

fn secret(ns: &str, name: &str, targets: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns,
        "labels": {"kubemirror.raczylo.com/enabled": "true"},
        "annotations": {"kubemirror.raczylo.com/sync": "true", "kubemirror.raczylo.com/target-namespaces": targets}},
        "data": {"password": "czNjcjN0"}})
}

fn namespace(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
}

#[test]
fn explain_names_the_step_that_excludes_each_namespace() {
    let c = Cluster::new(&["unrelated", "other", "excluded-1"]);
    let consent = json!({"kubemirror.raczylo.com/allow-mirrors": "true"});
    for ns in ["app-a", "app-b", "app-c", "app-f", "app-g", "z-old"] {
        c.s.create_object(namespace(ns, consent.clone())).unwrap();
    }
    c.s.create_object(namespace("app-e", json!({}))).unwrap();
    c.s.create_object(namespace("app-d", consent.clone())).unwrap();
    // app-d is terminating: an object with a finalizer holds it.
    c.s.create_object(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "hold", "namespace": "app-d", "finalizers": ["example.com/hold"]}}))
        .unwrap();
    c.s.delete_object("v1", "Namespace", None, "app-d").unwrap();
    let src = c.s.create_object(secret("default", "db", "app-*, excluded-1, other, kube-system, app-missing")).unwrap();
    let uid = src["metadata"]["uid"].as_str().unwrap().to_string();
    // app-b: a foreign object; app-c: another source's mirror; z-old: our mirror, no longer a target.
    c.s.create_object(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "app-b"}}))
        .unwrap();
    let mirror = |ns: &str, source_ns: &str, source_uid: &str| {
        json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "db", "namespace": ns,
            "labels": {"kubemirror.raczylo.com/managed-by": "kubemirror", "kubemirror.raczylo.com/mirror": "true"},
            "annotations": {"kubemirror.raczylo.com/source-namespace": source_ns, "kubemirror.raczylo.com/source-name": "db",
                "kubemirror.raczylo.com/source-uid": source_uid}},
        "data": {"password": "b2xk"}})
    };
    c.s.create_object(mirror("app-c", "other", "u-other")).unwrap();
    c.s.create_object(mirror("z-old", "default", &uid)).unwrap();
    c.s.reset_stats();
    let flags = [
        "--excluded-namespaces=excluded-*",
        "--included-namespaces=app-*,z-*,excluded-*",
        "--require-target-consent",
        "--max-targets=4",
    ];
    let mut args = vec!["explain", "secret", "default/db"];
    args.extend(flags);
    let (code, out, err) = c.cmd(&args);
    assert_eq!(code, Some(0), "{err}");
    println!("{out}");
    assert_eq!(out, STEPS_GOLDEN);
    assert_eq!(c.writes(), 0);

    // A refused Secret type, and a source that is not enabled: said first.
    let mut token = secret("default", "token", "app-a");
    token["type"] = json!("kubernetes.io/service-account-token");
    token["metadata"]["annotations"]["kubernetes.io/service-account.name"] = json!("default");
    c.s.create_object(token).unwrap();
    let (code, out, _) = c.cmd(&["explain", "Secret.v1", "default/token"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains(
            "  NOT MIRRORED: refused: Secrets of type kubernetes.io/service-account-token are never mirrored\n"
        ),
        "{out}"
    );
    assert!(out.contains("  app-a      skip    refused (see above)\n"), "{out}");
    let mut off = secret("default", "off", "app-a");
    off["metadata"]["labels"] = json!({});
    c.s.create_object(off).unwrap();
    let (code, out, _) = c.cmd(&["explain", "secrets", "default/off"]);
    assert_eq!(code, Some(0));
    assert!(
        out.starts_with(
            "Secret.v1 default/off\n  NOT MIRRORED: the label kubemirror.raczylo.com/enabled: \"true\" is missing"
        ),
        "{out}"
    );
    assert!(out.contains("  app-a      skip    a target once the source is enabled\n"), "{out}");
    let (code, _, err) = c.cmd(&["explain", "secret", "default/off", "-o", "yaml"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("nothing is mirrored: the label"), "{err}");
    let (code, out, _) = c.cmd(&["explain", "Secret", "default/db", "--resource-types=ConfigMap.v1"]);
    assert_eq!(code, Some(0));
    let want =
        "  NOT MIRRORED: the controller does not watch Secret.v1: it is not in --resource-types \"ConfigMap.v1\"\n";
    assert!(out.contains(want), "{out}");
    let (code, _, err) = c.cmd(&["explain", "Secret", "default/nope"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("Secret default/nope not found"), "{err}");
    let (code, _, err) = c.cmd(&["explain", "Gizmo", "default/x"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no kind or resource named \"Gizmo\""), "{err}");
    // Rules that do not compile: said in the header, and no mirror can be printed.
    let mut bad = secret("default", "badrules", "app-a");
    bad["metadata"]["annotations"]["kubemirror.raczylo.com/transform"] = json!("rules:\n  - path: data.x\n");
    c.s.create_object(bad).unwrap();
    let (code, out, _) = c.cmd(&["explain", "secret", "default/badrules"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("  transform:  does not compile, so no target is written: "), "{out}");
    let (code, _, err) = c.cmd(&["explain", "secret", "default/badrules", "-o", "yaml", "--namespace", "app-a"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("invalid transformation rules: rule 1 (data.x)"), "{err}");
    assert_eq!(c.writes(), 0);
}

/// Every step of the precedence, one namespace each (see the set-up above).
const STEPS_GOLDEN: &str = r#"Secret.v1 default/db
  targets:    target-namespaces "app-*, excluded-1, other, kube-system, app-missing"
  type:       Secret.v1 (watched)
  finalizer:  kubemirror.raczylo.com/finalizer is added to the source first

TARGETS: 4 (3 to write)
  NAMESPACE  ACTION  WHY
  app-a      create  no mirror there yet
  app-b      skip    a foreign object of the same name is there (no kubemirror.raczylo.com/managed-by=kubemirror label); it is never overwritten
  app-c      skip    another source's mirror is there (of other/db); it is never overwritten
  app-f      create  no mirror there yet

NOT TARGETS: 11
  NAMESPACE        ACTION  WHY
  app-d            -       terminating: the namespace is being deleted (skipped, not a failure)
  app-e            -       not consenting (--require-target-consent): no label kubemirror.raczylo.com/allow-mirrors=true, and its annotation kubemirror.raczylo.com/allow-mirrors-from does not name default
  app-g            -       max-targets: over --max-targets=4 (the first 4 selected namespaces by name are mirrored)
  default          -       not selected by target-namespaces "app-*, excluded-1, other, kube-system, app-missing"
  excluded-1       -       excluded by flag: matches --excluded-namespaces "excluded-*"
  kube-node-lease  -       not selected by target-namespaces "app-*, excluded-1, other, kube-system, app-missing"
  kube-public      -       not selected by target-namespaces "app-*, excluded-1, other, kube-system, app-missing"
  kube-system      -       excluded: kube-system, kube-public and kube-node-lease never receive mirrors
  other            -       not included: does not match --included-namespaces "app-*,z-*,excluded-*"
  unrelated        -       not selected by target-namespaces "app-*, excluded-1, other, kube-system, app-missing"
  z-old            delete  not selected by target-namespaces "app-*, excluded-1, other, kube-system, app-missing"; its mirror there is deleted (namespace is no longer a target)

NOTES
  - target namespace app-missing does not exist (it is mirrored once it is created)
  - 5 target namespaces matched, only the first 4 (by name) are mirrored

sync-status after this pass: synced:2,failed:0,conflicts:2,skipped:6,truncated:1; last-error: app-b: an object of the same name exists and is not managed by kubemirror
"#;

// ---- cleanup ----

fn finalizers(o: &Value) -> Vec<String> {
    o["metadata"]["finalizers"]
        .as_array()
        .map(|a| a.iter().map(|f| f.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

#[test]
fn cleanup_deletes_our_mirrors_releases_our_finalizers_and_touches_nothing_else() {
    let c = Cluster::new(&["app1", "app2", "other"]);
    c.s.create_object(secret("default", "db", "app1,app2")).unwrap();
    c.s.create_object(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "default",
        "labels": {"kubemirror.raczylo.com/enabled": "true"},
        "annotations": {"kubemirror.raczylo.com/sync": "true", "kubemirror.raczylo.com/target-namespaces": "app1"}},
        "data": {"k": "v"}}),
    )
    .unwrap();
    c.controller_until(Some("Secret.v1,ConfigMap.v1"), |s| {
        mirrored_in(s, "v1", "Secret", "db") == ["app1", "app2"]
            && mirrored_in(s, "v1", "ConfigMap", "cfg") == ["app1"]
            && finalizers(&s.get_object("v1", "Secret", Some("default"), "db").unwrap())
                .contains(&FINALIZER.to_string())
            && finalizers(&s.get_object("v1", "ConfigMap", Some("default"), "cfg").unwrap())
                .contains(&FINALIZER.to_string())
    });
    // Someone else's finalizer on our source; a foreign object of the same name; a labelled object
    // that names no source.
    let mut src = c.s.get_object("v1", "Secret", Some("default"), "db").unwrap();
    src["metadata"]["finalizers"] = json!(["example.com/keep", FINALIZER]);
    c.s.update_object(src).unwrap();
    let foreign =
        c.s.create_object(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "db", "namespace": "other"}, "data": {"x": "eQ=="}}))
            .unwrap();
    let orphan =
        c.s.create_object(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "stray",
        "namespace": "other", "labels": {"kubemirror.raczylo.com/managed-by": "kubemirror"}}}))
            .unwrap();
    let source_before = c.s.get_object("v1", "Secret", Some("default"), "db").unwrap();

    let args = ["cleanup", "--resource-types=Secret.v1,ConfigMap.v1"];
    c.s.reset_stats();
    let (code, out, err) = c.cmd(&[&args[..], &["--dry-run"]].concat());
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(c.writes(), 0, "a dry run writes nothing: {:?}", c.s.stats().requests);
    let mut dry: Vec<&str> = out.lines().collect();
    dry.sort();
    assert_eq!(
        dry,
        [
            "cleanup: 3 mirror(s) would be deleted, 2 finalizer(s) would be removed, 1 object(s) left alone, 0 error(s); nothing was changed (dry run)",
            "left alone: Secret other/stray has the managed-by label but names no source",
            "would delete ConfigMap app1/cfg (mirror of default/cfg)",
            "would delete Secret app1/db (mirror of default/db)",
            "would delete Secret app2/db (mirror of default/db)",
            "would remove the finalizer of ConfigMap default/cfg",
            "would remove the finalizer of Secret default/db",
        ]
    );

    let (code, out, err) = c.cmd(&args);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.ends_with("cleanup: 3 mirror(s) deleted, 2 finalizer(s) removed, 1 object(s) left alone, 0 error(s)\n"),
        "{out}"
    );
    assert!(
        mirrored_in(&c.s, "v1", "Secret", "db").is_empty() && mirrored_in(&c.s, "v1", "ConfigMap", "cfg").is_empty()
    );
    let source = c.s.get_object("v1", "Secret", Some("default"), "db").unwrap();
    assert_eq!(finalizers(&source), ["example.com/keep"]);
    // Nothing else of the source changed (not even our sync-status annotation).
    let without_version = |mut v: Value| {
        v["metadata"].as_object_mut().unwrap().remove("resourceVersion");
        v["metadata"].as_object_mut().unwrap().remove("managedFields");
        v
    };
    let mut expected = source_before.clone();
    expected["metadata"]["finalizers"] = json!(["example.com/keep"]);
    assert_eq!(without_version(source), without_version(expected));
    assert_eq!(
        c.s.get_object("v1", "Secret", Some("other"), "db").unwrap(),
        foreign,
        "the foreign object is untouched"
    );
    assert_eq!(c.s.get_object("v1", "Secret", Some("other"), "stray").unwrap(), orphan);

    c.s.reset_stats();
    let (code, out, _) = c.cmd(&args);
    assert_eq!(code, Some(0));
    assert_eq!(
        out,
        "left alone: Secret other/stray has the managed-by label but names no source\ncleanup: 0 mirror(s) deleted, 0 finalizer(s) removed, 1 object(s) left alone, 0 error(s)\n"
    );
    assert_eq!(c.writes(), 0, "a second run does nothing");
}

#[test]
fn cleanup_refuses_while_another_instance_holds_the_lease_unless_forced() {
    let c = Cluster::new(&["app1"]);
    c.s.create_object(secret("default", "db", "app1")).unwrap();
    c.controller_until(Some("Secret.v1"), |s| mirrored_in(s, "v1", "Secret", "db") == ["app1"]);
    let now = kubemirror::util::time::format_rfc3339_micros(std::time::SystemTime::now());
    c.s.create_object(json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "kubemirror-controller-leader", "namespace": "default"},
        "spec": {"holderIdentity": "kubemirror-7d9f_abc", "leaseDurationSeconds": 3600, "renewTime": now}}))
        .unwrap();
    c.s.reset_stats();
    let args = ["cleanup", "--resource-types=Secret.v1", "--leader-election-namespace=default"];
    let (code, out, err) = c.cmd(&args);
    assert_eq!(code, Some(1), "{out}");
    assert!(err.contains("lease default/kubemirror-controller-leader is held by kubemirror-7d9f_abc"), "{err}");
    assert!(err.contains("--force"), "{err}");
    assert_eq!(c.writes(), 0);
    assert_eq!(mirrored_in(&c.s, "v1", "Secret", "db"), ["app1"]);
    let (code, out, err) = c.cmd(&[&args[..], &["--force"]].concat());
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("deleted Secret app1/db (mirror of default/db)"), "{out}");
    until("the mirror gone", WAIT, || mirrored_in(&c.s, "v1", "Secret", "db").is_empty());
}
