//! Output conventions through the real executable: `--quiet`, escape codes only
//! on a terminal that takes them (stderr a terminal, `TERM` set and not `dumb`,
//! `NO_COLOR` unset), and under GitHub Actions a signal closes the log group
//! before the summary. Terminals are real: a pseudo-terminal from util-linux
//! `script(1)`.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{self, FERRY, Project, eventually};

/// A migration that prints, then takes long enough for a few progress updates.
const SLOW: &str = "echo 'migrating: step 1'\nsleep 3\necho 'migrating: step 2'\n";

#[test]
fn quiet_keeps_only_warnings_errors_and_the_summary() {
    let p = Project::sqlite(SLOW, "");
    let r = p.ferry(&["deploy", "local", "--quiet"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("ferry deploy local succeeded (exit 0)"), "the summary: {r:?}");
    assert!(r.stderr.contains("  run:"), "{r:?}");
    for noise in ["==> preflight", "migrating: step 1", "task local", "(run "] {
        assert!(!r.stderr.contains(noise), "{noise:?} under --quiet: {r:?}");
    }

    let failing = Project::sqlite("echo 'about to fail'\nexit 3\n", "restore_on_failure = \"never\"");
    let r = failing.ferry(&["-q", "deploy", "local"]);
    assert_eq!(r.code, 5, "{r:?}");
    assert!(r.stderr.contains("!!! migrate failed: the migration exited with code 3"), "errors stay: {r:?}");
    assert!(r.stderr.contains("ferry deploy local failed and needs attention (exit 5)"), "{r:?}");
    assert!(r.stderr.contains("next:"), "the next command stays: {r:?}");
    assert!(!r.stderr.contains("about to fail"), "{r:?}");

    let both = p.ferry(&["deploy", "local", "--quiet", "-v"]);
    assert_eq!(both.code, 2, "--quiet and --verbose contradict: {both:?}");
}

/// What `ferry deploy local` writes to a pseudo-terminal, with these variables.
fn on_a_terminal(p: &Project, vars: &[(&str, Option<&str>)]) -> Option<String> {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: script(1) from util-linux is not installed");
        return None;
    }
    let line = format!("'{FERRY}' deploy local");
    let mut c = Command::new("script");
    c.args(["-qec", &line, "/dev/null"]).current_dir(p.path()).stdin(Stdio::null());
    for k in ["FERRY_CONFIG", "FERRY_IMAGE", "GITHUB_ACTIONS", "NO_COLOR", "TERM"] {
        c.env_remove(k);
    }
    for (k, v) in vars {
        if let Some(v) = v {
            c.env(k, v);
        }
    }
    let out = c.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn escape_codes_only_on_a_terminal_with_a_real_term_and_no_no_color() {
    let p = Project::sqlite(SLOW, "");
    let Some(fancy) = on_a_terminal(&p, &[("TERM", Some("xterm-256color"))]) else { return };
    assert!(fancy.contains("\x1b[2K"), "a terminal with TERM=xterm gets the spinner: {fancy:?}");
    assert!(fancy.contains("succeeded (exit 0)"), "{fancy:?}");

    for vars in [
        vec![("TERM", Some("dumb"))],
        vec![("TERM", None)],
        vec![("TERM", Some("xterm-256color")), ("NO_COLOR", Some("1"))],
    ] {
        let plain = on_a_terminal(&p, &vars).unwrap();
        assert!(!plain.contains('\x1b'), "{vars:?}: no escape codes: {plain:?}");
        assert!(plain.contains("migrating: step 2") && plain.contains("succeeded (exit 0)"), "{vars:?}: {plain:?}");
    }

    // Not a terminal at all (a pipe), whatever TERM says.
    let r = p.run(["deploy", "local"]).env("TERM", "xterm-256color").expect_exit(0);
    assert!(!r.stderr.contains('\x1b'), "{r:?}");
}

#[test]
fn a_signal_under_github_actions_closes_the_log_group_before_the_summary() {
    for signal in [nix::sys::signal::Signal::SIGTERM, nix::sys::signal::Signal::SIGINT] {
        // The migration runs until the test lets it finish.
        let p = Project::sqlite(
            "echo 'migration started'\ni=0\nwhile [ ! -f finish ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done\n",
            "",
        );
        let summary = p.path().join("summary.md");
        let mut child = p
            .command(&["deploy", "local"])
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_STEP_SUMMARY", &summary)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut all = String::new();
            let _ = stderr.read_to_string(&mut all);
            all
        });
        let started = Instant::now();
        assert!(
            eventually(Duration::from_secs(20), || task_recorded(&p) && started.elapsed() > Duration::from_secs(2)),
            "the migration is running, its logs grouped"
        );
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
        let status = child.wait().unwrap();
        let err = reader.join().unwrap();
        assert_eq!(status.code(), Some(130), "{signal}: {err}");
        let group = err.find("::group::migration logs").unwrap_or_else(|| panic!("{signal}: group opened: {err}"));
        let logged = err.find("migration started").unwrap_or_else(|| panic!("{signal}: the task's log: {err}"));
        let end = err.find("::endgroup::").unwrap_or_else(|| panic!("{signal}: the group is closed: {err}"));
        let warned = err.find("interrupted: recording").unwrap();
        let summary_at = err.find("ferry deploy local was interrupted (exit 130)").unwrap();
        assert!(group < logged && logged < end, "{signal}: {err}");
        assert!(
            end < warned && warned < summary_at,
            "{signal}: the group closes before the warning and summary: {err}"
        );
        assert_eq!(err.matches("::endgroup::").count(), 1, "{signal}: {err}");
        let md = std::fs::read_to_string(&summary).unwrap();
        assert!(md.contains("was interrupted (exit 130)"), "{md}");
        // Let the migration end, and the run finish.
        std::fs::write(p.path().join("finish"), "").unwrap();
        let run_id = p.only_run()["run_id"].as_str().unwrap().to_string();
        let r = p.ferry(&["resume", &run_id]);
        assert_eq!(r.code, 0, "{signal}: {r:?}");
    }
}

