//! Where the stack runs: the default VPC's default subnet in one AZ (as the guide does), or the
//! subnets given with `--subnet-id` and their VPC. The VPC and subnets are not the stack's:
//! they are recorded, so that what runs in them knows where, but never deleted.

use std::sync::Mutex;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use futures::future::BoxFuture;
use futures::FutureExt;

use super::{Name, Plan, Ready, Resource, Settings};
use crate::aws::{ec2_filter, AwsResultExt};
use crate::context::Ctx;
use crate::ids::{SubnetId, VpcId};
use crate::kinds::{Action, Item, ResourceKind, ResourceStatus};
use crate::options::NetworkArgs;
use crate::stack::StackName;
use crate::state::{Network as NetworkRecord, Resources};

pub struct Network;

impl Resource for Network {
    fn name(&self) -> Name {
        Name::Network
    }

    fn what(&self) -> &'static str {
        "network"
    }

    fn command(&self) -> &'static str {
        "security-group"
    }

    fn is_recorded(&self, r: &Resources, _: &Settings) -> bool {
        r.network.is_some()
    }

    fn up<'a>(
        &'a self,
        cx: &'a Ctx,
        s: &'a Settings,
        ready: Ready<'a>,
    ) -> BoxFuture<'a, Result<()>> {
        async move {
            let (network, ready) = futures::join!(lookup(cx, &s.network), ready);
            ready?;
            record(cx, &network?).await
        }
        .boxed()
    }

    /// No row of its own: the security group's row says which VPC, and its plan makes the
    /// look-up (so a network that cannot be found fails the plan once, there).
    fn plan<'a>(&'a self, _: &'a Ctx, _: &'a Settings, _: &'a Plan) -> BoxFuture<'a, Result<()>> {
        async { Ok(()) }.boxed()
    }

    /// The VPC and subnets are not the stack's: `down` leaves them.
    fn inventory(&self, _: &StackName, _: &Resources) -> Vec<Item> {
        Vec::new()
    }

    /// Nothing to delete; the record stays until the state file goes, so that what is left
    /// after a failed `down` still knows where it runs.
    fn destroy<'a>(&'a self, _: &'a Ctx, _: Duration) -> BoxFuture<'a, Result<()>> {
        async { Ok(()) }.boxed()
    }

    /// Deleting needs no network, and `up` finds it again.
    fn discover<'a>(
        &'a self,
        _: &'a Ctx,
        _: &'a Settings,
        _: &'a Mutex<Resources>,
    ) -> BoxFuture<'a, Result<()>> {
        async { Ok(()) }.boxed()
    }

    fn status<'a>(&'a self, _: &'a Ctx, _: &'a Resources) -> BoxFuture<'a, Vec<ResourceStatus>> {
        async { Vec::new() }.boxed()
    }
}

/// The network to use, read from AWS unless the state file already names it.
pub async fn lookup(ctx: &Ctx, args: &NetworkArgs) -> Result<NetworkRecord> {
    let recorded = ctx.state.resources().network;
    let network = if !args.subnet_ids.is_empty() {
        given_subnets(ctx, &args.subnet_ids).await?
    } else if let Some(net) = recorded.clone().filter(|n| {
        args.availability_zone
            .as_ref()
            .is_none_or(|az| n.availability_zones.contains(az))
    }) {
        net
    } else {
        default_subnet(ctx, args.availability_zone.as_deref()).await?
    };
    if let Some(sg) = ctx.state.resources().security_group {
        if sg.vpc_id != network.vpc_id {
            bail!(
                "the stack's security group {} is in {}, but the chosen subnets are in {}; \
                 use subnets of {} or take the stack down first",
                sg.id,
                sg.vpc_id,
                network.vpc_id,
                sg.vpc_id
            );
        }
    }
    Ok(network)
}

async fn record(ctx: &Ctx, network: &NetworkRecord) -> Result<()> {
    if ctx.state.resources().network.as_ref() != Some(network) {
        ctx.state
            .update(|s| s.resources.network = Some(network.clone()))
            .await?;
        let subnets: Vec<_> = network.subnet_ids.iter().map(|s| s.as_str()).collect();
        ctx.out.record(
            ResourceKind::Network,
            network.vpc_id.as_str(),
            subnets.join(","),
            Action::Used,
        );
    }
    Ok(())
}

async fn given_subnets(ctx: &Ctx, ids: &[String]) -> Result<NetworkRecord> {
    let subnets = ctx
        .aws
        .ec2
        .describe_subnets()
        .set_subnet_ids(Some(ids.to_vec()))
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .aws(format!("looking up subnets {}", ids.join(", ")))?;
    let mut vpcs: Vec<&str> = subnets.iter().filter_map(|s| s.vpc_id()).collect();
    vpcs.sort_unstable();
    vpcs.dedup();
    let [vpc] = vpcs.as_slice() else {
        bail!(
            "the subnets {} are in {} VPCs ({}); give subnets of one VPC",
            ids.join(", "),
            vpcs.len(),
            vpcs.join(", ")
        );
    };
    let mut azs: Vec<String> = subnets
        .iter()
        .filter_map(|s| s.availability_zone().map(str::to_owned))
        .collect();
    azs.sort_unstable();
    azs.dedup();
    Ok(NetworkRecord {
        vpc_id: VpcId::from(*vpc),
        subnet_ids: ids.iter().map(|s| SubnetId::from(s.as_str())).collect(),
        availability_zones: azs,
    })
}

/// Default subnets exist only in the default VPC, so one call finds both.
async fn default_subnet(ctx: &Ctx, az: Option<&str>) -> Result<NetworkRecord> {
    let subnets = ctx
        .aws
        .ec2
        .describe_subnets()
        .filters(ec2_filter("default-for-az", &["true"]))
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .aws("looking up the default VPC's default subnets")?;
    let vpc = subnets.iter().find_map(|s| s.vpc_id()).ok_or_else(|| {
        anyhow!(
            "region {} has no default VPC (no default subnet); pass --subnet-id ID \
                 (repeatable) to use subnets of another VPC",
            ctx.aws.region
        )
    })?;
    let mut candidates: Vec<(&str, &str)> = subnets
        .iter()
        .filter(|s| s.vpc_id() == Some(vpc))
        .filter_map(|s| Some((s.availability_zone()?, s.subnet_id()?)))
        .collect();
    candidates.sort_unstable();
    let chosen = match az {
        Some(az) => candidates.iter().find(|(a, _)| *a == az).ok_or_else(|| {
            let azs: Vec<_> = candidates.iter().map(|(a, _)| *a).collect();
            anyhow!(
                "the default VPC {vpc} has no default subnet in availability zone {az}; \
                 choose one of: {}",
                azs.join(", ")
            )
        })?,
        None => candidates.first().ok_or_else(|| {
            anyhow!("the default VPC {vpc} has no default subnet; pass --subnet-id ID")
        })?,
    };
    Ok(NetworkRecord {
        vpc_id: VpcId::from(vpc),
        subnet_ids: vec![SubnetId::from(chosen.1)],
        availability_zones: vec![chosen.0.to_owned()],
    })
}
