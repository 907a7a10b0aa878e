//! State kept in S3 (`--state s3://BUCKET/KEY`): read with its ETag, and written only if the
//! object is still what this run read (`If-Match`, or `If-None-Match: *` for the first write),
//! so a lost update cannot happen; the previous copy stays readable (the bucket's versions
//! where S3 gives the object a version id, else `KEY.backup`). The lock is an object beside it, `KEY.lock`, made with
//! `If-None-Match: *` and naming its holder; a dead holder's lock is released by `unlock`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

use anyhow::{anyhow, bail, Context, Result};
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_types::DateTime;
use serde::{Deserialize, Serialize};

use crate::aws::{describe_error, error_code, Aws};
use crate::stack::{usage, S3Object};

/// The object metadata naming who wrote a state object (`x-amz-meta-l5d-ecs-writer`).
const WRITER_METADATA: &str = "l5d-ecs-writer";

/// Who runs this l5d-ecs: the caller's ARN (from STS), host, pid and command.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Holder {
    pub who: String,
    pub host: String,
    pub pid: u32,
    pub command: String,
}

impl Holder {
    pub async fn of_this_run(aws: &Aws, command: &str) -> Result<Self> {
        let identity = aws.sts.get_caller_identity().send().await.map_err(|e| {
            anyhow!(
                "looking up who is calling (sts:GetCallerIdentity), to name the holder of \
                     the state's lock: {}",
                describe_error(&e)
            )
        })?;
        Ok(Self {
            who: identity.arn().unwrap_or("unknown caller").to_owned(),
            host: super::lock::hostname(),
            pid: std::process::id(),
            command: command.to_owned(),
        })
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} on host {}, pid {}, running `{}`",
            self.who, self.host, self.pid, self.command
        )
    }
}

/// One state object in S3, and the ETag of the copy this run last read or wrote.
pub struct RemoteState {
    s3: aws_sdk_s3::Client,
    object: S3Object,
    /// S3 keeps the previous copies itself: it gave the object a version id.
    versioned: AtomicBool,
    holder: Holder,
    /// `None`: there was no object when this run looked.
    etag: Mutex<Option<String>>,
    /// What the object held at that ETag, for `.backup` where the bucket keeps no versions.
    previous: Mutex<Option<Vec<u8>>>,
}

impl RemoteState {
    /// Checks that the bucket exists and may be listed (s3:ListBucket, which GetObject also
    /// needs to tell a missing state from a refusal), following it to its own region. One
    /// ListObjectsV2 of the state's own key: an action every IAM and every emulator knows.
    pub async fn connect(aws: &Aws, object: S3Object, holder: Holder) -> Result<Self> {
        let look = |s3: aws_sdk_s3::Client| {
            let (bucket, key) = (object.bucket.clone(), object.key.clone());
            async move {
                s3.list_objects_v2()
                    .bucket(bucket)
                    .prefix(key)
                    .max_keys(1)
                    .send()
                    .await
            }
        };
        let mut s3 = aws.s3.clone();
        let mut answer = look(s3.clone()).await;
        if let Some(region) = answer.as_ref().err().and_then(bucket_region) {
            s3 = aws.s3_in(&region);
            answer = look(s3.clone()).await;
        }
        if let Err(e) = answer {
            let bucket = &object.bucket;
            return Err(match error_code(&e) {
                Some("NoSuchBucket") => usage(format!(
                    "the state's bucket {bucket:?} does not exist (state {object}): create it \
                     (`aws s3 mb s3://{bucket}`; with versioning on, S3 keeps every copy), or \
                     pass another --state"
                )),
                Some("AccessDenied" | "AllAccessDisabled") => usage(format!(
                    "no access to the state's bucket {bucket:?} (state {object}): the \
                     credentials need s3:ListBucket on it and s3:GetObject, s3:PutObject, \
                     s3:DeleteObject on {bucket}/{}*; `l5d-ecs iam-policy --state {object}` \
                     prints them. AWS said: {}",
                    object.key,
                    describe_error(&e)
                )),
                _ => anyhow!(
                    "checking the state's bucket {bucket:?} (s3:ListBucket): {}",
                    describe_error(&e)
                ),
            });
        }
        Ok(Self {
            s3,
            object,
            versioned: AtomicBool::new(false),
            holder,
            etag: Mutex::new(None),
            previous: Mutex::new(None),
        })
    }

    pub fn object(&self) -> &S3Object {
        &self.object
    }

