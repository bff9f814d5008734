//! `floodgate connect --policy spill`, run as a user would: a flood
//! printed to a reader of stdout that starts late arrives whole and in
//! order with the disk's counters in `--stats`; the spill options are
//! checked before anything connects; a spill directory that cannot be
//! opened, and a disk budget used up, end the command with one line; a
//! `--durable` run killed with SIGKILL and started again on the same
//! directory prints what the killed one left.
//!
//! These commands only receive: their stdin is a pipe the test holds open
//! (a pipe-mode client closes at the end of its input).

mod support;

use floodgate::Message;
use floodgate_server::feed::FeedMessage;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{
    assert_counters_add_up, floodgate, numbered_then_wait, send_then_close, text, ServeProcess,
    LIMIT,
};

/// A directory of the test's own under the system's temporary directory,
/// removed with its contents when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let path = std::env::temp_dir().join(format!(
            "floodgate-cli-test-{name}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir(&path).expect("create the test's directory");
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn arg(&self) -> &str {
        self.0.to_str().expect("a UTF-8 temporary path")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Every entry under `dir`, recursively, as paths relative to it.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            out.push(
                path.strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            );
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
    out.sort();
    out
}

/// `floodgate ARGS` with stdin, stdout and stderr piped; killed if it
/// outlives [`LIMIT`] (a hang fails the test instead of stopping it).
struct Running {
    child: Child,
    /// Held open: the command would close at the end of its input.
    stdin: Option<ChildStdin>,
    done: Arc<AtomicBool>,
}

impl Running {
    fn start(args: &[&str]) -> Running {
        let mut child = Command::new(env!("CARGO_BIN_EXE_floodgate"))
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start floodgate");
        let stdin = child.stdin.take();
        let done = Arc::new(AtomicBool::new(false));
        let pid = child.id() as libc::pid_t;
        let watch = done.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + LIMIT;
            while Instant::now() < deadline {
                if watch.load(Ordering::SeqCst) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if !watch.load(Ordering::SeqCst) {
                eprintln!("floodgate outlived {LIMIT:?}: killing it");
                // SAFETY: kill(2) on our child, not yet reaped (`done`
                // is set before it is waited for).
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        });
        Running { child, stdin, done }
    }

    fn stdout(&mut self) -> BufReader<std::process::ChildStdout> {
        BufReader::new(self.child.stdout.take().expect("stdout, taken once"))
    }

    /// Waits for the exit; its code (None: killed) and stderr.
    fn finish(mut self) -> (Option<i32>, String) {
        let mut stderr = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            e.read_to_string(&mut stderr).unwrap();
        }
        drop(self.stdin.take());
        let status = self.child.wait().unwrap();
        self.done.store(true, Ordering::SeqCst);
        (status.code(), stderr)
    }

    fn kill(&mut self) {
        self.child.kill().unwrap();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.done.load(Ordering::SeqCst) {
            let _ = self.child.kill();
            let _ = self.child.wait();
            self.done.store(true, Ordering::SeqCst);
        }
    }
}

/// The JSON object `--stats` printed on the last line of `stderr`.
fn stats_in(stderr: &str) -> serde_json::Value {
    let last = stderr.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("no stats ({e}) in {stderr:?}"))
}

fn n(stats: &serde_json::Value, key: &str) -> u64 {
    stats[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} in {stats}"))
}

