//! `ferry plan`: what deploy will do, in this environment's names, and whether
//! it would start now (the preflight, read-only).

use super::{CmdResult, Context, print_json};
use ferry_aws as aws;
use ferry_core::config::EnvConfig;
use ferry_core::exit;
use ferry_core::output::Redactor;
use ferry_core::provider::StackOutputs;
use ferry_core::runbook::journal::readable_runs;
use ferry_core::runbook::plan::{deploy_plan, lock_timeout_suggestion};
use ferry_core::runbook::preflight::{Findings, Scope, inspect, revisions_refusal};
use ferry_core::runbook::record::RunOptions;
use serde_json::json;
use std::collections::BTreeMap;

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
        let migrations = super::check::plan_summary(env);
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
    let migrations = super::check::plan_summary(env);
    if !migrations.is_null() {
        crate::outln!("")?;
        for line in super::check::plan_lines(&migrations) {
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
