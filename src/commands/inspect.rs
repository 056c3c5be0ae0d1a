//! Read-only commands: plan, status, logs, runs, config validate.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use serde_json::json;

use super::{CmdResult, CommandError, Context, print_json};
use crate::cli::LogsArgs;
use ferry_aws as aws;
use ferry_core::config::{EnvConfig, HumanDuration};
use ferry_core::exit;
use ferry_core::output::Redactor;
use ferry_core::provider::{
    Cloud, ClusterInfo, ProviderError, ServiceInfo, Snapshot, StackOutputs, TaskState, TaskSummary,
};
use ferry_core::runbook::journal::{Listed, list_runs, read_run, readable_runs};
use ferry_core::runbook::logs::Streams;
use ferry_core::runbook::plan::{deploy_plan, lock_timeout_suggestion};
use ferry_core::runbook::preflight::{Findings, Scope, inspect, revisions_refusal};
use ferry_core::runbook::record::{RunOptions, RunRecord};
use ferry_core::state::Store;
use ferry_core::state::lock::{Holder, LockError};

/// The stack outputs the environment refers to, read (read-only); or why they
/// could not be read (no region, no credentials, no such stack...).
async fn stack_outputs(ctx: &Context, env: &EnvConfig) -> Result<BTreeMap<String, String>, String> {
    let Some(stack) = env.stack.as_deref().filter(|_| !env.output_refs().is_empty()) else {
        return Ok(BTreeMap::new());
    };
    let sdk = aws::sdk_config(env, &ctx.aws).await;
    let doing = format!("read the outputs of stack {stack}");
    aws::check_credentials(&sdk, ctx.aws.profile.as_deref(), &doing).await.map_err(|p| {
        // The plan says what it was reading: the cause alone.
        p.line.strip_prefix(&format!("cannot {doing}: ")).map_or(p.line.clone(), str::to_string)
    })?;
    let stacks = aws::stacks(env, &sdk);
    let all = stacks.outputs(stack).await.map_err(|e| e.to_string())?;
    let refs = env.output_refs();
    Ok(all.into_iter().filter(|(k, _)| refs.contains(k)).collect())
}

/// What `ferry plan` found beyond the configuration: the stack outputs and,
/// when every value resolved, the read-only preflight of `ferry deploy`.
struct PlanCheck {
    outputs: Result<BTreeMap<String, String>, String>,
    /// Why `ferry deploy` would exit 2 (a value that does not resolve).
    problems: Vec<String>,
    preflight: Option<Findings>,
    /// Every reason `ferry deploy` would refuse before changing anything
    /// (exit 3). Any further refusal deploy learns goes into this list.
    refusals: Vec<String>,
}

impl PlanCheck {
    fn exit_code(&self) -> i32 {
        if !self.problems.is_empty() {
            exit::USAGE
        } else if !self.refusals.is_empty() {
            exit::REFUSED
        } else {
            exit::SUCCEEDED
        }
    }
}

async fn plan_check(ctx: &Context, env: &EnvConfig) -> PlanCheck {
    let outputs = stack_outputs(ctx, env).await;
    let mut check = PlanCheck { outputs, problems: Vec::new(), preflight: None, refusals: Vec::new() };
    if let Err(why) = &check.outputs {
        let stack = env.stack.as_deref().unwrap_or_default();
        check.problems.push(format!("the outputs of stack {stack} cannot be read: {why}"));
    } else {
        // Resolves `${output:Name}` as deploy does: a misspelt name is exit 2 there too.
        match ctx.cloud(env).await {
            Ok(cloud) => {
                let rehearsing = env.rehearse.when == ferry_core::config::RehearseWhen::Always;
                let scope =
                    Scope { env, cloud: &cloud, restoring: false, own_task: None, with_snapshot: true, rehearsing };
                let found = inspect(&scope).await;
                check.refusals.extend(found.refusals.iter().cloned());
                check.preflight = Some(found);
            }
            Err(e) if e.exit_code() == 2 => check.problems.push(e.to_string()),
            Err(e) => check.refusals.push(e.to_string()),
        }
    }
    check.refusals.extend(revisions_refusal(env));
    check.refusals.extend(state_refusals(ctx, env));
    check
}

