//! The `command` runner: the migration as a local process, modelled on an ECS task
//! so the runbook treats both alike.
//!
//! Each task lives in `<state_dir>/tasks/<task-id>/` (the task id is the run id,
//! `<run id>-attempt-<n>` for a later attempt of its migration, which makes
//! start idempotent the way RunTask's clientToken does):
//! - `command.json`   what runs (no environment: it may hold secrets)
//! - `supervisor.pid` the supervisor's pid and start time, created exclusively
//! - `child.pid`      the migration process (leader of its own process group);
//!   preallocated (spaces) before it starts, the pid written in place
//! - `output.log`     `<rfc3339> <out|err>[<|>|<>] <text>` as output is produced:
//!   a line longer than [`PIECE_BYTES`] is written as pieces, `>` on a piece
//!   the next one continues, `<` on one that continues the one before, so the
//!   file keeps every byte while no entry (and no buffer) grows without bound
//! - `status.json`    preallocated (spaces, [`STATUS_BYTES`]) before the migration
//!   starts, then written in place once at the end: started, exit code,
//!   reason. A full disk cannot keep the exit code from being recorded.
//! - `stop-reason`    present when ferry asked the task to stop
//!
//! A supervisor that died while the migration runs (the OOM killer) leaves
//! it running unsupervised: [`TaskState::Unsupervised`], which the runbook stops
//! before deciding anything. A migration whose end was recorded nowhere is
//! [`TaskState::Lost`]: its exit code cannot be known, so nothing is restored.
//!
//! A detached supervisor (`ferry`'s hidden `__task-supervisor` command, in its
//! own session) owns the migration process. Ferry can therefore be killed, even
//! with SIGKILL, or the terminal's Ctrl-C can reach ferry, and the migration is
//! not killed halfway: it runs to its end, its exit code is recorded, and
//! `ferry resume` picks it up.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::snapshots::io_err;
use ferry_core::output::Redactor;
use ferry_core::provider::{
    LogCursor, LogEvent, LogPage, LogSource, MigrationRunner, PResult, ProviderError, RunnerProfile, TaskHandle,
    TaskSpec, TaskState, TaskSummary,
};

pub const SUPERVISOR_COMMAND: &str = "__task-supervisor";
/// Names of the environment variables whose values the supervisor masks in the log.
pub const SECRET_VARS: &str = "FERRY_SECRET_VARS";
/// The user's umask, octal: ferry itself runs with 077, the migration with this.
const USER_UMASK: &str = "FERRY_USER_UMASK";
const CONTAINER: &str = "command";
/// How long a task directory may exist without a supervisor before it counts as never launched.
const LAUNCH_GRACE: Duration = Duration::from_secs(30);
/// Most bytes one log read returns.
const PAGE_BYTES: u64 = 256 * 1024;
/// Longest piece of an output line in one log entry: longer lines are split.
pub const PIECE_BYTES: usize = 16 * 1024;
/// Size of the preallocated `status.json`.
pub const STATUS_BYTES: usize = 4096;
/// Size of the preallocated `child.pid`.
const PID_BYTES: usize = 32;

#[derive(Debug, Serialize, Deserialize)]
struct CommandFile {
    run_id: String,
    env: String,
    command: Vec<String>,
    workdir: PathBuf,
    created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StatusFile {
    started: bool,
    exit_code: Option<i32>,
    reason: Option<String>,
    ended_at: DateTime<Utc>,
}

pub struct ProcessRunner {
    tasks_dir: PathBuf,
    workdir: PathBuf,
    env_name: String,
    /// The ferry executable that hosts the supervisor.
    supervisor_exe: PathBuf,
    /// Set for every task of this environment (DATABASE_URL and friends).
    base_env: BTreeMap<String, String>,
    /// Names of secret variables (values masked in the task log).
    secret_vars: Vec<String>,
    /// Supervisors this process launched: each flips to true when it exits.
    exits: std::sync::Mutex<BTreeMap<String, tokio::sync::watch::Receiver<bool>>>,
    /// Tasks this process asked to stop: a second request sends SIGKILL.
    stops: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

impl ProcessRunner {
    pub fn new(
        state_dir: &Path,
        workdir: PathBuf,
        env_name: &str,
        supervisor_exe: PathBuf,
        base_env: BTreeMap<String, String>,
        secret_vars: Vec<String>,
    ) -> Self {
        ProcessRunner {
            tasks_dir: state_dir.join("tasks"),
            workdir,
            env_name: env_name.to_string(),
            supervisor_exe,
            base_env,
            secret_vars,
            exits: std::sync::Mutex::new(BTreeMap::new()),
            stops: std::sync::Mutex::new(std::collections::BTreeSet::new()),
        }
    }

