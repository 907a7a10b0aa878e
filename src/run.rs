//! From parsed arguments to a finished command: build what the command needs, run it, print
//! the result and choose the exit code.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;

use crate::cli::OutputFormat;
use crate::cli::{Cli, Command};
use crate::context::{state_path, Ctx};
use crate::output::Action;
use crate::output::Output;
use crate::stack::{Sizes, UsageError};
use crate::state::{InstanceSettings, StateStore};
use crate::steps::launch_config::NodeLaunch;
use crate::steps::{self, missing_step};
use crate::verify::{ChecksFailed, Targets};
use crate::{
    dashboard, deploy, discover, doctor, graph, list, load, logs, nodes, plan, status, teardown,
    verify,
};

pub const EXIT_FAILED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_CHECK_FAILED: u8 = 3;

pub async fn run(cli: Cli) -> ExitCode {
    // Commands that print a document of their own: no report, no AWS.
    match &cli.command {
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut cmd, "l5d-ecs", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            return match clap_mangen::Man::new(cmd).render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: writing the man page: {e}");
                    ExitCode::from(EXIT_FAILED)
                }
            };
        }
        _ => {}
    }
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
        Err(e) if e.downcast_ref::<ChecksFailed>().is_some() => ExitCode::from(EXIT_CHECK_FAILED),
        Err(_) => ExitCode::from(EXIT_FAILED),
    }
}

/// Bad usage found by clap: its message on stderr and exit 2 (help and version print as
/// usual, exit 0). With `--output json`, stdout still gets its one JSON document.
pub fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) && !e.use_stderr()
    {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    let _ = e.print();
    let args: Vec<String> = std::env::args().collect();
    let wants_json = args.iter().any(|a| a == "--output=json")
        || args
            .windows(2)
            .any(|w| w[0] == "--output" && w[1] == "json");
    if wants_json {
        let out = Output::new(crate::cli::OutputFormat::Json, true);
        let message = e.to_string();
        let first_line = message
            .lines()
            .next()
            .unwrap_or_default()
            .trim_start_matches("error: ");
        out.finish(&out.report("?", "", Some(first_line.to_owned())));
    }
    ExitCode::from(EXIT_USAGE)
}

fn command_name(command: &Command) -> &'static str {
    match command {
        Command::Up(args) if args.dry_run => "plan",
        Command::Up(_) => "up",
        Command::Plan(_) => "plan",
        Command::Doctor(_) => "doctor",
        Command::Down(_) => "down",
        Command::SecurityGroup(_) => "security-group",
        Command::ConsulServer(_) => "consul-server",
        Command::Cluster => "cluster",
        Command::RolePolicy(_) => "role-policy",
        Command::RegisterTasks => "register-tasks",
        Command::LaunchConfig(_) => "launch-config",
        Command::Asg(_) => "asg",
        Command::Daemons => "daemons",
        Command::LogGroup => "log-group",
        Command::Deploy(_) => "deploy",
        Command::Undeploy(_) => "undeploy",
        Command::Verify(_) => "verify",
        Command::Status(_) => "status",
        Command::List(_) => "list",
        Command::Completions { .. } => "completions",
        Command::Man => "man",
        Command::Logs(_) => "logs",
        Command::Dashboard(_) => "dashboard",
        Command::Tunnel(_) => "tunnel",
        Command::Load(_) => "load",
    }
}

/// The instances' settings: flags, else what the last `up` asked for (state file), else the
/// defaults.
fn resolve_instance(
    global: &crate::cli::GlobalArgs,
    args: &crate::cli::InstanceArgs,
) -> Result<InstanceSettings> {
    let recorded = StateStore::open(&state_path(global), &global.stack)?
        .snapshot()
        .and_then(|s| s.instance);
    Ok(InstanceSettings::resolve(args, recorded.as_ref()))
}

