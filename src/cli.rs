//! The command line, as clap definitions only. Everything here is turned into
//! ferry's own types in `commands/` and `config/`; the runbook never sees clap.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use ferry_core::config::{HumanDuration, RestoreStrategy};
use ferry_core::output::OutputFormat;

/// `--output`, as clap reads it (the core's [`OutputFormat`] knows no clap).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputArg {
    Human,
    Json,
}

impl From<OutputArg> for OutputFormat {
    fn from(a: OutputArg) -> Self {
        match a {
            OutputArg::Human => OutputFormat::Human,
            OutputArg::Json => OutputFormat::Json,
        }
    }
}

/// `--strategy`, as clap reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StrategyArg {
    Rename,
    NewCluster,
}

impl From<StrategyArg> for RestoreStrategy {
    fn from(a: StrategyArg) -> Self {
        match a {
            StrategyArg::Rename => RestoreStrategy::Rename,
            StrategyArg::NewCluster => RestoreStrategy::NewCluster,
        }
    }
}

/// Where this version's docs are: the release tag's tree, which exists for
/// every released version (a path in the repository would not be in the
/// release archive).
macro_rules! docs_url {
    ($page:literal) => {
        concat!("https://github.com/ferry-dev/ferry/blob/v", env!("CARGO_PKG_VERSION"), "/docs/", $page)
    };
}

/// A command's `--help` pointer to its page.
macro_rules! docs {
    ($command:literal) => {
        concat!("Docs: ", docs_url!("commands/"), $command, ".md")
    };
}

/// The start of every docs address `--help` prints (tests read it).
pub const DOCS_BASE: &str = docs_url!("");

const AFTER_HELP: &str =
    concat!(ferry_core::exit_codes_help!(), "\nEach command is documented at ", docs_url!("commands/README.md"), ".");

/// `ferry --version`: the version, the commit and date it was built from
/// (`unknown` without git), and the target it was built for. `-V` prints the
/// version alone.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("FERRY_VERSION_COMMIT"),
    ", built ",
    env!("FERRY_VERSION_DATE"),
    ", ",
    env!("FERRY_VERSION_TARGET"),
    ")"
);

#[derive(Debug, Parser)]
#[command(name = "ferry", version, long_version = LONG_VERSION, about = "Snapshot, migrate, stream logs, and restore on failure", after_help = AFTER_HELP)]
pub struct Cli {
    /// Path to ferry.toml (default: FERRY_CONFIG, then ferry.toml in this directory or a parent)
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// human: progress on stderr; json: also the run record on stdout
    #[arg(long, global = true, value_enum, default_value = "human")]
    pub output: OutputArg,

    /// Answer yes to confirmations (needed for confirm = true environments without a TTY)
    #[arg(long, short = 'y', global = true)]
    pub yes: bool,

    /// AWS named profile (default: the standard credential chain)
    #[arg(long, global = true, value_name = "NAME", value_parser = profile_name)]
    pub profile: Option<String>,

    /// AWS region (default: the environment's `region`, then AWS_REGION / the profile)
    #[arg(long, global = true, value_name = "REGION", value_parser = region_name)]
    pub region: Option<String>,

