//! From parsed arguments to work: load the config, pick the environment, build
//! the provider, guard confirmations, run the command, and turn the result into
//! an exit code.

mod check;
mod completions;
mod config_lines;
mod config_validate;
mod db;
mod deploy;
mod doctor;
mod image;
mod logs;
mod plan;
mod restore;
mod resume;
mod runs;
mod service;
mod snapshot;
mod start;
mod status;
mod unlock;

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use crate::cli::{Cli, Command};
use ferry_aws as aws;
use ferry_core::config::{self, Config, ConfigError, EnvConfig, ProviderKind};
use ferry_core::exit;
use ferry_core::output::{OutputFormat, Redactor, Reporter};
use ferry_core::provider::{Cloud, Describe, ProviderError};
use ferry_core::runbook::journal::{Listed, blocking_runs};
use ferry_core::runbook::{AssumeYes, Confirm, NoOneToAsk};
use ferry_core::state::{EnvLock, Holder, Location, LockError, Store};
use ferry_local as local;

/// A command that ended without a run record.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Bad input: nothing was touched (exit 2).
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Failed before changing anything (exit 3).
    #[error("{0}")]
    Failed(String),
    /// Failed after a change; a person must look (exit 5).
    #[error("{0}")]
    NeedsAttention(String),
    /// Whoever read stdout closed it (`ferry ... | head`): the output ends
    /// there, quietly, and ferry exits 0 as when the reader read it all.
    #[error("stdout was closed")]
    StdoutClosed,
}

impl CommandError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CommandError::Usage(_) | CommandError::Config(_) => exit::USAGE,
            CommandError::Failed(_) => exit::REFUSED,
            CommandError::NeedsAttention(_) => exit::NEEDS_ATTENTION,
            CommandError::StdoutClosed => exit::SUCCEEDED,
        }
    }
}

impl From<ProviderError> for CommandError {
    fn from(e: ProviderError) -> Self {
        match e {
            ProviderError::AccessDenied(_) => CommandError::Usage(format!(
                "{e}; grant that permission to the role or user ferry runs as (ferry's IAM policy: \
                 docs/github-actions.md), then retry; nothing was done"
            )),
            _ => CommandError::Failed(e.to_string()),
        }
    }
}

pub type CmdResult = Result<i32, CommandError>;

/// The provider's words for an environment's plans, from its configuration
/// alone (`ferry plan` prints them without reaching anything).
pub fn describe(env: &EnvConfig) -> Arc<dyn Describe> {
    match env.provider {
        ProviderKind::Aws => Arc::new(aws::describe::AwsWords),
        ProviderKind::Local => Arc::new(local::describe::LocalWords),
    }
}

/// What every command gets: the parsed flags and the loaded config.
pub struct Context {
    pub config: Config,
    pub aws: aws::AwsOptions,
    pub output: OutputFormat,
    pub yes: bool,
    pub verbose: u8,
    /// `--quiet`: only warnings, errors and the final summary on stderr.
    pub quiet: bool,
}

impl Context {
    pub fn env(&self, name: &str) -> Result<&EnvConfig, CommandError> {
        Ok(self.config.env(name)?)
    }

    pub fn reporter(&self, env: Option<&EnvConfig>) -> Arc<Reporter> {
        let secrets = env.map(EnvConfig::secrets).unwrap_or_default();
        Arc::new(Reporter::stderr(Redactor::new(secrets)).verbose(self.verbose > 0).quiet(self.quiet))
    }

    /// The provider's view of one environment. For AWS this loads credentials
    /// (failing fast with how to fix them) and resolves `${output:Name}`.
    pub async fn cloud(&self, env: &EnvConfig) -> Result<Cloud, CommandError> {
        match env.provider {
            ProviderKind::Local => {
                let exe = std::env::current_exe()
                    .map_err(|e| CommandError::Failed(format!("cannot find ferry's own executable: {e}")))?;
                local::cloud(env, &self.config.path, &self.config.state_dir, exe).map_err(|e| match e {
                    ProviderError::Rejected(m) => CommandError::Usage(m),
                    other => other.into(),
                })
            }
            ProviderKind::Aws => {
                let sdk = aws::sdk_config(env, &self.aws).await;
                let doing = format!("reach AWS for environment {}", env.name);
                aws::check_credentials(&sdk, self.aws.profile.as_deref(), &doing)
                    .await
                    .map_err(|p| self.aws_problem(p))?;
                let (cloud, _) = aws::cloud(env, &sdk).await.map_err(|e| match e {
                    ProviderError::Rejected(m) | ProviderError::AccessDenied(m) => CommandError::Usage(m),
                    other => other.into(),
                })?;
                Ok(cloud)
            }
        }
    }