    /// The state object's bytes, `None` where there is none; remembers its ETag for the next
    /// write.
    pub async fn read(&self) -> Result<Option<Vec<u8>>> {
        let found = get(&self.s3, &self.object)
            .await
            .with_context(|| format!("reading the state {}", self.object))?;
        let bytes = found.map(|f| {
            self.note_version(f.version.as_deref());
            *lock(&self.etag) = Some(f.etag);
            f.body
        });
        if bytes.is_none() {
            *lock(&self.etag) = None;
        }
        lock(&self.previous).clone_from(&bytes);
        Ok(bytes)
    }

    /// Whether this run has seen or written the object.
    pub fn exists(&self) -> bool {
        lock(&self.etag).is_some()
    }

    /// Writes `body` if the object is still the one this run read or last wrote; otherwise
    /// nothing is written and the error names who wrote last.
    pub async fn write(&self, body: Vec<u8>) -> Result<()> {
        let expected = lock(&self.etag).clone();
        if !self.versioned.load(Ordering::Relaxed) {
            let previous = lock(&self.previous).clone();
            if let Some(previous) = previous {
                let backup = self.object.beside(".backup");
                self.s3
                    .put_object()
                    .bucket(&backup.bucket)
                    .key(&backup.key)
                    .content_type("application/json")
                    .body(ByteStream::from(previous))
                    .send()
                    .await
                    .map_err(|e| {
                        anyhow!(
                            "keeping the previous state as {backup} (s3:PutObject): {}",
                            describe_error(&e)
                        )
                    })?;
            }
        }
        let etag = self.put_conditionally(&body, expected.as_deref()).await?;
        *lock(&self.etag) = Some(etag);
        *lock(&self.previous) = Some(body);
        Ok(())
    }

    async fn put_conditionally(&self, body: &[u8], expected: Option<&str>) -> Result<String> {
        let put = || {
            let request = self
                .s3
                .put_object()
                .bucket(&self.object.bucket)
                .key(&self.object.key)
                .content_type("application/json")
                .metadata(WRITER_METADATA, self.holder.to_string())
                .body(ByteStream::from(body.to_vec()));
            match expected {
                Some(etag) => request.if_match(etag),
                None => request.if_none_match("*"),
            }
        };
        // A 409 is another request on the same key at the same moment: S3 asks for a fresh
        // look, and the write goes again only if the object is still the one expected.
        for _ in 0..3 {
            match put().send().await {
                Ok(out) => {
                    self.note_version(out.version_id());
                    return out.e_tag().map(str::to_owned).context("S3 gave no ETag");
                }
                Err(e) => match error_code(&e) {
                    Some("ConditionalRequestConflict") => {
                        let now = get(&self.s3, &self.object).await?;
                        if now.as_ref().map(|f| f.etag.as_str()) != expected {
                            return Err(self.conflict(now));
                        }
                    }
                    Some("PreconditionFailed" | "NoSuchKey") => {
                        let now = get(&self.s3, &self.object).await?;
                        // The SDK retried a write whose first try landed: it is ours.
                        if let Some(mine) = now.as_ref().filter(|f| self.wrote(f, body)) {
                            return Ok(mine.etag.clone());
                        }
                        return Err(self.conflict(now));
                    }
                    _ => {
                        return Err(anyhow!(
                            "writing the state {} (s3:PutObject): {}",
                            self.object,
                            describe_error(&e)
                        ))
                    }
                },
            }
        }
        bail!(
            "writing the state {}: S3 answered 409 ConditionalRequestConflict three times; \
             run the command again",
            self.object
        )
    }

    /// A bucket with versioning on gives every object a version id (`null` when it is
    /// suspended, and then an overwrite replaces the old copy).
    fn note_version(&self, version: Option<&str>) {
        let kept = version.is_some_and(|v| !v.is_empty() && v != "null");
        self.versioned.store(kept, Ordering::Relaxed);
    }

    fn wrote(&self, found: &Found, body: &[u8]) -> bool {
        found.body == body && found.writer.as_deref() == Some(self.holder.to_string().as_str())
    }

    fn conflict(&self, now: Option<Found>) -> anyhow::Error {
        let what = match now {
            Some(f) => format!(
                "was written by {} at {}",
                f.writer
                    .as_deref()
                    .unwrap_or("a writer that did not name itself"),
                f.modified
                    .map_or("an unknown time".to_owned(), crate::clock::rfc3339)
            ),
            None => "was deleted".to_owned(),
        };
        anyhow!(
            "the state {} {what} since this run read it; nothing was overwritten. Run the \
             command again to work from what is there now (`l5d-ecs state show` prints it)",
            self.object
        )
    }