/// What deploy would refuse for the state backend's sake: the database's lock
/// held, an unfinished run of it. Read when the backend can be read; a backend
/// that cannot (no credentials for plan) says nothing here.
fn state_refusals(ctx: &Context, env: &EnvConfig) -> Vec<String> {
    let (Ok(store), Some(db)) = (ctx.store(env), ctx.database_key(env)) else { return Vec::new() };
    let mut out = Vec::new();
    if let Ok(Some((holder, _))) = ferry_core::state::lock::read(&store, &db) {
        out.push(format!("{db} is locked by {}", holder.describe()));
    }
    if let Ok(runs) = ctx.unfinished_runs(&store, env, &db, None)
        && let Some(first) = runs.first()
    {
        out.push(super::unfinished_message(env, first, runs.len()));
    }
    out
}

pub async fn plan(ctx: &Context, env_name: &str, image: Option<&str>) -> CmdResult {
    let env = ctx.env(env_name)?;
    let (with_image, chosen) = super::image::apply(env, image)?;
    let plan = deploy_plan(&with_image, super::describe(env).as_ref(), &RunOptions::default());
    let image = chosen.map(|c| json!({ "image": c.image, "from": c.from }));
    let redactor = Redactor::new(env.secrets());
    let check = plan_check(ctx, env).await;
    let code = check.exit_code();
    let suggestion = match ctx.store(env) {
        Ok(store) => lock_timeout_suggestion(env, &readable_runs(&store, Some(&env.name))),
        Err(_) => None,
    };
    // Under GitHub Actions a plan that would not start says why, as a refusal does.
    let reasons = if code == exit::USAGE { &check.problems } else { &check.refusals };
    if code != exit::SUCCEEDED {
        super::tell_github(&format!("plan {}", env.name), code, &reasons.join("; "));
    }
    if ctx.json() {
        let (outputs, not_read) = match &check.outputs {
            Ok(o) => (json!(o), serde_json::Value::Null),
            Err(why) => (json!({}), json!(why)),
        };
        let migrations = super::migrations::plan_summary(env);
        print_json(
            &json!({
                "env": env, "image": image, "stack_outputs": outputs, "stack_outputs_not_read": not_read, "plan": plan,
                "migrations": migrations, "preflight": check.preflight, "problems": check.problems,
                "refusals": check.refusals, "lock_timeout_suggestion": suggestion, "exit_code": code
            }),
            &redactor,
        )?;
        return Ok(code);
    }
    let config = super::config_lines::lines(env);
    crate::outln!("# {} ({})\n", env.name, ctx.config.path.display())?;
    for line in config {
        crate::outln!("{}", redactor.clean(&line))?;
    }
    if let Some(stack) = env.stack.as_deref().filter(|_| !env.output_refs().is_empty()) {
        match &check.outputs {
            Ok(values) => {
                crate::outln!("\nstack outputs of {stack}:")?;
                for name in env.output_refs() {
                    let value =
                        values.get(&name).map_or("(missing: no such output; deploy would exit 2)", String::as_str);
                    crate::outln!("  ${{output:{name}}} = {}", redactor.clean(value))?;
                }
            }
            Err(why) => crate::outln!(
                "\nstack outputs of {stack} not read ({why}); referenced: {}",
                env.output_refs().join(", ")
            )?,
        }
    }
    if let Some(i) = &image {
        crate::outln!(
            "\nimage: {} (from {})",
            i["image"].as_str().unwrap_or_default(),
            i["from"].as_str().unwrap_or_default()
        )?;
    }
    crate::outln!("\nferry deploy {} will:", env.name)?;
    for (i, s) in plan.steps.iter().enumerate() {
        let when = if s.only_on_failure { " (only if migrate or verify fails)" } else { "" };
        let skipped = s.skipped.as_ref().map(|r| format!(" [skipped: {r}]")).unwrap_or_default();
        crate::outln!("{}. {}{when}{skipped}", i + 1, s.name)?;
        for d in &s.does {
            crate::outln!("   - {}", redactor.clean(d))?;
        }
    }
    let migrations = super::migrations::plan_summary(env);
    if !migrations.is_null() {
        crate::outln!("")?;
        for line in super::migrations::plan_lines(&migrations) {
            crate::outln!("{line}")?;
        }
    }
    if let Some(s) = &suggestion {
        crate::outln!("\n{}", redactor.clean(s))?;
    }
    for line in verdict(env, &check) {
        crate::outln!("{}", redactor.clean(&line))?;
    }
    Ok(code)
}

