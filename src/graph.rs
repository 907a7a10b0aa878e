//! `up`: every step as a node that starts as soon as its inputs are ready.
//!
//! ```text
//! network ──► security-group ──┬──► consul-server
//! ami ─────────────────────────┤
//! role-policy ─────────────────┴──► launch-config ──► asg ──► (wait for nodes)
//! cluster ──────────┬──► daemons
//! register-tasks ───┤
//! log-group ────────┘
//! ```
//! A failed step stops only the steps that need it; the others run to the end, so the state
//! file records everything that was made.

use std::future::Future;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Result};
use futures::FutureExt;

use crate::checkip;
use crate::cli::{AccessArgs, UpArgs};
use crate::context::Ctx;
use crate::stack::Cidr;
use crate::steps::launch_config::NodeLaunch;
use crate::steps::{
    ami, asg, cluster, consul_server, daemons, launch_config, log_group, network, role_policy,
    security_group, task_definitions,
};

/// A step that failed; its error is already in `Failures`.
#[derive(Debug, Clone, Copy)]
struct Failed;

#[derive(Default)]
struct Failures(Mutex<Vec<(&'static str, anyhow::Error)>>);

impl Failures {
    async fn step<T>(
        &self,
        name: &'static str,
        work: impl Future<Output = Result<T>>,
    ) -> Result<Arc<T>, Failed> {
        match work.await {
            Ok(v) => Ok(Arc::new(v)),
            Err(e) => {
                self.0
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((name, e));
                Err(Failed)
            }
        }
    }

    fn into_result(self) -> Result<()> {
        let failures = self.0.into_inner().unwrap_or_else(|p| p.into_inner());
        match failures.len() {
            0 => Ok(()),
            1 => {
                let (name, e) = failures.into_iter().next().ok_or_else(|| anyhow!("?"))?;
                Err(e.context(format!("step {name} failed")))
            }
            _ => Err(anyhow!(
                "{} steps failed:\n{}",
                failures.len(),
                failures
                    .iter()
                    .map(|(n, e)| format!("  {n}: {e:#}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            )),
        }
    }
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

pub async fn up(ctx: &Ctx, args: &UpArgs) -> Result<()> {
    let failures = Failures::default();
    run_up(ctx, args, &failures).await;
    failures.into_result()
}

async fn run_up(ctx: &Ctx, args: &UpArgs, f: &Failures) {
    let network = f
        .step("network", network::resolve(ctx, &args.network))
        .shared();
    let ami = f
        .step("ami", ami::resolve(ctx, args.instance.ami.as_deref()))
        .shared();
    let role = f
        .step(
            "role-policy",
            role_policy::ensure(ctx, &args.role.instance_role),
        )
        .shared();
    let cluster = f.step("cluster", cluster::ensure(ctx)).shared();
    let task_definitions = f
        .step("register-tasks", task_definitions::ensure_all(ctx))
        .shared();
    let log_group = f.step("log-group", log_group::ensure(ctx));

    let sg = {
        let network = network.clone();
        async move {
            let network = network.await?;
            f.step("security-group", async {
                let cidrs = allowed_cidrs(ctx, &args.access).await?;
                security_group::ensure(ctx, &network, &cidrs).await
            })
            .await
        }
    }
    .shared();

    let consul = {
        let (network, sg, ami) = (network.clone(), sg.clone(), ami.clone());
        async move {
            let (network, sg, ami) = futures::join!(network, sg, ami);
            let (network, sg, ami) = (network?, sg?, ami?);
            f.step(
                "consul-server",
                consul_server::ensure(ctx, &network, &sg, &ami, &args.instance),
            )
            .await
        }
    };

    let launch = {
        let (sg, ami, role) = (sg.clone(), ami.clone(), role.clone());
        async move {
            let (sg, ami, role) = futures::join!(sg, ami, role);
            let (sg, ami, role) = (sg?, ami?, role?);
            let launch = NodeLaunch {
                sg: &sg,
                role: &role,
                ami: &ami,
                instance: &args.instance,
            };
            f.step(
                "launch-config",
                launch_config::ensure(ctx, &launch, args.launch_template),
            )
            .await
        }
    };

    let group = {
        let network = network.clone();
        async move {
            let (launch, network) = futures::join!(launch, network);
            let (launch, network) = (launch?, network?);
            f.step("asg", asg::ensure(ctx, &launch, &network, &args.size))
                .await
        }
    };

    let daemons = async move {
        // The containers log to the group, so it must exist before they start.
        let (cluster, task_definitions, log_group) =
            futures::join!(cluster, task_definitions, log_group);
        let (cluster, task_definitions, _) = (cluster?, task_definitions?, log_group?);
        f.step("daemons", daemons::ensure(ctx, &cluster, &task_definitions))
            .await
    };

    let (_, group, daemons) = futures::join!(consul, group, daemons);
    if group.is_ok() && daemons.is_ok() && !args.no_wait {
        let _ = f
            .step(
                "wait",
                asg::wait_for_nodes(ctx, args.size.desired, args.wait_timeout.0),
            )
            .await;
    }
}
