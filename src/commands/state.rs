//! `state show`: the state file as it is, read without the lock and without AWS.

use std::fmt;

use anyhow::{anyhow, Result};
use serde::Serialize;

use super::Env;
use crate::cli::{StateAction, StateArgs};
use crate::state::State;

/// The state document, printed whole (as JSON in text too: it is what the file holds).
#[derive(Serialize)]
#[serde(transparent)]
struct Shown(State);

impl fmt::Display for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = serde_json::to_string_pretty(&self.0).map_err(|_| fmt::Error)?;
        writeln!(f, "{text}")
    }
}

pub fn run(args: &StateArgs, env: &Env) -> Result<()> {
    match args.action {
        StateAction::Show => {
            let state = env.recorded()?.ok_or_else(|| {
                anyhow!(
                    "no state file at {}: `l5d-ecs status` looks for the stack in the region \
                     without one; --state PATH names another",
                    env.state_path().display()
                )
            })?;
            env.out.section("state", &Shown(state));
            Ok(())
        }
    }
}
