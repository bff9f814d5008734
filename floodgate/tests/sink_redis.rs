//! The Redis Streams sink (`floodgate::sink::Redis`, feature `sink-redis`)
//! against a real redis-server that each test starts on a free loopback
//! port (installed by `ensure_redis` in scripts/common.sh), read back with
//! redis-cli run as a process.
//!
//! The tests that need the server are `#[ignore]`d; run them with
//! `cargo test -p floodgate --features sink-redis --test sink_redis -- --ignored`.
#![cfg(feature = "sink-redis")]

#[path = "brokers/common.rs"]
mod common;
#[path = "brokers/redis.rs"]
mod redis_server;

use common::records;
use floodgate::sink::{MessageId, Redis, RunId, Sink, SinkError};
use floodgate::Message;
use redis_server::RedisServer;
use std::time::{Duration, Instant};

/// Message `i`: text or binary, some of them awkward (empty, newlines,
/// quotes, bytes that are not UTF-8, every byte value).
fn message(i: u64) -> Message {
    match i % 7 {
        0 => Message::text(format!("msg-{i}")),
        1 => Message::text(format!("{{\"seq\":{i},\"s\":\"é 🦀 \\\" \\n\"}}\nline two")),
        2 => Message::binary(
            (0..=255u8)
                .rev()
                .chain([(i % 256) as u8])
                .collect::<Vec<u8>>(),
        ),
        3 => Message::text(""),
        4 => Message::binary(vec![
            0xff,
            0xfe,
            0x00,
            b'"',
            b'\\',
            b'\n',
            b'\r',
            (i % 256) as u8,
        ]),
        5 => Message::binary(Vec::new()),
        _ => Message::text(format!("{i}\t\u{7}\u{8}\r\n\u{0}")),
    }
}

/// The sequence number written in `msg-N`-style payloads (the kill test).
fn seq_of(payload: &[u8]) -> u64 {
    std::str::from_utf8(payload)
        .ok()
        .and_then(|s| s.strip_prefix("msg-"))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a msg-N payload: {payload:?}"))
}

#[tokio::test]
#[ignore = "needs redis-server (scripts/common.sh: ensure_redis)"]
async fn a_thousand_records_in_batches_of_various_sizes_come_back_in_order_unchanged() {
    let server = RedisServer::start();
    let mut sink = Redis::connect(&server.url("feed")).await.unwrap();
    assert_eq!(
        sink.describe(),
        format!("redis://127.0.0.1:{}/feed", server.port)
    );
    let run = RunId::random();
    let messages: Vec<Message> = (0..1000).map(message).collect();
    let sizes = [1usize, 7, 100, 3, 250, 64, 2, 500];
    let mut sent = 0;
    for size in sizes.iter().cycle() {
        if sent == messages.len() {
            break;
        }
        let end = (sent + size).min(messages.len());
        sink.publish(&records(run, sent as u64, &messages[sent..end]))
            .await
            .unwrap();
        sent = end;
    }
    sink.publish(&[]).await.unwrap();

    assert_eq!(server.xlen("feed"), 1000);
    let entries = server.xrange("feed");
    assert_eq!(entries.len(), 1000);
    for (i, (entry, message)) in entries.iter().zip(&messages).enumerate() {
        // One field, `data`, the message's bytes as they were.
        assert_eq!(entry.fields.len(), 1, "entry {i}: {entry:?}");
        assert_eq!(entry.get("data"), Some(message.as_bytes()), "entry {i}");
    }
    // Bytes that are not UTF-8 really were among them.
    assert!(entries
        .iter()
        .any(|e| std::str::from_utf8(e.get("data").unwrap()).is_err()));
}

#[tokio::test]
#[ignore = "needs redis-server (scripts/common.sh: ensure_redis)"]
async fn with_id_field_each_entry_also_holds_its_message_id() {
    let server = RedisServer::start();
    let mut sink = Redis::builder(&server.url("feed"))
        .unwrap()
        .with_id_field(true)
        .connect()
        .await
        .unwrap();
    let run = RunId(0x00c0_ffee_00c0_ffee);
    let messages: Vec<Message> = (0..5).map(message).collect();
    sink.publish(&records(run, 40, &messages)).await.unwrap();
    let entries = server.xrange("feed");
    assert_eq!(entries.len(), 5);
    for (i, entry) in entries.iter().enumerate() {
        let names: Vec<&[u8]> = entry.fields.iter().map(|(f, _)| &f[..]).collect();
        assert_eq!(names, [&b"data"[..], b"id"], "entry {i}");
        assert_eq!(entry.get("data"), Some(messages[i].as_bytes()));
        let id: MessageId = std::str::from_utf8(entry.get("id").unwrap())
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(id, MessageId::new(run, 40 + i as u64));
    }
}

