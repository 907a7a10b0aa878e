//! `up`: every step as a node that starts as soon as its inputs are ready.
//!
//! ```text
//! account check ─┬─ (every node writes state only after it)
//! network ───────┴──► security group ──┬──► rules
//! ami ─────────────────────────────────┼──► consul-server
//! role-policy ─────────────────────────┴──► launch-config ──► asg ──► (wait for nodes,
//!                                                                       then for daemons)
//! cluster ──────────┬──► daemons
//! register-tasks ───┤
//! log-group ────────┘
//! ```
//! Every node's own look-up runs at the start, beside all the others, so a cold `up` is one
//! round of reads and then the chain security group -> launch configuration -> ASG. A failed
//! step stops only the steps that need it; the others run to the end, so the state file
//! records everything that was made.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{anyhow, Result};
use futures::FutureExt;

use crate::aws::AwsResultExt;
use crate::checkip;
use crate::cli::{AccessArgs, UpArgs};
use crate::context::Ctx;
use crate::output::Output;
use crate::stack::{Cidr, Sizes};
use crate::state::InstanceSettings;
use crate::steps::launch_config::NodeLaunch;
use crate::steps::{
    ami, asg, cluster, consul_server, daemons, launch_config, log_group, network, role_policy,
    security_group, task_definitions,
};

/// A step that failed; its error is already in `Failures`.
#[derive(Debug, Clone, Copy)]
struct Failed;

struct Failures<'a> {
    failed: Mutex<Vec<(&'static str, anyhow::Error)>>,
    out: &'a Output,
}

impl Failures<'_> {
    async fn step<T>(
        &self,
        name: &'static str,
        work: impl Future<Output = Result<T>>,
    ) -> Result<Arc<T>, Failed> {
        let line = self.out.step(name);
        let result = work.await;
        line.finish(match &result {
            Ok(_) => Ok(()),
            Err(e) if e.downcast_ref::<DependencyFailed>().is_some() => {
                Err("a step it needs failed")
            }
            Err(_) => Err("see below"),
        });
        match result {
            Ok(v) => Ok(Arc::new(v)),
            Err(e) if e.downcast_ref::<DependencyFailed>().is_some() => Err(Failed),
            Err(e) => {
                self.failed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((name, e));
                Err(Failed)
            }
        }
    }

    fn into_result(self) -> Result<()> {
        let failures = self.failed.into_inner().unwrap_or_else(|p| p.into_inner());
        match failures.len() {
            0 => Ok(()),
            1 => {
                let (name, e) = failures.into_iter().next().ok_or_else(|| anyhow!("?"))?;
                Err(e.context(format!("step {name} failed")))
            }
            n => {
                // Steps that failed for one reason (no credentials, say) are listed once.
                let mut by_reason: Vec<(String, Vec<&str>)> = Vec::new();
                for (name, e) in &failures {
                    let text = format!("{e:#}");
                    // The same advice (no credentials, expired token, ...) is the same reason.
                    let reason = match text.find("\n  what to do:") {
                        Some(at) => text[at..].to_owned(),
                        None => text,
                    };
                    match by_reason.iter_mut().find(|(r, _)| *r == reason) {
                        Some((_, names)) => names.push(name),
                        None => by_reason.push((reason, vec![name])),
                    }
                }
                let lines: Vec<String> = by_reason
                    .iter()
                    .map(|(_, names)| {
                        if names.len() == 1 {
                            let e = &failures
                                .iter()
                                .find(|(n, _)| n == &names[0])
                                .map(|(_, e)| format!("{e:#}"))
                                .unwrap_or_default();
                            format!("  {}: {e}", names[0])
                        } else {
                            let first = failures
                                .iter()
                                .find(|(n, _)| n == &names[0])
                                .map(|(_, e)| format!("{e:#}"))
                                .unwrap_or_default();
                            format!("  {} (and {}): {first}", names[0], names[1..].join(", "))
                        }
                    })
                    .collect();
                Err(anyhow!("{n} steps failed:\n{}", lines.join("\n")))
            }
        }
    }
}

