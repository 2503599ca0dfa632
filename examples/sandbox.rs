//! The sandbox: the in-memory API server with examples/*.yaml applied and the controller running
//! in-process against it, for trying KubeMirror with kubectl and no cluster. Prints exactly one
//! `export KUBECONFIG=<path>` line on stdout once ready; Ctrl-C stops both (the controller first, so
//! it releases its lease). Logs go to stderr.
//!
//!     cargo run --features testkit --example sandbox

use std::path::{Path, PathBuf};

use std::net::SocketAddr;

use kubemirror::client::Client;
use kubemirror::controller::{self, Exit};
use kubemirror::options::Options;
use kubemirror::testkit::{ApiServer, ServerOptions};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

fn manifests(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("reading {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    Ok(files)
}

/// Everything in one batch so namespaces and CRDs land before what needs them.
fn apply_examples(server: &ApiServer, dir: &Path) -> Result<usize, String> {
    let mut text = String::new();
    for f in manifests(dir)? {
        let body = std::fs::read_to_string(&f).map_err(|e| format!("reading {}: {e}", f.display()))?;
        text.push_str(&body);
        text.push_str("\n---\n");
    }
    let applied = server.apply_yaml(&text)?;
    Ok(applied.len())
}

/// The real controller, in-process, on the admin kubeconfig: auto discovery, leader election on
/// (its Lease in the kubeconfig's namespace), admin endpoints on free local ports. Stops cleanly
/// (lease released) when `stop` fires.
async fn start_controller(
    kubeconfig: &Path,
    stop: oneshot::Receiver<()>,
) -> Result<JoinHandle<Result<Exit, String>>, String> {
    let local: SocketAddr = ([127, 0, 0, 1], 0).into();
    let options = Options {
        kubeconfig: Some(kubeconfig.to_path_buf()),
        metrics_bind_address: Some(local),
        health_probe_bind_address: Some(local),
        ..Options::default()
    };
    let client =
        Client::from_options(&options.load_options(), options.client_options()).await.map_err(|e| e.to_string())?;
    let options = Options { leader_election_namespace: Some(client.default_namespace().to_string()), ..options };
    Ok(tokio::spawn(controller::run(
        options,
        client,
        None,
        async move {
            let _ = stop.await;
        },
        |b| {
            if let (Some(m), Some(h)) = (b.metrics, b.health) {
                log::info!("sandbox: controller metrics at http://{m}/metrics, probes at http://{h}/readyz");
            }
        },
    )))
}

async fn run() -> Result<(), String> {
    // Like a real cluster: every namespace gets kube-root-ca.crt and the default ServiceAccount.
    let server = ApiServer::start(ServerOptions { cluster_defaults: true, ..Default::default() }).await?;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let n = apply_examples(&server, &dir)?;
    let kubeconfig = server.kubeconfig_path("admin");
    let kubeconfig = std::fs::canonicalize(&kubeconfig).unwrap_or(kubeconfig);
    log::info!("sandbox: API server at {} with {n} example objects from {}", server.url(), dir.display());
    let (stop, stopped) = oneshot::channel();
    let mut controller = start_controller(&kubeconfig, stopped).await?;
    println!("export KUBECONFIG={}", kubeconfig.display());
    let early = tokio::select! {
        signal = tokio::signal::ctrl_c() => {
            signal.map_err(|e| format!("waiting for Ctrl-C: {e}"))?;
            None
        }
        ended = &mut controller => Some(ended),
    };
    let ended = match early {
        Some(ended) => ended,
        None => {
            log::info!("sandbox: stopping");
            let _ = stop.send(());
            controller.await
        }
    };
    drop(server);
    match ended {
        Ok(Ok(Exit::Clean)) => Ok(()),
        Ok(Ok(Exit::LostLeadership(why))) => Err(format!("controller: {why}")),
        Ok(Err(e)) => Err(format!("controller: {e}")),
        Err(e) => Err(format!("controller task: {e}")),
    }
}

#[tokio::main]
async fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    if let Err(e) = run().await {
        eprintln!("sandbox: {e}");
        std::process::exit(1);
    }
}
