//! Receive-throughput benchmark for floodgate.
//!
//! # What it measures
//!
//! One thing: how fast a client can *receive* a stream of server-to-client
//! binary messages over loopback, from `connect` to the moment the client
//! library reports the server's close frame. That is the hot path of the
//! workloads floodgate exists for (market data, telemetry): a server pushes
//! faster than the application consumes, and every cycle the client spends
//! per message is a cycle the application does not get.
//!
//! # How
//!
//! * [`server`] is a hand-written streaming WebSocket server on `std::net`
//!   (no client library involved, so it favours none of them). For each
//!   connection it answers the upgrade, then writes `N` pre-encoded unmasked
//!   binary frames of one payload size as fast as the socket accepts them
//!   (a ~1 MiB block of frames, written repeatedly with `write_all`), then a
//!   close frame with code 1000, and waits for the client's close.
//! * [`clients`] holds one runner per client: a raw TCP ceiling that only
//!   walks frame headers, `tungstenite` (blocking), `tokio-tungstenite` and
//!   `fastwebsockets` (both on a current-thread tokio runtime), and
//!   `floodgate` (blocking, its `messages()` iterator). Each counts messages
//!   and payload bytes and the counts are checked against what was sent.
//! * [`table`] turns the runs into Markdown tables with ratios to the
//!   fastest of the three anchor libraries and to the raw TCP ceiling.
//!
//! The binary is `stream` (`cargo run --release -p floodgate-bench --bin
//! stream -- --help`).

pub mod clients;
pub mod handshake;
pub mod server;
pub mod table;
