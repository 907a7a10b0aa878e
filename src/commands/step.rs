//! The single-step commands (`security-group`, `cluster`, ..., `daemons`): the resources one
//! command makes, after checking that what they need is recorded.

use anyhow::Result;
use futures::FutureExt;

use super::apply::{apply, made_by, Failures};
use super::Env;
use crate::context::Ctx;
use crate::resources::settings::Flags;

pub async fn run(command: &str, flags: Flags<'_>, env: &Env) -> Result<()> {
    let checks_key_pair = flags.instance.is_some();
    let (state, s) = env.lock_with_settings(flags).await?;
    let key_pair = s.instance.key_pair.as_deref().filter(|_| checks_key_pair);
    let cx = Ctx::new_checked(&env.global, state, env.out.clone(), key_pair).await?;
    let f = Failures::new(&env.out);
    let names = made_by(command);
    apply(
        &cx,
        &s,
        &names,
        futures::future::ready(Ok(())).boxed().shared(),
        &f,
    )
    .await?;
    f.into_result()
}
