//! What every command that talks to AWS shares: the stack, the clients, the state and the
//! output.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;

use crate::aws::Aws;
use crate::cli::GlobalArgs;
use crate::output::Output;
use crate::stack::StackName;
use crate::state::StateStore;

pub struct Ctx {
    pub stack: StackName,
    pub aws: Aws,
    pub state: StateStore,
    pub out: Arc<Output>,
}

pub fn state_path(global: &GlobalArgs) -> PathBuf {
    global
        .state
        .clone()
        .unwrap_or_else(|| global.stack.default_state_path())
}

impl Ctx {
    /// Reads and locks the state file (refusing a corrupt one before any AWS call), builds the
    /// clients, and checks that the state file belongs to the current account and region.
    pub async fn new(global: &GlobalArgs, out: Arc<Output>) -> Result<Self> {
        let state = StateStore::open(&state_path(global), &global.stack)?.lock()?;
        let aws = Aws::connect(global).await?;
        out.set_region(&aws.region);
        let account = aws.account_id().await?;
        state.bind(&global.stack, &aws.region, &account)?;
        Ok(Self {
            stack: global.stack.clone(),
            aws,
            state,
            out,
        })
    }
}
