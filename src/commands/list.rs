//! `list`: the stacks this machine knows from state files, and with `--discover` those that
//! carry the `l5d-ecs:stack` tag in the region.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

use super::Env;
use crate::aws::{ec2_filter, AwsResultExt};
use crate::cli::ListArgs;
use crate::context::Ctx;
use crate::kinds::{Action, ResourceKind};
use crate::stack::StateLocation;
use crate::stack::{StackName, STACK_TAG};
use crate::state::{State, StateStore};

pub async fn run(args: &ListArgs, env: &Env) -> Result<()> {
    let out = &env.out;
    let location = env.state_location();
    let mut known = Vec::new();
    let dir = match &location {
        StateLocation::Local(path) => path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_owned(),
        StateLocation::S3(_) => PathBuf::from(location.to_string()),
    };
    let states: Vec<(String, Result<Option<State>>)> = match &location {
        StateLocation::Local(_) => state_files(&dir)
            .into_iter()
            .map(|(p, stack)| {
                let state = StateStore::open(&p, &stack).map(|s| s.snapshot());
                (p.display().to_string(), state)
            })
            .collect(),
        // One object holds one stack's state: the one --state names.
        StateLocation::S3(object) => vec![(object.to_string(), env.recorded().await)],
    };
    for (at, state) in states {
        match state {
            Ok(Some(state)) => {
                let count = crate::resources::inventory(&state.stack, &state.resources).len();
                out.record(
                    ResourceKind::Stack,
                    state.stack.as_str(),
                    format!(
                        "{} {} {count} resource(s) {at}",
                        state.account_id, state.region
                    ),
                    Action::Kept,
                );
                known.push(state.stack.to_string());
            }
            Ok(None) => {}
            Err(e) => out.warn(format!("{at}: {e:#}")),
        }
    }
    if !known.is_empty() && !args.discover {
        return Ok(());
    }
    let ctx = env.connect_reading().await?;
    let stacks = stacks_in_region(&ctx).await?;
    if args.discover {
        for stack in stacks.iter().filter(|s| !known.contains(s)) {
            out.record(
                ResourceKind::Stack,
                stack,
                format!("{} (no state file here)", ctx.aws.region),
                Action::Found,
            );
        }
    }
    if known.is_empty() {
        // No state file here: say so, and what the region holds, so that a stack made
        // elsewhere is not taken for none.
        out.section(
            "unrecorded",
            &NoStateFiles {
                state_dir: dir.display().to_string(),
                region: ctx.aws.region.clone(),
                stacks: stacks.into_iter().collect(),
            },
        );
    }
    Ok(())
}

/// `list` where no state file is: the stacks the region holds by tag.
#[derive(Debug, Serialize)]
struct NoStateFiles {
    state_dir: String,
    region: String,
    stacks: Vec<String>,
}

impl fmt::Display for NoStateFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "no state file in {}", self.state_dir)?;
        if self.stacks.is_empty() {
            return writeln!(f, "no l5d-ecs stack in {}", self.region);
        }
        writeln!(
            f,
            "stacks in {} that no state file here records: {}",
            self.region,
            self.stacks.join(", ")
        )?;
        writeln!(
            f,
            "`l5d-ecs status --stack NAME` lists what one has; `l5d-ecs down --stack NAME \
             --discover` deletes it"
        )
    }
}

/// The `*.json` files in `dir` named like a stack, by name.
fn state_files(dir: &Path) -> Vec<(PathBuf, StackName)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .filter_map(|p| {
            let stack = StackName::parse(p.file_stem()?.to_str()?).ok()?;
            Some((p, stack))
        })
        .collect()
}

/// Stack names that carry the `l5d-ecs:stack` tag on EC2 resources or ASGs in the region.
async fn stacks_in_region(ctx: &Ctx) -> Result<BTreeSet<String>> {
    let mut stacks = BTreeSet::new();
    let ec2 = ctx
        .aws
        .ec2
        .describe_tags()
        .filters(ec2_filter("key", &[STACK_TAG]))
        .send()
        .await
        .aws("listing EC2 resources tagged l5d-ecs:stack")?;
    stacks.extend(
        ec2.tags()
            .iter()
            .filter_map(|t| t.value().map(str::to_owned)),
    );
    let asg = ctx
        .aws
        .autoscaling
        .describe_tags()
        .filters(
            aws_sdk_autoscaling::types::Filter::builder()
                .name("key")
                .values(STACK_TAG)
                .build(),
        )
        .send()
        .await
        .aws("listing auto scaling groups tagged l5d-ecs:stack")?;
    stacks.extend(
        asg.tags()
            .iter()
            .filter_map(|t| t.value().map(str::to_owned)),
    );
    Ok(stacks)
}