#[tokio::test]
#[ignore = "needs redis-server (scripts/common.sh: ensure_redis)"]
async fn the_key_is_the_urls_whole_path_slashes_and_escapes_included() {
    let server = RedisServer::start();
    let url = server.url("feeds/btc-usd");
    let mut sink = Redis::connect(&url).await.unwrap();
    assert_eq!(sink.describe(), url);
    let messages = [Message::text("a"), Message::text("b"), Message::text("c")];
    sink.publish(&records(RunId::random(), 0, &messages))
        .await
        .unwrap();
    assert_eq!(server.xlen("feeds/btc-usd"), 3);
    assert_eq!(server.cli(&["TYPE", "feeds/btc-usd"]), "stream");
    assert_eq!(server.cli(&["EXISTS", "feeds"]), "0");
    // Nothing went to another database: a path is not a db number here.
    assert_eq!(server.cli(&["DBSIZE"]), "1");

    let mut sink = Redis::connect(&server.url("a%20b%3Fc")).await.unwrap();
    sink.publish(&records(RunId::random(), 0, &messages[..1]))
        .await
        .unwrap();
    assert_eq!(server.xlen("a b?c"), 1);
}

#[tokio::test]
#[ignore = "needs redis-server (scripts/common.sh: ensure_redis)"]
async fn maxlen_keeps_the_stream_about_that_long_and_keeps_the_newest() {
    let server = RedisServer::start();
    let mut sink = Redis::builder(&server.url("feed"))
        .unwrap()
        .maxlen(250)
        .connect()
        .await
        .unwrap();
    let run = RunId::random();
    let messages: Vec<Message> = (0..2000)
        .map(|i| Message::text(format!("msg-{i}")))
        .collect();
    for (n, chunk) in messages.chunks(50).enumerate() {
        sink.publish(&records(run, (n * 50) as u64, chunk))
            .await
            .unwrap();
    }
    // `~`: whole nodes of 100 entries (stream-node-max-entries) are dropped.
    let len = server.xlen("feed");
    assert!((250..=350).contains(&len), "XLEN {len}");
    let entries = server.xrange("feed");
    let seqs: Vec<u64> = entries
        .iter()
        .map(|e| seq_of(e.get("data").unwrap()))
        .collect();
    let expected: Vec<u64> = (2000 - len as u64..2000).collect();
    assert_eq!(seqs, expected, "the newest {len}, in order");
}

#[tokio::test]
#[ignore = "needs redis-server (scripts/common.sh: ensure_redis)"]
async fn a_key_of_another_type_is_refused_with_redis_words() {
    let server = RedisServer::start();
    assert_eq!(server.cli(&["SET", "feed", "not a stream"]), "OK");
    let mut sink = Redis::connect(&server.url("feed")).await.unwrap();
    let messages = [Message::text("a"), Message::text("b")];
    let err = sink
        .publish(&records(RunId::random(), 0, &messages))
        .await
        .unwrap_err();
    assert!(matches!(err, SinkError::Refused { .. }), "{err:?}");
    assert!(!err.is_retryable());
    let text = err.to_string();
    eprintln!("{text}");
    assert!(
        text.contains("WRONGTYPE Operation against a key holding the wrong kind of value"),
        "{text}"
    );
    assert!(text.contains(&sink.describe()), "{text}");
    assert!(
        text.contains("0 of the batch's 2 records were stored"),
        "{text}"
    );
    assert_eq!(server.cli(&["GET", "feed"]), "not a stream");
    // The connection is still good: another key of the same server works.
    let mut other = Redis::connect(&server.url("other")).await.unwrap();
    other
        .publish(&records(RunId::random(), 0, &messages))
        .await
        .unwrap();
    assert_eq!(server.xlen("other"), 2);
}

#[tokio::test]
#[ignore = "needs redis-server (scripts/common.sh: ensure_redis)"]
async fn a_server_out_of_memory_refuses_with_redis_words() {
    let server = RedisServer::start();
    let mut sink = Redis::connect(&server.url("feed")).await.unwrap();
    assert_eq!(server.cli(&["CONFIG", "SET", "maxmemory", "1"]), "OK");
    let messages = [Message::text("a")];
    let err = sink
        .publish(&records(RunId::random(), 0, &messages))
        .await
        .unwrap_err();
    assert!(matches!(err, SinkError::Refused { .. }), "{err:?}");
    assert!(err.to_string().contains("OOM command not allowed"), "{err}");
    assert_eq!(server.cli(&["CONFIG", "SET", "maxmemory", "0"]), "OK");
    sink.publish(&records(RunId::random(), 0, &messages))
        .await
        .unwrap();
    assert_eq!(server.xlen("feed"), 1);
}