    /// Where the environment's runs and locks live: `FERRY_STATE`, then its
    /// `state`, then `state_dir`.
    pub fn store(&self, env: &EnvConfig) -> Result<Store, CommandError> {
        let location = match std::env::var("FERRY_STATE").ok().filter(|s| !s.trim().is_empty()) {
            Some(s) if s.contains("://") => {
                Location::parse_s3(&s).map_err(|e| CommandError::Usage(format!("FERRY_STATE: {e}")))?
            }
            Some(s) => {
                let p = PathBuf::from(&s);
                Location::Local(std::path::absolute(&p).unwrap_or(p))
            }
            None => env.state.clone(),
        };
        match location {
            Location::Local(dir) => Ok(Store::local(&dir)),
            Location::S3 { bucket, prefix } => {
                let region = self.aws.region.clone().or_else(|| env.region.clone());
                aws::s3_state::S3Store::connect(&bucket, &prefix, region, self.aws.profile.clone())
                    .map(|s| Store::Remote(std::sync::Arc::new(s)))
                    .map_err(|p| self.aws_problem(p))
            }
        }
    }

    /// An AWS problem before any request: its one line (exit 2); with `-v`
    /// the SDK's own words first.
    fn aws_problem(&self, p: aws::access::Problem) -> CommandError {
        if self.verbose > 0
            && let Some(detail) = &p.detail
        {
            eprintln!("detail: {detail}");
        }
        CommandError::Usage(format!("{}; nothing was done", p.line))
    }

    /// Take the lock on `database` for a command that changes it, for as long as
    /// the returned guard lives. Held elsewhere: exit 3 naming the holder.
    pub fn lock(
        &self,
        store: &Store,
        env: &EnvConfig,
        database: &str,
        run_id: Option<&str>,
        command: &str,
    ) -> Result<EnvLock, CommandError> {
        EnvLock::acquire(store, Holder::new(database, &env.name, run_id, command)).map_err(|e| {
            let hint = match &e {
                LockError::Held { .. } | LockError::Unreadable { .. } => format!(
                    "; nothing was done. Run this again when that ferry has finished; if it is gone (killed, its machine lost), `ferry unlock {}` removes the lock",
                    env.name
                ),
                LockError::Backend { .. } => format!("; nothing was done (state: {})", store.describe()),
            };
            CommandError::Failed(format!("{e}{hint}"))
        })
    }

    /// The database an environment's lock is keyed by, when it is known
    /// without asking the cloud (a local database, or a literal cluster id).
    pub fn database_key(&self, env: &EnvConfig) -> Option<String> {
        match &env.database {
            config::DatabaseConfig::Cluster(t) => t.as_literal().map(str::to_string),
            config::DatabaseConfig::Url(_) => {
                local::LocalDatabase::open(env, self.config.base_dir(), &self.config.state_dir)
                    .ok()
                    .map(|d| d.as_database().cluster_id().to_string())
            }
        }
    }

    /// The runs (other than `except`) that keep `database` from a change: those
    /// of this environment and of every other environment of the same database
    /// and state backend that are unfinished, need attention, or cannot be read.
    pub fn unfinished_runs(
        &self,
        store: &Store,
        env: &EnvConfig,
        database: &str,
        except: Option<&str>,
    ) -> Result<Vec<Listed>, CommandError> {
        let err = |e: ferry_core::runbook::journal::JournalError| {
            CommandError::Failed(format!("{e}; nothing was done (cannot tell whether a run is unfinished)"))
        };
        let mut blocking = blocking_runs(store, &env.name, except).map_err(err)?;
        for other in self.config.envs.values().filter(|e| e.name != env.name) {
            let same_store = self.store(other).is_ok_and(|s| s.describe() == store.describe());
            if same_store && self.database_key(other).as_deref() == Some(database) {
                blocking.extend(blocking_runs(store, &other.name, except).map_err(err)?);
            }
        }
        Ok(blocking)
    }

    /// Refuse while a run of the database (other than `except`) is unfinished,
    /// needs attention, or has a journal that cannot be read.
    pub fn refuse_unfinished(
        &self,
        store: &Store,
        env: &EnvConfig,
        database: &str,
        except: Option<&str>,
    ) -> Result<(), CommandError> {
        let blocking = self.unfinished_runs(store, env, database, except)?;
        match blocking.first() {
            None => Ok(()),
            Some(first) => Err(CommandError::Failed(unfinished_message(env, first, blocking.len()))),
        }
    }

