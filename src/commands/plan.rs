//! `plan` (and `up --dry-run`): what `up` would do to each resource, from the same look-ups
//! `up` makes, and what the stack's instances burn now.

use std::fmt;

use anyhow::Result;
use serde::Serialize;

use super::Env;
use crate::aws::AwsResultExt;
use crate::cli::UpArgs;
use crate::context::Ctx;
use crate::costs::{self, Burn};
use crate::kinds::Action;
use crate::resources::{Plan, ORDER};

#[derive(Debug, Clone, Serialize)]
pub struct PlanSummary {
    pub instance_type: String,
    /// vCPUs of one instance of that type, when the account says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vcpus_per_instance: Option<i32>,
    /// The consul server plus `--max` nodes.
    pub instances_at_most: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vcpus_at_most: Option<i32>,
    pub changes: usize,
    /// What runs now, and has run so far.
    pub running: Burn,
}

impl fmt::Display for PlanSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let vcpus = self
            .vcpus_at_most
            .map_or("unknown".to_owned(), |v| v.to_string());
        writeln!(
            f,
            "{} change(s). At most {} {} instance(s) (consul server + --max nodes): {vcpus} vCPUs.",
            self.changes, self.instances_at_most, self.instance_type
        )?;
        writeln!(f, "Now: {}.", self.running)
    }
}

pub async fn run(args: &UpArgs, env: &Env) -> Result<()> {
    let (state, s) = env.lock_with_settings(args.flags()).await?;
    let cx = Ctx::new(&env.global, state, env.out.clone()).await?;
    let plan = Plan::default();
    let plans = ORDER
        .iter()
        .filter(|e| e.resource.made_by_up())
        .map(|e| e.resource.plan(&cx, &s, &plan));
    let (results, vcpus, burning) = futures::join!(
        futures::future::join_all(plans),
        vcpus(&cx, &s.instance.instance_type),
        costs::by_stack(&cx.aws.ec2, Some(cx.stack.as_str()))
    );
    results.into_iter().collect::<Result<Vec<()>>>()?;
    let running = burning?.remove(cx.stack.as_str()).unwrap_or_default();
    let rows = plan.into_rows();
    let changes = rows.iter().filter(|r| r.action != Action::Keep).count();
    for r in rows {
        env.out.planned(r.kind, r.name, r.action, r.detail);
    }
    let vcpus_per_instance = vcpus.unwrap_or_else(|e| {
        env.out.warn(format!("vCPUs unknown: {e:#}"));
        None
    });
    let instances = 1 + s.sizes.max;
    env.out.section(
        "plan",
        &PlanSummary {
            instance_type: s.instance.instance_type.clone(),
            vcpus_per_instance,
            instances_at_most: instances,
            vcpus_at_most: vcpus_per_instance.map(|v| v * instances as i32),
            changes,
            running,
        },
    );
    Ok(())
}

async fn vcpus(cx: &Ctx, instance_type: &str) -> Result<Option<i32>> {
    let out = cx
        .aws
        .ec2
        .describe_instance_types()
        .instance_types(aws_sdk_ec2::types::InstanceType::from(instance_type))
        .send()
        .await
        .aws(format!("looking up instance type {instance_type}"))?;
    Ok(out
        .instance_types()
        .first()
        .and_then(|t| t.v_cpu_info())
        .and_then(|v| v.default_v_cpus()))
}