    fn dir(&self, task_id: &str) -> PResult<PathBuf> {
        if task_id.is_empty() || !task_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(ProviderError::Rejected(format!("invalid task id {task_id:?}")));
        }
        Ok(self.tasks_dir.join(task_id))
    }

    fn handle(&self, task_id: &str) -> TaskHandle {
        TaskHandle { id: task_id.to_string(), container: CONTAINER.into(), log_stream: task_id.to_string() }
    }

    fn launch(&self, dir: &Path, spec: &TaskSpec) -> PResult<()> {
        let mut cmd = Command::new(&self.supervisor_exe);
        cmd.arg(SUPERVISOR_COMMAND).arg(dir).arg("--").args(&spec.command);
        cmd.current_dir(&self.workdir)
            .envs(&self.base_env)
            .envs(&spec.environment)
            .env("FERRY_RUN_ID", &spec.run_id)
            .env("FERRY_ENV", &spec.env)
            .env("FERRY_BIN", &self.supervisor_exe)
            .env(USER_UMASK, format!("{:o}", ferry_core::state::user_umask()))
            .env(SECRET_VARS, self.secret_vars.join(","))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: the terminal's Ctrl-C for ferry does not reach it.
            .process_group(0);
        let mut child = cmd
            .spawn()
            .map_err(|e| io_err(&format!("cannot launch the task supervisor {}", self.supervisor_exe.display()), e))?;
        // Reap it when it ends so its pid does not linger as a zombie, and
        // tell whoever watches the task: its exit is an event, not a poll.
        let (tx, rx) = tokio::sync::watch::channel(false);
        self.exits.lock().unwrap_or_else(|e| e.into_inner()).insert(task_id_of(dir), rx);
        std::thread::spawn(move || {
            let _ = child.wait();
            let _ = tx.send(true);
        });
        Ok(())
    }