/// The availability zones of the region where the instance type is offered.
async fn offered_zones(ctx: &Ctx, instance_type: &str) -> Result<Vec<String>> {
    let out = ctx
        .aws
        .ec2
        .describe_instance_type_offerings()
        .location_type(aws_sdk_ec2::types::LocationType::AvailabilityZone)
        .filters(crate::aws::ec2_filter("instance-type", &[instance_type]))
        .send()
        .await
        .aws(format!("looking up where {instance_type} is offered"))?;
    let mut zones: Vec<String> = out
        .instance_type_offerings()
        .iter()
        .filter_map(|o| o.location().map(str::to_owned))
        .collect();
    zones.sort();
    Ok(zones)
}

/// The CIDRs to open the demo's ports to: `--allow-cidr`, else what the stack already uses,
/// else the caller's public IP.
pub async fn allowed_cidrs(ctx: &Ctx, access: &AccessArgs) -> Result<Vec<Cidr>> {
    let cidrs = if !access.allow_cidrs.is_empty() {
        access.allow_cidrs.clone()
    } else if let Some(sg) = ctx.state.resources().security_group {
        sg.allowed_cidrs
    } else {
        let mine = checkip::public_ip().await?;
        ctx.out.progress(format!(
            "opening the demo's ports to your public IP only: {mine}"
        ));
        vec![mine]
    };
    for c in cidrs.iter().filter(|c| c.is_open_to_world()) {
        ctx.out.warn(format!(
            "--allow-cidr {c} opens ssh, the linkerd admin and the consul API to the whole internet"
        ));
    }
    Ok(cidrs)
}

pub async fn up(ctx: &Ctx, args: &UpArgs, sizes: Sizes, instance: &InstanceSettings) -> Result<()> {
    let failures = Failures {
        failed: Mutex::default(),
        out: &ctx.out,
    };
    run_up(ctx, args, sizes, instance, &failures).await;
    failures.into_result()
}

/// A step's input that failed; the step is skipped without another error.
#[derive(Debug, thiserror::Error)]
#[error("a step this one needs failed")]
struct DependencyFailed;

fn input<T>(r: Result<Arc<T>, Failed>) -> Result<Arc<T>> {
    r.map_err(|Failed| DependencyFailed.into())
}

