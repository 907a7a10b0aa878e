//! What a stack burns by the hour: its EC2 instances that are pending or running (the nodes
//! and the consul server), their vCPUs, and the instance-hours they have run so far (from each
//! one's launch time). Everything else the stack has costs nothing by the hour.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::SystemTime;

use anyhow::{Context, Result};
use aws_sdk_ec2::types::Instance;
use aws_smithy_types::DateTime;
use serde::Serialize;

use crate::aws::{ec2_filter, AwsResultExt};
use crate::stack::STACK_TAG;

/// The running instances of one stack.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Burn {
    pub instances: u32,
    pub vcpus: u32,
    /// Since each instance's launch, to now, summed.
    pub instance_hours: f64,
}

impl fmt::Display for Burn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} instance(s) running, {} vCPUs, {:.1} instance-hours so far",
            self.instances, self.vcpus, self.instance_hours
        )
    }
}

/// Each stack's running instances in the client's region, by the stack's tag; `stack` narrows
/// the lookup to one. A stack with nothing running is absent.
pub async fn by_stack(
    ec2: &aws_sdk_ec2::Client,
    stack: Option<&str>,
) -> Result<BTreeMap<String, Burn>> {
    burn_of(ec2, &running_instances(ec2, stack).await?).await
}

/// The pending and running instances that carry a stack's tag (of `stack`, else of any).
pub async fn running_instances(
    ec2: &aws_sdk_ec2::Client,
    stack: Option<&str>,
) -> Result<Vec<Instance>> {
    let tag = match stack {
        Some(s) => ec2_filter(&format!("tag:{STACK_TAG}"), &[s]),
        None => ec2_filter("tag-key", &[STACK_TAG]),
    };
    let reservations: Vec<_> = ec2
        .describe_instances()
        .filters(tag)
        .filters(ec2_filter("instance-state-name", &["pending", "running"]))
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .aws("looking up the stack's running instances (ec2:DescribeInstances)")?;
    Ok(reservations
        .iter()
        .flat_map(|r| r.instances())
        .cloned()
        .collect())
}

/// What `instances` burn, by the stack whose tag each carries.
pub async fn burn_of(
    ec2: &aws_sdk_ec2::Client,
    instances: &[Instance],
) -> Result<BTreeMap<String, Burn>> {
    let types: BTreeSet<String> = instances
        .iter()
        .filter_map(|i| i.instance_type().map(|t| t.as_str().to_owned()))
        .collect();
    let vcpus = vcpus_of(ec2, &types).await?;
    let now = DateTime::from(SystemTime::now()).secs();
    let mut burn: BTreeMap<String, Burn> = BTreeMap::new();
    for i in instances {
        let Some(owner) = i
            .tags()
            .iter()
            .find(|t| t.key() == Some(STACK_TAG))
            .and_then(|t| t.value())
        else {
            continue;
        };
        let b = burn.entry(owner.to_owned()).or_default();
        b.instances += 1;
        b.vcpus += i
            .instance_type()
            .and_then(|t| vcpus.get(t.as_str()))
            .copied()
            .unwrap_or(0);
        if let Some(launched) = i.launch_time() {
            b.instance_hours += (now - launched.secs()).max(0) as f64 / 3600.0;
        }
    }
    Ok(burn)
}

/// The default vCPUs of each instance type (DescribeInstanceTypes takes up to 100 at once).
async fn vcpus_of(
    ec2: &aws_sdk_ec2::Client,
    types: &BTreeSet<String>,
) -> Result<BTreeMap<String, u32>> {
    let mut vcpus = BTreeMap::new();
    let types: Vec<&String> = types.iter().collect();
    for batch in types.chunks(100) {
        let out = ec2
            .describe_instance_types()
            .set_instance_types(Some(batch.iter().map(|t| t.as_str().into()).collect()))
            .send()
            .await
            .aws("looking up the vCPUs of the instance types (ec2:DescribeInstanceTypes)")?;
        for t in out.instance_types() {
            let name = t
                .instance_type()
                .map(|n| n.as_str().to_owned())
                .context("ec2:DescribeInstanceTypes returned a type without its name")?;
            let n = t.v_cpu_info().and_then(|v| v.default_v_cpus()).unwrap_or(0);
            vcpus.insert(name, u32::try_from(n).unwrap_or(0));
        }
    }
    Ok(vcpus)
}
