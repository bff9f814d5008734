//! One connection at a time, each served with the job submitted for it:
//! the plumbing the streaming server ([`server`](crate::server)) and the
//! counting server ([`send_server`](crate::send_server)) share, so that
//! each of them is only what it does with a connection.
//!
//! One thread, one listener on `127.0.0.1:0`. The benchmark submits a job,
//! runs one client against the URL, then takes the server's report; a
//! client that failed before connecting is let go after 2 s by a
//! throw-away connection that unblocks the server's `accept`.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// A report that can say the server could not serve (an `accept` that
/// failed, a server thread that died).
pub trait Failure {
    /// The report of a connection that could not be served.
    fn failure(reason: String) -> Self;
}

/// A running server thread.
pub struct JobServer<J, R> {
    addr: SocketAddr,
    jobs: Option<mpsc::Sender<J>>,
    reports: mpsc::Receiver<R>,
    thread: Option<thread::JoinHandle<()>>,
    pending: bool,
}

impl<J: Send + 'static, R: Failure + Send + 'static> JobServer<J, R> {
    /// Binds `127.0.0.1:0` and starts the thread `name`, which serves each
    /// accepted connection with `serve` and the job submitted for it.
    pub fn spawn(name: &str, serve: fn(TcpStream, J) -> R) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let (job_tx, job_rx) = mpsc::channel::<J>();
        let (rep_tx, rep_rx) = mpsc::channel::<R>();
        let thread = thread::Builder::new().name(name.into()).spawn(move || {
            for job in job_rx {
                let report = match listener.accept() {
                    Ok((stream, _)) => serve(stream, job),
                    Err(e) => R::failure(format!("accept: {e}")),
                };
                if rep_tx.send(report).is_err() {
                    break;
                }
            }
        })?;
        Ok(JobServer {
            addr,
            jobs: Some(job_tx),
            reports: rep_rx,
            thread: Some(thread),
            pending: false,
        })
    }

    /// The URL clients connect to: `ws://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Tells the server what the next connection gets. Call before the
    /// client connects, then [`finish`](Self::finish) after it is done.
    pub fn submit(&mut self, job: J) {
        assert!(!self.pending, "previous job not finished");
        self.jobs
            .as_ref()
            .expect("server stopped")
            .send(job)
            .expect("server thread gone");
        self.pending = true;
    }

    /// Waits for the server's report on the current job. If the client
    /// failed it may never have connected; then the server is unblocked
    /// with a throw-away connection.
    pub fn finish(&mut self, client_failed: bool) -> R {
        assert!(self.pending, "no job submitted");
        self.pending = false;
        if client_failed {
            if let Ok(r) = self.reports.recv_timeout(Duration::from_secs(2)) {
                return r;
            }
            // Unblock accept(): connect and hang up at once.
            drop(TcpStream::connect(self.addr));
        }
        self.reports
            .recv()
            .unwrap_or_else(|_| R::failure("server thread died".into()))
    }
}

impl<J, R> Drop for JobServer<J, R> {
    fn drop(&mut self) {
        self.jobs.take();
        if self.pending {
            drop(TcpStream::connect(self.addr));
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