/// The preflight as found now, and whether deploy would start.
fn verdict(env: &EnvConfig, check: &PlanCheck) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(f) = &check.preflight {
        lines.push("\npreflight now (read-only):".to_string());
        lines.extend(f.found.iter().map(|l| format!("  ok       {l}")));
        lines.extend(f.warnings.iter().map(|l| format!("  warning  {l}")));
        lines.extend(f.refusals.iter().map(|l| format!("  refuses  {l}")));
    }
    lines.push(String::new());
    let name = &env.name;
    match check.exit_code() {
        0 => lines.push(format!("ferry deploy {name} can start.")),
        2 => lines.extend(check.problems.iter().map(|p| format!("ferry deploy {name} would exit 2: {p}"))),
        _ => lines.extend(check.refusals.iter().map(|r| format!("ferry deploy {name} would refuse (exit 3): {r}"))),
    }
    lines
}

/// What `ferry status` shows of an environment, each part read once.
struct EnvStatus {
    database: Option<ClusterInfo>,
    /// The newest five.
    snapshots: Vec<Snapshot>,
    tasks: Vec<TaskSummary>,
    service: Option<ServiceInfo>,
    last: Option<RunRecord>,
    lock: Result<Option<(Holder, String)>, LockError>,
    blocking: Vec<Listed>,
    /// Why the runs could not be read: said, never shown as "no runs".
    state_error: Option<String>,
}

pub async fn status(ctx: &Context, env_name: &str) -> CmdResult {
    let env = ctx.env(env_name)?;
    let cloud = ctx.cloud(env).await?;
    let store = ctx.store(env)?;
    let s = read_status(&cloud, &store, env).await?;
    if ctx.json() {
        let value = json!({
            "env": env.name,
            "database": s.database,
            "snapshots": s.snapshots,
            "running_tasks": s.tasks,
            "service": s.service,
            "last_run": s.last,
            "lock": s.lock.as_ref().ok().and_then(|l| l.as_ref().map(|(h, _)| h.clone())),
            "unfinished_runs": s.blocking.iter().map(|l| l.run_id()).collect::<Vec<_>>(),
            "state": store.describe(),
            "state_error": s.state_error,
        });
        print_json(&value, &Redactor::new(env.secrets()))?;
        return Ok(0);
    }
    print_status(env, cloud.database.cluster_id(), &s)?;
    // What the cloud shows of a restore, whether or not any record survived:
    // the leftovers, with what was read above.
    if let Ok(leftovers) = cloud.database.leftovers().await
        && let picture = ferry_core::runbook::recover::Picture::new(
            cloud.database.cluster_id(),
            s.database.clone(),
            leftovers,
            s.tasks.clone(),
            s.service.clone(),
        )
        && (picture.original.is_none()
            || !picture.restored.is_empty()
            || !picture.failed.is_empty()
            || !picture.clones.is_empty())
    {
        for line in ferry_core::runbook::recover::lines(&picture, &env.name) {
            crate::outln!("cloud      {line}")?;
        }
    }
    Ok(0)
}