/// Every node first looks up what exists (all of them at once, beside the account check),
/// then waits for its inputs, then creates what is missing. A cold `up` is therefore one
/// round of look-ups, then the chain security group -> launch configuration -> ASG.
async fn run_up(
    ctx: &Ctx,
    args: &UpArgs,
    sizes: Sizes,
    instance: &InstanceSettings,
    f: &Failures<'_>,
) {
    let role_name = args.role.instance_role.as_str();
    // Nothing is written to the state file before the account and region are checked.
    let bound = f
        .step("account", async {
            ctx.bind_account().await?;
            ctx.state.update(|s| s.instance = Some(instance.clone()))
        })
        .shared();

    let network = {
        let bound = bound.clone();
        f.step("network", async move {
            let (network, bound) = futures::join!(network::lookup(ctx, &args.network), bound);
            input(bound)?;
            let network = network?;
            network::record(ctx, &network)?;
            Ok(network)
        })
    }
    .shared();
    let cidrs = f
        .step("allowed-cidrs", allowed_cidrs(ctx, &args.access))
        .shared();
    let ami = f
        .step("ami", ami::resolve(ctx, instance.ami.as_deref()))
        .shared();
    let role = {
        let bound = bound.clone();
        f.step("role-policy", async move {
            let (found, bound) = futures::join!(role_policy::find(ctx, role_name), bound);
            input(bound)?;
            role_policy::ensure_found(ctx, found?, role_name).await
        })
    }
    .shared();
    let cluster = {
        let bound = bound.clone();
        f.step("cluster", async move {
            let name = ctx.stack.cluster();
            let (found, bound) = futures::join!(cluster::find_active(ctx, &name), bound);
            input(bound)?;
            cluster::ensure_found(ctx, found?).await
        })
    }
    .shared();
    let task_definitions = {
        let bound = bound.clone();
        f.step("register-tasks", async move {
            let (found, bound) = futures::join!(task_definitions::find_all(ctx), bound);
            input(bound)?;
            task_definitions::ensure_all_found(ctx, found?).await
        })
    }
    .shared();
    let log_group = {
        let bound = bound.clone();
        f.step("log-group", async move {
            let (found, bound) = futures::join!(log_group::find(ctx), bound);
            input(bound)?;
            log_group::ensure_found(ctx, found?).await
        })
    }
    .shared();

    // The group alone: the launch configuration needs only its id; the rules go beside.
    let group = {
        let (network, cidrs) = (network.clone(), cidrs.clone());
        f.step("security-group", async move {
            let (found, network, cidrs) = futures::join!(security_group::find(ctx), network, cidrs);
            let (network, cidrs) = (input(network)?, input(cidrs)?);
            security_group::ensure_group(ctx, &found?, &network, &cidrs).await
        })
    }
    .shared();
    let rules = {
        let group = group.clone();
        f.step("security-group-rules", async move {
            let group = input(group.await)?;
            security_group::ensure_rules(ctx, &group.0, &group.1).await
        })
    };

    // The cheap part of `doctor`, beside the first look-ups: is the instance type offered in
    // the chosen AZ? Checked before any instance is asked for; skipped once the stack runs.
    let preflight = {
        let network = network.clone();
        f.step("preflight", async move {
            if ctx.state.resources().launch_config.is_some() {
                return Ok(());
            }
            let (offered, network) =
                futures::join!(offered_zones(ctx, &instance.instance_type), network);
            let network = input(network)?;
            let offered = offered?;
            let missing: Vec<&String> = network
                .availability_zones
                .iter()
                .filter(|az| !offered.contains(az))
                .collect();
            if missing.is_empty() {
                return Ok(());
            }
            Err(anyhow!(
                "instance type {} is not offered in {}; offered in: {}\n  what to do: pick \
                 another --instance-type, or --availability-zone / --subnet-id in one of those",
                instance.instance_type,
                missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                if offered.is_empty() {
                    "no zone of this region".to_owned()
                } else {
                    offered.join(", ")
                }
            ))
        })
    }
    .shared();

    let consul = {
        let (network, group, ami, preflight) = (
            network.clone(),
            group.clone(),
            ami.clone(),
            preflight.clone(),
        );
        f.step("consul-server", async move {
            let (found, network, group, ami, preflight) =
                futures::join!(consul_server::find(ctx), network, group, ami, preflight);
            input(preflight)?;
            let (network, group, ami) = (input(network)?, input(group)?, input(ami)?);
            consul_server::ensure_found(ctx, found?, &network, &group.0, &ami, instance).await
        })
    };

    let launch = {
        let (group, ami, role) = (group.clone(), ami.clone(), role.clone());
        f.step("launch-config", async move {
            let (found, group, ami, role, preflight) = futures::join!(
                launch_config::find(ctx, args.launch_template),
                group,
                ami,
                role,
                preflight
            );
            input(preflight)?;
            let (group, ami, role) = (input(group)?, input(ami)?, input(role)?);
            let launch = NodeLaunch {
                sg: &group.0,
                role: &role,
                ami: &ami,
                instance,
            };
            launch_config::ensure_found(ctx, found?, &launch, args.launch_template).await
        })
    };

    let nodes = {
        let network = network.clone();
        f.step("asg", async move {
            let name = ctx.stack.asg();
            let (found, launch, network) =
                futures::join!(asg::describe(ctx, &name), launch, network);
            let (launch, network) = (input(launch)?, input(network)?);
            let group = asg::ensure_found(ctx, found?, &launch, &network, sizes).await?;
            launch_config::delete_retired(ctx).await?;
            Ok(group)
        })
    };

    let daemons = f.step("daemons", async move {
        let name = ctx.stack.cluster();
        // The containers log to the group, so it must exist before they start.
        let (found, cluster, task_definitions, log_group) = futures::join!(
            daemons::find(ctx, &name),
            cluster,
            task_definitions,
            log_group
        );
        let (cluster, task_definitions) = (input(cluster)?, input(task_definitions)?);
        input(log_group)?;
        daemons::ensure_found(ctx, &found?, &cluster, &task_definitions).await
    });

    let (_, _, nodes, daemons) = futures::join!(rules, consul, nodes, daemons);
    if nodes.is_ok() && daemons.is_ok() && !args.no_wait {
        // Nodes that joined are not yet a mesh: each needs linkerd, the consul agent and
        // registrator running. One --wait-timeout bounds both waits.
        let deadline = Instant::now() + args.wait_timeout.0;
        let _ = f
            .step("wait", async {
                asg::wait_for_nodes(ctx, sizes.desired, args.wait_timeout.0).await?;
                daemons::wait_running_everywhere(
                    ctx,
                    deadline.saturating_duration_since(Instant::now()),
                )
                .await
            })
            .await;
    }
}
