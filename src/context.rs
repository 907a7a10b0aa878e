//! What every command that talks to AWS shares: the stack, the clients, the state and the
//! output.

use std::sync::Arc;

use anyhow::Result;

use crate::aws::Aws;
use crate::options::GlobalArgs;
use crate::output::Output;
use crate::stack::StackName;
use crate::state::StateStore;

pub struct Ctx {
    pub stack: StackName,
    pub aws: Aws,
    pub state: StateStore,
    pub out: Arc<Output>,
    /// The stack's security groups as the run first saw them: the group and its rules both
    /// start from this one look-up (one call fewer in the first round of a cold `up`).
    pub first_security_groups: tokio::sync::OnceCell<Vec<aws_sdk_ec2::types::SecurityGroup>>,
    /// The cluster's container instances and running tasks, for `status`, whose daemon lines
    /// and node table both need them ([`crate::nodes::cluster_look`]).
    pub cluster_look: tokio::sync::OnceCell<crate::nodes::ClusterLook>,
}

impl Ctx {
    /// With the state file already locked (so a corrupt one is refused before any AWS call):
    /// builds the clients, and checks that the state file belongs to the current account and
    /// region.
    pub async fn new(global: &GlobalArgs, state: StateStore, out: Arc<Output>) -> Result<Self> {
        Self::new_checked(global, state, out, None).await
    }

    /// As `new`, but first makes sure the key pair exists: one read call, before any other.
    pub async fn new_checked(
        global: &GlobalArgs,
        state: StateStore,
        out: Arc<Output>,
        key_pair: Option<&str>,
    ) -> Result<Self> {
        let ctx = Self::new_unbound(global, state, out, key_pair).await?;
        ctx.bind_account().await?;
        Ok(ctx)
    }

    /// The clients built, but the account not checked yet: `up` does that beside its first
    /// look-ups, and writes nothing before.
    pub async fn new_unbound(
        global: &GlobalArgs,
        state: StateStore,
        out: Arc<Output>,
        key_pair: Option<&str>,
    ) -> Result<Self> {
        let aws = Aws::connect(global, Some(progress_notice(&out))).await?;
        out.set_region(&aws.region);
        if let Some(key) = key_pair {
            check_key_pair(&aws, key).await?;
        }
        Ok(Self {
            stack: global.stack.clone(),
            aws,
            state,
            out,
            first_security_groups: tokio::sync::OnceCell::new(),
            cluster_look: tokio::sync::OnceCell::new(),
        })
    }

    /// Checks that the state file belongs to the current account and region (or starts one).
    pub async fn bind_account(&self) -> Result<()> {
        let account = self.aws.account_id().await?;
        self.state.bind(&self.stack, &self.aws.region, &account)
    }
}

/// The progress line, for the AWS layer to say that calls cannot connect.
pub fn progress_notice(out: &Arc<Output>) -> crate::aws::Notice {
    let out = out.clone();
    Arc::new(move |message: String| out.progress(message))
}

async fn check_key_pair(aws: &Aws, key: &str) -> Result<()> {
    let result = aws.ec2.describe_key_pairs().key_names(key).send().await;
    match result {
        Ok(out) if !out.key_pairs().is_empty() => Ok(()),
        Ok(_) => Err(crate::stack::usage(format!(
            "key pair {key:?} does not exist in {}; create or import it, or leave --key-pair out",
            aws.region
        ))),
        Err(e) if crate::aws::error_code(&e) == Some("InvalidKeyPair.NotFound") => {
            Err(crate::stack::usage(format!(
                "key pair {key:?} does not exist in {}; create or import it, or leave --key-pair out",
                aws.region
            )))
        }
        Err(e) => Err(anyhow::anyhow!(
            "looking up key pair {key}: {}",
            crate::aws::describe_error(&e)
        )),
    }
}