/// Whether the run's journal (read as it is being written) names its task yet.
fn task_recorded(p: &Project) -> bool {
    let Ok(dir) = std::fs::read_dir(p.runs_dir()) else { return false };
    dir.filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter_map(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .any(|run| run["task"]["arn"].is_string())
}

#[test]
fn the_quiet_flag_is_documented_with_the_global_flags() {
    let help = Command::new(FERRY).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("-q, --quiet"), "{text}");
    let docs = std::fs::read_to_string(common::emulator::repo().join("docs/commands/README.md")).unwrap();
    assert!(docs.contains("--quiet"), "docs/commands/README.md lists --quiet");
}

/// Every `YYYY-MM-DD...` time in `text`, as printed (up to the next space or bracket).
fn times(text: &str) -> Vec<String> {
    let b = text.as_bytes();
    let digits = |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    let mut out = Vec::new();
    for i in 0..b.len() {
        let starts = (i == 0 || !b[i - 1].is_ascii_alphanumeric())
            && digits(i..i + 4)
            && b.get(i + 4) == Some(&b'-')
            && digits(i + 5..i + 7)
            && b.get(i + 7) == Some(&b'-')
            && digits(i + 8..i + 10);
        if starts {
            let rest = &text[i..];
            let end = rest
                .find(|c: char| c.is_whitespace() || matches!(c, ',' | ')' | '(' | '|' | '`'))
                .unwrap_or(rest.len());
            let token = &rest[..end];
            // A following " UTC" or " HH:MM" is part of the time as a person reads it.
            let next = rest[end..].split_whitespace().next().unwrap_or("");
            let glued = next == "UTC" || (next.len() >= 5 && next.as_bytes()[2] == b':');
            out.push(if glued { format!("{token} {next}") } else { token.to_string() });
        }
    }
    out
}

