//! Command-line definitions (clap derive). Parsing only: no AWS, no I/O.

mod flags;
mod help;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use crate::options::{
    AccessArgs, App, GlobalArgs, InstanceArgs, NetworkArgs, OutputFormat, RoleArgs, SizeArgs,
};
use crate::stack::{
    parse_duration, parse_expires_in, parse_s3_object, ExpiresIn, S3Object, Timeout,
};

pub use help::{command, parse};

#[derive(Debug, Parser)]
#[command(
    name = "l5d-ecs",
    version,
    about = "Stand up, exercise and tear down a linkerd service mesh on Amazon ECS",
    long_about = "Stand up, exercise and tear down the linkerd 1.x + consul demo of \
                  \"Running in ECS\" on Amazon ECS: one command up, one command down.",
    after_help = "Examples:\n  l5d-ecs up --allow-cidr 203.0.113.7/32\n  l5d-ecs down --yes"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand, strum::IntoStaticStr)]
#[strum(serialize_all = "kebab-case")]
pub enum Command {
    /// Create every resource of the stack, in dependency order, and wait for the nodes to join
    #[command(after_help = "Example:\n  l5d-ecs up --allow-cidr 203.0.113.7/32 --key-pair my-key")]
    Up(UpArgs),

    /// Check, before anything is created, that this account and region can run the stack
    #[command(
        after_help = "Example:\n  l5d-ecs doctor --instance-type m5.large --key-pair my-key"
    )]
    Doctor(UpArgs),

    /// Show what `up` would create, keep, repair or replace, without changing anything
    #[command(after_help = "Example:\n  l5d-ecs plan --allow-cidr 203.0.113.7/32 --max 5")]
    Plan(UpArgs),

    /// Remove everything this stack created
    #[command(after_help = "Example:\n  l5d-ecs down --yes")]
    Down(DownArgs),

    /// Step: the security group `<stack>-sg` (and the choice of VPC and subnet)
    #[command(after_help = "Example:\n  l5d-ecs security-group --allow-cidr 203.0.113.7/32")]
    SecurityGroup(SecurityGroupArgs),

    /// Step: the consul server instance `<stack>-consul-server`
    #[command(
        after_help = "Example:\n  l5d-ecs consul-server --instance-type m5.large --key-pair my-key"
    )]
    ConsulServer(ConsulServerArgs),

    /// Step: the ECS cluster `<stack>`
    #[command(after_help = "Example:\n  l5d-ecs cluster --stack team-a")]
    Cluster,

    /// Step: the inline policy `<stack>-policy` on the instance role (created if missing)
    #[command(after_help = "Example:\n  l5d-ecs role-policy --instance-role ecsInstanceRole")]
    RolePolicy(RoleArgs),

    /// Step: the five task definitions `<stack>-linkerd`, `<stack>-linkerd-viz`, ...
    #[command(after_help = "Example:\n  l5d-ecs register-tasks")]
    RegisterTasks,

    /// Step: the launch configuration `<stack>-lc` (or launch template `<stack>-lt`)
    #[command(after_help = "Example:\n  l5d-ecs launch-config --launch-template")]
    LaunchConfig(LaunchConfigArgs),

    /// Step: the auto scaling group `<stack>-asg`
    #[command(after_help = "Example:\n  l5d-ecs asg --min 1 --desired 2 --max 3")]
    Asg(AsgArgs),

    /// Step: the DAEMON services that run linkerd, consul-agent and consul-registrator on every node
    #[command(after_help = "Example:\n  l5d-ecs daemons")]
    Daemons,

    /// Step: the CloudWatch Logs group `/l5d-ecs/<stack>` that every container logs to
    #[command(after_help = "Example:\n  l5d-ecs log-group")]
    LogGroup,

    /// Run exactly --count tasks of a demo app in the cluster
    #[command(
        after_help = "Examples:\n  l5d-ecs deploy hello-world --count 2\n  l5d-ecs deploy linkerd-viz"
    )]
    Deploy(DeployArgs),

    /// Stop the tasks of a demo app that `deploy` started
    #[command(after_help = "Example:\n  l5d-ecs undeploy hello-world")]
    Undeploy(UndeployArgs),

    /// Check that linkerd routes the demo app, honours per-request dtabs, and that consul works
    #[command(
        after_help = "Examples:\n  l5d-ecs verify\n  l5d-ecs verify --node localhost --timeout 2m"
    )]
    Verify(VerifyArgs),

    /// Every resource of the stack with its live state, and the addresses of the UIs
    #[command(
        after_help = "Examples:\n  l5d-ecs status --output json\n  l5d-ecs status --discover"
    )]
    Status(StatusArgs),

    /// The stacks known from state files (and, with --discover, found by tag in the region)
    #[command(after_help = "Example:\n  l5d-ecs list --discover")]
    List(ListArgs),

    /// Print the logs of one container (linkerd, consul-agent, hello, world, ...)
    #[command(
        after_help = "Examples:\n  l5d-ecs logs linkerd --since 30m\n  l5d-ecs logs hello --follow"
    )]
    Logs(LogsArgs),

    /// Print (and open) the address of the linkerd admin, consul UI or linkerd-viz dashboard
    #[command(after_help = "Example:\n  l5d-ecs dashboard viz --print")]
    Dashboard(DashboardArgs),

    /// Reach a node through ssh port forwards instead of open ports
    #[command(after_help = "Example:\n  l5d-ecs tunnel --key ~/.ssh/my-key.pem")]
    Tunnel(TunnelArgs),

    /// Work with the state: print it, or move it between a local file and S3
    #[command(
        after_help = "Examples:\n  l5d-ecs state show --output json\n  l5d-ecs state push s3://my-bucket/l5d-demo.json\n  l5d-ecs state pull s3://my-bucket/l5d-demo.json"
    )]
    State(StateArgs),

    /// Release the S3 lock of a run that died (the id is in the refusal of the next run)
    #[command(
        after_help = "Example:\n  l5d-ecs unlock 0b6c4f1e-2f0a-4d1e-9a51-7c3f4e2d1a90 --state s3://my-bucket/l5d-demo.json"
    )]
    Unlock(UnlockArgs),

    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    #[command(
        after_help = "Example:\n  l5d-ecs completions bash > /etc/bash_completion.d/l5d-ecs"
    )]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },

    /// Print the IAM policy (JSON) a user of l5d-ecs needs, for every command or those given
    #[command(
        after_help = "Examples:\n  l5d-ecs iam-policy > l5d-ecs-policy.json\n  l5d-ecs iam-policy --for up --for down --region us-east-1"
    )]
    IamPolicy(IamPolicyArgs),

    /// Print a man page (roff), or write one per command with --dir
    #[command(
        after_help = "Examples:\n  l5d-ecs man up | man -l -\n  l5d-ecs man --dir ~/.local/share/man/man1"
    )]
    Man(ManArgs),

    /// Send requests through a node's linkerd proxy and report throughput and latency
    #[command(after_help = "Example:\n  l5d-ecs load --duration 30s --concurrency 4 --rate 50")]
    Load(LoadArgs),
}

