//! A server with a thread per connection, the shape of the echo servers
//! ([`echo_server`](crate::echo_server), [`conns_server`](crate::conns_server)):
//! one listener on `127.0.0.1:0` and an accepting thread; each connection
//! is served on a thread of its own until it ends. Dropping the server
//! stops accepting (connections in progress end when their client closes).

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

/// A running server.
pub struct ThreadServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl ThreadServer {
    /// Binds `127.0.0.1:0` and starts accepting: each connection is served
    /// by `serve` on a thread named `NAME-conn` (with a stack of `stack`
    /// bytes if given, for servers of hundreds of connections); an error
    /// is printed with the server's name.
    pub fn spawn(
        name: &'static str,
        stack: Option<usize>,
        serve: fn(TcpStream) -> io::Result<()>,
    ) -> io::Result<ThreadServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = thread::Builder::new()
            .name(format!("{name}-accept"))
            .spawn(move || {
                for stream in listener.incoming() {
                    if stopping.load(Ordering::Relaxed) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let mut builder = thread::Builder::new().name(format!("{name}-conn"));
                    if let Some(bytes) = stack {
                        builder = builder.stack_size(bytes);
                    }
                    let _ = builder.spawn(move || {
                        if let Err(e) = serve(stream) {
                            eprintln!("{name} server: {e}");
                        }
                    });
                }
            })?;
        Ok(ThreadServer {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The URL clients connect to: `ws://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }
}

impl Drop for ThreadServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Unblock accept().
        drop(TcpStream::connect(self.addr));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