#[test]
fn every_time_shown_to_a_person_is_rfc3339_utc_whole_seconds_and_lists_have_headers() {
    let p = Project::sqlite("echo 'migrating'\n", "");
    let mut shown = String::new();
    for args in [
        &["deploy", "local"][..],
        &["snapshot", "create", "local", "--id", "manual-1"],
        &["snapshot", "list", "local"],
        &["restore", "local", "--snapshot", "latest", "--yes"],
        &["runs", "list"],
        &["status", "local"],
    ] {
        let r = p.ferry(args);
        assert_eq!(r.code, 0, "{args:?}: {r:?}");
        if args[..2] == ["snapshot", "list"] {
            let header: Vec<&str> = r.stdout.lines().next().unwrap().split_whitespace().collect();
            assert_eq!(header, ["SNAPSHOT", "TYPE", "STATUS", "DONE", "CREATED", "PURPOSE", "RUN"], "{r:?}");
            assert_eq!(r.stdout.lines().count(), 3, "a header and two snapshots: {r:?}");
        }
        if args == ["runs", "list"] {
            assert!(r.stdout.starts_with("RUN "), "{r:?}");
        }
        shown.push_str(&r.stdout);
        shown.push_str(&r.stderr);
    }
    let found = times(&shown);
    assert!(found.len() > 10, "{shown}");
    for t in &found {
        let ok = t.len() == 20 && t.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(t).is_ok();
        assert!(ok, "{t:?} is not RFC 3339, UTC, whole seconds:\n{shown}");
    }
    // The one exception: the log lines of `ferry logs` keep their milliseconds.
    let logs = p.ferry(&["logs", "local"]);
    let line = logs.stdout.lines().next().unwrap_or_default();
    assert!(line.split(' ').next().is_some_and(|t| t.len() == 24 && t.ends_with('Z')), "{logs:?}");
}

