//! `floodgate connect` on a terminal: driven under a pseudo-terminal
//! (expectrl), as a person would type.

#![cfg(unix)]

mod support;

use expectrl::{Eof, Expect, Session};
use floodgate_server::{echo, Server};
use std::process::Command;
use std::time::Duration;

/// Types are sent as a terminal sends them: Enter is a carriage return.
fn interactive(url: &str) -> expectrl::session::OsSession {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_floodgate"));
    cmd.args(["connect", url, "--no-history"])
        .env("TERM", "xterm");
    let mut session = Session::spawn(cmd).expect("spawn floodgate under a pty");
    session.set_expect_timeout(Some(Duration::from_secs(20)));
    session
}

/// Waits for the command to end and checks its exit code.
fn expect_exit(s: &mut expectrl::session::OsSession, code: i32, why: &str) {
    s.expect(Eof).unwrap();
    let status = s.get_process().wait().unwrap();
    assert!(
        matches!(status, expectrl::process::unix::WaitStatus::Exited(_, c) if c == code),
        "{why}: {status:?}"
    );
}

/// Everything the command prints until it exits. (expectrl's `expect`
/// may report the end before it has read the last lines of a process
/// that just exited, so the last words are read by hand.)
fn read_to_end(s: &mut expectrl::session::OsSession) -> String {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    let started = std::time::Instant::now();
    loop {
        match std::io::Read::read(s, &mut buf) {
            Ok(0) => break,
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(started.elapsed() < Duration::from_secs(20), "no end");
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(_) => break, // EIO: the terminal's other side closed
        }
    }
    String::from_utf8_lossy(&all).into_owned()
}

#[test]
fn a_typed_message_is_sent_and_its_echo_shown_marked_as_received() {
    let server = Server::bind("127.0.0.1:0", echo).unwrap();
    let mut s = interactive(&server.url());
    s.expect("connected to").unwrap();
    s.expect("> ").unwrap();
    s.send("hello, ünïcode\r").unwrap();
    s.expect("< hello, ünïcode").unwrap();
    s.send("/bin 68 69\r").unwrap();
    s.expect("< [binary, 2 bytes] 6869").unwrap();
    s.send("//slash\r").unwrap();
    s.expect("< /slash").unwrap();
    s.send("/nonsense\r").unwrap();
    s.expect("unknown command /nonsense").unwrap();
    s.send("/close\r").unwrap();
    expect_exit(&mut s, 0, "exit code");
}

#[test]
fn a_message_from_the_server_is_printed_while_the_user_types() {
    // The server speaks first, after the client is at its prompt.
    let server = Server::bind("127.0.0.1:0", |mut ws, _| {
        let first = ws.recv().unwrap(); // "go"
        std::thread::sleep(Duration::from_millis(200));
        ws.send_text(&format!("unprompted after {}", first.as_text().unwrap()))
            .unwrap();
        // Until the client's close (recv answers it).
        while ws.recv().is_ok() {}
    })
    .unwrap();
    let mut s = interactive(&server.url());
    s.expect("> ").unwrap();
    s.send("go\r").unwrap();
    // A half-typed line stays on the prompt while the message prints.
    s.send("half typ").unwrap();
    s.expect("< unprompted after go").unwrap();
    s.send("ed\r").unwrap();
    // Ctrl-D closes cleanly.
    s.send(expectrl::ControlCode::EndOfTransmission).unwrap();
    expect_exit(&mut s, 0, "exit code");
}

#[test]
fn when_the_server_closes_the_command_exits_4_and_names_the_code() {
    let server = Server::bind("127.0.0.1:0", |mut ws, _| {
        let _ = ws.recv();
        let _ = ws.close(4002, "maintenance");
    })
    .unwrap();
    let mut s = interactive(&server.url());
    s.expect("> ").unwrap();
    s.send("anything\r").unwrap();
    let rest = read_to_end(&mut s);
    assert!(
        rest.contains("closed the connection with code 4002: maintenance"),
        "{rest:?}"
    );
    let status = s.get_process().wait().unwrap();
    assert!(
        matches!(status, expectrl::process::unix::WaitStatus::Exited(_, 4)),
        "{status:?}"
    );
}

#[test]
fn lines_typed_ahead_in_one_burst_and_history_recall_are_all_sent() {
    let server = Server::bind("127.0.0.1:0", echo).unwrap();
    let mut s = interactive(&server.url());
    s.expect("> ").unwrap();
    // A paste of two lines arrives in one read.
    s.send("pasted one\rpasted two\r").unwrap();
    s.expect("< pasted one").unwrap();
    s.expect("< pasted two").unwrap();
    // Up twice recalls "pasted one"; editing keys change it before Enter.
    s.send("\x1b[A\x1b[A\x1b[D\x1b[D\x1b[DX\r").unwrap();
    s.expect("< pasted Xone").unwrap();
    s.send("/close 4000 bye\r").unwrap();
    expect_exit(
        &mut s,
        0,
        "a close the user asked for is clean, whatever its code",
    );
}
