//! `ferry completions <shell>` and `ferry man`: generated from the clap
//! definitions, so they always match `--help`. Neither needs a ferry.toml.

use std::io::Write;
use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;

use super::{CmdResult, CommandError};
use crate::cli::{Cli, Command};

/// The commands that run without a ferry.toml; `None` for every other one.
pub fn without_config(command: &Command) -> Option<CmdResult> {
    match command {
        Command::Completions(a) => Some(completions(a.shell)),
        Command::Man(a) => Some(man(a.dir.as_deref())),
        _ => None,
    }
}

/// The completion script for `shell`, on stdout.
pub fn completions(shell: Shell) -> CmdResult {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut visible(Cli::command()), "ferry", &mut script);
    write_stdout(&script)?;
    Ok(0)
}

/// `cmd` without its hidden subcommands, which some shells' generators would
/// offer (clap has no way to remove a subcommand, so this copies the rest).
fn visible(cmd: clap::Command) -> clap::Command {
    let mut out = clap::Command::new("ferry")
        .version(env!("CARGO_PKG_VERSION"))
        .args(cmd.get_arguments().cloned())
        .subcommands(cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned())
        .subcommand_required(cmd.is_subcommand_required_set());
    if let Some(about) = cmd.get_about() {
        out = out.about(about.clone());
    }
    out
}

/// With `dir`: every page into it, their paths on stdout. Without: ferry.1 on stdout.
pub fn man(dir: Option<&Path>) -> CmdResult {
    let pages = pages();
    let Some(dir) = dir else {
        let mut page = Vec::new();
        // Rendering into memory cannot fail.
        let _ = pages[0].render(&mut page);
        write_stdout(&page)?;
        return Ok(0);
    };
    let cannot = |e: std::io::Error| {
        CommandError::Usage(format!("cannot write the man pages to {}: {e}; pass a writable --dir", dir.display()))
    };
    std::fs::create_dir_all(dir).map_err(cannot)?;
    let mut written = Vec::new();
    for page in &pages {
        written.push(page.generate_to(dir).map_err(cannot)?);
    }
    for path in written {
        crate::outln!("{}", path.display())?;
    }
    Ok(0)
}

/// ferry(1) first, then one page per visible subcommand, depth first
/// (`ferry-snapshot.1`, `ferry-snapshot-create.1`, ...).
fn pages() -> Vec<clap_mangen::Man> {
    fn add(cmd: clap::Command, out: &mut Vec<clap_mangen::Man>) {
        let subcommands: Vec<clap::Command> = cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned().collect();
        let date = env!("FERRY_VERSION_DATE");
        let mut page = clap_mangen::Man::new(cmd).source(format!("ferry {}", env!("CARGO_PKG_VERSION")));
        if date != "unknown" {
            page = page.date(date);
        }
        out.push(page);
        for sub in subcommands {
            add(sub, out);
        }
    }
    let mut root = Cli::command().disable_help_subcommand(true);
    // Names every subcommand's page after its path: ferry-snapshot-create.
    root.build();
    let mut out = Vec::new();
    add(root, &mut out);
    out
}

/// Bytes on stdout; a closed pipe (`ferry completions bash | head`) is
/// [`CommandError::StdoutClosed`], which ends the command quietly.
fn write_stdout(bytes: &[u8]) -> Result<(), CommandError> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes).and_then(|()| out.flush()).map_err(|_| CommandError::StdoutClosed)
}