    pub fn confirmer(&self) -> Arc<dyn Confirm> {
        if self.yes {
            Arc::new(AssumeYes)
        } else if interactive() {
            Arc::new(TtyConfirm)
        } else {
            Arc::new(NoOneToAsk)
        }
    }

    /// Environments with `confirm = true` need `--yes` or the name typed at a
    /// prompt before anything that changes them.
    pub fn guard(&self, env: &EnvConfig, action: &str) -> Result<(), CommandError> {
        if !env.confirm || self.yes {
            return Ok(());
        }
        if !interactive() {
            return Err(CommandError::Usage(format!(
                "environment {} has confirm = true: pass --yes to {action} without a terminal",
                env.name
            )));
        }
        let typed = prompt(&format!("About to {action} in {}. Type the environment name to continue: ", env.name));
        if typed.as_deref() == Some(env.name.as_str()) {
            Ok(())
        } else {
            Err(CommandError::Usage(format!("confirmation for {} did not match; nothing was done", env.name)))
        }
    }

    /// A restore swaps the database under the application, so it is never a
    /// side effect of a command typed without thought: `--yes`, or at a
    /// terminal a yes to the question after the plan was shown (`confirm =
    /// true` environments: the typed name of [`Context::guard`] instead). With
    /// neither a terminal nor `--yes`: exit 2, nothing done.
    pub fn ask_before_restore(&self, env: &EnvConfig) -> Result<(), CommandError> {
        if self.yes || env.confirm {
            return self.guard(env, "restore the database");
        }
        if !interactive() {
            return Err(CommandError::Usage(format!(
                "a restore swaps the database of {} under its application: pass --yes to restore without a \
                 terminal; nothing was done",
                env.name
            )));
        }
        match self.confirmer().ask("Restore as described above?") {
            Some(true) => Ok(()),
            _ => Err(CommandError::Usage("not confirmed; nothing was done".into())),
        }
    }

    pub fn json(&self) -> bool {
        self.output == OutputFormat::Json
    }
}

/// Why an unfinished run blocks the environment, and the commands that settle it.
pub fn unfinished_message(env: &EnvConfig, run: &Listed, count: usize) -> String {
    let more = if count > 1 {
        format!(" (and {} more; `ferry runs list --env {}`)", count - 1, env.name)
    } else {
        String::new()
    };
    match run {
        Listed::Unreadable { location, error, .. } => format!(
            "environment {} has a run whose journal cannot be read: {location} ({error}){more}; nothing was done. \
             Find out what that run did (`ferry status {}`), then repair the file or settle it with `{}`",
            env.name,
            env.name,
            abandon_command(run.run_id())
        ),
        Listed::Run(r) => format!(
            "environment {} has an unfinished run: {}{more}; this command was refused and changed nothing. \
             Settle that run first: {}",
            env.name,
            unfinished_run(r),
            settle_advice(r)
        ),
    }
}

/// `ferry status`'s line for an unfinished run: what it is, what it began
/// (never "nothing was done" once it began a changing step), how to settle it.
pub fn unfinished_status(env: &EnvConfig, run: &Listed) -> String {
    match run {
        Listed::Unreadable { .. } => unfinished_message(env, run, 1),
        Listed::Run(r) => format!("{}; settle it: {}", unfinished_run(r), settle_advice(r)),
    }
}

/// `run-id (deploy running at migrate; it began snapshot, migrate, so the database may have changed)`.
fn unfinished_run(r: &ferry_core::runbook::record::RunRecord) -> String {
    let at = r.steps.iter().find(|s| !s.status.is_settled()).map(|s| format!(" at {}", s.name)).unwrap_or_default();
    let begun = r.changing_steps_begun();
    let changed = if begun.is_empty() {
        "; it began no step that changes anything".to_string()
    } else {
        format!("; it began {}, so the database may have changed", begun.join(", "))
    };
    format!("{} ({} {}{at}{changed})", r.run_id, r.command, r.outcome.as_str())
}

/// The commands that settle an unfinished run.
fn settle_advice(r: &ferry_core::runbook::record::RunRecord) -> String {
    use ferry_core::runbook::record::Outcome;
    let abandon = abandon_command(&r.run_id);
    match (&r.outcome, &r.next) {
        (Outcome::NeedsAttention, Some(next)) => format!("`{next}` (what it asked for), then `{abandon}`"),
        (Outcome::NeedsAttention, None) => format!("`{abandon}` once it is settled"),
        _ => format!("`ferry resume {}`, or `{abandon}` if it needs nothing more", r.run_id),
    }
}

