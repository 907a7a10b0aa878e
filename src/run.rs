//! From parsed arguments to a finished command: build what the command needs, run it, print
//! the result and choose the exit code.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;

use crate::cli::{Cli, Command};
use crate::context::{state_path, Ctx};
use crate::output::Output;
use crate::stack::{check_sizes, UsageError};
use crate::state::StateStore;
use crate::steps::launch_config::NodeLaunch;
use crate::steps::{self, missing_step};
use crate::{graph, teardown};

pub const EXIT_FAILED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;

pub async fn run(cli: Cli) -> ExitCode {
    let out = Arc::new(Output::new(cli.global.output, cli.global.quiet));
    let result = dispatch(&cli, &out).await;
    let error = result.as_ref().err().map(|e| format!("{e:#}"));
    if let Some(e) = &error {
        eprintln!("error: {e}");
    }
    out.finish(&out.report(command_name(&cli.command), cli.global.stack.as_str(), error));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<UsageError>().is_some() => ExitCode::from(EXIT_USAGE),
        Err(_) => ExitCode::from(EXIT_FAILED),
    }
}

fn command_name(command: &Command) -> &'static str {
    match command {
        Command::Up(_) => "up",
        Command::Down(_) => "down",
        Command::SecurityGroup(_) => "security-group",
        Command::ConsulServer(_) => "consul-server",
        Command::Cluster => "cluster",
        Command::RolePolicy(_) => "role-policy",
        Command::RegisterTasks => "register-tasks",
        Command::LaunchConfig(_) => "launch-config",
        Command::Asg(_) => "asg",
        Command::Daemons => "daemons",
    }
}

async fn dispatch(cli: &Cli, out: &Arc<Output>) -> Result<()> {
    let global = &cli.global;
    let connect = || Ctx::new(global, out.clone());
    match &cli.command {
        Command::Up(args) => {
            check_sizes(args.size.min, args.size.desired, args.size.max)?;
            let ctx = connect().await?;
            graph::up(&ctx, args).await
        }
        Command::Down(args) => {
            let path = state_path(global);
            let recorded = StateStore::open(&path, &global.stack)?.snapshot();
            let Some(recorded) = recorded else {
                out.progress(format!(
                    "nothing to delete: no state file at {}",
                    path.display()
                ));
                return Ok(());
            };
            teardown::confirm(&recorded.resources, global.stack.as_str(), args)?;
            let ctx = connect().await?;
            teardown::down(&ctx, args).await
        }
        Command::SecurityGroup(args) => {
            let ctx = connect().await?;
            let network = steps::network::resolve(&ctx, &args.network).await?;
            let cidrs = graph::allowed_cidrs(&ctx, &args.access).await?;
            steps::security_group::ensure(&ctx, &network, &cidrs).await?;
            Ok(())
        }
        Command::ConsulServer(args) => {
            let ctx = connect().await?;
            let r = ctx.state.resources();
            let sg = r
                .security_group
                .ok_or_else(|| missing_step("security group", "security-group"))?;
            let network = r
                .network
                .ok_or_else(|| missing_step("network", "security-group"))?;
            let ami = steps::ami::resolve(&ctx, args.instance.ami.as_deref()).await?;
            steps::consul_server::ensure(&ctx, &network, &sg, &ami, &args.instance).await?;
            Ok(())
        }
        Command::Cluster => {
            let ctx = connect().await?;
            steps::cluster::ensure(&ctx).await?;
            Ok(())
        }
        Command::RolePolicy(args) => {
            let ctx = connect().await?;
            steps::role_policy::ensure(&ctx, &args.instance_role).await?;
            Ok(())
        }
        Command::RegisterTasks => {
            let ctx = connect().await?;
            steps::task_definitions::ensure_all(&ctx).await?;
            Ok(())
        }
        Command::LaunchConfig(args) => {
            let ctx = connect().await?;
            let r = ctx.state.resources();
            let sg = r
                .security_group
                .ok_or_else(|| missing_step("security group", "security-group"))?;
            let role = r
                .instance_role
                .filter(|role| role.role_name == args.role.instance_role)
                .ok_or_else(|| {
                    missing_step(
                        &format!("instance role {}", args.role.instance_role),
                        "role-policy",
                    )
                })?;
            let ami = steps::ami::resolve(&ctx, args.instance.ami.as_deref()).await?;
            let launch = NodeLaunch {
                sg: &sg,
                role: &role,
                ami: &ami,
                instance: &args.instance,
            };
            steps::launch_config::ensure(&ctx, &launch, args.launch_template).await?;
            Ok(())
        }
        Command::Asg(args) => {
            check_sizes(args.size.min, args.size.desired, args.size.max)?;
            let ctx = connect().await?;
            let r = ctx.state.resources();
            let launch = r
                .launch_config
                .ok_or_else(|| missing_step("launch configuration", "launch-config"))?;
            let network = r
                .network
                .ok_or_else(|| missing_step("network", "security-group"))?;
            steps::asg::ensure(&ctx, &launch, &network, &args.size).await?;
            Ok(())
        }
        Command::Daemons => {
            let ctx = connect().await?;
            let r = ctx.state.resources();
            let cluster = r
                .cluster
                .ok_or_else(|| missing_step("cluster", "cluster"))?;
            steps::daemons::ensure(&ctx, &cluster, &r.task_definitions).await?;
            Ok(())
        }
    }
}
