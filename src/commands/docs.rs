//! `completions`, `man` and `iam-policy`: documents generated from the command-line
//! definitions and the operation list, with no report and no AWS call.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};

use super::ExitStatus;
use crate::aws::operations::{self, Target};
use crate::cli::{Command, IamPolicyArgs, ManArgs};
use crate::options::GlobalArgs;

/// `Some(exit code)` when the command was one of these.
pub fn run(command: &Command, global: &GlobalArgs) -> Option<ExitCode> {
    match command {
        Command::Completions { shell } => {
            let mut cmd = crate::cli::command();
            clap_complete::generate(*shell, &mut cmd, "l5d-ecs", &mut std::io::stdout());
            Some(ExitCode::SUCCESS)
        }
        Command::IamPolicy(args) => Some(match iam_policy(args, global) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitStatus::of(&e).code()
            }
        }),
        Command::Man(args) => Some(match man(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitStatus::of(&e).code()
            }
        }),
        _ => None,
    }
}

/// The command line with the global options copied into every command, as its man page
/// shows them.
fn built() -> clap::Command {
    let mut cmd = crate::cli::command().disable_help_subcommand(true);
    cmd.build();
    cmd
}

fn man(args: &ManArgs) -> Result<()> {
    let cmd = built();
    if let Some(dir) = &args.dir {
        return write_all(cmd, dir);
    }
    let page = match &args.command {
        None => cmd,
        Some(name) => cmd.find_subcommand(name).cloned().ok_or_else(|| {
            let names: Vec<&str> = cmd.get_subcommands().map(|c| c.get_name()).collect();
            crate::stack::usage(format!(
                "no command {name:?} to print the man page of; the commands are: {}",
                names.join(", ")
            ))
        })?,
    };
    let mut out = std::io::stdout().lock();
    let written = page_of(page).render(&mut out).and_then(|()| out.flush());
    stdout_result(written).context("writing the man page to stdout")
}

fn page_of(cmd: clap::Command) -> clap_mangen::Man {
    clap_mangen::Man::new(cmd)
        .source(format!("l5d-ecs {}", env!("CARGO_PKG_VERSION")))
        .manual("l5d-ecs")
}

/// A reader that stopped reading (`l5d-ecs man up | head`) is not a failure.
fn stdout_result(result: std::io::Result<()>) -> std::io::Result<()> {
    match result {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// `l5d-ecs.1` and one `l5d-ecs-<command>.1` per command, in `dir` (made if missing).
fn write_all(cmd: clap::Command, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let pages = std::iter::once(cmd.clone()).chain(cmd.get_subcommands().cloned());
    let mut out = std::io::stdout().lock();
    for page in pages {
        let man = page_of(page);
        let path = dir.join(man.get_filename());
        man.generate_to(dir)
            .with_context(|| format!("writing the man page {}", path.display()))?;
        stdout_result(writeln!(out, "{}", path.display())).context("writing to stdout")?;
    }
    Ok(())
}

/// The policy document on stdout; a `--for` that names no command that calls AWS is refused.
fn iam_policy(args: &IamPolicyArgs, global: &GlobalArgs) -> Result<()> {
    let names: Vec<&str> = args.for_commands.iter().map(String::as_str).collect();
    if let Some(bad) = names.iter().find(|c| operations::uses_of(c).is_empty()) {
        let cmd = built();
        let calling: Vec<&str> = cmd
            .get_subcommands()
            .map(|c| c.get_name())
            .filter(|c| !operations::uses_of(c).is_empty())
            .collect();
        return Err(crate::stack::usage(format!(
            "--for {bad}: not a command that calls AWS; one of: {}",
            calling.join(", ")
        )));
    }
    let region = global.region.as_deref().unwrap_or("*");
    let target = Target {
        stack: global.stack.as_str(),
        region,
        partition: crate::aws::partition_of(region),
        instance_role: &args.instance_role,
        state: match &global.state {
            Some(crate::stack::StateLocation::S3(o)) => Some((o.bucket.as_str(), o.key.as_str())),
            _ => None,
        },
    };
    let document = operations::policy(&names, &target, args.any_resource);
    let text = serde_json::to_string_pretty(&document).context("writing the policy as JSON")?;
    let mut out = std::io::stdout().lock();
    stdout_result(writeln!(out, "{text}")).context("writing the policy to stdout")
}
