//! The flags shared by several commands and by the resources they configure: which stack,
//! where it lives, what its instances are. Commands compose them; resources read them.

use clap::{Args, ValueEnum};

use crate::stack::{
    parse_cidr, parse_instance_type, parse_state_location, Cidr, StackName, StateLocation,
};

/// The heading of the options every command takes: a command's `--help` lists its own
/// options first, under "Options", and these after them.
pub const GLOBAL_OPTIONS: &str = "Global options";

/// Options every command takes, before or after the subcommand.
#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// Name of the stack; every AWS name is derived from it
    /// (lowercase letters, digits and dashes, starts with a letter, at most 32 characters).
    #[arg(long, global = true, help_heading = GLOBAL_OPTIONS, env = "L5D_ECS_STACK", default_value = "l5d-demo",
          value_parser = StackName::parse)]
    pub stack: StackName,

    /// State file, or s3://BUCKET/KEY to keep it (and its lock) in S3
    /// [default: .l5d-ecs/<stack>.json]
    #[arg(long, global = true, help_heading = GLOBAL_OPTIONS, env = "L5D_ECS_STATE", value_name = "PATH|S3_URL",
          value_parser = parse_state_location)]
    pub state: Option<StateLocation>,

    /// AWS region (otherwise AWS_REGION or the profile's region)
    #[arg(long, global = true, help_heading = GLOBAL_OPTIONS, value_name = "REGION")]
    pub region: Option<String>,

    /// AWS profile from the shared config files
    #[arg(long, global = true, help_heading = GLOBAL_OPTIONS, value_name = "NAME")]
    pub profile: Option<String>,

    /// Send every AWS call to this endpoint (AWS_ENDPOINT_URL works too)
    #[arg(long, global = true, help_heading = GLOBAL_OPTIONS, value_name = "URL")]
    pub endpoint_url: Option<String>,

    /// Output format: `text` for people, `json` for one JSON document on stdout
    #[arg(long, global = true, help_heading = GLOBAL_OPTIONS, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,

    /// Show each AWS call (repeat for more detail)
    #[arg(short, long, global = true, help_heading = GLOBAL_OPTIONS, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Show only errors
    #[arg(short, long, global = true, help_heading = GLOBAL_OPTIONS)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum App {
    HelloWorld,
    LinkerdViz,
}

impl App {
    /// The app's name in templates and families.
    pub fn name(self) -> &'static str {
        match self {
            Self::HelloWorld => "hello-world",
            Self::LinkerdViz => "linkerd-viz",
        }
    }
    pub fn default_count(self) -> u32 {
        match self {
            Self::HelloWorld => 2,
            Self::LinkerdViz => 1,
        }
    }
}

/// Where the stack lives.
#[derive(Debug, Args, Clone, Default)]
pub struct NetworkArgs {
    /// Availability zone of the default VPC's default subnet [default: the region's first AZ
    /// that has one]
    #[arg(long, value_name = "AZ", conflicts_with = "subnet_ids")]
    pub availability_zone: Option<String>,

    /// Use this subnet (repeatable) and its VPC instead of the default VPC
    #[arg(long = "subnet-id", value_name = "ID")]
    pub subnet_ids: Vec<String>,
}

#[derive(Debug, Args, Clone, Default)]
pub struct AccessArgs {
    /// Open the demo's ports (22, 4140, 9990, 3000, 8500) to this CIDR (repeatable)
    /// [default: your public IP as a /32]
    #[arg(long = "allow-cidr", value_name = "CIDR", value_parser = parse_cidr)]
    pub allow_cidrs: Vec<Cidr>,
}

#[derive(Debug, Args, Clone, Default)]
pub struct InstanceArgs {
    /// EC2 instance type of the consul server and the ECS nodes [default: as the last `up`
    /// asked, else m4.xlarge]
    #[arg(long, value_parser = parse_instance_type)]
    pub instance_type: Option<String>,

    /// EC2 key pair for ssh access [default: as the last `up` asked, else none]
    #[arg(long, value_name = "NAME")]
    pub key_pair: Option<String>,

    /// AMI id [default: as the last `up` asked, else the ECS-optimized Amazon Linux 2023 AMI,
    /// from SSM]
    #[arg(long, value_name = "AMI_ID")]
    pub ami: Option<String>,
}

#[derive(Debug, Args, Clone)]
pub struct RoleArgs {
    /// Instance role of the ECS nodes (created with its instance profile when missing)
    #[arg(long, default_value = RoleArgs::DEFAULT_ROLE, value_name = "NAME")]
    pub instance_role: String,
}

#[derive(Debug, Args, Clone, Default)]
pub struct SizeArgs {
    /// Minimum number of ECS nodes [default: as the last `up` asked, else 1]
    #[arg(long)]
    pub min: Option<u32>,

    /// Maximum number of ECS nodes [default: as the last `up` asked, else 3]
    #[arg(long)]
    pub max: Option<u32>,

    /// Desired number of ECS nodes [default: as the last `up` asked, else 2]
    #[arg(long)]
    pub desired: Option<u32>,
}

impl RoleArgs {
    /// The guide's role name, which ECS's own console also creates.
    pub const DEFAULT_ROLE: &'static str = "ecsInstanceRole";
}
