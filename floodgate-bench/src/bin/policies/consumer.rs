//! The scenario's consumer, run in a child process: connects a buffered
//! connection with the policy under test, takes messages one at a time,
//! slowly, checks what it got, and prints one `RESULT` line of
//! tab-separated `key=value` pairs for the parent.

use std::thread;
use std::time::{Duration, Instant};

use floodgate::buffer::{BufferConfig, Class, Conflate, Key, Overflow, Priority, Shed};
use floodgate::ErrorKind;

use floodgate_bench::child::{result_line, vm_hwm_kib};

use crate::{group, Args};

fn channel_of(m: &floodgate::Message) -> Option<u64> {
    m.as_text()?.get(..2)?.parse().ok()
}

fn buffer_config(args: &Args, policy: &str) -> Result<BufferConfig, String> {
    let config = BufferConfig::new()
        .max_messages(args.max_messages)
        .max_bytes(args.max_bytes);
    let overflow = match policy {
        "block" => Overflow::Block,
        "block-for" => {
            Overflow::BlockFor(Duration::from_millis(args.block_for_ms), Shed::DropOldest)
        }
        "drop-oldest" | "priorities" => Overflow::DropOldest,
        "drop-newest" => Overflow::DropNewest,
        "conflate" => Overflow::Conflate(Conflate::by(|m| channel_of(m).map(Key::from))),
        "disconnect" => Overflow::Disconnect,
        other => return Err(format!("unknown policy {other}")),
    };
    let config = config.overflow(overflow);
    if policy == "priorities" {
        let discarded = args.channels - 1;
        return Ok(config.classify(move |m| match channel_of(m) {
            Some(0) => Class::Keep(Priority::CRITICAL),
            Some(c) if c == discarded && c != 0 => Class::Discard,
            _ => Class::Keep(Priority::NORMAL),
        }));
    }
    Ok(config)
}

/// Runs the consumer and returns its `RESULT` line.
pub(crate) fn consume(args: &Args, policy: &str, url: &str) -> Result<String, String> {
    let mut builder = floodgate::Client::builder()
        // Every message the connection accepts must fit in the buffer.
        .max_message_size(Some(args.max_bytes))
        .max_frame_size(Some(args.max_bytes))
        .buffer(buffer_config(args, policy)?);
    if args.rcvbuf > 0 {
        builder = builder.recv_buffer_size(args.rcvbuf);
    }
    let start = Instant::now();
    let ws = builder
        .connect_buffered(url)
        .map_err(|e| format!("connect: {e}"))?;
    let work = Duration::from_micros(args.work_us);
    let stall = Duration::from_millis(args.stall_ms);
    let mut taken = 0u64;
    let channels = args.channels as usize;
    let mut last: Vec<Option<u64>> = vec![None; channels];
    let mut per_channel = vec![0u64; channels];
    let mut last_seq: Option<u64> = None;
    let (mut in_order, mut globally_in_order, mut no_gap) = (true, true, true);
    let end = loop {
        match ws.recv() {
            Ok(m) => {
                let text = m.as_text().ok_or("a binary message")?;
                let mut fields = text.split(' ');
                let ch: usize = fields
                    .next()
                    .and_then(|f| f.parse().ok())
                    .ok_or("no channel")?;
                let seq: u64 = fields.next().and_then(|f| f.parse().ok()).ok_or("no seq")?;
                let slot = last.get_mut(ch).ok_or("channel out of range")?;
                in_order &= *slot < Some(seq);
                *slot = Some(seq);
                per_channel[ch] += 1;
                globally_in_order &= last_seq < Some(seq);
                no_gap &= seq == last_seq.map_or(0, |s| s + 1);
                last_seq = Some(seq);
                spin(work);
                taken += 1;
                if args.stall_every > 0 && taken.is_multiple_of(args.stall_every) {
                    thread::sleep(stall);
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionClosed(_)) => break "closed",
            Err(e) if matches!(e.kind(), ErrorKind::Buffer(_)) => break "fell-behind",
            Err(e) => return Err(format!("recv: {e}")),
        }
    };
    let elapsed = start.elapsed();
    let s = ws.stats();
    let delivered_all = s.delivered == args.messages;
    // The last message of each channel, as the server sent them.
    let last_sent = |ch: u64| {
        (args.messages > ch).then(|| {
            let rounds = (args.messages - 1 - ch) / args.channels;
            ch + rounds * args.channels
        })
    };
    let sent_on = |ch: u64| (args.messages + args.channels - 1 - ch) / args.channels;
    let check = if !in_order {
        "FAIL: a channel went backwards".to_string()
    } else if policy == "block" {
        if delivered_all && no_gap {
            "all delivered, in order, no gap".into()
        } else {
            format!("FAIL: Block lost messages ({} delivered)", s.delivered)
        }
    } else if policy == "conflate" {
        let latest = (0..args.channels).all(|ch| last[ch as usize] == last_sent(ch));
        if latest {
            "per channel in order; last of every channel delivered".into()
        } else if end == "closed" {
            "FAIL: the last message of a channel is missing".into()
        } else {
            "per channel in order".into()
        }
    } else if !globally_in_order {
        "FAIL: delivered out of arrival order".into()
    } else if policy == "priorities" {
        let critical = per_channel[0];
        if end == "closed" && critical != sent_on(0) {
            format!("FAIL: ch 0 (CRITICAL) {critical} of {}", sent_on(0))
        } else {
            format!(
                "in order; ch 0 (CRITICAL): {} of {} delivered",
                group(critical),
                group(sent_on(0))
            )
        }
    } else {
        "in arrival order".into()
    };
    let accounted =
        s.delivered + s.buffered + s.dropped_oldest + s.dropped_newest + s.conflated + s.filtered;
    let check = if accounted != s.received {
        format!(
            "FAIL: counters do not add up ({accounted} != {})",
            s.received
        )
    } else {
        check
    };
    let fields = [
        ("end", end.to_string()),
        ("check", check),
        ("received", s.received.to_string()),
        ("delivered", s.delivered.to_string()),
        ("dropped_oldest", s.dropped_oldest.to_string()),
        ("dropped_newest", s.dropped_newest.to_string()),
        ("conflated", s.conflated.to_string()),
        ("filtered", s.filtered.to_string()),
        ("high_water_messages", s.high_water_messages.to_string()),
        ("high_water_bytes", s.high_water_bytes.to_string()),
        ("blocked_ns", s.blocked.as_nanos().to_string()),
        ("wait_p50_ns", s.queue_wait.p50.as_nanos().to_string()),
        ("wait_p99_ns", s.queue_wait.p99.as_nanos().to_string()),
        ("pings_answered", s.pings_answered.to_string()),
        ("max_ping_delay_ns", s.max_ping_delay.as_nanos().to_string()),
        ("elapsed_ns", elapsed.as_nanos().to_string()),
        ("vmhwm_kib", vm_hwm_kib().to_string()),
    ];
    Ok(result_line(&fields))
}

/// Busy work: steadier than `sleep` at a few microseconds.
fn spin(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}
