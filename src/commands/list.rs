//! `list`: the stacks this machine knows from state files, and with `--discover` those that
//! carry the `l5d-ecs:stack` tag in the region.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use futures::StreamExt;
use serde::Serialize;

use super::Env;
use crate::aws::{ec2_filter, AwsResultExt};
use crate::cli::ListArgs;
use crate::costs::{self, Burn};
use crate::kinds::{Action, ResourceKind};
use crate::output::table;
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
    let mut known_where = Vec::new();
    for (at, state) in states {
        match state {
            Ok(Some(state)) => {
                known_where.push((state.stack.to_string(), state.region.clone(), at.clone()));
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
    if args.all_regions {
        return all_regions(env, &known_where).await;
    }
    if !known.is_empty() && !args.discover {
        return Ok(());
    }
    let ctx = env.connect_reading().await?;
    let stacks = stacks_in_region(&ctx.aws.ec2, &ctx.aws.autoscaling).await?;
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

/// Stack names that carry the `l5d-ecs:stack` tag on a security group, a launch template or an
/// ASG in the region of these clients: each asked for what exists (DescribeTags can still
/// answer with the tags of what was deleted). Instances are left to [`costs::by_stack`], which
/// sees only those running.
async fn stacks_in_region(
    ec2: &aws_sdk_ec2::Client,
    autoscaling: &aws_sdk_autoscaling::Client,
) -> Result<BTreeSet<String>> {
    let tagged = || ec2_filter("tag-key", &[STACK_TAG]);
    let groups = ec2
        .describe_security_groups()
        .filters(tagged())
        .into_paginator()
        .send()
        .try_collect();
    let templates = ec2
        .describe_launch_templates()
        .filters(tagged())
        .into_paginator()
        .send()
        .try_collect();
    let asg_pages = autoscaling
        .describe_tags()
        .filters(
            aws_sdk_autoscaling::types::Filter::builder()
                .name("key")
                .values(STACK_TAG)
                .build(),
        )
        .into_paginator()
        .send()
        .try_collect();
    let (groups, templates, asg_pages) = futures::join!(groups, templates, asg_pages);
    let value = |tags: &[aws_sdk_ec2::types::Tag]| {
        tags.iter()
            .find(|t| t.key() == Some(STACK_TAG))
            .and_then(|t| t.value())
            .map(str::to_owned)
    };
    let mut stacks = BTreeSet::new();
    for page in groups.aws("listing the security groups tagged l5d-ecs:stack")? {
        stacks.extend(
            page.security_groups()
                .iter()
                .filter_map(|g| value(g.tags())),
        );
    }
    for page in templates.aws("listing the launch templates tagged l5d-ecs:stack")? {
        stacks.extend(
            page.launch_templates()
                .iter()
                .filter_map(|t| value(t.tags())),
        );
    }
    for page in asg_pages.aws("listing auto scaling groups tagged l5d-ecs:stack")? {
        stacks.extend(
            page.tags()
                .iter()
                .filter_map(|t| t.value().map(str::to_owned)),
        );
    }
    Ok(stacks)
}

/// Each stack's deadline in the region of `autoscaling`: the start of the scheduled action
/// `<stack>-expiry` on `<stack>-asg` (`up --expires-in`).
async fn deadlines(
    autoscaling: &aws_sdk_autoscaling::Client,
) -> Result<std::collections::BTreeMap<String, String>> {
    let pages: Vec<_> = autoscaling
        .describe_scheduled_actions()
        .into_paginator()
        .send()
        .try_collect()
        .await
        .aws("listing the scheduled actions (autoscaling:DescribeScheduledActions)")?;
    let mut found = std::collections::BTreeMap::new();
    for a in pages
        .iter()
        .flat_map(|p| p.scheduled_update_group_actions())
    {
        let (Some(group), Some(name), Some(at)) = (
            a.auto_scaling_group_name(),
            a.scheduled_action_name(),
            a.start_time(),
        ) else {
            continue;
        };
        if let Some(stack) = group.strip_suffix("-asg") {
            if name == format!("{stack}-expiry") {
                found.insert(stack.to_owned(), crate::clock::rfc3339(*at));
            }
        }
    }
    Ok(found)
}

/// Regions searched at once by `list --all-regions`: enough to finish in a few round trips,
/// few enough to stay far below the account's EC2 request rate.
const REGIONS_AT_ONCE: usize = 8;

/// One stack found by `list --all-regions`.
#[derive(Debug, Serialize)]
struct FoundStack {
    stack: String,
    region: String,
    #[serde(flatten)]
    running: Burn,
    /// When its instances are taken down (`up --expires-in`), RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    deadline: Option<String>,
    /// The local state file that records it, if one here does.
    #[serde(skip_serializing_if = "Option::is_none")]
    state_file: Option<String>,
}

#[derive(Debug, Serialize)]
struct AllRegions {
    regions: Vec<String>,
    stacks: Vec<FoundStack>,
}

impl fmt::Display for AllRegions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.stacks.is_empty() {
            return writeln!(
                f,
                "no l5d-ecs stack in any of the {} enabled regions",
                self.regions.len()
            );
        }
        let mut rows = vec![[
            "stack",
            "region",
            "instances",
            "vCPUs",
            "inst-hours",
            "state file",
        ]
        .map(str::to_owned)
        .to_vec()];
        for s in &self.stacks {
            rows.push(vec![
                s.stack.clone(),
                s.region.clone(),
                s.running.instances.to_string(),
                s.running.vcpus.to_string(),
                format!("{:.1}", s.running.instance_hours),
                s.state_file
                    .clone()
                    .unwrap_or_else(|| "none here".to_owned()),
            ]);
        }
        for line in table::lines(&rows, &[usize::MAX; 7]) {
            writeln!(f, "{line}")?;
        }
        writeln!(
            f,
            "{} stack(s) in {} enabled region(s) searched; `l5d-ecs down --discover --stack S \
             --region R` removes one",
            self.stacks.len(),
            self.regions.len()
        )
    }
}

/// Every region the account has enabled, searched at once (a few at a time) for this tool's
/// stacks by their tag, with what each burns and whether a state file here knows it.
async fn all_regions(env: &Env, known: &[(String, String, String)]) -> Result<()> {
    let ctx = env.connect_reading().await?;
    let regions: Vec<String> = ctx
        .aws
        .ec2
        .describe_regions()
        .send()
        .await
        .aws("listing the account's enabled regions (ec2:DescribeRegions)")?
        .regions()
        .iter()
        .filter_map(|r| r.region_name().map(str::to_owned))
        .collect();
    let searches = regions.iter().map(|region| {
        let (ec2, autoscaling) = ctx.aws.ec2_and_autoscaling_in(region);
        async move {
            let (stacks, burning, deadlines) = futures::join!(
                stacks_in_region(&ec2, &autoscaling),
                costs::by_stack(&ec2, None),
                deadlines(&autoscaling)
            );
            let context = || format!("searching {region}");
            let (mut stacks, mut burning, deadlines) = (
                stacks.with_context(context)?,
                burning.with_context(context)?,
                deadlines.with_context(context)?,
            );
            stacks.extend(burning.keys().cloned());
            Ok::<_, anyhow::Error>(
                stacks
                    .into_iter()
                    .map(|stack| FoundStack {
                        running: burning.remove(&stack).unwrap_or_default(),
                        deadline: deadlines.get(&stack).cloned(),
                        state_file: known
                            .iter()
                            .find(|(s, r, _)| s == &stack && r == region)
                            .map(|(_, _, at)| at.clone()),
                        region: region.clone(),
                        stack,
                    })
                    .collect::<Vec<_>>(),
            )
        }
    });
    // A region that cannot be searched (an SCP, an outage) is named, and the others shown.
    let found: Vec<Result<Vec<FoundStack>>> = futures::stream::iter(searches)
        .buffer_unordered(REGIONS_AT_ONCE)
        .collect()
        .await;
    let mut stacks = Vec::new();
    for result in found {
        match result {
            Ok(mut some) => stacks.append(&mut some),
            Err(e) => env.out.warn(format!("{e:#}")),
        }
    }
    stacks.sort_by(|a, b| (&a.stack, &a.region).cmp(&(&b.stack, &b.region)));
    let mut regions = regions;
    regions.sort();
    env.out
        .section("all_regions", &AllRegions { regions, stacks });
    Ok(())
}
