//! The consul server: one EC2 instance outside the cluster, tagged Name=`<stack>-consul-server`
//! so that the nodes' consul agents find it (cloud auto-join).

use std::sync::Mutex;
use std::time::Duration;

use anyhow::{anyhow, Context as _, Result};
use aws_sdk_ec2::types::{
    HttpTokensState, InstanceMetadataEndpointState, InstanceMetadataOptionsRequest,
    InstanceStateName,
};
use futures::future::BoxFuture;
use futures::FutureExt;

use super::{missing_step, Name, Plan, Ready, Resource, Settings};
use crate::aws::{describe_error, ec2_filter, error_code, poll_with, AwsResultExt, Backoff, Poll};
use crate::context::Ctx;
use crate::ids::InstanceId;
use crate::kinds::{Action, Item, ResourceKind, ResourceStatus};
use crate::stack::StackName;
use crate::state::{Creates, InstanceRecord, Resources};

mod start;

pub struct ConsulServer;

impl Resource for ConsulServer {
    fn name(&self) -> Name {
        Name::ConsulServer
    }

    fn what(&self) -> &'static str {
        "consul server"
    }

    fn command(&self) -> &'static str {
        "consul-server"
    }

    fn is_recorded(&self, r: &Resources, _: &Settings) -> bool {
        r.consul_server.is_some()
    }

    fn up<'a>(
        &'a self,
        cx: &'a Ctx,
        s: &'a Settings,
        ready: Ready<'a>,
    ) -> BoxFuture<'a, Result<()>> {
        async move {
            let (found, ami, ready) = futures::join!(find(cx), s.ami(cx), ready);
            ready?;
            let r = cx.state.resources();
            let sg = r
                .security_group
                .ok_or_else(|| missing_step("security group", "security-group"))?;
            let network = r
                .network
                .ok_or_else(|| missing_step("network", "security-group"))?;
            match found? {
                Some(id) => keep(cx, id).await,
                None => start::start(cx, &network, &sg, ami?, &s.instance).await,
            }
        }
        .boxed()
    }

    fn plan<'a>(
        &'a self,
        cx: &'a Ctx,
        _: &'a Settings,
        plan: &'a Plan,
    ) -> BoxFuture<'a, Result<()>> {
        async move {
            let found = find(cx).await?;
            let (action, detail) = match (found, cx.state.resources().consul_server) {
                (Some(_), _) => (Action::Keep, None),
                (None, Some(old)) => (
                    Action::Replace,
                    Some(format!("{} is gone", old.instance_id)),
                ),
                (None, None) => (Action::Create, None),
            };
            let name = cx.stack.consul_server_tag();
            plan.row(
                self.name(),
                ResourceKind::ConsulServer,
                &name,
                action,
                detail,
            );
            Ok(())
        }
        .boxed()
    }

    fn inventory(&self, stack: &StackName, r: &Resources) -> Vec<Item> {
        r.consul_server
            .iter()
            .map(|c| {
                Item::new(
                    ResourceKind::ConsulServer,
                    stack.consul_server_tag(),
                    c.instance_id.as_str(),
                )
            })
            .collect()
    }

    fn destroy<'a>(&'a self, cx: &'a Ctx, timeout: Duration) -> BoxFuture<'a, Result<()>> {
        async move {
            match cx.state.resources().consul_server {
                Some(record) => destroy(cx, &record, timeout).await,
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
            if let Some(instance_id) = find(cx).await? {
                let mut found = found.lock().unwrap_or_else(|p| p.into_inner());
                found
                    .consul_server
                    .get_or_insert(InstanceRecord { instance_id });
            }
            Ok(())
        }
        .boxed()
    }

    fn status<'a>(&'a self, cx: &'a Ctx, r: &'a Resources) -> BoxFuture<'a, Vec<ResourceStatus>> {
        async move {
            let Some(c) = &r.consul_server else {
                return Vec::new();
            };
            let state = match current_state(cx, &c.instance_id).await {
                Ok(None | Some(InstanceStateName::Terminated)) => "missing".to_owned(),
                Ok(Some(state)) => state.as_str().to_owned(),
                Err(e) => format!("unknown: {e:#}"),
            };
            let name = cx.stack.consul_server_tag();
            vec![ResourceStatus::new(
                ResourceKind::ConsulServer,
                &name,
                c.instance_id.as_str(),
                state,
            )]
        }
        .boxed()
    }
}

/// IMDSv2 only, with one extra hop so that containers in bridge mode reach the metadata service.
pub fn metadata_options() -> InstanceMetadataOptionsRequest {
    InstanceMetadataOptionsRequest::builder()
        .http_tokens(HttpTokensState::Required)
        .http_put_response_hop_limit(2)
        .http_endpoint(InstanceMetadataEndpointState::Enabled)
        .build()
}

