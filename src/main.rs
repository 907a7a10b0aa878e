//! l5d-ecs: stand up, exercise and tear down a linkerd service mesh on Amazon ECS.

mod aws;
mod checkip;
mod cli;
mod clock;
mod context;
mod dashboard;
mod deploy;
mod discover;
mod doctor;
mod graph;
mod ids;
mod list;
mod load;
mod logs;
mod nodes;
mod output;
mod plan;
mod run;
mod stack;
mod state;
mod status;
mod steps;
mod tasks;
mod teardown;
mod templates;
mod verify;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return run::usage_error(e),
    };
    init_tracing(cli.global.verbose, cli.global.quiet);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(run::EXIT_FAILED);
        }
    };
    runtime.block_on(run::run(cli))
}

/// Logs go to stderr: `-v` shows each AWS call, `-vv` the SDK's own detail; RUST_LOG wins.
fn init_tracing(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "warn,l5d_ecs=info",
        (false, _) => "debug,hyper=info,h2=info,rustls=info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(
            std::env::var_os("NO_COLOR").is_none()
                && std::io::IsTerminal::is_terminal(&std::io::stderr()),
        )
        .init();
}