/// The command that settles `run_id` by hand, for a person to paste and give a reason.
pub fn abandon_command(run_id: &str) -> String {
    format!("{} --reason \"...\"", ferry_core::output::shell::join(&["ferry", "runs", "abandon", run_id]))
}

/// An environment variable ferry reads: unset or empty is `None`; one that is
/// not UTF-8 is an error naming it (never read as unset, which would fall back
/// to another config, state or image without a word).
fn utf8_var(name: &str) -> Result<Option<String>, CommandError> {
    match std::env::var(name) {
        Ok(v) if v.is_empty() => Ok(None),
        Ok(v) => Ok(Some(v)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(v)) => Err(CommandError::Usage(format!(
            "{name} is not valid UTF-8 ({}); nothing was done. Set it to a UTF-8 value or unset it",
            v.to_string_lossy()
        ))),
    }
}

fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

fn prompt(question: &str) -> Option<String> {
    let mut err = std::io::stderr();
    let _ = write!(err, "{question}");
    let _ = err.flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).ok()?;
    Some(line.trim().to_string())
}

struct TtyConfirm;

impl Confirm for TtyConfirm {
    fn ask(&self, question: &str) -> Option<bool> {
        let answer = prompt(&format!("{question} [y/N] "))?;
        Some(matches!(answer.to_ascii_lowercase().as_str(), "y" | "yes"))
    }
}

/// Print a JSON document on stdout: always an object, always with the
/// `format_version` of the shapes this ferry prints (docs/json.md). A list goes
/// inside an object under its own name (`{"snapshots": [...]}`).
pub fn print_json<T: serde::Serialize>(value: &T, redactor: &Redactor) -> Result<(), CommandError> {
    match versioned(value).and_then(|v| serde_json::to_string_pretty(&v).ok()) {
        Some(text) => stdout_line(&redactor.clean_json(&text)),
        None => Ok(()),
    }
}

/// `value` as the object ferry prints, `format_version` set to this ferry's.
fn versioned<T: serde::Serialize>(value: &T) -> Option<serde_json::Value> {
    let version = serde_json::Value::from(ferry_core::runbook::record::FORMAT_VERSION);
    Some(match serde_json::to_value(value).ok()? {
        serde_json::Value::Object(map) => {
            // First, where a person reading the document looks.
            let mut doc = serde_json::Map::from_iter([("format_version".to_string(), version)]);
            doc.extend(map.into_iter().filter(|(k, _)| k != "format_version"));
            serde_json::Value::Object(doc)
        }
        // Every caller passes an object; anything else is still wrapped, never bare.
        other => serde_json::json!({ "format_version": version, "value": other }),
    })
}

/// One line of a command's result on stdout. A closed pipe (`ferry ... | head`)
/// is [`CommandError::StdoutClosed`]: the command stops there and returns it.
pub fn stdout_line(line: &str) -> Result<(), CommandError> {
    use std::io::Write;
    writeln!(std::io::stdout().lock(), "{line}").map_err(|_| CommandError::StdoutClosed)
}

/// `stdout_line` with format arguments: `outln!("{x}")?`.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => { $crate::commands::stdout_line(&format!($($arg)*)) };
}

/// Run a parsed command line; returns the process exit code.
pub async fn run(cli: Cli) -> i32 {
    let Cli { config, output, yes, verbose, quiet, profile, region, command } = cli;
    let aws = aws::AwsOptions { profile, region };
    let what = command_words(&command);
    let result = async {
        if let Some(done) = completions::without_config(&command) {
            return done;
        }
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        let env_var = utf8_var("FERRY_CONFIG")?;
        let path = config::locate(config.as_deref(), env_var.as_deref(), &cwd)?;
        let config = config::load(&path)?;
        let state_var = utf8_var("FERRY_STATE")?;
        utf8_var("FERRY_IMAGE")?;
        // The AWS SDK panics on some settings it reads by itself: checked
        // first wherever it will be loaded (an AWS environment, S3 state).
        let uses_aws = state_var.as_deref().is_some_and(|s| s.contains("://"))
            || config.envs.values().any(|e| e.provider == ProviderKind::Aws || matches!(e.state, Location::S3 { .. }));
        if uses_aws {
            aws::check_sdk_settings(aws.profile.as_deref()).await.map_err(CommandError::Usage)?;
        }
        let ctx = Context { config, aws, output: output.into(), yes, verbose, quiet };
        dispatch(&ctx, command).await
    }
    .await;
    match result {
        Ok(code) => code,
        Err(CommandError::StdoutClosed) => CommandError::StdoutClosed.exit_code(),
        Err(e) => {
            eprintln!("error: {e}");
            tell_github(&what, e.exit_code(), &e.to_string());
            e.exit_code()
        }
    }
}

