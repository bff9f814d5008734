//! The NATS JetStream sink (`floodgate::sink::Nats`, feature `sink-nats`)
//! against a real `nats-server -js` that each test starts on a free
//! loopback port with its own store directory (see brokers/nats.rs), and
//! what the stream stored read back with a JetStream consumer.
//!
//! `#[ignore]`d: they need `nats-server` (`ensure_nats` in
//! scripts/common.sh). Run: `cargo test -p floodgate --features sink-nats
//! --test sink_nats -- --ignored`.
#![cfg(feature = "sink-nats")]

#[path = "brokers/nats.rs"]
mod broker;
#[path = "brokers/common.rs"]
mod common;

use broker::{read_stream, stream_names, NatsServer, Stored};
use common::{free_port, records};
use floodgate::sink::{MessageId, Nats, RunId, Sink, SinkError};
use floodgate::Message;
use std::time::{Duration, Instant};

/// Message `i`: text and binary in turn, binary ones not UTF-8, sizes
/// varying (some empty).
fn message(i: usize) -> Message {
    if i % 2 == 0 {
        Message::text(format!("text {i} é 🦀 {}", "x".repeat(i % 97)))
    } else if i % 10 == 3 {
        Message::binary(Vec::new())
    } else {
        Message::binary(
            (0..(i % 300))
                .map(|b| (b * 7 + i) as u8 | 0x80)
                .collect::<Vec<u8>>(),
        )
    }
}

fn expected(run: RunId, messages: &[Message], first: u64) -> Vec<(String, Vec<u8>)> {
    messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            (
                MessageId::new(run, first + i as u64).to_string(),
                m.as_bytes().to_vec(),
            )
        })
        .collect()
}

fn got(stored: &[Stored]) -> Vec<(String, Vec<u8>)> {
    stored
        .iter()
        .map(|s| {
            (
                s.id.clone().expect("a message without Nats-Msg-Id"),
                s.body.clone(),
            )
        })
        .collect()
}

/// Batch sizes that vary: 1, 2, 3, 7, 50, 128, 300, and again.
const SIZES: [usize; 7] = [1, 2, 3, 7, 50, 128, 300];

async fn publish_in_batches(sink: &mut Nats, run: RunId, messages: &[Message]) {
    let mut at = 0;
    for size in SIZES.iter().cycle() {
        if at == messages.len() {
            break;
        }
        let end = (at + size).min(messages.len());
        sink.publish(&records(run, at as u64, &messages[at..end]))
            .await
            .unwrap_or_else(|e| panic!("batch {at}..{end}: {e}"));
        at = end;
    }
}

#[tokio::test]
#[ignore = "needs nats-server (scripts/common.sh: ensure_nats)"]
async fn a_thousand_records_are_stored_once_in_order_with_their_ids() {
    let server = NatsServer::start();
    let mut sink = Nats::connect(&server.url(), "feeds.one").await.unwrap();
    assert_eq!(
        sink.describe(),
        format!("nats://127.0.0.1:{}/feeds.one", server.port)
    );
    let run = RunId(0x0123_4567_89ab_cdef);
    let messages: Vec<Message> = (0..1000).map(message).collect();
    publish_in_batches(&mut sink, run, &messages).await;
    // Empty batches are acknowledged at once.
    sink.publish(&[]).await.unwrap();

    let stored = read_stream(&server.url(), sink.stream()).await;
    assert_eq!(stored.len(), 1000);
    assert!(stored.iter().all(|s| s.subject == "feeds.one"));
    assert_eq!(got(&stored), expected(run, &messages, 0));
    assert_eq!(stored[2].id.as_deref(), Some("0123456789abcdef-2"));
}