    /// Deletes the state object, if it is still the one this run wrote, and its backup.
    pub async fn remove(&self) -> Result<()> {
        {
            let expected = lock(&self.etag).clone();
            if let Some(etag) = expected {
                let deleted = self
                    .s3
                    .delete_object()
                    .bucket(&self.object.bucket)
                    .key(&self.object.key)
                    .if_match(etag)
                    .send()
                    .await;
                match deleted {
                    Ok(_) => {}
                    Err(e) if error_code(&e) == Some("NoSuchKey") => {}
                    Err(e) if error_code(&e) == Some("PreconditionFailed") => {
                        let now = get(&self.s3, &self.object).await?;
                        return Err(self.conflict(now));
                    }
                    Err(e) => bail!(
                        "removing the state {} (s3:DeleteObject): {}",
                        self.object,
                        describe_error(&e)
                    ),
                }
            }
            let backup = self.object.beside(".backup");
            delete(&self.s3, &backup).await?;
            *lock(&self.etag) = None;
            *lock(&self.previous) = None;
            Ok(())
        }
    }

    /// Takes the lock object beside the state, or says who holds it.
    pub async fn lock(&self) -> Result<RemoteLock> {
        RemoteLock::acquire(self.s3.clone(), &self.object, &self.holder).await
    }
}

/// What a lock object says.
#[derive(Debug, Serialize, Deserialize)]
pub struct LockInfo {
    pub id: String,
    #[serde(flatten)]
    pub holder: Holder,
    pub since: String,
}

/// `KEY.lock`, held by this run until it is dropped.
pub struct RemoteLock {
    s3: aws_sdk_s3::Client,
    object: S3Object,
    etag: String,
}

impl RemoteLock {
    async fn acquire(s3: aws_sdk_s3::Client, state: &S3Object, holder: &Holder) -> Result<Self> {
        let object = state.beside(".lock");
        let info = LockInfo {
            id: crate::ids::random_uuid()
                .context("cannot make a lock id")?
                .hyphenated()
                .to_string(),
            holder: holder.clone(),
            since: crate::clock::now_rfc3339(),
        };
        let body = serde_json::to_vec_pretty(&info).context("serialising the lock")?;
        // 409: another run made it at the same moment; the second look says who.
        for _ in 0..3 {
            let made = s3
                .put_object()
                .bucket(&object.bucket)
                .key(&object.key)
                .content_type("application/json")
                .if_none_match("*")
                .body(ByteStream::from(body.clone()))
                .send()
                .await;
            match made {
                Ok(out) => {
                    return Ok(Self {
                        etag: out.e_tag().unwrap_or_default().to_owned(),
                        s3,
                        object,
                    })
                }
                Err(e)
                    if matches!(
                        error_code(&e),
                        Some("PreconditionFailed" | "ConditionalRequestConflict")
                    ) =>
                {
                    if let Some(held) = read_lock(&s3, &object).await? {
                        // The SDK retried a create whose first try landed: the lock is ours.
                        if held.info.id == info.id {
                            return Ok(Self {
                                etag: held.etag,
                                s3,
                                object,
                            });
                        }
                        return Err(held_by(state, &held));
                    }
                }
                Err(e) => bail!(
                    "taking the lock {object} (s3:PutObject with If-None-Match): {}",
                    describe_error(&e)
                ),
            }
        }
        bail!("could not take the lock {object}: it kept changing; run the command again")
    }
}

impl Drop for RemoteLock {
    /// Released on a thread of its own with a runtime of its own: a drop cannot await, and
    /// blocking the runtime it is dropped on could stall the very call it waits for.
    fn drop(&mut self) {
        let (s3, object, etag) = (self.s3.clone(), self.object.clone(), self.etag.clone());
        let release = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start a runtime: {e}"))?;
            runtime.block_on(async {
                s3.delete_object()
                    .bucket(&object.bucket)
                    .key(&object.key)
                    .if_match(etag)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| describe_error(&e))
            })
        });
        let refusal = match release.join() {
            Ok(Ok(())) => return,
            Ok(Err(why)) => why,
            Err(_) => "the release panicked".to_owned(),
        };
        lock(&UNRELEASED).push(format!(
            "could not release the lock {} (s3:DeleteObject): {refusal}; until it goes every run refuses: \
             `l5d-ecs unlock` (with the id that refusal names) releases it",
            self.object
        ));
    }
}

/// Locks that could not be released as they were dropped: the command fails with them.
static UNRELEASED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// What could not be released since the last look (for the command's exit status).
pub fn unreleased_locks() -> Vec<String> {
    std::mem::take(&mut *lock(&UNRELEASED))
}