    fn state(&self, task_id: &str) -> PResult<TaskState> {
        let dir = self.dir(task_id)?;
        if !dir.is_dir() {
            return Ok(TaskState::Missing);
        }
        if let Some(s) = read_status(&dir) {
            return Ok(TaskState::Stopped { started: s.started, exit_code: s.exit_code, reason: s.reason });
        }
        let Some((pid, ticks)) = read_pid_file(&dir.join("supervisor.pid")) else {
            let age = fs::metadata(&dir).and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
            if age.is_some_and(|a| a > LAUNCH_GRACE) {
                return Ok(TaskState::Stopped {
                    started: false,
                    exit_code: None,
                    reason: Some("the task's process was never launched".into()),
                });
            }
            return Ok(TaskState::Pending);
        };
        let child = read_pid_file(&dir.join("child.pid")).map(|(pid, _)| pid);
        if process_alive(pid, ticks) {
            return Ok(if child.is_some() { TaskState::Running } else { TaskState::Pending });
        }
        // It may have finished between the two reads.
        if let Some(s) = read_status(&dir) {
            return Ok(TaskState::Stopped { started: s.started, exit_code: s.exit_code, reason: s.reason });
        }
        let reason = format!("the task supervisor (pid {pid}) ended without recording a result");
        let Some(child) = child else {
            // No pid recorded: the supervisor died before or while starting
            // the migration (a full disk cannot stop the pid's write: its file
            // is preallocated). Whether it started is not known.
            return Ok(if dir.join("child.pid").exists() {
                TaskState::Lost { reason: format!("{reason}, while starting the migration") }
            } else {
                TaskState::Stopped { started: false, exit_code: None, reason: Some(reason) }
            });
        };
        if group_alive(child) {
            return Ok(TaskState::Unsupervised {
                detail: format!("{reason}; the migration (process group {child}) is still running"),
            });
        }
        Ok(TaskState::Lost { reason: format!("{reason}; the migration (process group {child}) has ended") })
    }
}

/// Whether any process of process group `pgid` is alive.
fn group_alive(pgid: i32) -> bool {
    pgid > 0 && killpg(Pid::from_raw(pgid), None).is_ok()
}

fn task_id_of(dir: &Path) -> String {
    dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// The recorded end; `None` while the preallocated file holds only spaces.
fn read_status(dir: &Path) -> Option<StatusFile> {
    let text = fs::read_to_string(dir.join("status.json")).ok()?;
    serde_json::from_str(text.trim_end_matches(['\0', ' ', '\n'])).ok()
}

fn read_pid_file(path: &Path) -> Option<(i32, Option<u64>)> {
    let text = fs::read_to_string(path).ok()?;
    let text = text.trim_matches(['\0', ' ', '\n']);
    let mut parts = text.split_whitespace();
    let pid = parts.next()?.parse().ok()?;
    Some((pid, parts.next().and_then(|t| t.parse().ok())))
}

/// Start time of a process in clock ticks since boot (Linux), to tell a live
/// process from a reused pid.
fn start_ticks(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = &stat[stat.rfind(')')? + 2..];
    after_comm.split_whitespace().nth(19)?.parse().ok()
}

fn process_alive(pid: i32, ticks: Option<u64>) -> bool {
    if kill(Pid::from_raw(pid), None).is_err() {
        return false;
    }
    match (ticks, start_ticks(pid)) {
        (Some(want), Some(have)) => want == have,
        _ => true,
    }
}

#[async_trait]
impl MigrationRunner for ProcessRunner {
    fn profile(&self) -> RunnerProfile {
        RunnerProfile { platform: "the local supervisor", ..RunnerProfile::default() }
    }

    /// The task directory is written before the process starts: a task that
    /// is not found is gone (its state was lost), not late.
    fn missing_grace(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }

    async fn stopped(&self, task_id: &str) {
        let rx = self.exits.lock().unwrap_or_else(|e| e.into_inner()).get(task_id).cloned();
        match rx {
            Some(mut rx) => {
                if rx.wait_for(|done| *done).await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
            // Started by another ferry process (a resumed run): polling finds it.
            None => std::future::pending::<()>().await,
        }
    }

    /// The supervisor writes the last log line before it records the exit.
    fn logs_complete_when_stopped(&self) -> bool {
        true
    }

    async fn start(&self, spec: &TaskSpec) -> PResult<TaskHandle> {
        let key = spec.start_key();
        let dir = self.dir(&key)?;
        fs::create_dir_all(&self.tasks_dir).map_err(|e| io_err("creating the tasks directory", e))?;
        match fs::create_dir(&dir) {
            Ok(()) => {
                let file = CommandFile {
                    run_id: spec.run_id.clone(),
                    env: spec.env.clone(),
                    command: spec.command.clone(),
                    workdir: self.workdir.clone(),
                    created_at: Utc::now(),
                };
                let text = serde_json::to_string_pretty(&file).map_err(|e| io_err("encoding the task", e))?;
                fs::write(dir.join("command.json"), text).map_err(|e| io_err("writing the task", e))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                // Started before (ferry died after starting it): the same task, not a second one.
                if dir.join("supervisor.pid").exists() || dir.join("status.json").exists() {
                    return Ok(self.handle(&key));
                }
            }
            Err(e) => return Err(io_err("creating the task directory", e)),
        }
        self.launch(&dir, spec)?;
        Ok(self.handle(&key))
    }

    async fn poll(&self, task_id: &str) -> PResult<TaskState> {
        self.state(task_id)
    }

    async fn stop(&self, task_id: &str, reason: &str) -> PResult<()> {
        let dir = self.dir(task_id)?;
        let reason_file = dir.join("stop-reason");
        // A second request escalates to SIGKILL.
        let again = !self.stops.lock().unwrap_or_else(|e| e.into_inner()).insert(task_id.to_string());
        let signal = if again || reason_file.exists() { Signal::SIGKILL } else { Signal::SIGTERM };
        // The signal goes out even when the reason cannot be written (a full disk).
        let _ = fs::write(&reason_file, reason);
        if let Some((pid, _)) = read_pid_file(&dir.join("child.pid")) {
            let _ = killpg(Pid::from_raw(pid), signal);
        } else if let Some((pid, ticks)) = read_pid_file(&dir.join("supervisor.pid"))
            && process_alive(pid, ticks)
        {
            let _ = killpg(Pid::from_raw(pid), signal);
        }
        Ok(())
    }

    async fn active_tasks(&self) -> PResult<Vec<TaskSummary>> {
        let entries = match fs::read_dir(&self.tasks_dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("listing tasks", e)),
        };
        let mut out = Vec::new();
        for entry in entries.filter_map(Result::ok) {
            let id = entry.file_name().to_string_lossy().into_owned();
            let Ok(text) = fs::read_to_string(entry.path().join("command.json")) else { continue };
            let Ok(cmd) = serde_json::from_str::<CommandFile>(&text) else { continue };
            if cmd.env != self.env_name {
                continue;
            }
            let status = match self.state(&id)? {
                TaskState::Pending => "PENDING",
                // Running on without its supervisor: still running.
                TaskState::Running | TaskState::Unsupervised { .. } => "RUNNING",
                _ => continue,
            };
            out.push(TaskSummary { id, status: status.into(), started_by: Some(format!("ferry run {}", cmd.run_id)) });
        }
        Ok(out)
    }

    async fn find_by_run(&self, run_id: &str) -> PResult<Option<TaskHandle>> {
        self.find_attempt(run_id, 1).await
    }

    /// Each attempt has its own task directory, named by [`TaskSpec::start_key`].
    async fn find_attempt(&self, run_id: &str, attempt: u32) -> PResult<Option<TaskHandle>> {
        let key = ferry_core::provider::attempt_key(run_id, attempt);
        let dir = self.dir(&key)?;
        Ok((dir.join("supervisor.pid").exists() || dir.join("status.json").exists()).then(|| self.handle(&key)))
    }
}

/// Reads `output.log` of a task from a byte offset.
pub struct FileLogs {
    tasks_dir: PathBuf,
}

impl FileLogs {
    pub fn new(state_dir: &Path) -> Self {
        FileLogs { tasks_dir: state_dir.join("tasks") }
    }
}

#[async_trait]
impl LogSource for FileLogs {
    async fn read(&self, stream: &str, cursor: &LogCursor) -> PResult<LogPage> {
        let offset: u64 = cursor.0.as_deref().and_then(|c| c.parse().ok()).unwrap_or(0);
        let path = self.tasks_dir.join(stream).join("output.log");
        let mut file = match fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(LogPage { events: Vec::new(), next: cursor.clone() });
            }
            Err(e) => return Err(io_err("reading the task's log", e)),
        };
        file.seek(SeekFrom::Start(offset)).map_err(|e| io_err("reading the task's log", e))?;
        let mut buf = Vec::new();
        (&mut file).take(PAGE_BYTES).read_to_end(&mut buf).map_err(|e| io_err("reading the task's log", e))?;
        // Only whole entries; a partial last one is read next time.
        let whole = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        if whole == 0 && buf.len() as u64 == PAGE_BYTES {
            // One entry longer than a page (a log an older ferry wrote whole):
            // skipped with a note, so every later entry is still read.
            let skip = next_newline(&mut file, offset + PAGE_BYTES)?;
            let note = LogEvent {
                timestamp: Utc::now(),
                message: format!(
                    "… (a log entry of more than {} KiB is not shown; it is in {})",
                    PAGE_BYTES / 1024,
                    path.display()
                ),
            };
            return Ok(LogPage { events: vec![note], next: LogCursor(Some(skip.to_string())) });
        }
        let events = String::from_utf8_lossy(&buf[..whole]).lines().filter_map(parse_log_line).collect();
        Ok(LogPage { events, next: LogCursor(Some((offset + whole as u64).to_string())) })
    }
}

