//! The `kubemirror` binary: flags (src/cli.rs), logging, and the commands.

use std::io::Write;
use std::process::ExitCode;
use std::time::SystemTime;

use kubemirror::cli::{self, Command};
use kubemirror::client::{Client, Config};
use kubemirror::util::time::format_rfc3339_micros;

fn main() -> ExitCode {
    init_logging();
    let cli = match cli::parse(std::env::args_os().skip(1).collect()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kubemirror: {e}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
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
            log::error!("the controller run loop is not wired yet; use check-connection");
            ExitCode::FAILURE
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

/// One line per event, RFC 3339 UTC timestamps; RUST_LOG filters (default info).
fn init_logging() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format(|buf, rec| {
            let msg = rec.args().to_string().replace('\n', " ");
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
