//! The `kubemirror` binary: flags (src/cli.rs, src/flags), logging, signals and the commands.
//!
//! Exit codes: 0 stopped cleanly (or the command succeeded), 1 runtime failure (start-up errors,
//! a lost leader Lease, a failed command, a second signal), 2 usage error (a flag, variable or
//! operand that cannot be used; one line naming it).

use std::future::Future;
use std::process::ExitCode;

use kubemirror::cli::{self, Command};
use kubemirror::client::{Client, ClientOptions, Config};
use kubemirror::controller::Exit;
use kubemirror::metrics::Metrics;
use kubemirror::options::Options;
use kubemirror::{cleanup, explain, flags, logging};

const EXIT_FAILURE: u8 = 1;
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args_os().skip(1).map(|a| a.to_string_lossy().into_owned()).collect();
    let env: Vec<(String, String)> =
        std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect();
    let cli = match cli::parse(&args, &env) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kubemirror: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match cli.command {
        Command::Help => {
            print!("{}", flags::help());
            return ExitCode::SUCCESS;
        }
        Command::Version => {
            println!("kubemirror {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    let var = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let filter = match logging::filter(cli.options.log_level, var("RUST_LOG"), var("LOG_LEVEL")) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("kubemirror: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    logging::init(&filter, cli.options.log_format);
    for w in &cli.warnings {
        log::warn!("{w}");
    }
    let rt = match cli.command {
        Command::Run => kubemirror::runtime::build(),
        _ => tokio::runtime::Builder::new_current_thread().enable_all().build(),
    };
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            log::error!("cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    rt.block_on(command(cli))
}

async fn command(cli: cli::Cli) -> ExitCode {
    let failed = |what: &str, e: &dyn std::fmt::Display| {
        log::error!("{what}: {e}");
        ExitCode::from(EXIT_FAILURE)
    };
    let mut stdout = std::io::stdout();
    match cli.command {
        Command::Run => match run(cli.options).await {
            Ok(Exit::Clean) => {
                log::info!("stopped");
                ExitCode::SUCCESS
            }
            Ok(Exit::LostLeadership(why)) => failed("exiting", &why),
            Err(e) => failed("cannot start", &e),
        },
        Command::CheckConnection => match check_connection(&cli.options).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => failed("check-connection failed", &e),
        },
        Command::Explain { source, output, namespace } => {
            let req = explain::Request { source, output, namespace };
            match explain::run(&cli.options, &req, &mut stdout).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => failed("explain", &e),
            }
        }
        Command::Cleanup { dry_run, force } => {
            match cleanup::run(&cli.options, cleanup::Mode { dry_run, force }, &mut stdout).await {
                Ok(summary) if summary.errors == 0 => ExitCode::SUCCESS,
                Ok(summary) => failed("cleanup", &format!("{} operation(s) failed", summary.errors)),
                Err(e) => failed("cleanup", &e),
            }
        }
        Command::Help | Command::Version => ExitCode::SUCCESS,
    }
}

async fn run(options: Options) -> Result<Exit, String> {
    // Listening from the very start, so a SIGTERM during start-up is a clean stop, not a kill.
    let shutdown = termination();
    // One registry for the client's request metrics and the controller's.
    let metrics = Metrics::new().map_err(|e| format!("metrics registry: {e}"))?;
    let client_options = ClientOptions { registry: Some(metrics.registry.clone()), ..options.client_options() };
    let client = Client::from_options(&options.load_options(), client_options).await.map_err(|e| e.to_string())?;
    kubemirror::controller::run(options, client, Some(metrics), shutdown, |_| {}).await
}

/// Resolves on the first SIGTERM (the kubelet) or SIGINT (Ctrl-C): the controller then stops
/// gracefully. A second signal exits at once (code 1), for when the graceful stop is stuck. The
/// handlers are installed when this is called, not when the future is first polled.
fn termination() -> impl Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let handlers = signal(SignalKind::terminate()).and_then(|t| Ok((t, signal(SignalKind::interrupt())?)));
        async move {
            let (mut term, mut int) = match handlers {
                Ok(h) => h,
                Err(e) => {
                    log::warn!("cannot listen for SIGTERM/SIGINT ({e}); stop the process by killing it");
                    return std::future::pending().await;
                }
            };
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            log::info!("{name} received, shutting down (a second signal exits at once)");
            tokio::spawn(async move {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
                log::error!("second signal received, exiting at once");
                std::process::exit(i32::from(EXIT_FAILURE));
            });
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn check_connection(options: &Options) -> Result<(), String> {
    let config = Config::load(&options.load_options()).map_err(|e| e.to_string())?;
    log::info!("using {} -> {}", config.origin, config.cluster_url);
    let url = config.cluster_url.clone();
    let client = Client::new(config, options.client_options()).map_err(|e| e.to_string())?;
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
