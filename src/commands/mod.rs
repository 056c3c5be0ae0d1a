//! From parsed arguments to work: load the config, pick the environment, build
//! the provider, guard confirmations, run the command, and turn the result into
//! an exit code.

mod db;
mod image;
mod inspect;
pub(crate) mod migrations;
mod restore;
mod runs;
mod service;
mod snapshots;

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use crate::cli::{Cli, Command};
use crate::config::{self, Config, ConfigError, EnvConfig, ProviderKind};
use crate::output::{OutputFormat, Redactor, Reporter};
use crate::provider::{Cloud, ProviderError, aws, local};
use crate::runbook::{AssumeYes, Confirm, NoOneToAsk};

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
}

impl CommandError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CommandError::Usage(_) | CommandError::Config(_) => 2,
            CommandError::Failed(_) => 3,
            CommandError::NeedsAttention(_) => 5,
        }
    }
}

impl From<ProviderError> for CommandError {
    fn from(e: ProviderError) -> Self {
        match e {
            ProviderError::AccessDenied(_) => CommandError::Usage(e.to_string()),
            _ => CommandError::Failed(e.to_string()),
        }
    }
}

pub type CmdResult = Result<i32, CommandError>;

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
                aws::check_credentials(&sdk).await.map_err(CommandError::Usage)?;
                let (cloud, _) = aws::cloud(env, &sdk).await.map_err(|e| match e {
                    ProviderError::Rejected(m) | ProviderError::AccessDenied(m) => CommandError::Usage(m),
                    other => other.into(),
                })?;
                Ok(cloud)
            }
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

    pub fn json(&self) -> bool {
        self.output == OutputFormat::Json
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

/// Print a JSON document on stdout.
pub fn print_json<T: serde::Serialize>(value: &T, redactor: &Redactor) {
    if let Ok(text) = serde_json::to_string_pretty(value) {
        stdout_line(&redactor.clean_json(&text));
    }
}

/// One line of a command's result on stdout. A closed pipe (`ferry ... | head`)
/// ends the output quietly instead of panicking.
pub fn stdout_line(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{line}").is_err() {
        std::process::exit(0);
    }
}

/// `stdout_line` with format arguments.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => { $crate::commands::stdout_line(&format!($($arg)*)) };
}

/// Run a parsed command line; returns the process exit code.
pub async fn run(cli: Cli) -> i32 {
    let Cli { config, output, yes, verbose, quiet, profile, region, command } = cli;
    let aws = aws::AwsOptions { profile, region };
    let result = async {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        let env_var = std::env::var("FERRY_CONFIG").ok();
        let path = config::locate(config.as_deref(), env_var.as_deref(), &cwd)?;
        let config = config::load(&path)?;
        let ctx = Context { config, aws, output, yes, verbose, quiet };
        dispatch(&ctx, command).await
    }
    .await;
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

async fn dispatch(ctx: &Context, command: Command) -> CmdResult {
    match command {
        Command::Deploy(a) => runs::deploy(ctx, a).await,
        Command::Migrate(a) => runs::migrate(ctx, a).await,
        Command::Restore(a) => runs::restore(ctx, a).await,
        Command::Resume(a) => runs::resume(ctx, &a.run_id).await,
        Command::Plan(a) => inspect::plan(ctx, &a.env, a.image.as_deref()).await,
        Command::Status(a) => inspect::status(ctx, &a.env).await,
        Command::Service(c) => service::run(ctx, c).await,
        Command::Logs(a) => inspect::logs(ctx, a).await,
        Command::Runs(c) => inspect::runs(ctx, c),
        Command::Config(crate::cli::ConfigCommand::Validate) => inspect::validate(ctx),
        Command::Snapshot(c) => snapshots::run(ctx, c).await,
        Command::Db(c) => db::run(ctx, c).await,
        Command::Check(a) => migrations::check(ctx, &a.env).await,
        Command::Doctor(a) => migrations::doctor(ctx, a).await,
        Command::TaskSupervisor(_) => Err(CommandError::Usage("__task-supervisor is internal".into())),
    }
}
