//! The consumer, run in a child process: a floodgate buffered connection
//! with small memory limits under `Spill` or `Block`, a consumer with a
//! fixed cost per message, a check of every message's sequence number, and
//! one `RESULT` line for the parent.

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use floodgate::buffer::{BufferConfig, Overflow, SpillConfig, SpillFallback};
use floodgate_bench::child::{result_line, vm_hwm_kib};

use crate::{Args, Work};

/// Messages taken per `recv_batch_into`.
const BATCH: usize = 256;

/// The policy under test.
fn overflow(policy: &str, args: &Args) -> Result<Overflow, String> {
    match policy {
        "spill" => Ok(Overflow::Spill(
            SpillConfig::new(Path::new(&args.dir)).fallback(match args.fallback.as_str() {
                "block" => SpillFallback::Block,
                "drop-newest" => SpillFallback::DropNewest,
                "disconnect" => SpillFallback::Disconnect,
                other => return Err(format!("unknown fallback {other}")),
            }),
        )),
        "block" => Ok(Overflow::Block),
        other => Err(format!("unknown policy {other}")),
    }
}

/// The consumer's cost per message: `spin` burns it on the CPU at each
/// message; `sleep` owes it and sleeps once a millisecond is owed (a
/// consumer that waits on something else: a database, a disk, a remote
/// call), paying back the time the sleep really took.
struct Cost {
    per_message: Duration,
    work: Work,
    owed_ns: i64,
}

impl Cost {
    fn pay(&mut self) {
        if self.per_message.is_zero() {
            return;
        }
        match self.work {
            Work::Spin => {
                let start = Instant::now();
                while start.elapsed() < self.per_message {
                    std::hint::spin_loop();
                }
            }
            Work::Sleep => {
                self.owed_ns += self.per_message.as_nanos() as i64;
                if self.owed_ns >= 1_000_000 {
                    let start = Instant::now();
                    thread::sleep(Duration::from_nanos(self.owed_ns as u64));
                    self.owed_ns -= start.elapsed().as_nanos() as i64;
                }
            }
        }
    }
}

/// Runs the consumer and returns its `RESULT` line.
pub(crate) fn consume(
    args: &Args,
    policy: &str,
    work_us: u64,
    url: &str,
) -> Result<String, String> {
    let buffer = BufferConfig::new()
        .max_messages(args.max_messages)
        .max_bytes(args.max_bytes)
        .overflow(overflow(policy, args)?);
    let mut builder = floodgate::Client::builder()
        .max_message_size(Some(args.max_bytes))
        .max_frame_size(Some(args.max_bytes))
        .buffer(buffer);
    if args.rcvbuf > 0 {
        builder = builder.recv_buffer_size(args.rcvbuf);
    }
    // From before the connect: the server starts sending as soon as it
    // has answered the upgrade, while the client may still be setting up
    // its buffer (and spill directory).
    let start = Instant::now();
    let mut ws = builder
        .connect_buffered(url)
        .map_err(|e| format!("connect: {e}"))?;
    let mut cost = Cost {
        per_message: Duration::from_micros(work_us),
        work: args.work,
        owed_ns: 0,
    };
    let mut batch = Vec::with_capacity(BATCH);
    let mut next = 0u64;
    let mut in_order = true;
    let mut end = String::from("all taken");
    while next < args.messages {
        batch.clear();
        match ws.recv_batch_into(&mut batch, BATCH, Duration::from_secs(1)) {
            Ok(_) => {}
            Err(e) => {
                end = format!("ended early: {e}");
                break;
            }
        }
        for d in &batch {
            let b = d.message().as_bytes();
            let ok = b.len() == args.size
                && b.len() >= 16
                && b[..8] == next.to_be_bytes()
                && b[b.len() - 8..] == next.to_be_bytes();
            in_order &= ok;
            next += 1;
            cost.pay();
        }
    }
    let elapsed = start.elapsed();
    let s = ws.stats();
    // Nothing may be left: a try_recv finds the buffer empty (off by
    // default: see --check-empty).
    let empty = if args.check_empty {
        match ws.try_recv() {
            Ok(None) => "yes".to_string(),
            Ok(Some(_)) => "no: one more message".to_string(),
            Err(e) => format!("no: {e}"),
        }
    } else {
        "unchecked".to_string()
    };
    // Close once everything is in: the server pings until then.
    let closed = ws.close(1000, "done");
    let adds_up = s.received
        == s.delivered
            + s.buffered
            + s.dropped_oldest
            + s.dropped_newest
            + s.conflated
            + s.filtered;
    let fields = [
        ("end", end.replace(['\t', '\n'], " ")),
        ("taken", next.to_string()),
        ("in_order", (in_order && next == args.messages).to_string()),
        ("adds_up", adds_up.to_string()),
        ("empty", empty),
        ("closed", closed.is_ok().to_string()),
        ("elapsed_ns", elapsed.as_nanos().to_string()),
        ("received", s.received.to_string()),
        ("delivered", s.delivered.to_string()),
        ("buffered", s.buffered.to_string()),
        ("buffered_disk", s.buffered_disk.to_string()),
        ("dropped_oldest", s.dropped_oldest.to_string()),
        ("dropped_newest", s.dropped_newest.to_string()),
        ("conflated", s.conflated.to_string()),
        ("filtered", s.filtered.to_string()),
        ("spilled", s.spilled.to_string()),
        ("high_water_disk_bytes", s.high_water_disk_bytes.to_string()),
        ("high_water_bytes", s.high_water_bytes.to_string()),
        ("spill_refused", s.spill_refused.to_string()),
        ("spill_errors", s.spill_errors.to_string()),
        ("blocked_ns", s.blocked.as_nanos().to_string()),
        ("pings_answered", s.pings_answered.to_string()),
        ("max_ping_delay_ns", s.max_ping_delay.as_nanos().to_string()),
        ("vmhwm_kib", vm_hwm_kib().to_string()),
    ];
    Ok(result_line(&fields))
}