/// The offset just past the next newline at or after `from` (the file's end
/// when there is none yet), reading in bounded chunks.
fn next_newline(file: &mut fs::File, from: u64) -> PResult<u64> {
    file.seek(SeekFrom::Start(from)).map_err(|e| io_err("reading the task's log", e))?;
    let mut at = from;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut chunk).map_err(|e| io_err("reading the task's log", e))?;
        if n == 0 {
            return Ok(at);
        }
        if let Some(i) = chunk[..n].iter().position(|b| *b == b'\n') {
            return Ok(at + i as u64 + 1);
        }
        at += n as u64;
    }
}

/// An entry of the task log as an event; a piece of a longer line shows `…`
/// where the line goes on (before it, after it, or both).
fn parse_log_line(line: &str) -> Option<LogEvent> {
    let (ts, rest) = line.split_once(' ')?;
    let timestamp = DateTime::parse_from_rfc3339(ts).ok()?.with_timezone(&Utc);
    let (stream, text) = rest.split_once(' ').unwrap_or((rest, ""));
    let marks = stream.trim_start_matches(|c: char| c.is_ascii_alphabetic());
    let before = if marks.contains('<') { "…" } else { "" };
    let after = if marks.contains('>') { "…" } else { "" };
    Some(LogEvent { timestamp, message: format!("{before}{text}{after}") })
}

