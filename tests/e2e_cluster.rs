//! End to end against a REAL cluster. Opt-in twice, because it creates and deletes namespaces:
//! `KUBEMIRROR_E2E=1 KUBECONFIG=~/.kube/kind cargo test --features testkit --test e2e_cluster -- --nocapture`.
//! Without both variables it prints why and passes. It uses three namespaces named
//! `kubemirror-e2e-<random>-*`, runs the controller in-process without leader election, and removes
//! everything it created, also when it fails.

use std::time::Duration;

use kubemirror::client::{
    ApiResource, Client, ClientOptions, DeleteParams, LoadOptions, Patch, PatchParams, PostParams,
};
use kubemirror::controller::{self, Exit};
use kubemirror::options::Options;
use kubemirror::util::rand::Rng;
use serde_json::json;
use tokio::sync::oneshot;

fn enabled() -> Option<String> {
    let kubeconfig = std::env::var("KUBECONFIG").ok().filter(|k| !k.is_empty());
    match (std::env::var("KUBEMIRROR_E2E").as_deref(), kubeconfig) {
        (Ok("1"), Some(k)) => Some(k),
        _ => {
            eprintln!("e2e_cluster: skipped (set KUBEMIRROR_E2E=1 and KUBECONFIG to run against a real cluster)");
            None
        }
    }
}

async fn eventually<F: AsyncFn() -> bool>(what: &str, f: F) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !f().await {
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("timed out after 60 s waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(())
}

async fn data_in(c: &Client, namespaces: &[&str], want: &str) -> bool {
    for ns in namespaces {
        match c.get(&ApiResource::secrets(), Some(ns), "e2e-source").await {
            Ok(m) if m["data"]["k"] == want => {}
            _ => return false,
        }
    }
    true
}

async fn gone_from(c: &Client, namespaces: &[&str]) -> bool {
    for ns in namespaces {
        if !c.get(&ApiResource::secrets(), Some(ns), "e2e-source").await.is_err_and(|e| e.is_not_found()) {
            return false;
        }
    }
    true
}

/// Create, update, delete a source; errors instead of panics so the caller always cleans up.
async fn scenario(c: &Client, src: &str, a: &str, b: &str) -> Result<(), String> {
    let secrets = ApiResource::secrets();
    let source = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "e2e-source", "namespace": src,
            "labels": {"kubemirror.raczylo.com/enabled": "true"},
            "annotations": {"kubemirror.raczylo.com/sync": "true",
                            "kubemirror.raczylo.com/target-namespaces": format!("{a},{b}")}},
        "data": {"k": "djE="}});
    c.create(&secrets, Some(src), &source, &PostParams::default()).await.map_err(|e| format!("create source: {e}"))?;
    eventually("mirrors in both targets", async || data_in(c, &[a, b], "djE=").await).await?;
    let change = Patch::Merge(json!({"data": {"k": "djI="}}));
    c.patch(&secrets, Some(src), "e2e-source", &change, &PatchParams::default())
        .await
        .map_err(|e| format!("update source: {e}"))?;
    eventually("the change in both mirrors", async || data_in(c, &[a, b], "djI=").await).await?;
    c.delete(&secrets, Some(src), "e2e-source", &DeleteParams::default())
        .await
        .map_err(|e| format!("delete source: {e}"))?;
    eventually("source and mirrors gone", async || gone_from(c, &[src, a, b]).await).await
}

async fn cleanup(c: &Client, namespaces: &[String]) {
    for ns in namespaces {
        // Our finalizer on the source would hold the namespace deletion if the controller is gone.
        let release = Patch::Merge(json!({"metadata": {"finalizers": null}}));
        let _ = c.patch(&ApiResource::secrets(), Some(ns), "e2e-source", &release, &PatchParams::default()).await;
        let _ = c.delete(&ApiResource::namespaces(), None, ns, &DeleteParams::default()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_is_mirrored_updated_and_cleaned_up_on_a_real_cluster() {
    let Some(kubeconfig) = enabled() else { return };
    let load = LoadOptions { kubeconfig: Some(kubeconfig.into()), context: None };
    let c = Client::from_options(&load, ClientOptions::default()).await.expect("cluster reachable");
    let run = format!("kubemirror-e2e-{}", Rng::from_os().suffix(5));
    let namespaces: Vec<String> = ["src", "a", "b"].iter().map(|s| format!("{run}-{s}")).collect();
    for ns in &namespaces {
        let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        c.create(&ApiResource::namespaces(), None, &obj, &PostParams::default()).await.expect("create namespace");
    }
    let opts = Options {
        resource_types: Some("Secret.v1".into()),
        leader_elect: false,
        included_namespaces: format!("{run}-*"),
        metrics_bind_address: None,
        health_probe_bind_address: None,
        ..Options::default()
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let shutdown = async move {
        let _ = stopped.await;
    };
    let task = tokio::spawn(controller::run(opts, c.clone(), None, shutdown, |_| {}));

    let outcome = scenario(&c, &namespaces[0], &namespaces[1], &namespaces[2]).await;
    let _ = stop.send(());
    let exit = task.await;
    cleanup(&c, &namespaces).await;
    if let Err(e) = outcome {
        panic!("{e}");
    }
    assert!(matches!(exit, Ok(Ok(Exit::Clean))), "controller stopped badly: {exit:?}");
}