#[tokio::test]
#[ignore = "needs nats-server (scripts/common.sh: ensure_nats)"]
async fn a_retried_batch_is_stored_once_and_a_new_run_is_not_a_duplicate() {
    let server = NatsServer::start();
    let mut sink = Nats::connect(&server.url(), "feeds.retry").await.unwrap();
    let run = RunId::random();
    let messages: Vec<Message> = (0..200).map(message).collect();
    let batch = records(run, 0, &messages);
    sink.publish(&batch).await.unwrap();
    // A retry of the whole batch, and of a part of it from another sink
    // (a restarted connection): all within the duplicate window.
    sink.publish(&batch).await.unwrap();
    let mut again = Nats::connect(&server.url(), "feeds.retry").await.unwrap();
    again.publish(&batch[50..120]).await.unwrap();
    let stored = read_stream(&server.url(), sink.stream()).await;
    assert_eq!(got(&stored), expected(run, &messages, 0));

    // A new run restarts its sequence at 0: new ids, stored.
    let next = RunId(run.0.wrapping_add(1));
    again.publish(&records(next, 0, &messages)).await.unwrap();
    let stored = read_stream(&server.url(), sink.stream()).await;
    assert_eq!(stored.len(), 400);
    let mut want = expected(run, &messages, 0);
    want.extend(expected(next, &messages, 0));
    assert_eq!(got(&stored), want);
}

#[tokio::test]
#[ignore = "needs nats-server (scripts/common.sh: ensure_nats)"]
async fn a_missing_stream_is_created_and_an_existing_one_is_used() {
    let server = NatsServer::start();
    let url = server.url();
    let run = RunId::random();
    let messages: Vec<Message> = (0..10).map(message).collect();

    // None captures feeds.btc-usd: one named from the subject is created,
    // file storage, JetStream's default duplicate window (2 min).
    let mut sink = Nats::connect(&url, "feeds.btc-usd").await.unwrap();
    assert_eq!(sink.stream(), "feeds_btc-usd");
    assert_eq!(Nats::stream_name_for("feeds.btc-usd"), "feeds_btc-usd");
    sink.publish(&records(run, 0, &messages)).await.unwrap();
    let client = async_nats::connect(&url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut created = js.get_stream("feeds_btc-usd").await.unwrap();
    let info = created.info().await.unwrap();
    assert_eq!(info.config.subjects, ["feeds.btc-usd"]);
    assert_eq!(
        info.config.storage,
        async_nats::jetstream::stream::StorageType::File
    );
    assert_eq!(info.config.duplicate_window, Duration::from_secs(120));
    assert_eq!(info.state.messages, 10);
    // Connecting again finds it (by subject) and creates nothing.
    let again = Nats::connect(&url, "feeds.btc-usd").await.unwrap();
    assert_eq!(again.stream(), "feeds_btc-usd");

    // A stream made beforehand with another name, capturing a wildcard
    // that covers the subject, is the one used.
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "MADE_BEFORE".into(),
        subjects: vec!["pre.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let mut sink = Nats::connect(&url, "pre.x").await.unwrap();
    assert_eq!(sink.stream(), "MADE_BEFORE");
    sink.publish(&records(run, 0, &messages)).await.unwrap();
    assert_eq!(
        got(&read_stream(&url, "MADE_BEFORE").await),
        expected(run, &messages, 0)
    );
    // Naming it works too; naming another one for a captured subject is
    // refused, naming a missing one creates it.
    let named = Nats::builder(&url, "pre.x").stream("MADE_BEFORE");
    assert_eq!(named.connect().await.unwrap().stream(), "MADE_BEFORE");
    let err = Nats::builder(&url, "pre.x")
        .stream("ELSEWHERE")
        .connect()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SinkError::Refused { reason, .. } if reason.contains("MADE_BEFORE")),
        "{err}"
    );
    let mut named = Nats::builder(&url, "named.subject")
        .stream("NAMED")
        .connect()
        .await
        .unwrap();
    named.publish(&records(run, 0, &messages)).await.unwrap();
    assert_eq!(read_stream(&url, "NAMED").await.len(), 10);
    assert_eq!(
        stream_names(&url).await,
        ["MADE_BEFORE", "NAMED", "feeds_btc-usd"]
    );
}

