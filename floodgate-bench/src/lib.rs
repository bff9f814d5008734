//! floodgate's benchmarks against the field: receive (`stream`), send
//! (`send`), many connections (`conns`), echo latency (`echo`), idle
//! memory (`idle`), and the buffered connection's policies, spill and
//! bridge. Each is a binary that prints Markdown tables with ratios to the
//! anchors of the same run; `BENCHMARKS.md` quotes one complete run.
//!
//! # What `stream` measures
//!
//! How fast a client can *receive* a stream of server-to-client
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
//!   walks frame headers, `tungstenite` (blocking), `tokio-tungstenite`,
//!   `fastwebsockets`, `sockudo-ws`, `yawc` and `tokio-websockets` (all on
//!   a current-thread tokio runtime, each through its own documented
//!   client API and default configuration, plus `sockudo-ws-tuned` with
//!   its heartbeat and idle timeout off, which its defaults track by
//!   reading the clock for every message, and `yawc-tuned` with the
//!   128 KiB read buffer its docs suggest for bursts of small messages),
//!   `floodgate` (blocking, its `messages()` iterator) and
//!   `floodgate-buffered` (floodgate's buffered connection: a reader thread
//!   fills a bounded buffer under `Overflow::Block`, the caller takes
//!   batches with `recv_batch_into`), `floodgate-async` (floodgate's async
//!   client, `floodgate::tokio::connect` then `recv()` until the close) and
//!   `floodgate-async-buffered` (its async buffered connection: a reader
//!   task fills the same bounded buffer under `Overflow::Block`, the caller
//!   takes batches with `recv_batch`); the async runners, like the async
//!   anchors, run on a current-thread tokio runtime. Each counts
//!   messages and payload bytes and the counts are checked against what
//!   was sent.
//! * [`table`] turns the runs into Markdown tables with ratios to the
//!   fastest anchor row, to the raw TCP ceiling, to the direct `floodgate`
//!   client (the yardstick of the buffered path) and, for the clients on
//!   tokio, to the fastest async anchor row (every anchor but tungstenite).
//!
//! The binary is `stream` (`cargo run --release -p floodgate-bench --bin
//! stream -- --help`).
//!
//! # Echo round-trip latency
//!
//! A second binary, `echo`, measures latency instead of throughput: against
//! [`echo_server`] (hand-written on `std::net`, a thread per connection, no
//! WebSocket library), each client of [`echo_clients`] does sequential
//! round trips (send one binary message, wait for its echo, check its
//! length), and the binary prints p50 / p90 / p99 / p99.9 / max per client
//! and size with ratios to the best async anchor (tokio-tungstenite,
//! fastwebsockets, sockudo-ws and its tuned row, yawc, tokio-websockets)
//! (`cargo run --release -p floodgate-bench --bin echo -- --help`).
//!
//! # Memory per idle connection
//!
//! Another binary, `idle`, opens N connections per client (each client in
//! a child process of its own, against a server in another) and prints the
//! resident memory each connection costs, before and after it received one
//! message, for the async anchors (tokio-tungstenite, fastwebsockets,
//! sockudo-ws, yawc, tokio-websockets and the tuned rows) and floodgate's
//! clients (`cargo run --release -p floodgate-bench --bin idle -- --help`).
//!
//! # The overflow policies
//!
//! A third binary, `policies`, is not about speed: it runs one
//! slow-consumer scenario (a fast server, a consumer slowed on purpose)
//! once per overflow policy of floodgate's buffered connection, each in a
//! child process so that its peak memory is its own, and prints what each
//! policy delivered, shed, held and cost (`cargo run --release -p
//! floodgate-bench --bin policies -- --help`).
//!
//! # Spill to disk
//!
//! A fourth binary, `spill`, measures `Overflow::Spill` (issue 16): the
//! throughput of a flood through it, with a consumer that keeps up and a
//! slow one, beside `Block` and beside a plain sequential file write in the
//! same directory (the limit); then issue 16's scenario against its
//! targets (every message in order, peak memory, ping round trips, the
//! server's send time against `Block`), each consumer in its own child
//! process ([`child`]) (`cargo run --release -p floodgate-bench --bin
//! spill -- --help`).
//!
//! # Send throughput
//!
//! The `send` binary measures the other direction, where the client must
//! mask every byte: each client of [`send_clients`] connects to
//! [`send_server`] (hand-written on `std::net`, no WebSocket library),
//! sends `N` binary messages of one size (16 B, 1 KiB, 64 KiB, 1 MiB by
//! default) with its library's documented way to send many (`feed` then
//! `flush` on a `Sink`, buffered `write` then `flush`, or a send per
//! message where that is all there is; floodgate's `WebSocket::send_all`
//! and its async `Sink`, and its `send_binary` per message in rows of
//! their own), closes and waits for
//! the server's close reply. The server requires the mask bit on every
//! frame, unmasks every payload and compares it with the expected payload
//! (a pattern both sides know) word by word, checks every message's
//! length, and answers the close only after all of that, so the time, from
//! connect to the close reply, covers every byte received and checked; a
//! client that lost, merged, did not mask or masked wrongly fails its row.
//! A raw TCP ceiling writes pre-masked frames. The table gives throughput
//! with ratios to the fastest anchor, to the ceiling and (for the clients
//! on tokio) to the fastest async anchor, and, since at large sizes the
//! server and the loopback are the limit for every fast client, the CPU
//! time each client spent per message (`cargo run --release -p
//! floodgate-bench --bin send -- --help`).
//!
//! # Bridge into brokers
//!
//! A fifth binary, `bridge`, measures `floodgate bridge` (issue 19):
//! messages per second from a WebSocket feed through the bridge into NATS
//! JetStream and Redis Streams (brokers it starts itself), beside a plain
//! publish loop with the sink's own client crate (the limit), reading
//! every stream back to check each message was stored exactly once
//! (`cargo run --release -p floodgate-bench --bin bridge -- --help`).
//!
//! # Many connections
//!
//! A binary, `conns`, measures messages per second overall with many
//! connections on one async runtime (issue 17): for 1, 16 and 256
//! connections, each a task on one tokio runtime (current-thread, or
//! `--threads N`), each keeping a window of 16 echoes of 1 KiB in flight,
//! every echo checked (length, sequence number, content). The clients of
//! [`conns_clients`] are a raw TCP ceiling, tokio-tungstenite,
//! fastwebsockets, tokio-websockets, yawc (and yawc with the buffers of
//! its own benchmark), sockudo-ws (and without its heartbeat),
//! floodgate-async and floodgate-async-buffered, all driven by one generic
//! windowed loop; the server is [`conns_server`] (a thread per connection,
//! like [`echo_server`], answering all the frames of a read with one
//! write). The table gives msgs/s with ratios to the fastest async anchor
//! and to the ceiling, the p50 and p99 round trip and the client's CPU
//! time per message (`cargo run --release -p floodgate-bench --bin conns
//! -- --help`).
//!
//! # The command line
//!
//! The binaries parse their flags with [`args`] (`--flag value` or
//! `--flag=value`, `_` in numbers, comma lists, per-size flags such as
//! `--count-16 N`); each keeps its own usage text.

pub mod args;
pub mod child;
pub mod clients;
pub mod conns_clients;
pub mod conns_server;
pub mod echo_clients;
pub mod echo_server;
pub mod handshake;
pub mod job_server;
pub mod send_clients;
pub mod send_server;
pub mod server;
pub mod table;
pub mod thread_server;

/// One line describing the machine, for the top of a report: CPUs, CPU
/// model, kernel, compiler, build profile and the load average at start.
pub fn machine_line() -> String {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| std::env::consts::OS.into());
    format!(
        "machine: {cpus} CPUs ({model}), kernel {kernel}, {}, profile {}, load average at start {}",
        env!("FLOODGATE_BENCH_RUSTC_VERSION"),
        if cfg!(debug_assertions) {
            "DEBUG (numbers meaningless)"
        } else {
            "release"
        },
        load_average(),
    )
}

/// The 1-minute load average: other work on the machine shows up here.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}
