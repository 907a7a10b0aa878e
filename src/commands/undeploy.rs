//! `undeploy`: stop the tasks of a demo app that `deploy` started, and forget them.

use anyhow::Result;

use super::Env;
use crate::cli::UndeployArgs;

pub async fn run(args: &UndeployArgs, env: &Env) -> Result<()> {
    let cx = env.connect().await?;
    crate::resources::apps::stop(&cx, args.app.name()).await
}
