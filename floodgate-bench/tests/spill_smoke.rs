//! The `spill` benchmark runs end to end at its smoke size (`--quick`: 4 MB
//! per case, one run): every case delivers every message in order and the
//! binary prints both tables.

use std::process::Command;

#[test]
fn spill_quick_prints_both_tables() {
    let dir = std::env::temp_dir().join(format!("floodgate-spill-smoke-{}", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_spill"))
        .args(["--quick", "--dir"])
        .arg(&dir)
        .output()
        .expect("run the spill benchmark");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for heading in [
        "### Table 1",
        "### Table 2",
        "| (a) `Spill`",
        "| `Block` | yes |",
    ] {
        assert!(stdout.contains(heading), "no {heading:?} in:\n{stdout}");
    }
    assert!(!stdout.contains("FAILED"), "{stdout}");
    let _ = std::fs::remove_dir(&dir);
}