/// The ASG sizes: flags, else what the last `up` asked for (state file), else the defaults.
/// Checked before any AWS call.
fn resolve_sizes(global: &crate::cli::GlobalArgs, args: &crate::cli::SizeArgs) -> Result<Sizes> {
    let recorded = StateStore::open(&state_path(global), &global.stack)?
        .snapshot()
        .and_then(|s| s.resources.asg)
        .map(|a| a.sizes());
    Sizes::resolve(args.min, args.max, args.desired, recorded)
}

async fn dispatch(cli: &Cli, out: &Arc<Output>) -> Result<()> {
    let global = &cli.global;
    let connect = || Ctx::new(global, out.clone());
    match &cli.command {
        Command::Plan(args) | Command::Up(args @ crate::cli::UpArgs { dry_run: true, .. }) => {
            let sizes = resolve_sizes(global, &args.size)?;
            let instance = resolve_instance(global, &args.instance)?;
            let ctx = connect().await?;
            plan::plan(&ctx, args, sizes, &instance).await
        }
        Command::Doctor(args) => {
            let sizes = resolve_sizes(global, &args.size)?;
            let instance = resolve_instance(global, &args.instance)?;
            let aws = crate::aws::Aws::connect(global).await?;
            out.set_region(&aws.region);
            let lines = doctor::doctor(&aws, args, &instance, sizes.max).await;
            let failed = doctor::failure(&lines);
            out.doctor(lines);
            failed.map_or(Ok(()), Err)
        }
        Command::Up(args) => {
            let sizes = resolve_sizes(global, &args.size)?;
            let instance = resolve_instance(global, &args.instance)?;
            let ctx = Ctx::new_unbound(global, out.clone(), instance.key_pair.as_deref()).await?;
            graph::up(&ctx, args, sizes, &instance).await
        }
        Command::Down(args) if args.discover => {
            if !args.yes && !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                return teardown::confirm(&Default::default(), global.stack.as_str(), args);
            }
            let ctx = connect().await?;
            let found = discover::discover(&ctx, &args.instance_role).await?;
            ctx.state
                .update(|s| discover::merge(&mut s.resources, found))?;
            teardown::confirm(&ctx.state.resources(), global.stack.as_str(), args)?;
            teardown::down(&ctx, args).await
        }
        Command::Down(args) => {
            let path = state_path(global);
            let recorded = StateStore::open(&path, &global.stack)?.snapshot();
            let Some(recorded) = recorded else {
                out.progress(format!(
                    "nothing to delete: no state file at {} (add --discover to look for the \
                     stack's resources in AWS)",
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
            let instance = resolve_instance(global, &args.instance)?;
            let ctx = Ctx::new_checked(global, out.clone(), instance.key_pair.as_deref()).await?;
            let r = ctx.state.resources();
            let sg = r
                .security_group
                .ok_or_else(|| missing_step("security group", "security-group"))?;
            let network = r
                .network
                .ok_or_else(|| missing_step("network", "security-group"))?;
            let ami = steps::ami::resolve(&ctx, instance.ami.as_deref()).await?;
            steps::consul_server::ensure(&ctx, &network, &sg, &ami, &instance).await?;
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
            let instance = resolve_instance(global, &args.instance)?;
            let ctx = Ctx::new_checked(global, out.clone(), instance.key_pair.as_deref()).await?;
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
            let ami = steps::ami::resolve(&ctx, instance.ami.as_deref()).await?;
            let launch = NodeLaunch {
                sg: &sg,
                role: &role,
                ami: &ami,
                instance: &instance,
            };
            steps::launch_config::ensure(&ctx, &launch, args.launch_template).await?;
            Ok(())
        }
        Command::Asg(args) => {
            let sizes = resolve_sizes(global, &args.size)?;
            let ctx = connect().await?;
            let r = ctx.state.resources();
            let launch = r
                .launch_config
                .ok_or_else(|| missing_step("launch configuration", "launch-config"))?;
            let network = r
                .network
                .ok_or_else(|| missing_step("network", "security-group"))?;
            steps::asg::ensure(&ctx, &launch, &network, sizes).await?;
            Ok(())
        }
        Command::Daemons => {
            let ctx = connect().await?;
            let r = ctx.state.resources();
            let cluster = r
                .cluster
                .ok_or_else(|| missing_step("cluster", "cluster"))?;
            if r.log_group.is_none() {
                return Err(missing_step("log group", "log-group"));
            }
            steps::daemons::ensure(&ctx, &cluster, &r.task_definitions).await?;
            Ok(())
        }
        Command::LogGroup => {
            let ctx = connect().await?;
            steps::log_group::ensure(&ctx).await?;
            Ok(())
        }
        Command::Deploy(args) => {
            let ctx = connect().await?;
            deploy::deploy(&ctx, args).await
        }
        Command::Undeploy(args) => {
            let ctx = connect().await?;
            deploy::undeploy(&ctx, args.app).await
        }
        Command::Verify(args) => {
            let targets = match &args.node.node {
                // A node given by hand (a tunnel, a port mapping): no AWS call at all.
                Some(node) => {
                    let recorded = StateStore::open(&state_path(global), &global.stack)?.snapshot();
                    let viz_deployed = recorded.is_some_and(|s| {
                        s.resources
                            .apps
                            .get("linkerd-viz")
                            .is_some_and(|a| !a.tasks.is_empty())
                    });
                    Targets {
                        node: node.clone(),
                        viz_host: viz_deployed.then(|| node.clone()),
                    }
                }
                None => {
                    let ctx = connect().await?;
                    let node = nodes::pick_node(&ctx).await?;
                    let report = status::status(&ctx).await?;
                    let viz_host = report
                        .addresses
                        .iter()
                        .find(|a| a.name == "linkerd-viz")
                        .and_then(|a| a.url.strip_prefix("http://"))
                        .and_then(|u| u.rsplit_once(':').map(|(h, _)| h.to_owned()));
                    Targets {
                        node: node.host().unwrap_or_default().to_owned(),
                        viz_host,
                    }
                }
            };
            out.progress(format!("checking node {}", targets.node));
            let results = verify::verify(args, &targets).await?;
            let failed = verify::failure(&results);
            out.checks(results);
            failed.map_or(Ok(()), Err)
        }
        Command::Status(args) if args.discover => {
            let ctx = connect().await?;
            let found = discover::discover(&ctx, &args.instance_role).await?;
            for (kind, name, id) in teardown::inventory(&found) {
                out.record(kind, name, id, Action::Found);
            }
            Ok(())
        }
        Command::Status(_) => {
            let ctx = connect().await?;
            let report = status::status(&ctx).await?;
            out.status(report);
            Ok(())
        }
        Command::List(args) => list::list(global, args, out).await,
        Command::Logs(args) => {
            logs::stream_prefix(&args.container)?;
            if args.follow && global.output == OutputFormat::Json {
                return Err(crate::stack::usage(
                    "--follow prints lines as they come and cannot make one JSON document; \
                     use --output text",
                ));
            }
            let ctx = connect().await?;
            logs::logs(&ctx, args).await
        }
        Command::Dashboard(args) => {
            let ctx = connect().await?;
            dashboard::dashboard(&ctx, args).await
        }
        Command::Tunnel(args) => {
            let ctx = connect().await?;
            dashboard::tunnel(&ctx, args).await
        }
        Command::Completions { .. } | Command::Man => Ok(()),
        Command::Load(args) => {
            let node = match &args.node.node {
                Some(node) => node.clone(),
                None => {
                    let ctx = connect().await?;
                    nodes::pick_node(&ctx)
                        .await?
                        .host()
                        .unwrap_or_default()
                        .to_owned()
                }
            };
            let summary = load::run(args, &node, out).await?;
            let failed = summary.requests == 0 || summary.successes == 0;
            let message = format!(
                "no request through {} succeeded{}",
                summary.target,
                summary
                    .last_error
                    .as_deref()
                    .map(|e| format!(" (last error: {e})"))
                    .unwrap_or_default()
            );
            out.load(summary);
            if failed {
                return Err(anyhow::anyhow!(message));
            }
            Ok(())
        }
    }
}