/// The supervisor: runs in its own session, owns the migration process, records
/// its output and its end. Returns the supervisor's own exit code.
pub fn supervise(dir: &Path, command: &[String]) -> i32 {
    let me = std::process::id() as i32;
    let pid_line = format!("{me} {}\n", start_ticks(me).map(|t| t.to_string()).unwrap_or_default());
    // Exclusive: if another supervisor got here first, this one does nothing.
    match fs::OpenOptions::new().write(true).create_new(true).open(dir.join("supervisor.pid")) {
        Ok(mut f) => {
            if f.write_all(pid_line.as_bytes()).is_err() {
                return 1;
            }
        }
        Err(_) => return 0,
    }
    // The places the end is recorded are allocated before the migration
    // starts: with no room for them it does not start at all.
    let (Ok(status_file), Ok(pid_file)) =
        (preallocate(&dir.join("status.json"), STATUS_BYTES), preallocate(&dir.join("child.pid"), PID_BYTES))
    else {
        return 1;
    };
    let status = run_child(dir, command, &pid_file);
    if write_status(&status_file, &status).is_err() {
        return 1;
    }
    0
}

/// Create `path` as `len` spaces, written and synced: its blocks are
/// allocated, so writing it again in place needs no free space.
fn preallocate(path: &Path, len: usize) -> std::io::Result<fs::File> {
    let mut f = fs::OpenOptions::new().read(true).write(true).create_new(true).open(path)?;
    f.write_all(&vec![b' '; len])?;
    f.sync_all()?;
    Ok(f)
}

/// Write `text` over the start of a preallocated file, the rest spaces, in place.
fn write_in_place(f: &fs::File, text: &str, len: usize) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut body = text.as_bytes().to_vec();
    body.resize(len, b' ');
    f.write_all_at(&body, 0)?;
    f.sync_data()
}

/// The end, in place in the preallocated `status.json`; a reason too long
/// for it is shortened.
fn write_status(f: &fs::File, status: &StatusFile) -> std::io::Result<()> {
    let mut status = status.clone();
    loop {
        let text = serde_json::to_string(&status).map_err(std::io::Error::other)?;
        if text.len() <= STATUS_BYTES {
            return write_in_place(f, &text, STATUS_BYTES);
        }
        let reason = status.reason.take().unwrap_or_default();
        let keep = reason.char_indices().map(|(i, _)| i).take_while(|&i| i < reason.len() / 2).last().unwrap_or(0);
        status.reason = Some(format!("{}…", &reason[..keep]));
    }
}

/// The child's stdout and stderr, line by line into the task log, timestamped
/// and redacted, each from a thread of its own. Read in chunks: a line longer
/// than [`PIECE_BYTES`] goes to the log in pieces as it arrives, so memory stays
/// bounded whatever the migration prints.
fn copy_output(child: &mut Child, log: &Arc<Mutex<fs::File>>, redactor: &Redactor) -> Vec<JoinHandle<()>> {
    let mut readers = Vec::new();
    for (name, pipe) in [
        ("out", child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>)),
        ("err", child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>)),
    ] {
        let Some(pipe) = pipe else { continue };
        let log = log.clone();
        let redactor = redactor.clone();
        readers.push(std::thread::spawn(move || {
            let write = |entry: String| {
                if let Ok(mut f) = log.lock() {
                    let _ = f.write_all(entry.as_bytes());
                }
            };
            // A cut is safe where masking the two sides apart masks what
            // masking them together does: no secret spans it.
            let safe = |line: &[u8], at: usize| {
                let (lo, hi) = (at.saturating_sub(HOLD_BYTES), (at + HOLD_BYTES).min(line.len()));
                let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
                redactor.clean(&text(&line[lo..hi]))
                    == redactor.clean(&text(&line[lo..at])) + &redactor.clean(&text(&line[at..hi]))
            };
            split_lines(pipe, safe, |piece| write(log_entry(name, piece, &redactor)));
        }));
    }
    readers
}