#[derive(Debug, Args, Clone)]
pub struct DeployArgs {
    /// The demo app
    #[arg(value_enum)]
    pub app: App,
    /// How many tasks should run [default: 2 for hello-world, 1 for linkerd-viz]
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub count: Option<u32>,
    /// Do not wait for the tasks to be RUNNING
    #[arg(long)]
    pub no_wait: bool,
    /// How long to wait for the tasks to be RUNNING (e.g. 90s, 5m)
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub wait_timeout: Timeout,
}

#[derive(Debug, Args, Clone)]
pub struct UndeployArgs {
    /// The demo app
    #[arg(value_enum)]
    pub app: App,
}

/// Where a node's ports are reached; flags so that a tunnel or port mapping works too.
#[derive(Debug, Args, Clone)]
pub struct NodePorts {
    /// Host of the node to check [default: a running instance tagged `<stack>-ecs`]
    #[arg(long, value_name = "HOST")]
    pub node: Option<String>,
    /// linkerd's HTTP proxy port
    #[arg(long, default_value_t = 4140)]
    pub proxy_port: u16,
}

#[derive(Debug, Args, Clone)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub node: NodePorts,
    /// linkerd's admin port
    #[arg(long, default_value_t = 9990)]
    pub admin_port: u16,
    /// consul's HTTP API port
    #[arg(long, default_value_t = 8500)]
    pub consul_port: u16,
    /// linkerd-viz's dashboard port
    #[arg(long, default_value_t = 3000)]
    pub viz_port: u16,
    /// Keep retrying failing checks this long (services take time to register)
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub timeout: Timeout,
}

