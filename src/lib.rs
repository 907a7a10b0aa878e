//! l5d-ecs: stand up, exercise and tear down a linkerd service mesh on Amazon ECS.
//!
//! Layers, each using only those below it (README, "Architecture"):
//! 1. vocabulary: `stack`, `ids`, `kinds`, `options`, `templates`, `clock`;
//! 2. AWS and state: `aws`, `state`, `output`, `checkip`;
//! 3. resources: `context`, `resources` (one file per resource, `resources::ORDER`), `nodes`,
//!    `tasks`, `costs`;
//! 4. commands: `cli` (what can be typed), `commands` (one module per command).

pub mod aws;
pub mod checkip;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod context;
pub mod costs;
pub mod ids;
pub mod kinds;
pub mod nodes;
pub mod options;
pub mod output;
pub mod resources;
pub mod stack;
pub mod state;
pub mod tasks;
pub mod templates;

use std::process::ExitCode;

/// The whole program: parse, start the runtime, run the command.
pub fn main() -> ExitCode {
    let cli = match cli::parse() {
        Ok(cli) => cli,
        Err(e) => return commands::usage_error(e),
    };
    init_tracing(cli.global.verbose, cli.global.quiet);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return commands::ExitStatus::Failed.code();
        }
    };
    runtime.block_on(commands::run(cli))
}

/// Logs go to stderr: `-v` shows each AWS call, `-vv` the SDK's own detail; RUST_LOG wins.
/// aws-config's failed instance-metadata lookups (a region off an EC2 instance) are not
/// warned about: the missing region gets its own error, with what to do.
fn init_tracing(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn,aws_config::imds=error",
        (false, 1) => "warn,aws_config::imds=error,l5d_ecs=info",
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
