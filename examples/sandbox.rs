//! The sandbox: the in-memory API server with examples/*.yaml applied, for trying KubeMirror with
//! kubectl and no cluster. Prints exactly one `export KUBECONFIG=<path>` line on stdout once ready;
//! Ctrl-C stops it. Logs go to stderr.
//!
//!     cargo run --features testkit --example sandbox

use std::path::{Path, PathBuf};

use kubemirror::testkit::{ApiServer, ServerOptions};

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

/// Where the controller starts once it exists: it gets the admin kubeconfig and runs until the
/// returned handle is dropped or aborted at Ctrl-C.
fn start_controller(_kubeconfig: &Path) -> Option<tokio::task::JoinHandle<()>> {
    None
}

async fn run() -> Result<(), String> {
    // Like a real cluster: every namespace gets kube-root-ca.crt and the default ServiceAccount.
    let server = ApiServer::start(ServerOptions { cluster_defaults: true, ..Default::default() }).await?;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let n = apply_examples(&server, &dir)?;
    let kubeconfig = server.kubeconfig_path("admin");
    let kubeconfig = std::fs::canonicalize(&kubeconfig).unwrap_or(kubeconfig);
    log::info!("sandbox: API server at {} with {n} example objects from {}", server.url(), dir.display());
    let controller = start_controller(&kubeconfig);
    if controller.is_none() {
        log::info!("sandbox: the controller is not part of this build yet; serving the API alone");
    }
    println!("export KUBECONFIG={}", kubeconfig.display());
    tokio::signal::ctrl_c().await.map_err(|e| format!("waiting for Ctrl-C: {e}"))?;
    log::info!("sandbox: stopping");
    if let Some(c) = controller {
        c.abort();
    }
    drop(server);
    Ok(())
}

#[tokio::main]
async fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    if let Err(e) = run().await {
        eprintln!("sandbox: {e}");
        std::process::exit(1);
    }
}
