//! `completions` and `man`: documents generated from the command-line definitions, printed
//! on stdout with no report and no AWS call.

use std::process::ExitCode;

use crate::cli::Command;

/// `Some(exit code)` when the command was one of these.
pub fn run(command: &Command) -> Option<ExitCode> {
    let mut cmd = crate::cli::command();
    match command {
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut cmd, "l5d-ecs", &mut std::io::stdout());
            Some(ExitCode::SUCCESS)
        }
        Command::Man => Some(
            match clap_mangen::Man::new(cmd).render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: writing the man page: {e}");
                    super::ExitStatus::Failed.code()
                }
            },
        ),
        _ => None,
    }
}