#[tokio::test]
#[ignore = "runs with the other NATS tests (-- --ignored); needs no broker"]
async fn no_broker_is_unreachable_within_the_bound_naming_the_address() {
    // Nothing listens: refused at once.
    let port = free_port();
    let started = Instant::now();
    let err = Nats::connect(&format!("nats://127.0.0.1:{port}"), "x")
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(matches!(err, SinkError::Unreachable { .. }), "{err}");
    assert!(err.is_retryable());
    assert!(
        err.to_string()
            .contains(&format!("nats://127.0.0.1:{port}")),
        "{err}"
    );

    // Something listens and never speaks: the connect timeout bounds it.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let started = Instant::now();
    let err = Nats::builder(&format!("nats://u:secret@127.0.0.1:{port}"), "x")
        .connect_timeout(Duration::from_secs(1))
        .connect()
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(matches!(err, SinkError::Unreachable { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("nats://127.0.0.1:{port}/x")),
        "{text}"
    );
    assert!(!text.contains("secret"), "{text}");
}

#[tokio::test]
#[ignore = "needs nats-server (scripts/common.sh: ensure_nats)"]
async fn wrong_credentials_and_no_jetstream_are_refused() {
    let server = NatsServer::start_with(&["-js", "--user", "feeder", "--pass", "right"]);
    let port = server.port;
    let err = Nats::connect(&format!("nats://feeder:wrong@127.0.0.1:{port}"), "x")
        .await
        .unwrap_err();
    assert!(matches!(err, SinkError::Refused { .. }), "{err}");
    assert!(!err.is_retryable());
    assert!(!err.to_string().contains("wrong"), "{err}");
    let mut sink = Nats::connect(&format!("nats://feeder:right@127.0.0.1:{port}"), "x")
        .await
        .unwrap();
    assert_eq!(sink.describe(), format!("nats://127.0.0.1:{port}/x"));
    let messages = [Message::text("in")];
    sink.publish(&records(RunId::random(), 0, &messages))
        .await
        .unwrap();

    let plain = NatsServer::start_with(&[]);
    let err = Nats::connect(&plain.url(), "x").await.unwrap_err();
    assert!(
        matches!(&err, SinkError::Refused { reason, .. } if reason.contains("-js")),
        "{err}"
    );
}

#[tokio::test]
#[ignore = "needs nats-server (scripts/common.sh: ensure_nats)"]
async fn a_broker_killed_while_publishing_fails_the_batch_and_a_retry_after_restart_stores_each_once(
) {
    let mut server = NatsServer::start();
    let ack_timeout = Duration::from_secs(5);
    let mut sink = Nats::builder(&server.url(), "feeds.killed")
        .ack_timeout(ack_timeout)
        .connect()
        .await
        .unwrap();
    let run = RunId::random();
    let messages: Vec<Message> = (0..20_000).map(message).collect();
    const BATCH: usize = 500;
    let batches: Vec<&[Message]> = messages.chunks(BATCH).collect();

    // Kill the broker once a few batches went through, from another task,
    // while this one keeps publishing.
    let (published_tx, mut published_rx) = tokio::sync::watch::channel(0usize);
    let pid = server.pid();
    let killer = tokio::spawn(async move {
        published_rx.wait_for(|n| *n >= 5).await.unwrap();
        // SIGKILL, from outside, as a crash would.
        let status = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    });

    let mut failed_at = None;
    for (i, batch) in batches.iter().enumerate() {
        let started = Instant::now();
        match sink.publish(&records(run, (i * BATCH) as u64, batch)).await {
            Ok(()) => {
                published_tx.send_replace(i + 1);
            }
            Err(err) => {
                let took = started.elapsed();
                assert!(err.is_retryable(), "{err}");
                assert!(
                    took <= ack_timeout + Duration::from_secs(1),
                    "{took:?}: {err}"
                );
                failed_at = Some(i);
                break;
            }
        }
    }
    killer.await.unwrap();
    let failed_at = failed_at.expect("every batch was acknowledged though the broker was killed");
    assert!(failed_at >= 5);

    server.restart();
    // The failed batch again, as a bridge would: retried until it goes
    // through (the client reconnects on its own), then the rest.
    let deadline = Instant::now() + Duration::from_secs(30);
    for (i, batch) in batches.iter().enumerate().skip(failed_at) {
        loop {
            match sink.publish(&records(run, (i * BATCH) as u64, batch)).await {
                Ok(()) => break,
                Err(err) => {
                    assert!(err.is_retryable(), "{err}");
                    assert!(Instant::now() < deadline, "still failing: {err}");
                }
            }
        }
    }

    let stored = read_stream(&server.url(), sink.stream()).await;
    let ids: Vec<String> = stored.iter().map(|s| s.id.clone().unwrap()).collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "duplicates stored");
    assert_eq!(
        ids.len(),
        messages.len(),
        "stored {} of {} ({} acknowledged before the kill)",
        ids.len(),
        messages.len(),
        failed_at * BATCH
    );
    let (got, want) = (got(&stored), expected(run, &messages, 0));
    if let Some(at) = (0..want.len()).find(|&i| got[i] != want[i]) {
        panic!(
            "stored out of order or changed from #{at} (batch {failed_at} failed): ids {:?}, \
             expected {:?}",
            got[at..(at + 5).min(got.len())]
                .iter()
                .map(|g| &g.0)
                .collect::<Vec<_>>(),
            want[at..(at + 5).min(want.len())]
                .iter()
                .map(|w| &w.0)
                .collect::<Vec<_>>(),
        );
    }
}

