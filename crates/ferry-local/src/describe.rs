//! The local provider's words for a plan: the migration as a local process,
//! the database a SQLite file or a PostgreSQL database, no app service.

use ferry_core::config::{DatabaseConfig, DbUrl, EnvConfig};
use ferry_core::output::shell;
use ferry_core::provider::{Describe, RehearsalWords};
use ferry_core::provider::{NO_MIGRATION_RUNNING, task_watch_lines};

/// How a PostgreSQL clone's locks are observed during a rehearsal (also the
/// AWS provider's, whose Aurora PostgreSQL clone ferry reaches the same way).
pub const LOCK_SAMPLING: &str = "sample pg_locks and pg_stat_activity on the clone every 250ms: per table the \
     strongest lock held and for how long, lock waits, the longest statement";

/// [`Describe`] for `provider = "local"`.
pub struct LocalWords;

impl Describe for LocalWords {
    fn runner_checks(&self, _env: &EnvConfig, _restoring: bool) -> Vec<String> {
        vec![NO_MIGRATION_RUNNING.into()]
    }

    fn service_check(&self, _env: &EnvConfig, _restoring: bool) -> Option<String> {
        None
    }

    fn service_name(&self) -> &'static str {
        "the service"
    }

    fn migration(&self, env: &EnvConfig) -> Vec<String> {
        let mut lines = vec![format!("run `{}` locally with DATABASE_URL set", shell::join(&env.migration.command))];
        lines.extend(task_watch_lines(env));
        lines
    }

    fn rehearsal(&self, env: &EnvConfig) -> RehearsalWords {
        let sqlite = matches!(env.database, DatabaseConfig::Url(DbUrl::Sqlite(_)));
        let copy = if sqlite {
            "copy the database file with SQLite's online backup to <stem>-rehearsal-<run hex>.<ext>, marked with the run"
        } else {
            "CREATE DATABASE <db>-rehearsal-<run hex> TEMPLATE <db> (a pg_dump copy when sessions are connected), \
             marked with the run"
        };
        RehearsalWords {
            copy: vec![copy.into()],
            locks: if sqlite {
                "locks are not observed: SQLite has no lock table (a writer locks the whole file)".into()
            } else {
                LOCK_SAMPLING.into()
            },
            reached: ", with DATABASE_URL set to the clone".into(),
            cleanup:
                "stop the rehearsal's migration if it still runs, then delete the clone (only one marked with this \
                      run); always, also after a failure or Ctrl-C; a clone that cannot be deleted is exit 5"
                    .into(),
            has_lock_table: !sqlite,
        }
    }
}
