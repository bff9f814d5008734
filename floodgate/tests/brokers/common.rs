//! What the sink tests share: numbered records, a free loopback port, and
//! broker processes that die with the test.
//!
//! Included by each sink test with `#[path = "brokers/common.rs"] mod
//! common;` (the broker modules name it as `crate::common`).

#![allow(dead_code)] // each test file uses its own part

use floodgate::sink::{MessageId, Record, RunId};
use floodgate::Message;
use std::net::TcpListener;
use std::process::Command;

/// `messages` as the records of `run`, numbered from `first`.
pub fn records<'a>(run: RunId, first: u64, messages: &'a [Message]) -> Vec<Record<'a>> {
    messages
        .iter()
        .enumerate()
        .map(|(i, message)| Record {
            id: MessageId::new(run, first + i as u64),
            message,
        })
        .collect()
}

/// A loopback port that nothing listens on (just now).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Makes the process `command` starts die (SIGKILL) with the thread that
/// starts it, even when the test process is killed and no `Drop` runs:
/// no broker is left running. Start it from the test's own thread.
pub fn dies_with_parent(command: &mut Command) -> &mut Command {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe; nothing else runs here.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    command
}