#[tokio::test]
#[ignore = "needs nats-server (scripts/common.sh: ensure_nats)"]
async fn a_stalled_broker_is_a_timeout_and_a_sealed_stream_is_refused() {
    let server = NatsServer::start();
    let ack_timeout = Duration::from_secs(1);
    let mut sink = Nats::builder(&server.url(), "feeds.stalled")
        .ack_timeout(ack_timeout)
        .connect()
        .await
        .unwrap();
    let run = RunId::random();
    let messages: Vec<Message> = (0..100).map(message).collect();
    sink.publish(&records(run, 0, &messages[..50]))
        .await
        .unwrap();

    // Stopped, not dead: the connection stays up, no acknowledgement comes.
    let signal = |sig: &str| {
        let status = std::process::Command::new("kill")
            .args([sig, &server.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };
    signal("-STOP");
    // The stop is asynchronous: wait until every thread is stopped.
    let stopped = || {
        let tasks = format!("/proc/{}/task", server.pid());
        std::fs::read_dir(tasks).unwrap().all(|task| {
            let stat = std::fs::read_to_string(task.unwrap().path().join("stat")).unwrap();
            // "PID (comm) STATE ...": the state follows the last ')'.
            stat.rsplit(')')
                .next()
                .unwrap()
                .trim_start()
                .starts_with('T')
        })
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while !stopped() {
        assert!(Instant::now() < deadline, "nats-server did not stop");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let started = Instant::now();
    let err = sink
        .publish(&records(run, 50, &messages[50..]))
        .await
        .unwrap_err();
    let took = started.elapsed();
    signal("-CONT");
    assert!(matches!(err, SinkError::Timeout { .. }), "{err}");
    assert!(err.is_retryable());
    assert!(
        took >= ack_timeout && took < ack_timeout + Duration::from_secs(2),
        "{took:?}"
    );
    // Retried once the broker runs again: stored once, in order.
    sink.publish(&records(run, 50, &messages[50..]))
        .await
        .unwrap();
    let stored = read_stream(&server.url(), sink.stream()).await;
    assert_eq!(got(&stored), expected(run, &messages, 0));

    // A JetStream refusal is Refused, with the server's words.
    let client = async_nats::connect(&server.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut config = js
        .get_stream(sink.stream())
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .config
        .clone();
    config.sealed = true;
    js.update_stream(config).await.unwrap();
    let more = [Message::text("after sealing")];
    let err = sink.publish(&records(run, 100, &more)).await.unwrap_err();
    assert!(matches!(err, SinkError::Refused { .. }), "{err}");
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("sealed"), "{err}");
}

#[tokio::test]
#[ignore = "needs nats-server (scripts/common.sh: ensure_nats)"]
async fn a_batch_larger_than_the_acknowledgement_window_goes_through() {
    // More records than the sink keeps acknowledgements pending (4096):
    // it must wait for the oldest as it goes, not stall on its own permits.
    let server = NatsServer::start();
    let mut sink = Nats::builder(&server.url(), "feeds.large")
        .ack_timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap();
    let run = RunId::random();
    let messages: Vec<Message> = (0..10_000).map(|i| Message::text(format!("{i}"))).collect();
    let started = Instant::now();
    let batch = records(run, 0, &messages);
    let publish = sink.publish(&batch);
    tokio::time::timeout(Duration::from_secs(30), publish)
        .await
        .expect("the batch stalled")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    let stored = read_stream(&server.url(), sink.stream()).await;
    assert_eq!(got(&stored), expected(run, &messages, 0));
}
