//! The `idle` benchmark end to end with a few connections per client: every
//! client (each in its own child process) opens and keeps its connections,
//! reads the one message on `/hello`, and gets a figure in both columns.

use std::process::Command;

#[test]
fn idle_gives_every_client_both_figures() {
    let out = Command::new(env!("CARGO_BIN_EXE_idle"))
        .args(["--connections", "20"])
        .output()
        .expect("run the idle benchmark");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let names = [
        "tokio-tungstenite",
        "fastwebsockets",
        "sockudo-ws",
        "sockudo-ws-tuned",
        "yawc",
        "yawc-tuned",
        "tokio-websockets",
    ];
    for name in names {
        let row = stdout
            .lines()
            .find(|l| l.starts_with(&format!("| {name} |")))
            .unwrap_or_else(|| panic!("no row for {name} in:\n{stdout}\n{stderr}"));
        assert!(!row.contains("failed"), "{row}\n{stderr}");
        assert_eq!(row.matches(" KiB |").count(), 2, "{row}");
    }
    assert!(!stdout.contains("failed"), "{stdout}\n{stderr}");
}