/// The stack's consul server if one is pending, running or stopped.
pub async fn find(ctx: &Ctx) -> Result<Option<InstanceId>> {
    let name = ctx.stack.consul_server_tag();
    let out = ctx
        .aws
        .ec2
        .describe_instances()
        .filters(ec2_filter("tag:Name", &[&name]))
        .filters(ec2_filter(
            &format!("tag:{}", crate::stack::STACK_TAG),
            &[ctx.stack.as_str()],
        ))
        .filters(ec2_filter(
            "instance-state-name",
            &["pending", "running", "stopping", "stopped"],
        ))
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .aws(format!("looking up the consul server {name}"))?;
    Ok(out
        .iter()
        .flat_map(|r| r.instances())
        .find_map(|i| i.instance_id())
        .map(InstanceId::from))
}

/// The server found running (or stopped): recorded as it is.
async fn keep(ctx: &Ctx, id: InstanceId) -> Result<()> {
    let record = InstanceRecord { instance_id: id };
    ctx.state
        .update(|s| {
            s.resources.consul_server = Some(record.clone());
            s.resources.created(Creates::ConsulServer);
        })
        .await?;
    ctx.out.record(
        ResourceKind::ConsulServer,
        ctx.stack.consul_server_tag(),
        record.instance_id.as_str(),
        Action::Kept,
    );
    Ok(())
}

/// The instance's state now; an instance EC2 no longer knows is long terminated.
async fn current_state(ctx: &Ctx, id: &InstanceId) -> Result<Option<InstanceStateName>> {
    let result = ctx
        .aws
        .ec2
        .describe_instances()
        .instance_ids(id.as_str())
        .send()
        .await;
    match result {
        Ok(out) => Ok(out
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .find_map(|i| i.state().and_then(|s| s.name()).cloned())),
        Err(e) if error_code(&e) == Some("InvalidInstanceID.NotFound") => {
            Ok(Some(InstanceStateName::Terminated))
        }
        Err(e) => Err(anyhow!(
            "looking at the consul server {id} (ec2:DescribeInstances): {}",
            describe_error(&e)
        )),
    }
}

/// Terminates the instance and waits until it is gone, so the security group can go next.
async fn destroy(ctx: &Ctx, record: &InstanceRecord, timeout: Duration) -> Result<()> {
    let id = record.instance_id.as_str();
    let name = ctx.stack.consul_server_tag();
    let result = ctx
        .aws
        .ec2
        .terminate_instances()
        .instance_ids(id)
        .send()
        .await;
    match result {
        Ok(_) => {}
        Err(e) if error_code(&e) == Some("InvalidInstanceID.NotFound") => {}
        Err(e) => {
            return Err(anyhow!(
                "terminating the consul server {name} ({id}): {}",
                describe_error(&e)
            ))
        }
    }
    wait_terminated(ctx, std::slice::from_ref(&record.instance_id), timeout)
        .await
        .with_context(|| format!("terminating the consul server {name} ({id})"))?;
    ctx.state
        .update(|s| s.resources.consul_server = None)
        .await?;
    ctx.out
        .record(ResourceKind::ConsulServer, &name, id, Action::Deleted);
    Ok(())
}

/// Waits until every one of `ids` is terminated (or unknown to EC2).
pub async fn wait_terminated(ctx: &Ctx, ids: &[InstanceId], timeout: Duration) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    let what = format!("instances {} to terminate", list.join(", "));
    poll_with(
        &what,
        timeout,
        Backoff::INSTANCES,
        Some(&ctx.out),
        || async {
            let result = ctx
                .aws
                .ec2
                .describe_instances()
                .set_instance_ids(Some(list.clone()))
                .send()
                .await;
            let out = match result {
                Ok(out) => out,
                Err(e) if error_code(&e) == Some("InvalidInstanceID.NotFound") => {
                    return Ok(Poll::Ready(()))
                }
                Err(e) => return Err(anyhow!("{}", describe_error(&e))),
            };
            let alive: Vec<String> = out
                .reservations()
                .iter()
                .flat_map(|r| r.instances())
                .filter(|i| {
                    i.state().and_then(|s| s.name()) != Some(&InstanceStateName::Terminated)
                })
                .map(|i| {
                    format!(
                        "{} {}",
                        i.instance_id().unwrap_or("?"),
                        i.state().and_then(|s| s.name()).map_or("?", |n| n.as_str())
                    )
                })
                .collect();
            Ok(if alive.is_empty() {
                Poll::Ready(())
            } else {
                Poll::Pending(alive.join(", "))
            })
        },
    )
    .await
}
