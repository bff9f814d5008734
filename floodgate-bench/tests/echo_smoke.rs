//! Every echo client completes its round trips against the echo server at
//! a small and a large size (7-bit and 64-bit frame lengths), each echo's
//! length checked by the runner, and records exactly one latency per
//! recorded round trip.

use floodgate_bench::echo_clients::{self, Plan};

#[test]
fn every_echo_client_round_trips_at_16_b_and_64_kib() {
    let server = floodgate_bench::echo_server::start().unwrap();
    let url = server.url();
    for size in [16, 65536] {
        let plan = Plan {
            size,
            warmup: 20,
            rounds: 300,
        };
        for client in echo_clients::all() {
            let lat = (client.run)(&url, plan)
                .unwrap_or_else(|e| panic!("{} at {size} B: {e}", client.name));
            assert_eq!(lat.len(), plan.rounds, "{} at {size} B", client.name);
            // A round trip over a socket takes time; a zero means the
            // runner timed nothing.
            assert!(
                lat.iter().all(|&ns| ns > 0),
                "{} at {size} B: a zero latency",
                client.name
            );
        }
    }
}
