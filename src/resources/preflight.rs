//! The cheap part of `doctor`, beside the first look-ups of `up`: is the instance type offered
//! in the chosen availability zones? Checked before any instance is asked for, so that a type
//! the zone lacks fails at once rather than after the security group and the launch
//! configuration are made. It makes and records nothing.

use std::sync::Mutex;
use std::time::Duration;

use anyhow::{anyhow, Result};
use futures::future::BoxFuture;
use futures::FutureExt;

use super::{missing_step, Name, Plan, Ready, Resource, Settings};
use crate::aws::{ec2_filter, AwsResultExt};
use crate::context::Ctx;
use crate::kinds::{Item, ResourceStatus};
use crate::stack::StackName;
use crate::state::Resources;

pub struct Preflight;

impl Resource for Preflight {
    fn name(&self) -> Name {
        Name::Preflight
    }

    fn what(&self) -> &'static str {
        "instance type check"
    }

    fn command(&self) -> &'static str {
        "up"
    }

    /// Nothing to record: a single-step command does not run the check, and what it guards
    /// needs nothing of it.
    fn is_recorded(&self, _: &Resources, _: &Settings) -> bool {
        true
    }

    fn up<'a>(
        &'a self,
        cx: &'a Ctx,
        s: &'a Settings,
        ready: Ready<'a>,
    ) -> BoxFuture<'a, Result<()>> {
        async move {
            // Once the stack runs, its instance type has been shown to work.
            if cx.state.resources().launch_config.is_some() {
                return Ok(());
            }
            let instance_type = &s.instance.instance_type;
            let (offered, ready) = futures::join!(offered_zones(cx, instance_type), ready);
            ready?;
            let network = cx
                .state
                .resources()
                .network
                .ok_or_else(|| missing_step("network", "security-group"))?;
            let offered = offered?;
            let missing: Vec<&str> = network
                .availability_zones
                .iter()
                .filter(|az| !offered.contains(az))
                .map(String::as_str)
                .collect();
            if missing.is_empty() {
                return Ok(());
            }
            Err(anyhow!(
                "instance type {instance_type} is not offered in {}; offered in: {}\n  what to \
                 do: pick another --instance-type, or --availability-zone / --subnet-id in one \
                 of those",
                missing.join(", "),
                if offered.is_empty() {
                    "no zone of this region".to_owned()
                } else {
                    offered.join(", ")
                }
            ))
        }
        .boxed()
    }

    /// `plan` does not check: `doctor` does, fully.
    fn plan<'a>(&'a self, _: &'a Ctx, _: &'a Settings, _: &'a Plan) -> BoxFuture<'a, Result<()>> {
        async { Ok(()) }.boxed()
    }

    fn inventory(&self, _: &StackName, _: &Resources) -> Vec<Item> {
        Vec::new()
    }

    fn destroy<'a>(&'a self, _: &'a Ctx, _: Duration) -> BoxFuture<'a, Result<()>> {
        async { Ok(()) }.boxed()
    }

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

/// The availability zones of the region where the instance type is offered.
async fn offered_zones(ctx: &Ctx, instance_type: &str) -> Result<Vec<String>> {
    let out = ctx
        .aws
        .ec2
        .describe_instance_type_offerings()
        .location_type(aws_sdk_ec2::types::LocationType::AvailabilityZone)
        .filters(ec2_filter("instance-type", &[instance_type]))
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .aws(format!("looking up where {instance_type} is offered"))?;
    let mut zones: Vec<String> = out
        .iter()
        .filter_map(|o| o.location().map(str::to_owned))
        .collect();
    zones.sort();
    Ok(zones)
}
