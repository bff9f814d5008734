//! The `bridge` benchmark end to end at its smoke size (`--quick`: 2,000
//! messages, one run), and its check: a "bridge" that stores the right
//! number of messages but loses one and repeats another fails the bench.
//!
//! Both need the brokers (`nats-server`, `redis-server`; installed by
//! `ensure_nats` / `ensure_redis` in scripts/common.sh), so they are
//! ignored by default and run in the `brokers` step of ./scripts/test:
//!
//! ```text
//! cargo build --release -p floodgate-cli
//! FLOODGATE_BIN="$PWD/target/release/floodgate" \
//!     cargo test --release -p floodgate-bench --test bridge_smoke -- --ignored
//! ```

use std::path::PathBuf;
use std::process::{Command, Output};

fn bench(args: &[&str]) -> (Output, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bridge"))
        .args(args)
        .output()
        .expect("run the bridge benchmark");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

/// `$FLOODGATE_BIN`, else `floodgate` in the release directory of this
/// build's target directory.
fn floodgate() -> PathBuf {
    std::env::var_os("FLOODGATE_BIN").map_or_else(
        || {
            PathBuf::from(env!("CARGO_BIN_EXE_bridge"))
                .parent()
                .and_then(|dir| dir.parent())
                .expect("the target directory")
                .join("release/floodgate")
        },
        PathBuf::from,
    )
}

#[test]
#[ignore = "needs nats-server, redis-server and a release floodgate (the brokers step)"]
fn the_quick_run_stores_every_message_once_in_both_brokers() {
    let floodgate = floodgate();
    let (out, text) = bench(&["--quick", "--floodgate", floodgate.to_str().unwrap()]);
    assert!(out.status.success(), "{text}");
    for row in [
        "| NATS JetStream | 128 B | plain publish loop (the limit) |",
        "| NATS JetStream | 1.0 KiB | `floodgate bridge` |",
        "| Redis Streams | 128 B | `floodgate bridge` |",
        "| Redis Streams | 1.0 KiB | plain publish loop (the limit) |",
    ] {
        let line = text
            .lines()
            .find(|l| l.starts_with(row))
            .unwrap_or_else(|| panic!("no row {row:?} in:\n{text}"));
        assert!(
            line.contains("2,000 stored, each once (1 of 1 runs)"),
            "{line}"
        );
    }
    assert!(!text.contains("FAILED"), "{text}");
}

/// A stand-in for `floodgate bridge` (Python, no client library: RESP by
/// hand): it writes messages 0..N-2 and message 0 again into the Redis
/// key, N in all, then waits for its SIGTERM.
const FAKE_BRIDGE: &str = r#"#!/usr/bin/env python3
import socket, struct, sys, time, urllib.parse
args = sys.argv[1:]
if args[:1] == ["bridge"] and "--help" in args:
    sys.exit(0)
feed = urllib.parse.urlparse(args[1])
query = dict(urllib.parse.parse_qsl(feed.query))
size, count = int(query["size"]), int(query["count"])
to = urllib.parse.urlparse(args[args.index("--to") + 1])
key = to.path.lstrip("/").encode()
def bulk(b):
    return b"$%d\r\n%s\r\n" % (len(b), b)
def body(seq):
    pad = bytes(ord("a") + i % 26 for i in range(8, size))
    return struct.pack(">Q", seq) + pad
out = bytearray()
for seq in list(range(count - 1)) + [0]:
    out += b"*5\r\n" + bulk(b"XADD") + bulk(key) + bulk(b"*") + bulk(b"data") + bulk(body(seq))
conn = socket.create_connection((to.hostname, to.port))
conn.sendall(out)
time.sleep(60)
"#;

#[test]
#[ignore = "needs redis-server (the brokers step)"]
fn a_bridge_that_loses_one_message_and_repeats_another_fails_the_bench() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("floodgate");
    std::fs::write(&fake, FAKE_BRIDGE).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let (out, text) = bench(&[
        "--quick",
        "--brokers",
        "redis",
        "--sizes",
        "128",
        "--floodgate",
        fake.to_str().unwrap(),
    ]);
    assert!(!out.status.success(), "the bench passed:\n{text}");
    assert!(
        text.contains("the broker holds 2000 messages for 2000 sent: 1 missing, 1 duplicated"),
        "{text}"
    );
    let bridge_row = text
        .lines()
        .find(|l| l.starts_with("| Redis Streams | 128 B | `floodgate bridge` |"))
        .unwrap_or_else(|| panic!("no bridge row in:\n{text}"));
    assert!(
        bridge_row.contains("**1 of 1 runs FAILED**"),
        "{bridge_row}"
    );
    // The plain loop of the same run is unaffected.
    assert!(
        text.contains("| Redis Streams | 128 B | plain publish loop (the limit) |"),
        "{text}"
    );
}
