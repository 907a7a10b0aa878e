//! `up`: every resource of the stack, each made as soon as what it needs is in place, then a
//! wait for the nodes to join and the mesh's daemons to run on each.

use std::time::Instant;

use anyhow::Result;
use futures::FutureExt;

use super::apply::{apply, Failures};
use super::Env;
use crate::cli::UpArgs;
use crate::context::Ctx;
use crate::resources::{asg, daemons, Name, ORDER};

pub async fn run(args: &UpArgs, env: &Env) -> Result<()> {
    let (state, s) = env.lock_with_settings(args.flags()).await?;
    let key_pair = s.instance.key_pair.as_deref();
    let cx = Ctx::new_unbound(&env.global, state, env.out.clone(), key_pair).await?;
    let f = Failures::new(&env.out);
    // Nothing is written to the state file before the account and region are checked; the
    // check runs beside the first look-ups.
    let gate = f
        .step("account", async {
            cx.bind_account().await?;
            cx.state
                .update(|st| st.instance = Some(s.instance.clone()))
                .await
        })
        .boxed()
        .shared();
    let names: Vec<Name> = ORDER
        .iter()
        .filter(|e| e.resource.made_by_up())
        .map(|e| e.name())
        .collect();
    let results = apply(&cx, &s, &names, gate, &f).await?;
    let made = |n: Name| results.get(&n).is_some_and(|r| r.is_ok());
    if made(Name::Asg) && made(Name::Daemons) && !args.no_wait {
        // Nodes that joined are not yet a mesh: each needs linkerd, the consul agent and
        // registrator running. One --wait-timeout bounds both waits.
        let deadline = Instant::now() + args.wait_timeout.0;
        let _ = f
            .step("wait", async {
                asg::wait_for_nodes(&cx, s.sizes.desired, args.wait_timeout.0).await?;
                daemons::wait_running_everywhere(
                    &cx,
                    deadline.saturating_duration_since(Instant::now()),
                )
                .await
            })
            .await;
    }
    f.into_result()
}