#[derive(Debug, Args, Clone)]
pub struct LogsArgs {
    /// Container name: linkerd, linkerd-viz, consul-agent, consul-registrator, hello, world, world-v2
    pub container: String,
    /// How far back to start (e.g. 10m, 1h)
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub since: Timeout,
    /// Keep printing new lines until interrupted
    #[arg(long, short)]
    pub follow: bool,
    /// Only lines from tasks on this EC2 instance (i-...)
    #[arg(long, value_name = "INSTANCE_ID")]
    pub node: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Dashboard {
    Linkerd,
    Consul,
    Viz,
}

#[derive(Debug, Args, Clone)]
pub struct DashboardArgs {
    #[arg(value_enum)]
    pub which: Dashboard,
    /// Only print the address; do not open a browser
    #[arg(long)]
    pub print: bool,
}

#[derive(Debug, Args, Clone)]
pub struct TunnelArgs {
    /// ssh private key
    #[arg(long, value_name = "PATH")]
    pub key: Option<PathBuf>,
    /// Only print the ssh command; do not run it
    #[arg(long)]
    pub print: bool,
}

#[derive(Debug, Args, Clone)]
pub struct LoadArgs {
    #[command(flatten)]
    pub node: NodePorts,
    /// How long to send requests (e.g. 30s, 5m)
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub duration: Timeout,
    /// Requests in flight at once
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub concurrency: u32,
    /// Requests per second in all [default: as fast as the node answers]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100000))]
    pub rate: Option<u32>,
}

#[derive(Debug, Args, Clone)]
pub struct SecurityGroupArgs {
    #[command(flatten)]
    pub network: NetworkArgs,
    #[command(flatten)]
    pub access: AccessArgs,
}

#[derive(Debug, Args, Clone)]
pub struct ConsulServerArgs {
    #[command(flatten)]
    pub instance: InstanceArgs,
}

#[derive(Debug, Args, Clone)]
pub struct LaunchConfigArgs {
    #[command(flatten)]
    pub instance: InstanceArgs,
    #[command(flatten)]
    pub role: RoleArgs,
    /// Create an EC2 launch template `<stack>-lt` instead of a launch configuration
    #[arg(long)]
    pub launch_template: bool,
}

#[derive(Debug, Args, Clone)]
pub struct AsgArgs {
    #[command(flatten)]
    pub size: SizeArgs,
}

#[derive(Debug, Args, Clone)]
pub struct UpArgs {
    #[command(flatten)]
    pub network: NetworkArgs,
    #[command(flatten)]
    pub access: AccessArgs,
    #[command(flatten)]
    pub instance: InstanceArgs,
    #[command(flatten)]
    pub role: RoleArgs,
    #[command(flatten)]
    pub size: SizeArgs,
    /// Create an EC2 launch template `<stack>-lt` instead of a launch configuration
    #[arg(long)]
    pub launch_template: bool,
    /// Do not wait for the nodes to join the cluster
    #[arg(long)]
    pub no_wait: bool,
    /// Only show what would be done (as `plan`); change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// How long to wait for `--desired` container instances to be ACTIVE (e.g. 90s, 10m, 1h)
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub wait_timeout: Timeout,
    /// Stop paying after this long (e.g. 8h): AWS itself then takes every instance of the
    /// stack down, with no l5d-ecs running; `never` removes the deadline [default: what the
    /// last `up` set]
    #[arg(long, value_name = "DURATION|never", value_parser = parse_expires_in)]
    pub expires_in: Option<ExpiresIn>,
}

#[derive(Debug, Args, Clone)]
pub struct StatusArgs {
    /// List what AWS has of the stack (by tag and derived names), not what the state file says
    #[arg(long)]
    pub discover: bool,
    /// With --discover: the instance role to look for the stack's policy on
    #[arg(long, default_value = "ecsInstanceRole", value_name = "NAME")]
    pub instance_role: String,
}

#[derive(Debug, Args, Clone)]
pub struct ListArgs {
    /// Also list the stacks found by their l5d-ecs:stack tag in the region
    #[arg(long)]
    pub discover: bool,
    /// Search every region the account has enabled for stacks by their tag, with their
    /// running instances, vCPUs and instance-hours
    #[arg(long, conflicts_with = "discover")]
    pub all_regions: bool,
}

#[derive(Debug, Args, Clone)]
pub struct StateArgs {
    #[command(subcommand)]
    pub action: StateAction,
}

#[derive(Debug, Subcommand, Clone)]
pub enum StateAction {
    /// Print the state (its format version, lineage, serial, account, region and every
    /// recorded id), without locking it; a local file without calling AWS
    Show,
    /// Move the local state (--state PATH, or the default file) to S3, then delete the file;
    /// refused if the object holds another state (another lineage) or a newer copy
    Push {
        /// Where to keep it from now on
        #[arg(value_name = "S3_URL", value_parser = parse_s3_object)]
        to: S3Object,
    },
    /// Move a state from S3 to the local file (--state PATH, or the default), then delete the
    /// object; refused if the file holds another state (another lineage) or a newer copy
    Pull {
        /// Where it is kept now
        #[arg(value_name = "S3_URL", value_parser = parse_s3_object)]
        from: S3Object,
    },
}

#[derive(Debug, Args, Clone)]
pub struct UnlockArgs {
    /// The lock's id, as the refusal of a locked run names it
    #[arg(value_name = "LOCK_ID")]
    pub lock_id: String,
}

#[derive(Debug, Args, Clone)]
pub struct IamPolicyArgs {
    /// Only what this command needs (repeatable; e.g. up, down, deploy, status)
    #[arg(long = "for", value_name = "COMMAND")]
    pub for_commands: Vec<String>,
    /// Every statement on Resource "*" instead of the stack's names
    #[arg(long)]
    pub any_resource: bool,
    /// The instance role the stack's nodes use
    #[arg(long, default_value = "ecsInstanceRole", value_name = "NAME")]
    pub instance_role: String,
}

#[derive(Debug, Args, Clone)]
pub struct ManArgs {
    /// The command whose page to print (without one: the page of l5d-ecs itself)
    #[arg(value_name = "COMMAND", conflicts_with = "dir")]
    pub command: Option<String>,
    /// Write every page into this directory instead: l5d-ecs.1 and l5d-ecs-<command>.1
    #[arg(long, value_name = "DIR")]
    pub dir: Option<std::path::PathBuf>,
}

#[derive(Debug, Args, Clone)]
pub struct DownArgs {
    /// Delete without asking
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Also find the stack's resources by tag and derived names (for a lost or stale state file)
    #[arg(long)]
    pub discover: bool,
    /// With --discover: the instance role to look for the stack's policy on
    #[arg(long, default_value = "ecsInstanceRole", value_name = "NAME")]
    pub instance_role: String,
    /// How long to keep retrying deletions AWS refuses for now (e.g. 90s, 10m, 1h)
    #[arg(long, default_value = "15m", value_parser = parse_duration)]
    pub timeout: Timeout,
}

impl Command {
    /// The command's name, as typed (`up --dry-run` is `plan`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Up(args) if args.dry_run => "plan",
            other => other.into(),
        }
    }
}