#[test]
fn a_command_ferry_prints_to_paste_comes_back_as_the_same_words() {
    let p = Project::sqlite("true\n", r#"migration = { command = ["sh", "-c", "echo \"it's $0\"", "my arg"] }"#);
    let plan = p.ferry(&["plan", "local"]);
    assert_eq!(plan.code, 0, "{plan:?}");
    let line = plan.stdout.lines().find(|l| l.contains("locally with DATABASE_URL")).unwrap();
    let pasted = line.split('`').nth(1).unwrap();
    let out = Command::new("sh").args(["-c", &format!("printf '%s\\n' {pasted}")]).output().unwrap();
    let words: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(String::from).collect();
    assert_eq!(words, ["sh", "-c", "echo \"it's $0\"", "my arg"], "{line}");
}

/// A command of `p` under GitHub Actions, its step summary written to `summary`.
fn on_github(p: &Project, args: &[&str], summary: &std::path::Path) -> common::Invocation {
    p.run(args.iter().copied())
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", summary)
        .env("GITHUB_SERVER_URL", "https://github.example")
        .env("GITHUB_REPOSITORY", "acme/app")
        .env("GITHUB_RUN_ID", "42")
}

#[test]
fn the_step_summary_of_a_failed_deploy_shows_the_failing_lines_the_durations_and_a_gantt() {
    // 25 lines, the last ones the error, one of them with the secret.
    let script = "i=1\nwhile [ $i -le 25 ]; do echo \"line $i\"; i=$((i+1)); done\n\
                  echo 'ERROR: relation \"users\" already exists (token Pw-S3cr3t)'\nexit 1\n";
    let p = Project::sqlite(
        script,
        "migration = { command = [\"sh\", \"migrate.sh\"], env = { TOKEN = { value = \"Pw-S3cr3t\", secret = true } } }",
    );
    let summary = p.path().join("summary.md");
    let r = on_github(&p, &["deploy", "local"], &summary).expect_exit(4);
    assert!(r.stderr.contains("::error title=ferry migrate::"), "{r:?}");
    let md = std::fs::read_to_string(&summary).unwrap();
    let run_id = p.only_run()["run_id"].as_str().unwrap().to_string();
    assert!(md.starts_with("### ferry deploy local failed; the database was restored from the snapshot (exit 4)\n"));
    assert!(md.contains(&format!("run `{run_id}`")), "{md}");
    // One row per step, with its start and duration.
    for step in ["preflight", "snapshot", "migrate", "restore"] {
        let row = md.lines().find(|l| l.starts_with(&format!("| {step} |"))).unwrap_or_else(|| panic!("{step}: {md}"));
        let cells: Vec<&str> = row.split(" | ").collect();
        assert!(chrono::DateTime::parse_from_rfc3339(cells[2]).is_ok(), "{step} started: {row}");
        assert!(cells[3].ends_with('s'), "{step} took: {row}");
    }
    assert!(md.contains("| migrate | FAILED |"), "{md}");
    // The gantt: one task per step that ran, the failed one critical.
    let gantt = md.split("```mermaid\n").nth(1).expect("a mermaid block").split("```").next().unwrap();
    assert!(gantt.starts_with("gantt\n    dateFormat YYYY-MM-DD HH:mm:ss\n"), "{gantt}");
    assert!(gantt.lines().any(|l| l.trim_start().starts_with("migrate :crit, ")), "{gantt}");
    assert!(gantt.lines().any(|l| l.trim_start().starts_with("snapshot :done, ")), "{gantt}");
    assert!(gantt.lines().any(|l| l.trim_start().starts_with("restore :done, ")), "{gantt}");
    assert!(!gantt.contains("verify"), "a skipped step has no bar: {gantt}");
    // The last 20 lines, redacted.
    let tail =
        md.split("The migration's last 20 lines:\n\n```text\n").nth(1).expect("the last lines").split("```").next();
    let tail: Vec<&str> = tail.unwrap().lines().collect();
    assert_eq!(tail.len(), 20, "{md}");
    assert_eq!(tail[0], "line 7", "{md}");
    assert_eq!(tail[19], "ERROR: relation \"users\" already exists (token ***)", "{md}");
    assert!(!md.contains("S3cr3t"), "{md}");
    // The decision and why, the next step, the links.
    assert!(
        md.contains("- state: ") && md.contains("- ci: [the CI run](https://github.example/acme/app/actions/runs/42)")
    );
    // The record keeps them: `runs show` prints them too.
    assert_eq!(p.only_run()["log_tail"].as_array().map(Vec::len), Some(20));
    let shown = p.run(["runs", "show", &run_id]).expect_exit(0);
    assert!(shown.stdout.contains("  | ERROR: relation \"users\" already exists (token ***)"), "{shown:?}");
}

#[test]
fn every_exit_3_refusal_writes_the_step_summary_and_an_error_annotation() {
    let p = Project::sqlite("touch started\nsleep 30\n", "");
    // A deploy killed in its migration leaves its lock and an unfinished run.
    let mut child = p.command(&["deploy", "local"]).stderr(Stdio::null()).spawn().unwrap();
    assert!(eventually(Duration::from_secs(20), || p.path().join("started").exists()), "the migration started");
    child.kill().unwrap();
    child.wait().unwrap();
    let run_id = p.only_run()["run_id"].as_str().unwrap().to_string();

    let summary = p.path().join("locked.md");
    let r = on_github(&p, &["deploy", "local"], &summary).expect_exit(3);
    let annotation = r.stderr.lines().find(|l| l.starts_with("::error title=ferry deploy local::")).expect("{r:?}");
    assert!(annotation.contains("is locked by `ferry deploy`"), "{annotation}");
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.starts_with("### ferry deploy local was refused before changing anything (exit 3)\n"), "{md}");
    assert!(md.contains("- reason: ") && md.contains(&format!("(run {run_id})")), "{md}");
    assert!(md.contains("actions/runs/42"), "the link to the CI run: {md}");
    // `plan` exits 3 as deploy would, and says why the same way.
    let summary = p.path().join("plan.md");
    let r = on_github(&p, &["plan", "local"], &summary).expect_exit(3);
    assert!(r.stderr.contains("::error title=ferry plan local::") && r.stderr.contains("is locked by"), "{r:?}");
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.starts_with("### ferry plan local was refused before changing anything (exit 3)\n"), "{md}");

    p.run(["unlock", "local", "--yes", "--reason", "runner killed"]).expect_exit(0);
    let summary = p.path().join("unfinished.md");
    let r = on_github(&p, &["deploy", "local"], &summary).expect_exit(3);
    assert!(r.stderr.contains("::error title=ferry deploy local::environment local has an unfinished run"), "{r:?}");
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.starts_with("### ferry deploy local was refused before changing anything (exit 3)\n"), "{md}");
    assert!(md.contains(&format!("unfinished run: {run_id}")) && md.contains("ferry resume"), "{md}");

    // An exit 2 too (a usage error), with its reason.
    let summary = p.path().join("usage.md");
    let r = on_github(&p, &["deploy", "nope"], &summary).expect_exit(2);
    assert!(r.stderr.contains("::error title=ferry deploy nope::"), "{r:?}");
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.contains("(exit 2)") && md.contains("unknown environment"), "{md}");
}

