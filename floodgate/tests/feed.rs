//! The feed handler of the embedded server (`floodgate_server::feed`):
//! what it sends, how it paces and pings, how it ends, and what it
//! reports — checked from a real client over loopback.

use floodgate::{CloseCode, ErrorKind};
use floodgate_server::feed::{Feed, FeedConfig, FeedEnd, FeedMessage, FeedReport};
use floodgate_server::Server;
use std::sync::mpsc;
use std::time::{Duration, Instant};

const PATIENCE: Duration = Duration::from_secs(20);

/// A server running `config`, and the reports of its connections.
fn feed_server(config: FeedConfig) -> (Server, mpsc::Receiver<FeedReport>) {
    let (tx, rx) = mpsc::channel();
    let feed = Feed::new(config).on_report(move |report| {
        let _ = tx.send(report);
    });
    let server = Server::bind("127.0.0.1:0", feed.handler()).expect("start the feed server");
    (server, rx)
}

#[test]
fn a_counted_feed_sends_every_message_in_order_then_closes_with_1000() {
    let config = FeedConfig {
        channels: 3,
        rate: None,
        size: 100,
        count: Some(1000),
        ping_interval: None,
        ..FeedConfig::default()
    };
    let (server, reports) = feed_server(config);
    let mut ws = floodgate::connect(&server.url()).unwrap();
    let mut next_seq = [0u64; 3];
    let mut n = 0;
    let end = loop {
        match ws.recv() {
            Ok(message) => {
                let text = message.as_text().expect("feed messages are text");
                assert_eq!(text.len(), 100);
                let m = FeedMessage::parse(text).expect("a feed message");
                assert_eq!(m.n, n, "no gap, no reordering");
                assert_eq!(m.seq, next_seq[m.channel as usize]);
                next_seq[m.channel as usize] += 1;
                n += 1;
            }
            Err(e) => break e,
        }
    };
    assert_eq!(end.close_frame().map(|f| f.code), Some(CloseCode::NORMAL));
    assert_eq!(n, 1000);
    assert_eq!(next_seq, [334, 333, 333]);
    let report = reports.recv_timeout(PATIENCE).unwrap();
    assert_eq!(report.sent, 1000);
    assert_eq!(report.bytes, 100_000);
    assert!(matches!(report.end, FeedEnd::Completed), "{:?}", report.end);
}

#[test]
fn a_paced_feed_takes_at_least_its_schedule_and_every_ping_is_answered() {
    let config = FeedConfig {
        channels: 2,
        rate: Some(2000.0),
        count: Some(400),
        ping_interval: Some(Duration::from_millis(20)),
        ..FeedConfig::default()
    };
    let (server, reports) = feed_server(config);
    let started = Instant::now();
    let mut ws = floodgate::connect(&server.url()).unwrap();
    let received = ws.messages().count();
    let took = started.elapsed();
    assert_eq!(received, 400);
    // 400 messages at 2000/s: the last one is due 199.5 ms after the first.
    assert!(took >= Duration::from_millis(199), "{took:?}");
    let report = reports.recv_timeout(PATIENCE).unwrap();
    assert!(report.pings_sent >= 5, "{report:?}");
    // Pongs travel ahead of the client's close, which the feed awaited.
    assert_eq!(report.pongs, report.pings_sent, "{report:?}");
    assert!(report.worst_ping_rtt.is_some());
}

#[test]
fn a_client_that_closes_ends_the_feed_with_its_close_code() {
    let (server, reports) = feed_server(FeedConfig {
        rate: Some(5000.0),
        ..FeedConfig::default()
    });
    let mut ws = floodgate::connect(&server.url()).unwrap();
    for _ in 0..10 {
        ws.recv().unwrap();
    }
    ws.close(4001, "enough").unwrap();
    let report = reports.recv_timeout(PATIENCE).unwrap();
    match &report.end {
        FeedEnd::ClientClosed(Some(frame)) => assert_eq!(frame.code, CloseCode(4001)),
        other => panic!("expected the client's close, got {other:?}"),
    }
    assert!(report.sent >= 10);
}

#[test]
fn the_query_string_chooses_the_feed_of_each_connection() {
    let (server, reports) = feed_server(FeedConfig::default());
    let url = format!("{}?count=5&rate=0&size=200&channels=1", server.url());
    let mut ws = floodgate::connect(&url).unwrap();
    let texts: Vec<String> = ws
        .messages()
        .map(|m| m.unwrap().as_text().unwrap().to_owned())
        .collect();
    assert_eq!(texts.len(), 5);
    assert!(texts.iter().all(|t| t.len() == 200));
    assert_eq!(FeedMessage::parse(&texts[4]).unwrap().seq, 4, "one channel");
    assert_eq!(
        reports.recv_timeout(PATIENCE).unwrap().path,
        "/?count=5&rate=0&size=200&channels=1"
    );

    // A query the feed does not understand closes with 1008 and says why.
    let mut ws = floodgate::connect(&format!("{}?rate=fast", server.url())).unwrap();
    let end = ws.recv().unwrap_err();
    let frame = end.close_frame().expect("a close frame");
    assert_eq!(frame.code, CloseCode::POLICY_VIOLATION);
    assert!(frame.reason.contains("rate"), "{frame}");
    let report = reports.recv_timeout(PATIENCE).unwrap();
    assert!(matches!(report.end, FeedEnd::Failed(_)), "{report:?}");
    assert!(matches!(end.kind(), ErrorKind::ConnectionClosed(_)));
}

#[test]
fn live_figures_follow_the_feed_while_it_runs() {
    let feed = Feed::new(FeedConfig {
        rate: None,
        count: Some(300),
        ping_interval: None,
        ..FeedConfig::default()
    });
    let live = feed.live();
    let server = Server::bind("127.0.0.1:0", feed.handler()).unwrap();
    assert_eq!((live.connections(), live.sent()), (0, 0));
    let mut ws = floodgate::connect(&server.url()).unwrap();
    assert_eq!(ws.messages().count(), 300);
    assert_eq!(live.connections(), 1);
    assert_eq!(live.sent(), 300);
}
