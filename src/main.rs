//! The `kubemirror` binary: flags (src/cli.rs), logging, and the commands.

use std::io::Write;
use std::process::ExitCode;
use std::time::SystemTime;

use kubemirror::cli::{self, Command};
use kubemirror::client::{Client, ClientOptions, Config};
use kubemirror::controller::Exit;
use kubemirror::metrics::Metrics;
use kubemirror::util::time::format_rfc3339_micros;

fn main() -> ExitCode {
    init_logging();
    let cli = match cli::parse(std::env::args_os().skip(1).collect()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kubemirror: {e}\n\n{}", cli::USAGE);
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Help => {
            print!("{}", cli::USAGE);
            ExitCode::SUCCESS
        }
        Command::Version => {
            println!("kubemirror {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Run => {
            let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    log::error!("cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(run(cli.options)) {
                Ok(Exit::Clean) => {
                    log::info!("stopped");
                    ExitCode::SUCCESS
                }
                Ok(Exit::LostLeadership(why)) => {
                    log::error!("exiting: {why}");
                    ExitCode::from(EXIT_LOST_LEADERSHIP)
                }
                Err(e) => {
                    log::error!("cannot start: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::CheckConnection => {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    log::error!("cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(check_connection(&cli)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    log::error!("check-connection failed: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Exit code after losing the lease: distinct from start-up failures (1) so restarts are explained.
const EXIT_LOST_LEADERSHIP: u8 = 2;

async fn run(options: kubemirror::options::Options) -> Result<Exit, String> {
    // One registry for the client's request metrics and the controller's.
    let metrics = Metrics::new().map_err(|e| format!("metrics registry: {e}"))?;
    let client_options = ClientOptions { registry: Some(metrics.registry.clone()), ..options.client_options() };
    let client = Client::from_options(&options.load_options(), client_options).await.map_err(|e| e.to_string())?;
    kubemirror::controller::run(options, client, Some(metrics), termination(), |_| {}).await
}

/// SIGTERM (the kubelet) or SIGINT (Ctrl-C).
async fn termination() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => log::info!("SIGTERM received, shutting down"),
                    _ = tokio::signal::ctrl_c() => log::info!("SIGINT received, shutting down"),
                }
            }
            Err(e) => {
                log::warn!("cannot listen for SIGTERM ({e}); only SIGINT stops the controller");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// One line per event, RFC 3339 UTC timestamps; RUST_LOG filters (default info).
fn init_logging() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format(|buf, rec| {
            // One line per event whatever a message carries: names and annotation text from the
            // cluster may hold newlines, escape sequences or other control characters.
            let msg: String = rec.args().to_string().chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
            writeln!(buf, "{} {:<5} {}: {}", format_rfc3339_micros(SystemTime::now()), rec.level(), rec.target(), msg)
        })
        .init();
}

async fn check_connection(cli: &cli::Cli) -> Result<(), String> {
    let config = Config::load(&cli.options.load_options()).map_err(|e| e.to_string())?;
    log::info!("using {} -> {}", config.origin, config.cluster_url);
    let url = config.cluster_url.clone();
    let client = Client::new(config, cli.options.client_options()).map_err(|e| e.to_string())?;
    let version = client.get_path("/version").await.map_err(|e| format!("GET {url}/version: {e}"))?;
    let text = serde_json::to_string_pretty(&version).map_err(|e| e.to_string())?;
    println!("{text}");
    log::info!(
        "connected to {url}: Kubernetes {} (default namespace {})",
        version.get("gitVersion").and_then(|v| v.as_str()).unwrap_or("unknown version"),
        client.default_namespace()
    );
    Ok(())
}