#[test]
fn at_80_columns_no_progress_redraw_is_wider_than_the_terminal() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: script(1) from util-linux is not installed");
        return;
    }
    // The tty's own width, then COLUMNS over a wider tty.
    for (stty_cols, columns, width) in [(80, None, 80), (200, Some("60"), 60)] {
        redraws_fit(stty_cols, columns, width);
    }
}

/// A deploy at a pty `stty_cols` wide (with `COLUMNS` when given): no redraw
/// wider than `width`, the long task id shortened, its whole line kept once.
fn redraws_fit(stty_cols: u16, columns: Option<&str>, width: usize) {
    // A long environment name makes a long task id, hence a long progress line.
    let env = "staging-eu-west-1-payments-ledger-and-settlements-blue";
    let p = Project::new(&format!(
        "project = \"t\"\n[env.{env}]\nprovider = \"local\"\ndatabase = {{ url = \"sqlite://./app.db\" }}\nmigration = {{ command = [\"sh\", \"migrate.sh\"] }}\nsnapshot_prefix = \"snap\"\n"
    ));
    p.write("migrate.sh", SLOW);
    let created = p.ferry(&["db", "exec", env, "--create", "--sql", "CREATE TABLE t (id INTEGER)", "--yes"]);
    assert_eq!(created.code, 0, "{created:?}");
    // COLUMNS set on the command itself: the shell resets it to the tty's width after `stty`.
    let columns_var = columns.map(|c| format!("COLUMNS={c} ")).unwrap_or_default();
    let line = format!("stty cols {stty_cols} rows 24; {columns_var}'{FERRY}' deploy {env}");
    let mut c = Command::new("script");
    c.args(["-qec", &line, "/dev/null"]).current_dir(p.path()).stdin(Stdio::null());
    for k in ["FERRY_CONFIG", "FERRY_IMAGE", "GITHUB_ACTIONS", "NO_COLOR", "COLUMNS", "LINES"] {
        c.env_remove(k);
    }
    c.env("TERM", "xterm-256color");
    let out = c.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("succeeded (exit 0)"), "{text:?}");
    // Every redraw: what follows a clear-line up to the next carriage return
    // (a line ended by a newline, which the pty writes \r\n, stays and may wrap: it is never redrawn).
    let redraws: Vec<&str> = text
        .split("\x1b[2K")
        .skip(1)
        .filter_map(|d| {
            let end = d.find(['\r', '\n']).unwrap_or(d.len());
            let rest = &d[end..];
            (!rest.starts_with('\n') && !rest.starts_with("\r\n")).then(|| &d[..end])
        })
        .collect();
    assert!(redraws.iter().any(|d| d.contains("task staging-")), "the spinner was drawn: {text:?}");
    for d in &redraws {
        assert!(d.chars().count() <= width, "{} columns of {width}: {d:?}", d.chars().count());
    }
    assert!(redraws.iter().any(|d| d.contains('…')), "the task id is shortened in the middle: {redraws:?}");
    // The whole line, once, when the wait ends.
    let task = format!("task {env}-");
    let whole = |state: &str| text.lines().filter(|l| l.contains(&task) && l.contains(state)).count();
    let (pending, running) = (whole(": pending ("), whole(": running ("));
    assert!(pending + running >= 1, "the full line is kept when the wait ends: {text:?}");
    assert!(pending <= 1 && running <= 1, "once per state, not at every interruption: {text:?}");
}
