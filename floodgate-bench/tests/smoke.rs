//! Every client receives exactly what the server sent, at each size class
//! (7-bit, 16-bit and 64-bit frame lengths), with small counts.

use floodgate_bench::clients;
use floodgate_bench::server::{self, Job, Server};

#[test]
fn every_client_counts_exactly() {
    let mut server = Server::start().unwrap();
    let url = server.url();
    for (size, count) in [
        (0, 1000),
        (16, 20_000),
        (1024, 5_000),
        (65536, 50),
        (70_000, 20),
    ] {
        for client in clients::all() {
            server.submit(Job { size, count });
            let result = (client.run)(&url);
            let report = server.finish(result.is_err());
            let o = result.unwrap_or_else(|e| panic!("{} at {size} B: {e}", client.name));
            assert_eq!(o.messages, count, "{} at {size} B", client.name);
            assert_eq!(o.bytes, count * size as u64, "{} at {size} B", client.name);
            assert!(report.error.is_none(), "server: {:?}", report.error);
            assert_eq!(report.bytes, server::wire_bytes(size, count));
            assert!(report.client_close, "{} sent no close frame", client.name);
        }
    }
}
