//! Running a scenario in a child process: the binaries that report peak
//! memory (`policies`, `spill`) re-execute themselves with a hidden flag so
//! that each case's figures are its own, and read back one `RESULT` line of
//! tab-separated `key=value` pairs.
//!
//! Linux only for the memory figure (`/proc/self/status`).

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::process::Child;
use std::thread;
use std::time::{Duration, Instant};

/// What a child printed on its `RESULT` line, as `key=value` pairs.
#[derive(Debug, Default)]
pub struct ChildReport(Vec<(String, String)>);

impl ChildReport {
    /// The first line of `stdout` that starts with `RESULT `, split at
    /// tabs into `key=value` pairs.
    pub fn parse(stdout: &str) -> Option<ChildReport> {
        let line = stdout.lines().find_map(|l| l.strip_prefix("RESULT "))?;
        Some(ChildReport(
            line.split('\t')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ))
    }

    /// The value of `key`, `?` when the child did not report it.
    pub fn get(&self, key: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map_or("?", |(_, v)| v.as_str())
    }

    /// The value of `key` as a number, 0 when missing or not a number.
    pub fn num(&self, key: &str) -> u64 {
        self.get(key).parse().unwrap_or(0)
    }

    /// The value of `key`, a number of nanoseconds, as a duration.
    pub fn dur(&self, key: &str) -> Duration {
        Duration::from_nanos(self.num(key))
    }
}

/// Formats `fields` as the `RESULT` line a child prints.
pub fn result_line(fields: &[(&str, String)]) -> String {
    let pairs: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("RESULT {}", pairs.join("\t"))
}

/// Waits for a child whose stdout is piped (killing it after `timeout`)
/// and parses its `RESULT` line. If its stderr is piped too, it is copied
/// to this process's stderr, and its last line goes into the error when
/// the child fails (a panic's or an abort's message).
///
/// # Errors
///
/// The child ran out of time, failed, or printed no `RESULT` line.
pub fn wait_child(mut child: Child, timeout: Duration) -> Result<ChildReport, String> {
    let mut stdout = child
        .stdout
        .take()
        .ok_or("the child's stdout is not piped")?;
    let reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let stderr = child.stderr.take().map(|mut stderr| {
        thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            eprint!("{s}");
            s.lines()
                .rfind(|l| !l.trim().is_empty())
                .map(str::to_string)
        })
    });
    let last_words = |stderr: Option<thread::JoinHandle<Option<String>>>| {
        stderr
            .and_then(|h| h.join().ok().flatten())
            .map_or(String::new(), |l| format!(": {l}"))
    };
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "no result within {timeout:?}: killed{}",
                    last_words(stderr)
                ));
            }
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("waiting for the child: {e}")),
        }
    };
    let out = reader.join().unwrap_or_default();
    let words = last_words(stderr);
    if !status.success() {
        return Err(format!("the child failed ({status}){words}"));
    }
    ChildReport::parse(&out).ok_or_else(|| "the child printed no result".into())
}

/// Peak resident set of this process in KiB (`VmHWM` from
/// `/proc/self/status`), 0 where there is none.
pub fn vm_hwm_kib() -> u64 {
    vm_hwm_kib_of("self")
}

/// Peak resident set in KiB of the process `pid` (`"self"`, or a number),
/// from `/proc/PID/status`; 0 where there is none.
pub fn vm_hwm_kib_of(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

/// After a child failed: a child that died after connecting ended the
/// server thread's connection; one that died before left the server in
/// `accept()`. Waits a moment for the first, then unblocks the second with
/// a throw-away connection, but only then, or the next case's server
/// would accept it.
pub fn unblock_server<T>(server: &thread::JoinHandle<T>, listener: &TcpListener) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !server.is_finished() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    if !server.is_finished() {
        if let Ok(addr) = listener.local_addr() {
            drop(TcpStream::connect(addr));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_line_reads_back() {
        let line = result_line(&[("a", "1".into()), ("check", "in order".into())]);
        let r = ChildReport::parse(&format!("noise\n{line}\n")).unwrap();
        assert_eq!(
            (r.num("a"), r.get("check"), r.get("b")),
            (1, "in order", "?")
        );
        assert_eq!(r.dur("a"), Duration::from_nanos(1));
    }
}
