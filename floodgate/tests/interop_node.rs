//! Interoperability with Node's `ws` library with permessage-deflate on,
//! through `scripts/node/echo_server.js` (every message the server sends
//! is compressed, threshold 0, with context takeover).
//!
//! These tests need Node and the `ws` package, so they are `#[ignore]`d in
//! a plain `cargo test`; `scripts/test` installs `ws` into target/node
//! (`ensure_node` in scripts/common.sh) and runs them with
//!
//! ```text
//! cargo test -p floodgate --test interop_node -- --ignored
//! ```
//!
//! `FLOODGATE_NODE` names the node binary (default `node`). Each test
//! starts its own server on a free loopback port.

mod support;

use floodgate::{Client, DeflateConfig, Message};
use std::ffi::OsString;
use std::time::Duration;
use support::{repo_root, ServerProcess};

fn node_echo_server() -> ServerProcess {
    let node = std::env::var_os("FLOODGATE_NODE")
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "node".into());
    let script = repo_root()
        .join("scripts")
        .join("node")
        .join("echo_server.js");
    let args: Vec<OsString> = vec![script.into(), "--port".into(), "0".into()];
    ServerProcess::start("Node ws echo server", node, &args)
}

fn url(server: &ServerProcess) -> String {
    format!("ws://127.0.0.1:{}/", server.port())
}

fn client(threshold: usize) -> Client {
    Client::builder()
        .compression(DeflateConfig::default().threshold(threshold))
        .build()
        .expect("client")
}

/// Compressible text, incompressible bytes, of several sizes.
fn messages() -> Vec<Message> {
    let mut out = Vec::new();
    for len in [0, 1, 125, 126, 4_096, 65_536, 1 << 20, 8 << 20] {
        let text: String = "{\"channel\":\"trades\",\"price\":\"27001.5\",\"size\":3} "
            .chars()
            .cycle()
            .take(len)
            .collect();
        out.push(Message::text(text));
        let mut x = (len as u64) | 1;
        let noise: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        out.push(Message::binary(noise));
    }
    out
}

#[test]
#[ignore = "needs Node and ws; run by scripts/test"]
fn the_low_level_socket_negotiates_and_round_trips_compressed_messages() {
    let server = node_echo_server();
    let mut ws = client(0).connect(&url(&server)).expect("connect");
    let negotiated = ws
        .deflate()
        .expect("ws accepted permessage-deflate")
        .clone();
    assert!(negotiated.client_no_context_takeover);
    ws.send_text("extensions?").unwrap();
    let seen = ws.recv().unwrap();
    let seen = seen.as_text().unwrap();
    assert!(
        seen.starts_with("permessage-deflate"),
        "ws negotiated {seen:?}"
    );
    for message in messages() {
        ws.send(message.clone()).expect("send");
        let reply = ws.recv().expect("recv");
        assert!(
            reply == message,
            "echo of a {}-byte message differs",
            message.len()
        );
    }
    ws.close(1000, "").expect("close");
}

#[test]
#[ignore = "needs Node and ws; run by scripts/test"]
fn many_messages_in_a_row_keep_the_servers_context() {
    let server = node_echo_server();
    let mut ws = client(0).connect(&url(&server)).expect("connect");
    assert!(ws.deflate().is_some());
    for i in 0..2_000 {
        let text = format!("{{\"seq\":{i},\"channel\":\"book\",\"bids\":[[\"1.{i}\",\"3\"]]}}");
        ws.send_text(&text).unwrap();
        assert_eq!(ws.recv().unwrap().as_text(), Some(text.as_str()));
    }
    ws.close(1000, "").expect("close");
}

#[test]
#[ignore = "needs Node and ws; run by scripts/test"]
fn the_buffered_connection_round_trips_compressed_messages() {
    let server = node_echo_server();
    let mut ws = client(64).connect_buffered(&url(&server)).expect("connect");
    assert!(ws.deflate().is_some());
    let sender = ws.sender();
    for message in messages() {
        sender.send(message.clone()).expect("send");
        let reply = ws.recv_timeout(Duration::from_secs(20)).expect("recv");
        assert!(
            *reply.message() == message,
            "echo of a {}-byte message differs",
            message.len()
        );
    }
    // A burst from two threads, then all echoes in order per thread.
    let threads: Vec<_> = (0..2)
        .map(|t| {
            let sender = ws.sender();
            std::thread::spawn(move || {
                for i in 0..1_000 {
                    sender
                        .send_text(&format!("{t} {i} {}", "payload ".repeat(i % 50)))
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut next = [0usize; 2];
    for _ in 0..2_000 {
        let reply = ws.recv_timeout(Duration::from_secs(20)).expect("recv");
        let text = reply.as_text().unwrap();
        let mut words = text.split(' ');
        let t: usize = words.next().unwrap().parse().unwrap();
        let i: usize = words.next().unwrap().parse().unwrap();
        assert_eq!(i, next[t]);
        assert_eq!(text, format!("{t} {i} {}", "payload ".repeat(i % 50)));
        next[t] += 1;
    }
    ws.close(1000, "").expect("close");
}
