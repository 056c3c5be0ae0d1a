use clap::Parser;
use ferry::cli::{Cli, SupervisorArgs};
use ferry_core::exit;
use ferry_local::process::{SUPERVISOR_COMMAND, supervise};

fn main() {
    // A panic is a bug: say so and exit 1, the exit code ARCHITECTURE.md gives it.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        eprintln!("error: internal error in ferry (a bug); the run's journal, if any, is in .ferry/runs/");
        std::process::exit(exit::INTERNAL);
    }));
    ferry_core::state::private_umask();
    // The local task supervisor runs without config or async runtime.
    if std::env::args_os().nth(1).is_some_and(|a| a == SUPERVISOR_COMMAND) {
        let a = SupervisorArgs::parse_from(std::env::args_os().skip(1));
        std::process::exit(supervise(&a.dir, &a.command));
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Usage errors exit 2 (clap's own convention too); --help and --version 0.
            let _ = e.print();
            std::process::exit(if e.use_stderr() { exit::USAGE } else { exit::SUCCEEDED });
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(exit::INTERNAL);
        }
    };
    let code = runtime.block_on(ferry::commands::run(cli));
    // Do not wait for blocking work left behind by an interrupted run.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    std::process::exit(code);
}