    /// More detail: the config used, and every poll of a wait instead of changes only
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Only warnings, errors and the final summary on stderr (results still go to stdout)
    #[arg(long, short = 'q', global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Full runbook: preflight, snapshot, migrate, verify, restore on failure
    #[command(after_help = docs!("deploy"))]
    Deploy(DeployArgs),
    /// Show the resolved config and the steps deploy would run; changes nothing
    #[command(after_help = docs!("plan"))]
    Plan(PlanArgs),
    /// Create, list, wait for, delete and prune snapshots
    #[command(subcommand, after_help = docs!("snapshot"))]
    Snapshot(SnapshotCommand),
    /// Snapshot, then run only the migration and stream its logs; no verify, no restore
    #[command(after_help = docs!("migrate"))]
    Migrate(MigrateArgs),
    /// Restore the environment's database from a snapshot
    #[command(after_help = docs!("restore"))]
    Restore(RestoreArgs),
    /// Run the migration on a clone of the database and report its time and locks; changes nothing
    #[command(after_help = docs!("rehearse"))]
    Rehearse(RehearseArgs),
    /// Show a migration task's logs
    #[command(after_help = docs!("logs"))]
    Logs(LogsArgs),
    /// The App Runner service: status, pause, resume
    #[command(subcommand, after_help = docs!("service"))]
    Service(ServiceCommand),
    /// Database, newest snapshots, running migration tasks, App Runner service, last run
    #[command(after_help = docs!("status"))]
    Status(EnvArg),
    /// Past runs from the journal
    #[command(subcommand, after_help = docs!("runs"))]
    Runs(RunsCommand),
    /// Remove an environment's lock whose holder is gone (killed, machine lost); recorded
    #[command(after_help = docs!("unlock"))]
    Unlock(UnlockArgs),
    /// Continue an interrupted run from its journal
    #[command(after_help = docs!("resume"))]
    Resume(ResumeArgs),
    /// Check ferry.toml without touching anything
    #[command(subcommand, after_help = docs!("config"))]
    Config(ConfigCommand),
    /// Are the database's applied migrations the Alembic heads? 0 yes, 3 no (pending listed); read-only
    #[command(after_help = docs!("check"))]
    Check(EnvArg),
    /// Locks, blocked queries, long transactions and replica lag that would block a migration; read-only
    #[command(after_help = docs!("doctor"))]
    Doctor(DoctorArgs),
    /// Run SQL against a local-provider database (seed data, inspect, repair)
    #[command(subcommand, after_help = docs!("db"))]
    Db(DbCommand),
    /// Print a shell completion script on stdout (bash, zsh, fish, powershell, elvish)
    #[command(after_help = docs!("completions"))]
    Completions(CompletionsArgs),
    /// Write ferry's man pages: ferry.1 and one page per subcommand
    #[command(after_help = docs!("completions"))]
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct EnvArg {
    /// The environment: an [env.NAME] table of ferry.toml
    pub env: String,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The environment: an [env.NAME] table of ferry.toml
    pub env: String,
    /// Skip the pre-deploy snapshot (refused for confirm = true environments)
    #[arg(long)]
    pub no_snapshot: bool,
    /// Do not restore when the migration fails; exit 5 with the restore command
    #[arg(long)]
    pub no_restore: bool,
    /// Snapshot and migrate even when the database is already at the Alembic heads
    #[arg(long)]
    pub force: bool,
    /// Run this image in the migration container instead of the pinned one (default: FERRY_IMAGE, then migration.image)
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
}

#[derive(Debug, Args)]
pub struct RehearseArgs {
    /// Environment name ([env.NAME] in ferry.toml)
    pub env: String,
    /// Keep the clone for inspection (it is deleted otherwise); ferry says how to remove it
    #[arg(long)]
    pub keep_clone: bool,
    /// Rehearse the migration with this image (default: FERRY_IMAGE, then migration.image)
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The environment: an [env.NAME] table of ferry.toml
    pub env: String,
    /// Show the deploy of this image in the migration container (default: FERRY_IMAGE, then migration.image)
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The environment: an [env.NAME] table of ferry.toml
    pub env: String,
    /// Report queries running and transactions open longer than this (e.g. 30s, 5m)
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = HumanDuration::parse)]
    pub threshold: HumanDuration,
    /// Report replicas trailing by more than this
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = HumanDuration::parse)]
    pub lag_threshold: HumanDuration,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The environment: an [env.NAME] table of ferry.toml
    pub env: String,
    /// Skip the snapshot (refused for confirm = true environments)
    #[arg(long)]
    pub no_snapshot: bool,
    /// Snapshot and migrate even when the database is already at the Alembic heads
    #[arg(long)]
    pub force: bool,
    /// Run this image in the migration container instead of the pinned one (default: FERRY_IMAGE, then migration.image)
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Take a snapshot of the environment's database
    #[command(after_help = docs!("snapshot"))]
    Create {
        /// The environment: an [env.NAME] table of ferry.toml
        env: String,
        /// Wait until it is available
        #[arg(long)]
        wait: bool,
        /// Snapshot id (default: <snapshot_prefix>-<yyyymmdd-hhmmss>)
        #[arg(long)]
        id: Option<String>,
    },
    /// List the database's snapshots, newest first
    #[command(after_help = docs!("snapshot"))]
    List {
        /// The environment: an [env.NAME] table of ferry.toml
        env: String,
        /// Every snapshot the platform keeps of the database (automated backups
        /// beside manual and ferry's), with its type; `snapshot prune` still
        /// touches only ferry's own
        #[arg(long)]
        all: bool,
    },
    /// Wait until a snapshot is available
    #[command(after_help = docs!("snapshot"))]
    Wait {
        /// The environment: an [env.NAME] table of ferry.toml
        env: String,
        /// The snapshot id
        id: String,
    },
    /// Delete one snapshot
    #[command(after_help = docs!("snapshot"))]
    Delete {
        /// The environment: an [env.NAME] table of ferry.toml
        env: String,
        /// The snapshot id
        id: String,
    },
    /// Delete ferry's pre-deploy snapshots of this environment beyond the newest N
    #[command(after_help = docs!("snapshot"))]
    Prune {
        /// The environment: an [env.NAME] table of ferry.toml
        env: String,
        /// How many of the newest pre-deploy snapshots to keep
        #[arg(long)]
        keep: usize,
    },
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The environment: an [env.NAME] table of ferry.toml
    pub env: String,
    /// Snapshot id (ferry's, manual, automated `rds:...`, a shared ARN), or
    /// `latest` for the newest available pre-deploy snapshot ferry took
    #[arg(long, required_unless_present_any = ["finish", "to_time", "before_run"])]
    pub snapshot: Option<String>,
    /// Restore the database as it was at this time: RFC 3339
    /// (2026-12-07T14:02:00Z) or a duration ago (45m, 2h)
    #[arg(long, value_name = "TIME", conflicts_with_all = ["snapshot", "before_run"])]
    pub to_time: Option<String>,
    /// Restore the snapshot that this run took before its migration
    #[arg(long, value_name = "RUN_ID", conflicts_with = "snapshot")]
    pub before_run: Option<String>,
    /// rename: the restored database takes the original name; new-cluster: it keeps a new one
    #[arg(long, value_enum)]
    pub strategy: Option<StrategyArg>,
    /// Complete a restore that stopped before or during its rename swap, from
    /// what the cloud shows (no run record needed): `ferry status ENV` says when
    #[arg(long, conflicts_with_all = ["snapshot", "strategy", "to_time", "before_run"])]
    pub finish: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The environment: an [env.NAME] table of ferry.toml
    pub env: String,
    /// Keep printing new lines until the task stops
    #[arg(long)]
    pub follow: bool,
    /// Only lines newer than this (e.g. 10m, 2h)
    #[arg(long, value_name = "DURATION")]
    pub since: Option<String>,
    /// The task of this run (default: the newest run of the environment)
    #[arg(long, value_name = "RUN_ID", conflicts_with = "task")]
    pub run: Option<String>,
    /// A task: the run id on the local provider, the task ARN on AWS
    #[arg(long, value_name = "TASK_ID")]
    pub task: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// The service's status
    #[command(after_help = docs!("service"))]
    Status {
        /// The environment: an [env.NAME] table of ferry.toml
        env: String,
    },
    /// Pause the service and wait until it is paused
    #[command(after_help = docs!("service"))]
    Pause {
        /// The environment: an [env.NAME] table of ferry.toml
        env: String,
    },
    /// Resume the service and wait until it is running
    #[command(after_help = docs!("service"))]
    Resume {
        /// The environment: an [env.NAME] table of ferry.toml
        env: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// Runs, newest first; journals that cannot be read are listed too
    #[command(after_help = docs!("runs"))]
    List {
        /// Only this environment's runs
        #[arg(long, value_name = "ENV")]
        env: Option<String>,
        /// Only runs started since then: a duration back from now (90m, 7d) or an RFC 3339 time
        #[arg(long, value_name = "WHEN")]
        since: Option<String>,
    },
    /// One run's record
    #[command(after_help = docs!("runs"))]
    Show {
        /// The run: its id as `ferry runs list` shows it (<env>-<yyyymmddThhmmssZ>-<4 hex>)
        run_id: String,
    },
    /// Declare an unfinished run over, with the reason, so it stops blocking its environment
    #[command(after_help = docs!("runs"))]
    Abandon {
        /// The run: its id as `ferry runs list` shows it (<env>-<yyyymmddThhmmssZ>-<4 hex>)
        run_id: String,
        /// Why (recorded in the run, with who and when)
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Args)]
pub struct UnlockArgs {
    /// The environment whose database lock to remove
    pub env: String,
    /// Why (recorded with the removed lock)
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The run: its id as `ferry runs list` shows it (<env>-<yyyymmddThhmmssZ>-<4 hex>)
    pub run_id: String,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Parse and check every environment; offline
    #[command(after_help = docs!("config"))]
    Validate,
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Execute SQL statements; rows of queries are printed tab-separated
    #[command(after_help = docs!("db"))]
    Exec {
        /// The environment: an [env.NAME] table of ferry.toml
        env: String,
        /// A file of SQL statements
        #[arg(long, conflicts_with = "sql", required_unless_present = "sql")]
        file: Option<PathBuf>,
        /// SQL text
        #[arg(long)]
        sql: Option<String>,
        /// Create the SQLite database file if it does not exist yet
        #[arg(long)]
        create: bool,
    },
}

/// `ferry __task-supervisor DIR -- COMMAND...`: how the local provider starts
/// the process that owns a migration so it outlives ferry. Not one of the
/// user's commands: `main` parses it apart when it is the first argument.
#[derive(Debug, Parser)]
#[command(name = "__task-supervisor", hide = true)]
pub struct SupervisorArgs {
    pub dir: PathBuf,
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write every page into this directory (created if missing) and list them on stdout;
    /// without it, print ferry.1 on stdout
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// `--region`: a region code as AWS writes them (`us-east-1`): lower-case
/// letters, digits and hyphens. An empty one would fall through to whatever
/// the environment or the profile says, silently.
fn region_name(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("the region is empty: name one, e.g. --region us-east-1 (or leave the flag out)".into());
    }
    if !s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') || s.starts_with('-') {
        return Err(format!(
            "{s:?} is not an AWS region code (lower-case letters, digits and hyphens, e.g. us-east-1)"
        ));
    }
    Ok(s.to_string())
}

/// `--profile`: a name that can appear in the AWS config file.
fn profile_name(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        return Err("the profile name is empty: name one, or leave --profile out".into());
    }
    if s.chars().any(char::is_control) {
        return Err("the profile name contains a control character".into());
    }
    Ok(s.to_string())
}