/// One piece of output: its bytes (no newline), whether it continues the
/// piece before and whether the next one continues it.
#[derive(Debug, PartialEq, Eq)]
pub struct Piece<'a> {
    pub bytes: &'a [u8],
    pub continues: bool,
    pub continued: bool,
}

/// How far past a piece's end the reader looks before cutting it, so the cut
/// can move back out of a secret (which masked across two pieces would not be).
const HOLD_BYTES: usize = 1024;

/// Read `input` to its end in chunks and hand over its lines as pieces of at
/// most [`PIECE_BYTES`] (cut on a UTF-8 character boundary, and where `safe`
/// says the cut at that offset splits nothing that must stay whole), a line's
/// end on its last piece. Holds at most one piece, [`HOLD_BYTES`] and one
/// chunk in memory.
pub fn split_lines(mut input: impl Read, safe: impl Fn(&[u8], usize) -> bool, mut emit: impl FnMut(Piece<'_>)) {
    let limit = PIECE_BYTES + HOLD_BYTES;
    let mut chunk = vec![0u8; 64 * 1024];
    let mut line: Vec<u8> = Vec::with_capacity(limit);
    let mut continues = false;
    let cut_piece = |line: &mut Vec<u8>, continues: &mut bool, emit: &mut dyn FnMut(Piece<'_>)| {
        let first = char_boundary(&line[..PIECE_BYTES.min(line.len())]);
        let lowest = first.saturating_sub(HOLD_BYTES).max(1);
        let cut = (lowest..=first)
            .rev()
            .filter(|&c| c == line.len() || line[c] & 0xC0 != 0x80)
            .find(|&c| safe(line, c))
            .unwrap_or(first);
        emit(Piece { bytes: &line[..cut], continues: *continues, continued: true });
        line.drain(..cut);
        *continues = true;
    };
    loop {
        let n = match input.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let mut rest = &chunk[..n];
        while !rest.is_empty() {
            let room = limit - line.len();
            match rest.iter().take(room + 1).position(|b| *b == b'\n') {
                Some(i) => {
                    line.extend_from_slice(&rest[..i]);
                    while line.len() > PIECE_BYTES {
                        cut_piece(&mut line, &mut continues, &mut emit);
                    }
                    emit(Piece { bytes: &line, continues, continued: false });
                    line.clear();
                    continues = false;
                    rest = &rest[i + 1..];
                }
                None => {
                    let take = room.min(rest.len());
                    line.extend_from_slice(&rest[..take]);
                    rest = &rest[take..];
                    if line.len() >= limit {
                        cut_piece(&mut line, &mut continues, &mut emit);
                    }
                }
            }
        }
    }
    while line.len() > PIECE_BYTES {
        cut_piece(&mut line, &mut continues, &mut emit);
    }
    if !line.is_empty() || continues {
        emit(Piece { bytes: &line, continues, continued: false });
    }
}

/// Where to cut a full piece so no UTF-8 character is split (the whole piece
/// when it does not end inside one).
fn char_boundary(bytes: &[u8]) -> usize {
    let len = bytes.len();
    // Back up over at most 3 continuation bytes to the start of the last character.
    let start = (len.saturating_sub(4)..len).rev().find(|&i| bytes[i] & 0xC0 != 0x80).unwrap_or(len);
    let need = match bytes.get(start) {
        Some(b) if *b >= 0xF0 => 4,
        Some(b) if *b >= 0xE0 => 3,
        Some(b) if *b >= 0xC0 => 2,
        _ => 1,
    };
    if start + need > len && start > 0 { start } else { len }
}

/// The task log's entry for one piece: `<stamp> <stream><marks> <text>`.
fn log_entry(stream: &str, piece: Piece<'_>, redactor: &Redactor) -> String {
    let text = String::from_utf8_lossy(piece.bytes);
    let text = if piece.continued { &text[..] } else { text.trim_end_matches('\r') };
    let stamp = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
    let marks = match (piece.continues, piece.continued) {
        (false, false) => "",
        (false, true) => ">",
        (true, true) => "<>",
        (true, false) => "<",
    };
    format!("{stamp} {stream}{marks} {}\n", redactor.clean(text))
}

/// Secrets never reach the log file (ARCHITECTURE.md promise 5): mask the
/// values of the variables ferry marked secret, and the database password.
fn task_redactor() -> Redactor {
    let mut secrets = std::env::var(SECRET_VARS)
        .unwrap_or_default()
        .split(',')
        .filter_map(|name| std::env::var(name).ok())
        .collect::<Vec<_>>();
    // The database password, in every form the migration might print it.
    if let Ok(url) = std::env::var("DATABASE_URL") {
        secrets.extend(ferry_core::db_url::passwords(&url));
    }
    Redactor::new(secrets)
}

fn run_child(dir: &Path, command: &[String], pid_file: &fs::File) -> StatusFile {
    let ended = |started, exit_code, reason| StatusFile { started, exit_code, reason, ended_at: Utc::now() };
    let Some((program, args)) = command.split_first() else {
        return ended(false, None, Some("empty command".into()));
    };
    let log = match fs::OpenOptions::new().create(true).append(true).open(dir.join("output.log")) {
        Ok(f) => Arc::new(Mutex::new(f)),
        Err(e) => return ended(false, None, Some(format!("cannot open the task log: {e}"))),
    };
    // The migration creates its files as the user would: with the user's umask.
    let user_umask = std::env::var(USER_UMASK).ok().and_then(|m| u32::from_str_radix(&m, 8).ok()).unwrap_or(0o022);
    let spawned = ferry_core::state::with_umask(user_umask, || {
        Command::new(program)
            .args(args)
            .env_remove(USER_UMASK)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
    });
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => return ended(false, None, Some(format!("cannot start {program:?}: {e}"))),
    };
    if write_in_place(pid_file, &format!("{}\n", child.id()), PID_BYTES).is_err() {
        // Without its pid on record nobody could stop it: it does not run on.
        let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
        let _ = child.wait();
        return ended(false, None, Some("cannot record the migration's pid; it was stopped at once".into()));
    }
    let readers = copy_output(&mut child, &log, &task_redactor());
    let status = child.wait();
    for r in readers {
        let _ = r.join();
    }
    let stop_reason = fs::read_to_string(dir.join("stop-reason")).ok();
    match status {
        Ok(s) => {
            let reason = match (s.code(), s.signal(), stop_reason) {
                (_, _, Some(r)) => Some(format!("stopped by ferry: {r}")),
                (None, Some(sig), None) => Some(format!("killed by signal {sig}")),
                (Some(code), _, None) => Some(format!("exited with code {code}")),
                (None, None, None) => None,
            };
            ended(true, s.code(), reason)
        }
        Err(e) => ended(true, None, Some(format!("lost track of the process: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(input: &[u8]) -> Vec<(Vec<u8>, bool, bool)> {
        let mut out = Vec::new();
        split_lines(input, |_, _| true, |p| out.push((p.bytes.to_vec(), p.continues, p.continued)));
        out
    }

    #[test]
    fn short_lines_are_whole_and_long_ones_are_split_into_marked_pieces() {
        assert_eq!(pieces(b"a\nb\n"), [(b"a".to_vec(), false, false), (b"b".to_vec(), false, false)]);
        assert_eq!(pieces(b"tail without newline"), [(b"tail without newline".to_vec(), false, false)]);
        let mut long = vec![b'x'; PIECE_BYTES * 2 + 10];
        long.extend_from_slice(b"\nnext\n");
        let got = pieces(&long);
        assert_eq!(got.len(), 4, "{:?}", got.iter().map(|p| p.0.len()).collect::<Vec<_>>());
        assert_eq!((got[0].0.len(), got[0].1, got[0].2), (PIECE_BYTES, false, true));
        assert_eq!((got[1].0.len(), got[1].1, got[1].2), (PIECE_BYTES, true, true));
        assert_eq!((got[2].0.len(), got[2].1, got[2].2), (10, true, false));
        assert_eq!(got[3], (b"next".to_vec(), false, false));
    }

    #[test]
    fn a_cut_moves_back_out_of_a_secret() {
        let secret = "s3cr3t-t0ken-value";
        let r = Redactor::new(vec![secret.to_string()]);
        // The secret straddles where the first piece would end.
        let mut line = "a".repeat(PIECE_BYTES - 5);
        line.push_str(secret);
        line.push_str(&"b".repeat(PIECE_BYTES));
        let mut entries = Vec::new();
        let safe = |l: &[u8], at: usize| {
            let t = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            r.clean(&t(l)) == r.clean(&t(&l[..at])) + &r.clean(&t(&l[at..]))
        };
        split_lines(line.as_bytes(), safe, |p| entries.push(log_entry("out", p, &r)));
        assert!(entries.len() >= 2, "split: {}", entries.len());
        for e in &entries {
            assert!(!e.contains("s3cr") && !e.contains("value"), "no part of the secret in a piece: {e:.80}");
        }
        assert!(entries.iter().any(|e| e.contains("***")));
        assert!(entries.iter().all(|e| e.len() < PIECE_BYTES + 100));
    }

    #[test]
    fn a_line_of_exactly_one_piece_is_whole() {
        let mut line = vec![b'y'; PIECE_BYTES];
        line.push(b'\n');
        let got = pieces(&line);
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].0.len(), got[0].1, got[0].2), (PIECE_BYTES, false, false));
    }

    #[test]
    fn pieces_are_cut_between_utf8_characters_and_keep_every_byte() {
        let text = "é".repeat(PIECE_BYTES); // two bytes each
        let got = pieces(text.as_bytes());
        let joined: Vec<u8> = got.iter().flat_map(|p| p.0.clone()).collect();
        assert_eq!(joined, text.as_bytes());
        assert!(got.iter().all(|p| std::str::from_utf8(&p.0).is_ok()), "no character split");
        // An odd offset: a 3-byte character straddles the piece boundary.
        let text = format!("a{}", "€".repeat(PIECE_BYTES / 3 + 5));
        let got = pieces(text.as_bytes());
        assert!(got.iter().all(|p| std::str::from_utf8(&p.0).is_ok()));
        assert_eq!(got.iter().map(|p| p.0.len()).sum::<usize>(), text.len());
    }

    #[test]
    fn log_entries_mark_their_pieces_and_read_back_with_an_ellipsis() {
        let r = Redactor::new(Vec::new());
        let first = log_entry("out", Piece { bytes: b"abc", continues: false, continued: true }, &r);
        let middle = log_entry("out", Piece { bytes: b"def", continues: true, continued: true }, &r);
        let last = log_entry("err", Piece { bytes: b"ghi\r", continues: true, continued: false }, &r);
        assert!(first.contains(" out> abc"), "{first}");
        let read = |e: &str| parse_log_line(e.trim_end()).unwrap().message;
        assert_eq!(read(&first), "abc…");
        assert_eq!(read(&middle), "…def…");
        assert_eq!(read(&last), "…ghi");
        assert_eq!(read(&log_entry("out", Piece { bytes: b"whole", continues: false, continued: false }, &r)), "whole");
    }

    #[test]
    fn a_preallocated_status_reads_as_not_recorded_until_written_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let f = preallocate(&dir.path().join("status.json"), STATUS_BYTES).unwrap();
        assert!(read_status(dir.path()).is_none());
        let status =
            StatusFile { started: true, exit_code: Some(0), reason: Some("x".repeat(10_000)), ended_at: Utc::now() };
        write_status(&f, &status).unwrap();
        assert_eq!(fs::metadata(dir.path().join("status.json")).unwrap().len(), STATUS_BYTES as u64, "in place");
        let read = read_status(dir.path()).unwrap();
        assert_eq!(read.exit_code, Some(0));
        assert!(read.reason.unwrap().ends_with('…'), "a long reason is shortened to fit");
        let pid = preallocate(&dir.path().join("child.pid"), PID_BYTES).unwrap();
        assert!(read_pid_file(&dir.path().join("child.pid")).is_none());
        write_in_place(&pid, "1234\n", PID_BYTES).unwrap();
        assert_eq!(read_pid_file(&dir.path().join("child.pid")), Some((1234, None)));
    }
}
