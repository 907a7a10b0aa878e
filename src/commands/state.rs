//! `state show | push | pull`: the state as it is (read without the lock), and moving it
//! between a local file and S3 without ever overwriting another stack's state.

use std::fmt;

use anyhow::{anyhow, Result};
use serde::Serialize;

use super::Env;
use crate::cli::{StateAction, StateArgs};
use crate::stack::{usage, StateLocation};
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

/// Where a state went.
#[derive(Serialize)]
struct Moved {
    from: String,
    to: String,
    lineage: String,
    serial: u64,
}

impl fmt::Display for Moved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "moved the state from {} to {} (lineage {}, serial {}); {} is gone",
            self.from, self.to, self.lineage, self.serial, self.from
        )?;
        writeln!(
            f,
            "from now on pass --state {} (or set L5D_ECS_STATE)",
            self.to
        )
    }
}

pub async fn run(args: &StateArgs, env: &Env) -> Result<()> {
    match &args.action {
        StateAction::Show => {
            let state = env.recorded().await?.ok_or_else(|| {
                anyhow!(
                    "no state file at {}: `l5d-ecs status` looks for the stack in the region \
                     without one; --state names another",
                    env.state_location()
                )
            })?;
            env.out.section("state", &Shown(state));
            Ok(())
        }
        StateAction::Push { to } => {
            let from = local(env, "push")?;
            move_state(env, from, StateLocation::S3(to.clone())).await
        }
        StateAction::Pull { from } => {
            let to = local(env, "pull")?;
            move_state(env, StateLocation::S3(from.clone()), to).await
        }
    }
}

/// The local end of a move: `--state PATH`, or the default file.
fn local(env: &Env, verb: &str) -> Result<StateLocation> {
    match env.state_location() {
        StateLocation::S3(object) => Err(usage(format!(
            "state {verb} moves between a local file and S3, but --state names {object}: give \
             --state PATH for the local file, or leave it out for the default"
        ))),
        local => Ok(local),
    }
}

/// Both ends locked; the state written at its new place (refused over another lineage or a
/// newer serial), then removed from its old one.
async fn move_state(env: &Env, from: StateLocation, to: StateLocation) -> Result<()> {
    let stack = &env.global.stack;
    let source = env.open_state_at(&from).await?.lock(stack).await?;
    let state = source
        .snapshot()
        .ok_or_else(|| usage(format!("there is no state at {from}: nothing to move")))?;
    let target = env.open_state_at(&to).await?.lock(stack).await?;
    target.replace_with(state.clone()).await?;
    source.remove().await?;
    let written = target.snapshot().unwrap_or(state);
    env.out.section(
        "moved",
        &Moved {
            from: from.to_string(),
            to: to.to_string(),
            lineage: written.lineage,
            serial: written.serial,
        },
    );
    Ok(())
}
