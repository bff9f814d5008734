//! The feed, as its docs describe it, seen by a raw client: messages
//! numbered across the connection and round robin over the channels,
//! padded to their size, the query string's overrides, the close after
//! `count`, pings whose pongs the report counts, and how a connection
//! ended.

mod support;

use floodgate_proto::Message;
use floodgate_server::feed::{Feed, FeedConfig, FeedEnd, FeedError, FeedMessage, FeedReport};
use floodgate_server::Server;
use std::sync::mpsc;
use std::time::Duration;
use support::RawClient;

/// A feed server that sends each connection's report to the receiver.
fn feed_server(config: FeedConfig) -> (Server, mpsc::Receiver<FeedReport>) {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let feed = Feed::new(config).on_report(move |report| {
        let _ = tx.lock().unwrap().send(report);
    });
    (Server::bind("127.0.0.1:0", feed.handler()).unwrap(), rx)
}

fn unpaced(count: u64) -> FeedConfig {
    FeedConfig {
        rate: None,
        count: Some(count),
        ping_interval: None,
        ..FeedConfig::default()
    }
}

fn report(reports: &mpsc::Receiver<FeedReport>) -> FeedReport {
    reports.recv_timeout(Duration::from_secs(10)).unwrap()
}

#[test]
fn messages_are_numbered_round_robin_over_the_channels_then_the_feed_closes() {
    let (server, reports) = feed_server(FeedConfig {
        channels: 4,
        size: 200,
        ..unpaced(1_000)
    });
    let mut client = RawClient::connect(server.local_addr(), "/");
    for n in 0..1_000 {
        let message = client.recv_data().unwrap();
        let text = message.as_text().unwrap();
        assert_eq!(text.len(), 200);
        let numbered = FeedMessage::parse(text).unwrap();
        assert_eq!(numbered, FeedMessage::numbered(n, 4, numbered.sent_us));
    }
    let close = client.recv_data().unwrap_err().unwrap();
    assert_eq!(
        (close.code.0, close.reason.as_str()),
        (1000, "feed complete")
    );
    client.flush(); // the answer to the close
    let report = report(&reports);
    assert!(matches!(report.end, FeedEnd::Completed), "{report:?}");
    assert_eq!((report.sent, report.bytes), (1_000, 200_000));
    assert_eq!(report.path, "/");
}

#[test]
fn the_query_string_chooses_each_clients_feed() {
    let (server, reports) = feed_server(unpaced(1_000));
    let mut client = RawClient::connect(server.local_addr(), "/feed?channels=3&count=9&size=100");
    let channels: Vec<u32> = (0..9)
        .map(|_| {
            FeedMessage::parse(client.recv_data().unwrap().as_text().unwrap())
                .unwrap()
                .channel
        })
        .collect();
    assert_eq!(channels, [0, 1, 2, 0, 1, 2, 0, 1, 2]);
    assert!(client.recv_data().is_err(), "closed after 9");
    client.flush();
    assert_eq!(report(&reports).sent, 9);
}

#[test]
fn an_invalid_query_is_closed_with_1008_and_the_reason() {
    let (server, reports) = feed_server(unpaced(10));
    let mut client = RawClient::connect(server.local_addr(), "/?rate=fast");
    let close = client.recv_data().unwrap_err().unwrap();
    assert_eq!(close.code.0, 1008);
    assert!(close.reason.contains("rate"), "{close}");
    client.flush();
    let report = report(&reports);
    assert!(
        matches!(report.end, FeedEnd::Failed(FeedError::Query(_))),
        "{report:?}"
    );
}

#[test]
fn a_paced_feed_sends_no_faster_than_its_rate() {
    // 20 messages at 200/s: the last is due 95 ms after the first.
    let (server, reports) = feed_server(FeedConfig {
        rate: Some(200.0),
        ..unpaced(20)
    });
    let mut client = RawClient::connect(server.local_addr(), "/");
    let stamps: Vec<u64> = (0..20)
        .map(|_| {
            FeedMessage::parse(client.recv_data().unwrap().as_text().unwrap())
                .unwrap()
                .sent_us
        })
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "{stamps:?}");
    assert!(stamps[19] - stamps[0] >= 95_000, "{stamps:?}");
    client.recv_data().unwrap_err();
    client.flush();
    assert!(report(&reports).elapsed >= Duration::from_millis(95));
}

#[test]
fn the_feed_pings_and_counts_the_pongs_that_answer() {
    let (server, reports) = feed_server(FeedConfig {
        rate: Some(100.0),
        ping_interval: Some(Duration::from_millis(20)),
        ..unpaced(30)
    });
    let mut client = RawClient::connect(server.local_addr(), "/");
    let mut pings = 0;
    loop {
        match client.recv().unwrap() {
            // Its pong was queued by the protocol and went out with recv.
            Message::Ping(_) => pings += 1,
            Message::Close(_) => break,
            _ => {}
        }
    }
    client.flush();
    let report = report(&reports);
    assert!(pings >= 2, "{pings} pings in about 300 ms");
    assert_eq!(report.pings_sent, pings);
    assert_eq!(report.pongs, pings, "{report:?}");
    assert!(report.worst_ping_rtt.is_some());
}

#[test]
fn a_client_that_closes_ends_its_feed_with_its_frame() {
    let (server, reports) = feed_server(FeedConfig {
        count: None,
        ..unpaced(0)
    });
    let mut client = RawClient::connect(server.local_addr(), "/");
    for _ in 0..100 {
        client.recv_data().unwrap();
    }
    client.close(4001, "enough");
    // Data in flight, then the server's answer, then the end of TCP.
    while client.recv_data().is_ok() {}
    assert!(client.ends());
    match report(&reports).end {
        FeedEnd::ClientClosed(Some(frame)) => assert_eq!(frame.code.0, 4001),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_client_that_vanishes_fails_its_feed() {
    let (server, reports) = feed_server(FeedConfig {
        count: None,
        ..unpaced(0)
    });
    let mut client = RawClient::connect(server.local_addr(), "/");
    client.recv_data().unwrap();
    drop(client);
    let report = report(&reports);
    assert!(
        matches!(report.end, FeedEnd::Failed(FeedError::Connection(_))),
        "{report:?}"
    );
    assert!(report.sent > 0);
}

#[test]
fn the_live_figures_add_up_over_connections() {
    let feed = Feed::new(unpaced(50));
    let live = feed.live();
    let server = Server::bind("127.0.0.1:0", feed.handler()).unwrap();
    for _ in 0..2 {
        let mut client = RawClient::connect(server.local_addr(), "/");
        while client.recv_data().is_ok() {}
        client.flush();
        assert!(client.ends());
    }
    assert_eq!((live.connections(), live.sent()), (2, 100));
}