#[test]
fn a_flood_read_late_from_stdout_arrives_whole_and_in_order_through_the_disk() {
    const COUNT: u64 = 20_000;
    let serve = ServeProcess::start(&[
        "--feed",
        "--count",
        &COUNT.to_string(),
        "--rate",
        "0",
        "--size",
        "200",
    ]);
    let dir = TempDir::new("flood");
    let mut cli = Running::start(&[
        "connect",
        &serve.url,
        "--policy",
        "spill",
        "--spill-dir",
        dir.arg(),
        "--max-messages",
        "100",
        "--stats",
    ]);
    let mut out = cli.stdout();
    // Nobody reads for a while: the pipe fills, the printer waits, the
    // buffer fills, the rest goes to disk (the server is not slowed: it
    // sends everything meanwhile).
    std::thread::sleep(Duration::from_millis(1000));
    let mut next = 0u64;
    let mut line = String::new();
    loop {
        line.clear();
        if out.read_line(&mut line).unwrap() == 0 {
            break;
        }
        let m = FeedMessage::parse(line.trim_end())
            .unwrap_or_else(|| panic!("not a feed message: {line:?}"));
        assert_eq!(m.n, next, "in order, nothing missing");
        next += 1;
        // Still a slow reader: a pause every 2,000 lines.
        if next % 2000 == 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    assert_eq!(next, COUNT, "every message printed");
    let (code, stderr) = cli.finish();
    assert_eq!(code, Some(0), "{stderr}");
    let s = stats_in(&stderr);
    assert_counters_add_up(&s);
    assert_eq!(n(&s, "received"), COUNT, "{s}");
    assert_eq!(n(&s, "delivered"), COUNT, "{s}");
    assert!(n(&s, "spilled") > 0, "the backlog went to disk: {s}");
    assert!(n(&s, "high_water_disk_bytes") > 0, "{s}");
    assert!(
        n(&s, "high_water_messages") <= 100,
        "memory stayed bounded: {s}"
    );
    // Drained, the spill holds no disk space.
    for zero in [
        "disk_bytes",
        "buffered",
        "buffered_disk",
        "dropped_oldest",
        "dropped_newest",
        "recovered",
        "spill_refused",
        "spill_errors",
        "spill_corrupt_records",
    ] {
        assert_eq!(n(&s, zero), 0, "{zero}: {s}");
    }
    // Ephemeral: nothing is left behind.
    assert_eq!(files_under(dir.path()), Vec::<String>::new());
}

#[test]
fn other_policies_print_the_stats_they_always_did() {
    let server = send_then_close(vec![Message::text("a")], 1000);
    let out = floodgate()
        .args(["connect", &server.url(), "--eof-wait", "30s", "--stats"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let s = stats_in(&text(&out.stderr));
    assert!(
        s.get("spilled").is_none() && s.get("buffered_disk").is_none(),
        "{s}"
    );
    assert_eq!(s["delivered"], 1);
}

#[test]
fn the_spill_options_are_checked_before_connecting() {
    // Nothing listens on port 9: a check that passed would fail later
    // with exit 3, not 2.
    let url = "ws://127.0.0.1:9/";
    let cases: [(&[&str], &str); 5] = [
        (&["--policy", "spill"], "--spill-dir"),
        (&["--spill-dir", "/tmp"], "--spill-dir needs --policy spill"),
        (
            &["--policy", "drop-oldest", "--durable"],
            "--durable needs --policy spill",
        ),
        (
            &[
                "--policy",
                "spill",
                "--spill-dir",
                "/tmp",
                "--fsync-interval",
                "1s",
            ],
            "--durable",
        ),
        (
            &[
                "--policy",
                "spill",
                "--spill-dir",
                "/tmp",
                "--spill-fallback",
                "sideways",
            ],
            "drop-newest",
        ),
    ];
    for (args, says) in cases {
        let out = floodgate()
            .args(["connect", url])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

#[test]
fn a_spill_directory_that_cannot_be_opened_ends_the_command_with_one_line() {
    let dir = TempDir::new("not-a-dir");
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let server = floodgate_server::Server::bind("127.0.0.1:0", floodgate_server::echo).unwrap();
    for spill_dir in [file.clone(), file.join("below")] {
        let mut cli = Running::start(&[
            "connect",
            &server.url(),
            "--policy",
            "spill",
            "--spill-dir",
            spill_dir.to_str().unwrap(),
        ]);
        let mut stdout = String::new();
        cli.stdout().read_to_string(&mut stdout).unwrap();
        let (code, stderr) = cli.finish();
        assert_eq!(code, Some(1), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(
            stderr.starts_with("floodgate: the spill to disk could not start")
                && stderr.contains(spill_dir.to_str().unwrap())
                && stderr.contains("--spill-dir must name a directory"),
            "what and what to do: {stderr}"
        );
    }
    let out = floodgate()
        .args(["connect", &server.url(), "--policy", "spill"])
        .args(["--spill-dir", dir.arg(), "--max-disk", "8"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("floodgate: --max-disk 8 is too small") && stderr.contains("at least"),
        "{stderr}"
    );
}

#[test]
fn a_used_up_disk_budget_ends_the_command_with_one_line_naming_the_options() {
    let serve = ServeProcess::start(&["--feed", "--count", "20000", "--rate", "0"]);
    let dir = TempDir::new("budget");
    let mut cli = Running::start(&[
        "connect",
        &serve.url,
        "--policy",
        "spill",
        "--spill-dir",
        dir.arg(),
        "--max-messages",
        "10",
        "--max-disk",
        "64KiB",
        "--stats",
    ]);
    let mut out = cli.stdout();
    // Read nothing until the budget is used up and the command gives up.
    std::thread::sleep(Duration::from_millis(500));
    let mut lines = 0u64;
    let mut line = String::new();
    while out.read_line(&mut line).unwrap() > 0 {
        let m = FeedMessage::parse(line.trim_end()).unwrap();
        assert_eq!(m.n, lines, "what was buffered is printed first, in order");
        lines += 1;
        line.clear();
    }
    let (code, stderr) = cli.finish();
    assert_eq!(code, Some(1), "{stderr}");
    // The stats, then the line that says why the command ended.
    let (stats_line, reason) = stderr
        .trim_end()
        .split_once('\n')
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(
        reason.contains("disk budget is used up")
            && reason.contains("--max-disk")
            && reason.contains("1008")
            && reason.contains("--spill-fallback block"),
        "{reason}"
    );
    let s = stats_in(stats_line);
    assert_counters_add_up(&s);
    assert!(n(&s, "spill_refused") >= 1, "{s}");
    assert_eq!(n(&s, "delivered"), lines, "{s}");
    assert!(n(&s, "high_water_disk_bytes") <= 64 << 10, "{s}");
}

#[test]
fn drop_newest_as_the_fallback_drops_and_counts() {
    let serve = ServeProcess::start(&["--feed", "--count", "20000", "--rate", "0"]);
    let dir = TempDir::new("drop-newest");
    let mut cli = Running::start(&[
        "connect",
        &serve.url,
        "--policy",
        "spill",
        "--spill-dir",
        dir.arg(),
        "--max-messages",
        "10",
        "--max-disk",
        "64KiB",
        "--spill-fallback",
        "drop-newest",
        "--stats",
    ]);
    let mut out = cli.stdout();
    std::thread::sleep(Duration::from_millis(500));
    let mut printed = 0u64;
    let mut last = None;
    let mut line = String::new();
    while out.read_line(&mut line).unwrap() > 0 {
        let m = FeedMessage::parse(line.trim_end()).unwrap();
        assert!(last < Some(m.n), "in order");
        last = Some(m.n);
        printed += 1;
        line.clear();
    }
    let (code, stderr) = cli.finish();
    assert_eq!(code, Some(0), "{stderr}");
    let s = stats_in(&stderr);
    assert_counters_add_up(&s);
    assert_eq!(n(&s, "received"), 20_000, "{s}");
    assert_eq!(n(&s, "delivered"), printed, "{s}");
    assert!(n(&s, "dropped_newest") > 0, "{s}");
    assert!(n(&s, "spill_refused") >= n(&s, "dropped_newest"), "{s}");
}

fn number_of(line: &str) -> u64 {
    line.get(1..6)
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("not a numbered message: {line:?}"))
}

/// The size of the `.seg` files in `dir`.
fn segment_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
        .map(|e| e.metadata().map_or(0, |m| m.len()))
        .sum()
}

/// Whether the process's main thread is blocked writing to its stdout
/// (`/proc/PID/syscall`: the number of `write`, then fd 1); `None` when
/// the kernel does not say.
fn blocked_writing_stdout(pid: u32) -> Option<bool> {
    let line = std::fs::read_to_string(format!("/proc/{pid}/syscall")).ok()?;
    let mut fields = line.split_whitespace();
    let number: i64 = fields.next()?.parse().ok()?;
    let fd = fields.next()?;
    Some(number == libc::SYS_write && fd == "0x1")
}

#[test]
fn a_durable_run_killed_and_started_again_prints_what_the_killed_one_left() {
    const COUNT: u64 = 3000;
    const READ_FIRST: usize = 200;
    let dir = TempDir::new("durable");
    let sent = Arc::new(AtomicU64::new(0));
    let server = numbered_then_wait(COUNT, sent.clone());
    let spill_args = |url: &str| -> Vec<String> {
        [
            "connect",
            url,
            "--policy",
            "spill",
            "--spill-dir",
            dir.arg(),
            "--durable",
            "--fsync-interval",
            "200ms",
            "--max-messages",
            "10",
            "--stats",
        ]
        .map(String::from)
        .to_vec()
    };
    let args = spill_args(&server.url());
    let mut first = Running::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let pid = first.child.id();
    let mut out = first.stdout();
    let mut printed = Vec::new();
    let mut line = String::new();
    while printed.len() < READ_FIRST {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "ended early");
        printed.push(number_of(&line));
    }

    // The server has sent everything, and the spill's writer has written
    // it (the segment files stop growing); the command is blocked writing
    // to the pipe nobody reads now, one message in hand.
    let deadline = Instant::now() + Duration::from_secs(30);
    while sent.load(Ordering::SeqCst) < COUNT {
        assert!(Instant::now() < deadline, "the server could not send");
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut size = segment_bytes(dir.path());
    let mut stable = 0;
    while stable < 5 {
        assert!(Instant::now() < deadline, "the spill kept growing");
        std::thread::sleep(Duration::from_millis(50));
        let now = segment_bytes(dir.path());
        stable = if now == size && now > 0 {
            stable + 1
        } else {
            0
        };
        size = now;
    }
    let blocked = loop {
        match blocked_writing_stdout(pid) {
            Some(true) => break Some(true),
            None => break None,
            Some(false) => {
                assert!(Instant::now() < deadline, "never blocked on stdout");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    };

    // A second durable run on the directory while this one holds it.
    let other = send_then_close(vec![], 1000);
    let out2 = floodgate().args(spill_args(&other.url())).output().unwrap();
    assert_eq!(out2.status.code(), Some(1), "{out2:?}");
    let stderr2 = text(&out2.stderr);
    assert!(
        stderr2.contains("is in use by another connection") && stderr2.contains("--spill-dir"),
        "{stderr2}"
    );

    first.kill();
    // What the killed command had written to the pipe is still there:
    // whole lines (each shorter than PIPE_BUF, written at once).
    loop {
        line.clear();
        if out.read_line(&mut line).unwrap() == 0 {
            break;
        }
        assert!(line.ends_with('\n'), "a torn line: {line:?}");
        printed.push(number_of(&line));
    }
    let (code, _) = first.finish();
    assert_eq!(code, None, "killed");
    let killed_at = printed.len() as u64;
    assert_eq!(
        printed,
        (0..killed_at).collect::<Vec<_>>(),
        "the first run printed in order"
    );
    assert!(killed_at < COUNT / 2, "most of it was left: {killed_at}");

    // Started again on the directory, against a server that sends nothing.
    let server2 = send_then_close(vec![], 1000);
    let out = floodgate()
        .args(spill_args(&server2.url()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let rest: Vec<u64> = text(&out.stdout).lines().map(number_of).collect();
    let s = stats_in(&text(&out.stderr));
    assert_counters_add_up(&s);
    // The command was killed while writing a message it had taken (it
    // takes and prints one at a time under --durable). A durable spill
    // counts a message delivered when it is taken, so that message is
    // lost (resume == killed_at + 1), unless its line had reached the pipe
    // whole before the kill: then it was printed, and the next run starts
    // right after it (resume == killed_at). Traced through the library:
    // the next run always starts after the last message taken. Either way
    // nothing printed is printed again, and everything after it arrives,
    // in order, once.
    let resume = rest.first().copied().unwrap_or(COUNT);
    eprintln!(
        "killed after printing {killed_at} (blocked on stdout: {blocked:?}); \
         the next run resumed at {resume}: {s}"
    );
    assert!(
        resume == killed_at || resume == killed_at + 1,
        "at most the message in hand is lost: resumed at {resume} after {killed_at}"
    );
    assert_eq!(
        rest,
        (resume..COUNT).collect::<Vec<_>>(),
        "the rest, in order"
    );
    assert_eq!(n(&s, "recovered"), COUNT - resume, "{s}");
    assert_eq!(n(&s, "received"), n(&s, "recovered"), "{s}");
    assert_eq!(n(&s, "delivered"), COUNT - resume, "{s}");
    assert_eq!(n(&s, "spill_corrupt_records"), 0, "{s}");
    assert!(
        !files_under(dir.path()).iter().any(|f| f.ends_with(".seg")),
        "everything delivered, no segment left: {:?}",
        files_under(dir.path())
    );
}
