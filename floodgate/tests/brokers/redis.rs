//! A real redis-server for a test: on a free loopback port, with its own
//! temporary directory, killed on drop; and redis-cli, run as a process,
//! to read back what a sink stored (an independent client: not the
//! `redis` crate the sink uses). Installed by `ensure_redis` in
//! scripts/common.sh.
//!
//! Used via `#[path = "brokers/redis.rs"] mod redis_server;` (with
//! `brokers/common.rs` as `mod common`).

#![allow(dead_code)] // each test file uses its own part

use crate::common::{dies_with_parent, free_port};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
    args: Vec<String>,
    password: Option<String>,
}

impl RedisServer {
    /// In memory only (`--save '' --appendonly no`).
    pub fn start() -> RedisServer {
        RedisServer::start_with(&["--save", "", "--appendonly", "no"])
    }

    /// With `args` after the port, address and directory (e.g.
    /// `--requirepass`, `--appendonly yes`).
    pub fn start_with(args: &[&str]) -> RedisServer {
        let password = args
            .iter()
            .position(|a| *a == "--requirepass")
            .map(|i| args[i + 1].to_owned());
        let mut server = RedisServer {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().expect("a temp dir"),
            args: args.iter().map(|a| a.to_string()).collect(),
            password,
        };
        server.launch();
        server
    }

    fn launch(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("redis.log")).expect("a log file");
        let child = dies_with_parent(&mut Command::new("redis-server"))
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("redis-server runs (scripts/common.sh's ensure_redis installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = self.cli_output(&["PING"]);
            if out.status.success() && out.stdout.starts_with(b"PONG") {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("redis-server exited ({status}): {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer PING in 10 s: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("running").id() as i32
    }

    /// `redis://127.0.0.1:PORT/KEY`.
    pub fn url(&self, key: &str) -> String {
        format!("redis://127.0.0.1:{}/{key}", self.port)
    }

    /// SIGKILL, and reap it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Reaps a server killed from elsewhere (by its pid).
    pub fn wait_dead(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }

    /// Starts it again: same port, directory and arguments.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    /// SIGSTOP (`false`) or SIGCONT (`true`): a server that accepts
    /// connections (the kernel does) and never answers.
    pub fn set_running(&self, running: bool) {
        let signal = if running {
            libc::SIGCONT
        } else {
            libc::SIGSTOP
        };
        // SAFETY: kill has no memory preconditions; the pid is our child's.
        assert_eq!(unsafe { libc::kill(self.pid(), signal) }, 0);
    }

    fn cli_output(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-h", "127.0.0.1", "-p"])
            .arg(self.port.to_string());
        if let Some(password) = &self.password {
            cmd.args(["--no-auth-warning", "-a", password]);
        }
        cmd.args(args)
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli runs (it comes with redis-server)")
    }

    /// redis-cli's answer with `--raw` (one line per reply element), for
    /// replies that are numbers or plain words.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut all = vec!["--raw"];
        all.extend_from_slice(args);
        let out = self.cli_output(&all);
        assert!(out.status.success(), "redis-cli {args:?}: {out:?}");
        String::from_utf8(out.stdout)
            .expect("a textual reply")
            .trim_end()
            .to_owned()
    }

    /// `XLEN key`.
    pub fn xlen(&self, key: &str) -> usize {
        let reply = self.cli(&["XLEN", key]);
        reply
            .parse()
            .unwrap_or_else(|_| panic!("XLEN {key}: {reply:?}"))
    }

    /// `XRANGE key - +`: each entry's fields and values, byte-exact.
    ///
    /// Read from redis-cli's human format (`--no-raw`), where every string
    /// is quoted and escaped (`\"`, `\\`, `\n`, `\r`, `\t`, `\a`, `\b`,
    /// `\xHH` for any other byte that is not printable ASCII), so a
    /// payload's newlines and non-UTF-8 bytes come back exactly; `--raw`
    /// would print them as they are, one reply per line, ambiguously.
    pub fn xrange(&self, key: &str) -> Vec<Entry> {
        let out = self.cli_output(&["--no-raw", "XRANGE", key, "-", "+"]);
        assert!(out.status.success(), "redis-cli XRANGE {key}: {out:?}");
        parse_entries(&out.stdout)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // SIGKILL: also ends a stopped (SIGSTOP) server.
        self.kill();
    }
}

/// One stream entry: its id and its field-value pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: String,
    pub fields: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Entry {
    /// The value of `field`.
    pub fn get(&self, field: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(f, _)| f == field.as_bytes())
            .map(|(_, v)| &v[..])
    }
}

