//! The keepalive's ping round trip in the buffered connections' `Stats`
//! (`ping_round_trips`, `last_ping_rtt`, `max_ping_rtt`), blocking and
//! async, against the embedded echo server, which answers every ping.

use floodgate::buffer::Stats;
use floodgate::Client;
use floodgate_server::{echo, Server};
use std::time::{Duration, Instant};

const MS: Duration = Duration::from_millis(1);

/// How long a test waits for something that should happen soon before
/// failing (never reached when the code works).
const PATIENCE: Duration = Duration::from_secs(10);

fn echo_server() -> Server {
    Server::bind("127.0.0.1:0", echo).expect("start the echo server")
}

/// Waits until `condition` holds for the stats `stats` gives.
fn wait_for(what: &str, stats: impl Fn() -> Stats, condition: impl Fn(&Stats) -> bool) -> Stats {
    let started = Instant::now();
    loop {
        let s = stats();
        if condition(&s) {
            return s;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "waited {PATIENCE:?} for {what}: {s:?}"
        );
        std::thread::sleep(MS);
    }
}

/// What any measured stats must show: loopback round trips, each pong
/// that measured one counted as a pong too.
fn plausible(s: &Stats) {
    assert!(s.max_ping_rtt > Duration::ZERO, "{s:?}");
    assert!(s.max_ping_rtt < Duration::from_secs(1), "{s:?}");
    let last = s.last_ping_rtt.expect("a round trip was measured");
    assert!(last > Duration::ZERO && last <= s.max_ping_rtt, "{s:?}");
    assert!(s.ping_round_trips <= s.pongs_received, "{s:?}");
}

#[test]
fn the_keepalive_pings_are_measured_and_the_count_grows() {
    let server = echo_server();
    let mut ws = Client::builder()
        .ping_interval(Some(50 * MS))
        .connect_buffered(&server.url())
        .expect("connect");
    std::thread::sleep(300 * MS);
    let first = wait_for(
        "two round trips",
        || ws.stats(),
        |s| s.ping_round_trips >= 2,
    );
    plausible(&first);
    let later = wait_for(
        "more round trips",
        || ws.stats(),
        |s| s.ping_round_trips > first.ping_round_trips,
    );
    plausible(&later);
    assert!(later.max_ping_rtt >= first.max_ping_rtt, "{later:?}");
    ws.close(1000, "").expect("close");
}

#[test]
fn pongs_to_the_applications_own_pings_measure_nothing() {
    let server = echo_server();
    let mut ws = Client::builder()
        .connect_buffered(&server.url())
        .expect("connect");
    ws.ping(b"first").expect("ping");
    ws.ping(b"second").expect("ping");
    let s = wait_for("two pongs", || ws.stats(), |s| s.pongs_received == 2);
    assert_eq!(s.ping_round_trips, 0, "{s:?}");
    assert_eq!(s.last_ping_rtt, None);
    assert_eq!(s.max_ping_rtt, Duration::ZERO);
    ws.close(1000, "").expect("close");
}

/// [`wait_for`] for the async connection: sleeps on the runtime.
#[cfg(feature = "tokio")]
async fn wait_for_async(
    what: &str,
    ws: &floodgate::tokio::BufferedWebSocket,
    condition: impl Fn(&Stats) -> bool,
) -> Stats {
    let started = Instant::now();
    loop {
        let s = ws.stats();
        if condition(&s) {
            return s;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "waited {PATIENCE:?} for {what}: {s:?}"
        );
        tokio::time::sleep(MS).await;
    }
}

#[cfg(feature = "tokio")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_async_keepalive_pings_are_measured_and_the_count_grows() {
    let server = echo_server();
    let mut ws = Client::builder()
        .ping_interval(Some(50 * MS))
        .connect_buffered_async(&server.url())
        .await
        .expect("connect");
    tokio::time::sleep(300 * MS).await;
    let first = wait_for_async("two round trips", &ws, |s| s.ping_round_trips >= 2).await;
    plausible(&first);
    let later = wait_for_async("more round trips", &ws, |s| {
        s.ping_round_trips > first.ping_round_trips
    })
    .await;
    plausible(&later);
    ws.close(1000, "").await.expect("close");
}