#[tokio::test]
#[ignore = "needs redis-server (scripts/common.sh: ensure_redis)"]
async fn no_server_at_the_address_is_unreachable_naming_it() {
    // A port just freed: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let err = Redis::connect(&format!("redis://127.0.0.1:{port}/feed"))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    eprintln!("{err}");
    assert!(matches!(err, SinkError::Unreachable { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert!(
        err.to_string()
            .contains(&format!("redis://127.0.0.1:{port}")),
        "{err}"
    );
}

#[tokio::test]
#[ignore = "needs redis-server (scripts/common.sh: ensure_redis)"]
async fn a_server_that_never_answers_is_unreachable_within_the_connect_timeout() {
    let server = RedisServer::start();
    // Stopped: the kernel still accepts the connection; nothing answers.
    server.set_running(false);
    let started = Instant::now();
    let err = Redis::builder(&server.url("feed"))
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap_err();
    let took = started.elapsed();
    server.set_running(true);
    eprintln!("{err}");
    assert!(matches!(err, SinkError::Unreachable { .. }), "{err:?}");
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert!(
        err.to_string()
            .contains(&format!("redis://127.0.0.1:{}", server.port)),
        "{err}"
    );
}

#[tokio::test]
#[ignore = "needs redis-server (scripts/common.sh: ensure_redis)"]
async fn a_missing_or_wrong_password_is_refused() {
    let server = RedisServer::start_with(&[
        "--save",
        "",
        "--appendonly",
        "no",
        "--requirepass",
        "s3cret/pw",
    ]);
    let port = server.port;
    for url in [
        format!("redis://127.0.0.1:{port}/feed"),
        format!("redis://:bad-pw-123@127.0.0.1:{port}/feed"),
        format!("redis://default:bad-pw-123@127.0.0.1:{port}/feed"),
    ] {
        let started = Instant::now();
        let err = Redis::connect(&url).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(matches!(err, SinkError::Refused { .. }), "{url}: {err:?}");
        assert!(!err.is_retryable());
        let text = err.to_string();
        eprintln!("{text}");
        assert!(
            text.contains(&format!("redis://127.0.0.1:{port}")),
            "{text}"
        );
        assert!(
            !text.contains("bad-pw-123"),
            "the password is not shown: {text}"
        );
        assert!(
            text.contains("NOAUTH") || text.contains("WRONGPASS") || text.contains("password"),
            "{text}"
        );
    }
    // The right one, percent-escaped ('/' in a password).
    let mut sink = Redis::connect(&format!("redis://:s3cret%2Fpw@127.0.0.1:{port}/feed"))
        .await
        .unwrap();
    assert_eq!(sink.describe(), format!("redis://127.0.0.1:{port}/feed"));
    sink.publish(&records(RunId::random(), 0, &[Message::text("a")]))
        .await
        .unwrap();
    assert_eq!(server.xlen("feed"), 1);
}

#[tokio::test]
#[ignore = "needs redis-server (scripts/common.sh: ensure_redis)"]
async fn replies_that_do_not_come_are_a_timeout_and_the_next_publish_reconnects() {
    let server = RedisServer::start();
    let mut sink = Redis::builder(&server.url("feed"))
        .unwrap()
        .ack_timeout(Duration::from_millis(500))
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap();
    let run = RunId::random();
    let messages: Vec<Message> = (0..10).map(|i| Message::text(format!("msg-{i}"))).collect();
    let batch = records(run, 0, &messages);
    server.set_running(false);
    let started = Instant::now();
    let err = sink.publish(&batch).await.unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(err, SinkError::Timeout { after, .. } if after == Duration::from_millis(500)),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert!(took < Duration::from_secs(2), "{took:?}");
    server.set_running(true);
    // The retry: the stalled server may also have run the first pipeline
    // once it resumed (it was in its socket buffer), so the stream holds
    // the batch once or twice: the documented duplicate.
    sink.publish(&batch).await.unwrap();
    let seqs: Vec<u64> = server
        .xrange("feed")
        .iter()
        .map(|e| seq_of(e.get("data").unwrap()))
        .collect();
    let once: Vec<u64> = (0..10).collect();
    let twice: Vec<u64> = (0..10).chain(0..10).collect();
    assert!(seqs == once || seqs == twice, "{seqs:?}");
}

#[tokio::test]
#[ignore = "needs redis-server (scripts/common.sh: ensure_redis)"]
async fn a_server_killed_while_publishing_is_a_retryable_error_and_a_restarted_one_takes_the_retry()
{
    // Persistent, so that what was acknowledged before the kill survives
    // it: the AOF is written before a reply is sent.
    let mut server = RedisServer::start_with(&[
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
    ]);
    let mut sink = Redis::builder(&server.url("feed"))
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap();
    let run = RunId::random();
    const BATCH: u64 = 50;
    let batch_messages = |first: u64| -> Vec<Message> {
        (first..first + BATCH)
            .map(|i| Message::text(format!("msg-{i}")))
            .collect()
    };

    let pid = server.pid();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        // SAFETY: kill has no memory preconditions; pid is the test's child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        Instant::now()
    });
    // Publish until the kill makes a publish fail.
    let mut first = 0u64;
    let (failed_first, err) = loop {
        let messages = batch_messages(first);
        match sink.publish(&records(run, first, &messages)).await {
            Ok(()) => first += BATCH,
            Err(err) => break (first, err),
        }
        assert!(first < 10_000_000, "the kill never failed a publish");
    };
    let failed_at = Instant::now();
    let killed_at = killer.join().unwrap();
    assert!(
        failed_at.saturating_duration_since(killed_at) < Duration::from_secs(6),
        "the error came {:?} after the kill",
        failed_at.saturating_duration_since(killed_at)
    );
    assert!(err.is_retryable(), "{err:?}");
    assert!(matches!(err, SinkError::Unreachable { .. }), "{err:?}");
    server.wait_dead();

    // While it is down, a retry fails fast, and retryably.
    let messages = batch_messages(failed_first);
    let err = sink
        .publish(&records(run, failed_first, &messages))
        .await
        .unwrap_err();
    assert!(matches!(err, SinkError::Unreachable { .. }), "{err:?}");

    server.restart();
    // The failed batch again, with the same ids, then two more.
    sink.publish(&records(run, failed_first, &messages))
        .await
        .unwrap();
    for next in [failed_first + BATCH, failed_first + 2 * BATCH] {
        let messages = batch_messages(next);
        sink.publish(&records(run, next, &messages)).await.unwrap();
    }
    let total = failed_first + 3 * BATCH;

    // The stream: every message, in order, each once, except that records
    // of the batch in flight at the kill may be there twice (stored before
    // the kill, and again by the retry).
    let seqs: Vec<u64> = server
        .xrange("feed")
        .iter()
        .map(|e| seq_of(e.get("data").unwrap()))
        .collect();
    let before = seqs.iter().take_while(|&&s| s < failed_first).count();
    assert_eq!(
        seqs[..before],
        (0..failed_first).collect::<Vec<_>>()[..],
        "everything acknowledged before the kill survived, once, in order"
    );
    // Then a prefix of the batch in flight (what the server took before it
    // died), then the retried batch and the rest, each once.
    let rest = &seqs[before..];
    let prefix_len = (rest.len() as u64)
        .checked_sub(total - failed_first)
        .unwrap_or_else(|| panic!("messages missing after {failed_first}: {rest:?}"));
    assert!(prefix_len <= BATCH, "{prefix_len} duplicates: {rest:?}");
    let expected: Vec<u64> = (failed_first..failed_first + prefix_len)
        .chain(failed_first..total)
        .collect();
    assert_eq!(rest, &expected[..]);
    eprintln!(
        "killed during the batch from {failed_first}: {prefix_len} of its records were stored before the kill and again by the retry"
    );
}

#[tokio::test]
#[ignore = "needs redis-server (scripts/common.sh: ensure_redis)"]
async fn an_idle_sink_whose_server_restarted_fails_once_then_reconnects() {
    let mut server = RedisServer::start();
    let mut sink = Redis::connect(&server.url("feed")).await.unwrap();
    let messages = [Message::text("msg-0")];
    sink.publish(&records(RunId::random(), 0, &messages))
        .await
        .unwrap();
    server.restart(); // in memory only: the stream is gone
    let err = sink
        .publish(&records(RunId::random(), 1, &messages))
        .await
        .unwrap_err();
    assert!(matches!(err, SinkError::Unreachable { .. }), "{err:?}");
    sink.publish(&records(RunId::random(), 1, &messages))
        .await
        .unwrap();
    assert_eq!(server.xlen("feed"), 1);
}
