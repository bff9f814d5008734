//! Every client of the `conns` benchmark echoes exactly C x M messages with
//! the right contents, at small counts, on both runtimes and against both
//! echo servers; and a server that corrupts or reorders one echo makes
//! every client's run fail, so the content check is not one that passes
//! by construction.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::thread;

use floodgate_bench::conns_clients::{self, Plan};
use floodgate_bench::handshake;
use floodgate_bench::server::{frame_header, parse_header};

fn plan(connections: usize, messages: u64, threads: Option<usize>) -> Plan {
    Plan {
        connections,
        window: 16,
        size: 1024,
        messages,
        threads,
        latency: true,
    }
}

/// Runs every client once with `plan` against `url` and checks the count
/// and the round trips recorded.
fn every_client_echoes_all(url: &str, plan: &Plan, server: &str) {
    for client in conns_clients::all() {
        let o = (client.run)(url, plan).unwrap_or_else(|e| {
            panic!(
                "{} at {} connections ({server} server): {e}",
                client.name, plan.connections
            )
        });
        assert_eq!(
            o.messages,
            plan.total(),
            "{} at {} connections ({server} server)",
            client.name,
            plan.connections
        );
        let (p50, p99) = (o.p50.unwrap(), o.p99.unwrap());
        assert!(p50 <= p99 && p99 <= o.elapsed, "{}: {o:?}", client.name);
        // The client's CPU time is measured on the current-thread runtime
        // only, where one thread runs every task.
        assert_eq!(o.cpu.is_some(), plan.threads.is_none(), "{}", client.name);
        assert!(o.cpu.is_none_or(|c| c > std::time::Duration::ZERO));
    }
}

#[test]
fn every_client_echoes_exactly_c_times_m_messages() {
    let server = floodgate_bench::conns_server::start().unwrap();
    for connections in [1, 8] {
        every_client_echoes_all(&server.url(), &plan(connections, 300, None), "batched");
    }
    // The multi-thread runtime (the tasks move between threads) and the
    // per-frame echo server.
    every_client_echoes_all(&server.url(), &plan(8, 200, Some(2)), "batched");
    let per_frame = floodgate_bench::echo_server::start().unwrap();
    every_client_echoes_all(&per_frame.url(), &plan(8, 200, None), "per-frame");
}

/// What the stand-in server does wrong, on every connection.
#[derive(Clone, Copy)]
enum Fault {
    /// Flips one payload byte of this echo (counted from 0).
    Corrupt(u64),
    /// Sends this echo after the next one.
    Swap(u64),
}

/// A stand-in echo server with one fault per connection.
fn faulty_server(fault: Fault) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || {
                // Errors are the client hanging up once it saw the fault.
                let _ = faulty_echo(stream, fault);
            });
        }
    });
    url
}

fn faulty_echo(mut stream: TcpStream, fault: Fault) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = handshake::server_accept(&mut stream)?;
    let mut data_frames = 0u64;
    let mut held: Option<Vec<u8>> = None;
    let mut chunk = [0u8; 64 * 1024];
    loop {
        while let Some((opcode, hlen, len)) = parse_header(&buf) {
            if buf.len() < hlen + len {
                break;
            }
            let mask: [u8; 4] = buf[hlen - 4..hlen].try_into().unwrap();
            let mut payload: Vec<u8> = buf[hlen..hlen + len]
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[i % 4])
                .collect();
            buf.drain(..hlen + len);
            let mut frame = Vec::new();
            if opcode == 0x2 {
                let n = data_frames;
                data_frames += 1;
                if matches!(fault, Fault::Corrupt(k) if k == n) {
                    payload[100] ^= 0x01;
                }
                frame_header(opcode, len, &mut frame);
                frame.extend_from_slice(&payload);
                if matches!(fault, Fault::Swap(k) if k == n) {
                    held = Some(frame);
                    continue;
                }
                stream.write_all(&frame)?;
                if let Some(h) = held.take() {
                    stream.write_all(&h)?;
                }
            } else if opcode == 0x8 {
                frame_header(opcode, len, &mut frame);
                frame.extend_from_slice(&payload);
                stream.write_all(&frame)?;
                stream.shutdown(Shutdown::Write)?;
                return Ok(());
            }
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[test]
fn a_corrupted_echo_fails_every_client() {
    let url = faulty_server(Fault::Corrupt(50));
    for client in conns_clients::all() {
        let e = (client.run)(&url, &plan(2, 200, None))
            .expect_err(client.name)
            .to_string();
        assert!(
            e.contains("echo of message 50 differs from what was sent at byte 100"),
            "{}: {e}",
            client.name
        );
    }
}

#[test]
fn a_reordered_echo_fails_every_client() {
    let url = faulty_server(Fault::Swap(7));
    for client in conns_clients::all() {
        let e = (client.run)(&url, &plan(1, 100, None))
            .expect_err(client.name)
            .to_string();
        assert!(
            e.contains("expected the echo of message 7, got one numbered 8"),
            "{}: {e}",
            client.name
        );
    }
}
