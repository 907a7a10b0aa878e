//! `--help` with the commands in groups. clap lists subcommands under one heading, so the
//! list is written into the help template from clap's own definitions (names and abouts).

use clap::{CommandFactory, FromArgMatches};

use super::Cli;

/// The groups of `--help`, in order. A unit test checks that every command is in one.
const GROUPS: &[(&str, &[&str])] = &[
    ("Lifecycle", &["up", "plan", "doctor", "down"]),
    (
        "Single steps (in the order `up` runs them)",
        &[
            "security-group",
            "consul-server",
            "cluster",
            "role-policy",
            "register-tasks",
            "log-group",
            "launch-config",
            "asg",
            "daemons",
        ],
    ),
    (
        "The mesh at work",
        &[
            "deploy",
            "undeploy",
            "verify",
            "load",
            "logs",
            "dashboard",
            "tunnel",
        ],
    ),
    ("Inspection", &["status", "list", "iam-policy"]),
    ("Shared state", &["state", "unlock"]),
    ("Shell integration", &["completions", "man"]),
];

/// The command line as clap sees it, with the grouped command list.
pub fn command() -> clap::Command {
    let cmd = Cli::command();
    let width = cmd
        .get_subcommands()
        .map(|c| c.get_name().len())
        .max()
        .unwrap_or(0);
    let mut list = String::new();
    for (heading, names) in GROUPS {
        list.push_str(&format!("{heading}:\n"));
        for name in *names {
            let about = cmd
                .find_subcommand(name)
                .and_then(|c| c.get_about())
                .map(|a| a.to_string())
                .unwrap_or_default();
            list.push_str(&entry(name, &about, width));
        }
        list.push('\n');
    }
    let template = format!(
        "{{before-help}}{{about-with-newline}}\n{{usage-heading}} {{usage}}\n\n{list}Options:\n\
         {{options}}{{after-help}}"
    );
    cmd.help_template(template)
}

/// A command's line, its description wrapped at clap's own width and continued under itself.
fn entry(name: &str, about: &str, width: usize) -> String {
    const WIDTH: usize = 100;
    let indent = width + 4;
    let mut out = format!("  {name:<width$}  ");
    let mut column = indent;
    for (i, word) in about.split_whitespace().enumerate() {
        if i > 0 && column + 1 + word.len() > WIDTH {
            out.push('\n');
            out.push_str(&" ".repeat(indent));
            column = indent;
        } else if i > 0 {
            out.push(' ');
            column += 1;
        }
        out.push_str(word);
        column += word.len();
    }
    out.push('\n');
    out
}

/// Parses the process's arguments.
pub fn parse() -> Result<Cli, clap::Error> {
    let matches = command().try_get_matches()?;
    Cli::from_arg_matches(&matches)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_is_in_exactly_one_group() {
        let cmd = Cli::command();
        let listed: Vec<&str> = GROUPS.iter().flat_map(|(_, n)| n.iter().copied()).collect();
        for sub in cmd.get_subcommands() {
            let n = listed.iter().filter(|l| **l == sub.get_name()).count();
            assert_eq!(n, 1, "{} is in {n} groups of --help", sub.get_name());
        }
        for name in &listed {
            assert!(
                cmd.find_subcommand(name).is_some(),
                "{name} is not a command"
            );
        }
    }

    #[test]
    fn help_lists_the_groups_in_order() {
        let help = command().render_help().to_string();
        let at = |s: &str| {
            help.find(s)
                .unwrap_or_else(|| panic!("{s} not in help:\n{help}"))
        };
        assert!(at("Lifecycle:") < at("Single steps"));
        assert!(at("The mesh at work:") < at("Inspection:"));
        assert!(at("  load ") < at("Inspection:"));
        assert!(help.contains("Options:"));
    }
}
