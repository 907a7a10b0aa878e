//! The auto scaling group `<stack>-asg` that runs the ECS nodes, tagged Name=`<stack>-ecs`
//! at launch; and the wait for its nodes to join the cluster.

mod destroy;
mod ensure;
#[cfg(test)]
mod tests;
mod wait;

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Result;
use aws_sdk_autoscaling::types::AutoScalingGroup;
use futures::future::BoxFuture;
use futures::FutureExt;

pub use wait::wait_for_nodes;

use super::{launch_config, missing_step, Name, Plan, Ready, Resource, Settings};
use crate::aws::AwsResultExt;
use crate::context::Ctx;
use crate::kinds::{Action, Item, ResourceKind, ResourceStatus};
use crate::stack::{StackName, STACK_TAG};
use crate::state::{AsgRecord, Resources};

pub struct Asg;

impl Resource for Asg {
    fn name(&self) -> Name {
        Name::Asg
    }

    fn what(&self) -> &'static str {
        "auto scaling group"
    }

    fn command(&self) -> &'static str {
        "asg"
    }

    fn is_recorded(&self, r: &Resources, _: &Settings) -> bool {
        r.asg.is_some()
    }

    fn up<'a>(
        &'a self,
        cx: &'a Ctx,
        s: &'a Settings,
        ready: Ready<'a>,
    ) -> BoxFuture<'a, Result<()>> {
        async move {
            let name = cx.stack.asg();
            let (found, ready) = futures::join!(describe(cx, &name), ready);
            ready?;
            let r = cx.state.resources();
            let launch = r
                .launch_config
                .ok_or_else(|| missing_step("launch configuration", "launch-config"))?;
            let network = r
                .network
                .ok_or_else(|| missing_step("network", "security-group"))?;
            ensure::ensure_found(cx, found?, &launch, &network, s.sizes).await?;
            // Only now does the group launch from the new configuration: the ones it replaced
            // can go.
            launch_config::delete_retired(cx).await
        }
        .boxed()
    }

    fn plan<'a>(
        &'a self,
        cx: &'a Ctx,
        s: &'a Settings,
        plan: &'a Plan,
    ) -> BoxFuture<'a, Result<()>> {
        async move {
            let name = cx.stack.asg();
            let sizes = s.sizes;
            let (action, detail) = match describe(cx, &name).await? {
                Some(g) => {
                    let launch = launch_config::planned_record(cx, s.launch_template);
                    let diffs = ensure::differences(&g, &launch, sizes);
                    if diffs.is_empty() {
                        (Action::Keep, None)
                    } else {
                        (
                            Action::Repair,
                            Some(format!(
                                "{}; running nodes are not replaced",
                                diffs.join("; ")
                            )),
                        )
                    }
                }
                None => (
                    Action::Create,
                    Some(format!(
                        "min {} max {} desired {}",
                        sizes.min, sizes.max, sizes.desired
                    )),
                ),
            };
            plan.row(
                self.name(),
                ResourceKind::AutoScalingGroup,
                &name,
                action,
                detail,
            );
            Ok(())
        }
        .boxed()
    }

    fn inventory(&self, _: &StackName, r: &Resources) -> Vec<Item> {
        r.asg
            .iter()
            .map(|a| Item::new(ResourceKind::AutoScalingGroup, &a.name, &a.name))
            .collect()
    }

    fn destroy<'a>(&'a self, cx: &'a Ctx, timeout: Duration) -> BoxFuture<'a, Result<()>> {
        async move {
            match cx.state.resources().asg {
                Some(record) => destroy::destroy(cx, &record, timeout).await,
                None => Ok(()),
            }
        }
        .boxed()
    }

    fn discover<'a>(
        &'a self,
        cx: &'a Ctx,
        _: &'a Settings,
        found: &'a Mutex<Resources>,
    ) -> BoxFuture<'a, Result<()>> {
        async move {
            let name = cx.stack.asg();
            let record = describe(cx, &name)
                .await?
                .filter(|g| is_ours(cx, g))
                .map(|g| AsgRecord {
                    name: name.clone(),
                    min: g.min_size().unwrap_or(0).max(0) as u32,
                    max: g.max_size().unwrap_or(0).max(0) as u32,
                    desired: g.desired_capacity().unwrap_or(0).max(0) as u32,
                });
            if let Some(record) = record {
                let mut found = found.lock().unwrap_or_else(|p| p.into_inner());
                found.asg.get_or_insert(record);
            }
            Ok(())
        }
        .boxed()
    }

    fn status<'a>(&'a self, cx: &'a Ctx, r: &'a Resources) -> BoxFuture<'a, Vec<ResourceStatus>> {
        async move {
            let Some(a) = &r.asg else {
                return Vec::new();
            };
            let state = match describe(cx, &a.name).await {
                Ok(Some(g)) => {
                    let in_service = g
                        .instances()
                        .iter()
                        .filter(|i| i.lifecycle_state().map(|s| s.as_str()) == Some("InService"))
                        .count();
                    let sizes = format!(
                        "{in_service} InService of desired {} (min {}, max {})",
                        g.desired_capacity().unwrap_or(0),
                        g.min_size().unwrap_or(0),
                        g.max_size().unwrap_or(0)
                    );
                    // AWS sets a status only while the group is being deleted.
                    match g.status() {
                        Some(status) => format!("{sizes}, {status}"),
                        None => sizes,
                    }
                }
                Ok(None) => "missing".to_owned(),
                Err(e) => format!("unknown: {e:#}"),
            };
            vec![ResourceStatus::new(
                ResourceKind::AutoScalingGroup,
                &a.name,
                &a.name,
                state,
            )]
        }
        .boxed()
    }
}

/// The EC2 instances of the group the state file records, which `down` terminates with it.
pub async fn recorded_members(ctx: &Ctx) -> Result<BTreeSet<String>> {
    let Some(record) = ctx.state.resources().asg else {
        return Ok(BTreeSet::new());
    };
    Ok(describe(ctx, &record.name)
        .await?
        .iter()
        .flat_map(|g| g.instances())
        .filter_map(|i| i.instance_id().map(str::to_owned))
        .collect())
}

async fn describe(ctx: &Ctx, name: &str) -> Result<Option<AutoScalingGroup>> {
    let out = ctx
        .aws
        .autoscaling
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(name)
        .send()
        .await
        .aws(format!("looking up auto scaling group {name}"))?;
    Ok(out.auto_scaling_groups().first().cloned())
}

/// It carries the stack's tag: a group of the same name without it is somebody else's.
fn is_ours(ctx: &Ctx, group: &AutoScalingGroup) -> bool {
    group
        .tags()
        .iter()
        .any(|t| t.key() == Some(STACK_TAG) && t.value() == Some(ctx.stack.as_str()))
}
