//! `unlock LOCK_ID`: releases the S3 lock of a run that died, as `terraform force-unlock`
//! does: only the lock with that id, so a lock taken since by someone else stays.

use std::fmt;

use anyhow::Result;
use serde::Serialize;

use super::Env;
use crate::cli::UnlockArgs;
use crate::stack::{usage, StateLocation};
use crate::state::remote::force_unlock;

#[derive(Serialize)]
struct Released {
    lock_id: String,
    state: String,
    held_by: String,
    since: String,
}

impl fmt::Display for Released {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "released lock {} on {} (held by {} since {})",
            self.lock_id, self.state, self.held_by, self.since
        )
    }
}

pub async fn run(args: &UnlockArgs, env: &Env) -> Result<()> {
    let object = match env.state_location() {
        StateLocation::S3(object) => object,
        StateLocation::Local(path) => {
            return Err(usage(format!(
                "the state {} is a local file: its lock is the kernel's, released when the \
                 process holding it ends, so there is nothing to unlock; `unlock` releases the \
                 lock of a state in S3 (--state s3://BUCKET/KEY)",
                path.display()
            )))
        }
    };
    let remote = env.remote_state(&object).await?;
    let held = force_unlock(&remote, &args.lock_id).await?;
    env.out.section(
        "unlocked",
        &Released {
            lock_id: held.info.id,
            state: object.to_string(),
            held_by: held.info.holder.to_string(),
            since: held.info.since,
        },
    );
    Ok(())
}
