//! ferry's exit codes: the one table. A run's code comes from its outcome
//! (`runbook::record::Outcome::exit_code`), a command that ends before a run
//! exists from its error (`CommandError::exit_code` in the binary), and both
//! take the numbers from here; `--help` prints [`HELP`].

/// The command did what it was asked.
pub const SUCCEEDED: i32 = 0;
/// A bug: ferry panicked (the run's journal, if any, says how far it got).
pub const INTERNAL: i32 = 1;
/// Bad input or configuration, missing credentials: nothing was touched.
pub const USAGE: i32 = 2;
/// Failed or refused before changing anything; also a migration that failed
/// on a lock timeout with proof that it changed nothing (`nothing_changed`:
/// not restored, the snapshot kept).
pub const REFUSED: i32 = 3;
/// The migration failed and the database was restored from its snapshot.
pub const RESTORED: i32 = 4;
/// Failed after a change: a person must look (`state:` and `next:` say what).
pub const NEEDS_ATTENTION: i32 = 5;
/// Stopped by a signal; `ferry resume` continues it.
pub const INTERRUPTED: i32 = 130;

/// The table as `--help` shows it (a macro, so the binary can `concat!` it).
#[macro_export]
macro_rules! exit_codes_help {
    () => {
        "Exit codes: 0 succeeded, 2 usage or configuration error (nothing touched), 3 failed before any change (or the migration \
         failed on a lock timeout and provably changed nothing: not restored), \
         4 migration failed and the database was restored, 5 failed and needs a human, 130 interrupted (ferry \
         resume continues it)."
    };
}

pub const HELP: &str = exit_codes_help!();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_help_names_every_code_ferry_exits_with_on_purpose() {
        for code in [SUCCEEDED, USAGE, REFUSED, RESTORED, NEEDS_ATTENTION, INTERRUPTED] {
            assert!(HELP.contains(&format!(" {code} ")), "{code} missing from: {HELP}");
        }
    }
}