/// The command as a person typed its first words: `deploy prod`, `runs list`.
fn command_words(command: &Command) -> String {
    use crate::cli::RunsCommand;
    match command {
        Command::Deploy(a) => format!("deploy {}", a.env),
        Command::Migrate(a) => format!("migrate {}", a.env),
        Command::Restore(a) => format!("restore {}", a.env),
        Command::Rehearse(a) => format!("rehearse {}", a.env),
        Command::Resume(a) => format!("resume {}", a.run_id),
        Command::Plan(a) => format!("plan {}", a.env),
        Command::Status(a) => format!("status {}", a.env),
        Command::Check(a) => format!("check {}", a.env),
        Command::Doctor(a) => format!("doctor {}", a.env),
        Command::Logs(a) => format!("logs {}", a.env),
        Command::Unlock(a) => format!("unlock {}", a.env),
        Command::Runs(RunsCommand::List { .. }) => "runs list".into(),
        Command::Runs(RunsCommand::Show { run_id }) => format!("runs show {run_id}"),
        Command::Runs(RunsCommand::Abandon { run_id, .. }) => format!("runs abandon {run_id}"),
        Command::Snapshot(_) => "snapshot".into(),
        Command::Service(_) => "service".into(),
        Command::Config(_) => "config validate".into(),
        Command::Db(_) => "db".into(),
        Command::Completions(_) => "completions".into(),
        Command::Man(_) => "man".into(),
    }
}

/// A command that ended in an error or a refusal without a run of its own,
/// under GitHub Actions: an `::error` annotation with the one-line reason,
/// and a step summary that says what ended and why (a run's own report is
/// written where the run ends).
pub(crate) fn tell_github(what: &str, code: i32, reason: &str) {
    use ferry_core::output::{Fact, Report, Span, append_step_summary};
    if std::env::var("GITHUB_ACTIONS").map_or(true, |v| v != "true") {
        return;
    }
    let reason = reason.replace(['\r', '\n'], " ");
    let ended = match code {
        exit::USAGE => "stopped: a usage or configuration error; nothing was touched",
        exit::REFUSED => "was refused before changing anything",
        _ => "failed and needs attention",
    };
    eprintln!("::error title=ferry {what}::{}", ferry_core::output::escape_workflow(&reason));
    let mut facts = vec![Fact::text("reason", reason)];
    if let Some(url) = ferry_core::provenance::ci_url() {
        facts.push(Fact::new("ci", vec![Span::Link { text: "the CI run".into(), url }]));
    }
    let report = Report { headline: format!("ferry {what} {ended} (exit {code})"), facts, ..Report::default() };
    if let Err(err) = append_step_summary(&report, &Redactor::default()) {
        eprintln!("warning: cannot write the GitHub step summary: {err}");
    }
}

async fn dispatch(ctx: &Context, command: Command) -> CmdResult {
    match command {
        Command::Deploy(a) => deploy::deploy(ctx, a).await,
        Command::Migrate(a) => deploy::migrate(ctx, a).await,
        Command::Restore(a) => restore::restore(ctx, a).await,
        Command::Rehearse(a) => deploy::rehearse(ctx, a).await,
        Command::Resume(a) => resume::resume(ctx, &a.run_id).await,
        Command::Plan(a) => plan::plan(ctx, &a.env, a.image.as_deref()).await,
        Command::Status(a) => status::status(ctx, &a.env).await,
        Command::Service(c) => service::run(ctx, c).await,
        Command::Logs(a) => logs::logs(ctx, a).await,
        Command::Runs(c) => runs::runs(ctx, c),
        Command::Unlock(a) => unlock::unlock(ctx, &a.env, a.reason.as_deref()).await,
        Command::Config(crate::cli::ConfigCommand::Validate) => config_validate::validate(ctx),
        Command::Snapshot(c) => snapshot::run(ctx, c).await,
        Command::Db(c) => db::run(ctx, c).await,
        Command::Check(a) => check::check(ctx, &a.env).await,
        Command::Doctor(a) => doctor::doctor(ctx, a).await,
        Command::Completions(a) => completions::completions(a.shell),
        Command::Man(a) => completions::man(a.dir.as_deref()),
    }
}
