//! `list`: the stacks this machine knows from state files, and with `--discover` those that
//! carry the `l5d-ecs:stack` tag in the region.

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;

use crate::cli::{GlobalArgs, ListArgs};
use crate::context::{state_path, Ctx};
use crate::output::{Action, Output, ResourceKind};
use crate::stack::StackName;
use crate::state::StateStore;

pub async fn list(global: &GlobalArgs, args: &ListArgs, out: &Arc<Output>) -> Result<()> {
    let path = state_path(global);
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut known = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        let mut paths: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        for p in paths {
            let Some(stem) = p.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            let Ok(stack) = StackName::parse(stem) else {
                continue;
            };
            match StateStore::open(&p, &stack) {
                Ok(store) => {
                    if let Some(state) = store.snapshot() {
                        let count = crate::teardown::inventory(&state.resources).len();
                        out.record(
                            ResourceKind::Stack,
                            state.stack.as_str(),
                            format!(
                                "{} {} {count} resource(s) {}",
                                state.account_id,
                                state.region,
                                p.display()
                            ),
                            Action::Kept,
                        );
                        known.push(state.stack.to_string());
                    }
                }
                Err(e) => out.warn(format!("{}: {e:#}", p.display())),
            }
        }
    }
    if args.discover {
        let ctx = Ctx::new(global, out.clone()).await?;
        for stack in crate::discover::stacks_in_region(&ctx).await? {
            if !known.contains(&stack) {
                out.record(
                    ResourceKind::Stack,
                    &stack,
                    format!("{} (no state file here)", ctx.aws.region),
                    Action::Found,
                );
            }
        }
    }
    Ok(())
}