async fn read_status(cloud: &Cloud, store: &Store, env: &EnvConfig) -> Result<EnvStatus, CommandError> {
    let db = cloud.database.clone();
    let database = db.describe(db.cluster_id()).await?;
    let mut snapshots = db.list_snapshots().await?;
    snapshots.sort_by_key(|s| std::cmp::Reverse(s.created_at));
    snapshots.truncate(5);
    let tasks = cloud.runner.active_tasks().await?;
    let service = match &cloud.service {
        Some(s) => Some(s.status().await?),
        None => None,
    };
    // The environment's runs, read once (on S3 each is a request): the last
    // one, the unfinished ones, or why they cannot be read.
    let (listed, state_error) = match list_runs(store, Some(&env.name)) {
        Ok(l) => (l, None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let last = listed.iter().find_map(|l| match l {
        Listed::Run(r) => Some(r.as_ref().clone()),
        Listed::Unreadable { .. } => None,
    });
    let lock = ferry_core::state::lock::read(store, db.cluster_id());
    let blocking = listed.into_iter().filter(|l| l.blocks()).collect();
    Ok(EnvStatus { database, snapshots, tasks, service, last, lock, blocking, state_error })
}

fn print_status(env: &EnvConfig, database: &str, s: &EnvStatus) -> Result<(), CommandError> {
    match &s.database {
        Some(i) => crate::outln!("database   {} ({}, {})", i.id, i.state(), i.engine)?,
        None => crate::outln!("database   {database} DOES NOT EXIST")?,
    }
    if s.snapshots.is_empty() {
        crate::outln!("snapshots  none")?;
    }
    for snap in &s.snapshots {
        let at = snap.created_at.map(ferry_core::output::timestamp).unwrap_or_default();
        crate::outln!("snapshot   {} {} {}% {at}", snap.id, snap.status, snap.percent)?;
    }
    if s.tasks.is_empty() {
        crate::outln!("migration  none running")?;
    }
    for t in &s.tasks {
        crate::outln!("migration  {} {}", t.id, t.status)?;
    }
    if let Some(svc) = &s.service {
        crate::outln!("service    {} {}", svc.id, svc.status)?;
    }
    match &s.last {
        Some(r) => crate::outln!("last run   {} {} {}", r.run_id, r.command, r.outcome_words())?,
        None => crate::outln!("last run   none")?,
    }
    if let Some(e) = &s.state_error {
        crate::outln!("state      UNREADABLE: {e} (runs and unfinished runs above are unknown)")?;
    }
    match &s.lock {
        Ok(Some((h, _))) => crate::outln!("lock       held: {}", h.describe())?,
        Ok(None) => crate::outln!("lock       free")?,
        Err(e) => crate::outln!("lock       {e}")?,
    }
    for l in &s.blocking {
        crate::outln!("unfinished {}", super::unfinished_status(env, l))?;
    }
    Ok(())
}

pub async fn logs(ctx: &Context, a: LogsArgs) -> CmdResult {
    let env = ctx.env(&a.env)?;
    let since = match &a.since {
        Some(s) => Some(HumanDuration::parse(s).map_err(|e| CommandError::Usage(format!("--since: {e}")))?.0),
        None => None,
    };
    let cloud = ctx.cloud(env).await?;
    let usage = |e: ProviderError| match e {
        ProviderError::Rejected(m) => CommandError::Usage(m),
        other => other.into(),
    };
    let (task_id, stream) = match (&a.task, &a.run) {
        (Some(task), _) => (task.clone(), cloud.runner.log_stream_of(task).await.map_err(usage)?),
        (None, Some(run_id)) => {
            let r = read_run(&ctx.store(env)?, run_id).map_err(|e| CommandError::Usage(e.to_string()))?;
            // A rehearsal's migration (on its clone) when the run started no other.
            let t = r
                .task
                .or_else(|| r.rehearsal.and_then(|h| h.task))
                .ok_or_else(|| CommandError::Usage(format!("run {run_id} started no migration task")))?;
            (t.arn, t.log_stream)
        }
        (None, None) => {
            let t =
                readable_runs(&ctx.store(env)?, Some(&env.name)).into_iter().find_map(|r| r.task).ok_or_else(|| {
                    CommandError::Usage(format!("no run of {} has started a migration task yet", env.name))
                })?;
            (t.arn, t.log_stream)
        }
    };
    if cloud.runner.poll(&task_id).await.map_err(usage)? == TaskState::Missing {
        return Err(CommandError::Usage(format!("no migration task {task_id} in {}", env.name)));
    }
    let redactor = Redactor::new(env.secrets());
    let cutoff = since.and_then(|d| chrono::Duration::from_std(d).ok()).map(|d| Utc::now() - d);
    let mut collected = Vec::new();
    let mut streams = Streams::new(&stream);
    let mut empty_after_stop = 0;
    loop {
        let (events, errors) = streams.read(cloud.logs.as_ref()).await;
        if let Some((_, e)) = errors.into_iter().next() {
            return Err(e.into());
        }
        let got = events.len();
        for e in events.into_iter().filter(|e| cutoff.is_none_or(|c| e.timestamp >= c)) {
            if ctx.json() {
                collected.push(e);
            } else {
                let at = e.timestamp.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                crate::outln!("{at} | {}", ferry_core::output::escape_controls(&redactor.clean(&e.message)))?;
            }
        }
        if !a.follow {
            if got == 0 {
                break;
            }
            continue;
        }
        if got == 0 {
            let stopped = matches!(
                cloud.runner.poll(&task_id).await?,
                TaskState::Stopped { .. } | TaskState::Missing | TaskState::Lost { .. }
            );
            if stopped {
                empty_after_stop += 1;
                if empty_after_stop >= 2 {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        } else {
            empty_after_stop = 0;
        }
    }
    if ctx.json() {
        print_json(&json!({ "events": collected }), &redactor)?;
    }
    Ok(0)
}

pub fn validate(ctx: &Context) -> CmdResult {
    let names: Vec<&str> = ctx.config.envs.keys().map(String::as_str).collect();
    if ctx.json() {
        print_json(&json!({ "config": ctx.config.path, "valid": true, "environments": names }), &Redactor::default())?;
    } else {
        crate::outln!("{}: valid ({} environments: {})", ctx.config.path.display(), names.len(), names.join(", "))?;
    }
    Ok(0)
}