/// A lock found, with its ETag and age.
pub struct HeldLock {
    pub info: LockInfo,
    pub etag: String,
    pub modified: Option<DateTime>,
}

impl HeldLock {
    pub fn age(&self) -> String {
        let Some(modified) = self.modified else {
            return "age unknown".to_owned();
        };
        let now = DateTime::from(SystemTime::now()).secs();
        let secs = u64::try_from(now - modified.secs()).unwrap_or(0);
        match secs {
            0..60 => format!("{secs}s old"),
            60..3600 => format!("{}m{:02}s old", secs / 60, secs % 60),
            _ => format!("{}h{:02}m old", secs / 3600, secs % 3600 / 60),
        }
    }
}

fn held_by(state: &S3Object, held: &HeldLock) -> anyhow::Error {
    anyhow!(
        "another l5d-ecs holds the lock on the state {state}: lock id {}, held by {}, since {} \
         ({}). Wait for it to finish; if that run is dead (killed, or its machine gone), \
         release the lock with `l5d-ecs unlock {} --state {state}`",
        held.info.id,
        held.info.holder,
        held.info.since,
        held.age(),
        held.info.id
    )
}

pub async fn read_lock(s3: &aws_sdk_s3::Client, object: &S3Object) -> Result<Option<HeldLock>> {
    let Some(found) = get(s3, object).await? else {
        return Ok(None);
    };
    let info: LockInfo = serde_json::from_slice(&found.body).with_context(|| {
        format!("the lock {object} is not a lock l5d-ecs wrote; look at it, and delete it by hand")
    })?;
    Ok(Some(HeldLock {
        info,
        etag: found.etag,
        modified: found.modified,
    }))
}

/// Releases the lock on `state` if its id is `id` (for `unlock`); returns what it said.
pub async fn force_unlock(remote: &RemoteState, id: &str) -> Result<HeldLock> {
    let object = remote.object.beside(".lock");
    let Some(held) = read_lock(&remote.s3, &object).await? else {
        bail!(
            "there is no lock on the state {}: nothing to unlock",
            remote.object
        );
    };
    if held.info.id != id {
        return Err(usage(format!(
            "the lock on the state {} has id {}, not {id} (held by {}, since {}); nothing was \
             released",
            remote.object, held.info.id, held.info.holder, held.info.since
        )));
    }
    remote
        .s3
        .delete_object()
        .bucket(&object.bucket)
        .key(&object.key)
        .if_match(held.etag.clone())
        .send()
        .await
        .map_err(|e| {
            anyhow!(
                "releasing the lock {object} (s3:DeleteObject): {}",
                describe_error(&e)
            )
        })?;
    Ok(held)
}

struct Found {
    body: Vec<u8>,
    etag: String,
    version: Option<String>,
    writer: Option<String>,
    modified: Option<DateTime>,
}

async fn get(s3: &aws_sdk_s3::Client, object: &S3Object) -> Result<Option<Found>> {
    let answer = s3
        .get_object()
        .bucket(&object.bucket)
        .key(&object.key)
        .send()
        .await;
    let out = match answer {
        Ok(out) => out,
        Err(e) if error_code(&e) == Some("NoSuchKey") => return Ok(None),
        Err(e) => bail!("reading {object} (s3:GetObject): {}", describe_error(&e)),
    };
    let etag = out.e_tag().unwrap_or_default().to_owned();
    let version = out.version_id().map(str::to_owned);
    let writer = out.metadata().and_then(|m| m.get(WRITER_METADATA)).cloned();
    let modified = out.last_modified().copied();
    let body = out
        .body
        .collect()
        .await
        .with_context(|| format!("reading {object}"))?
        .into_bytes()
        .to_vec();
    Ok(Some(Found {
        body,
        etag,
        version,
        writer,
        modified,
    }))
}

async fn delete(s3: &aws_sdk_s3::Client, object: &S3Object) -> Result<()> {
    match s3
        .delete_object()
        .bucket(&object.bucket)
        .key(&object.key)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if error_code(&e) == Some("NoSuchKey") => Ok(()),
        Err(e) => bail!(
            "deleting {object} (s3:DeleteObject): {}",
            describe_error(&e)
        ),
    }
}

/// The region S3 names when a bucket is in another region than the client's.
fn bucket_region<E>(
    err: &aws_smithy_runtime_api::client::result::SdkError<
        E,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
) -> Option<String> {
    let raw = err.raw_response()?;
    if !matches!(raw.status().as_u16(), 301 | 400) {
        return None;
    }
    raw.headers().get("x-amz-bucket-region").map(str::to_owned)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Each guarded value is replaced whole, so a poisoned one is still consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}
