//! The `floodgate` binary as a user runs it.

use std::process::Command;

fn floodgate(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_floodgate"))
        .args(args)
        .output()
        .expect("run the floodgate binary")
}

#[test]
fn version_prints_the_name_and_the_crate_version() {
    let out = floodgate(&["--version"]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).expect("UTF-8 output");
    assert_eq!(
        stdout.trim(),
        format!("floodgate {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn help_says_what_the_tool_is_for() {
    let out = floodgate(&["--help"]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).expect("UTF-8 output");
    assert!(stdout.contains("WebSocket"), "{stdout}");
    assert!(stdout.contains("Usage: floodgate"), "{stdout}");
}