/// Entries from redis-cli's human format:
///
/// ```text
///  1) 1) "1796612115137-0"
///     2) 1) "data"
///        2) "a\xff\n\"\\"
/// ...
/// 10) 1) "1796612115140-0"
/// ```
///
/// Every line holds one string. The entries' ids are the least indented
/// strings (the outer index is right-aligned, so all ids start in one
/// column); the strings after one, in order, are that entry's fields and
/// values.
fn parse_entries(out: &[u8]) -> Vec<Entry> {
    let lines: Vec<(usize, Vec<u8>)> = out
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty() && !line.starts_with(b"(empty"))
        .map(|line| {
            let quote = line.iter().position(|&b| b == b'"').unwrap_or_else(|| {
                panic!(
                    "unexpected redis-cli line {:?}",
                    String::from_utf8_lossy(line)
                )
            });
            (quote, unquote(&line[quote..]))
        })
        .collect();
    let Some(id_column) = lines.iter().map(|(column, _)| *column).min() else {
        return Vec::new();
    };
    let mut entries: Vec<Entry> = Vec::new();
    let mut pending: Option<Vec<u8>> = None;
    for (column, value) in lines {
        if column == id_column {
            assert!(pending.is_none(), "a field without a value");
            entries.push(Entry {
                id: String::from_utf8(value).expect("an ASCII entry id"),
                fields: Vec::new(),
            });
        } else {
            let entry = entries.last_mut().expect("a field before any entry");
            match pending.take() {
                None => pending = Some(value),
                Some(field) => entry.fields.push((field, value)),
            }
        }
    }
    assert!(pending.is_none(), "a field without a value");
    entries
}

/// The bytes of a string quoted by redis-cli (sdscatrepr's escapes).
fn unquote(quoted: &[u8]) -> Vec<u8> {
    assert_eq!(quoted.first(), Some(&b'"'));
    let mut out = Vec::new();
    let mut i = 1;
    loop {
        match quoted.get(i) {
            None => panic!("unterminated string {:?}", String::from_utf8_lossy(quoted)),
            Some(b'"') => {
                assert_eq!(
                    i + 1,
                    quoted.len(),
                    "text after a string: {:?}",
                    String::from_utf8_lossy(quoted)
                );
                return out;
            }
            Some(b'\\') => {
                let escaped = quoted[i + 1];
                i += 2;
                out.push(match escaped {
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'a' => 0x07,
                    b'b' => 0x08,
                    b'"' => b'"',
                    b'\\' => b'\\',
                    b'x' => {
                        let hex = std::str::from_utf8(&quoted[i..i + 2]).unwrap();
                        i += 2;
                        u8::from_str_radix(hex, 16).unwrap()
                    }
                    other => panic!("unknown escape \\{}", other as char),
                });
            }
            Some(&b) => {
                out.push(b);
                i += 1;
            }
        }
    }
}

#[test]
fn redis_cli_strings_are_unquoted_exactly() {
    assert_eq!(
        unquote(br#""a\xff\n\"\\\x00\x7f \xc3\xa9""#),
        b"a\xff\n\"\\\x00\x7f \xc3\xa9"
    );
    let out = b"1) 1) \"1-0\"\n   2) 1) \"data\"\n      2) \"x\\ny\"\n2) 1) \"2-0\"\n   2) 1) \"data\"\n      2) \"\"\n      3) \"id\"\n      4) \"r-1\"\n";
    let entries = parse_entries(out);
    assert_eq!(entries.len(), 2);
    let padded = b" 9) 1) \"9-0\"\n    2) 1) \"data\"\n       2) \"a\"\n10) 1) \"10-0\"\n    2) 1) \"data\"\n       2) \"b\"\n";
    let ids: Vec<String> = parse_entries(padded).into_iter().map(|e| e.id).collect();
    assert_eq!(ids, ["9-0", "10-0"]);
    assert_eq!(entries[0].id, "1-0");
    assert_eq!(
        entries[0].fields,
        vec![(b"data".to_vec(), b"x\ny".to_vec())]
    );
    assert_eq!(entries[1].get("data"), Some(&b""[..]));
    assert_eq!(entries[1].get("id"), Some(&b"r-1"[..]));
}
