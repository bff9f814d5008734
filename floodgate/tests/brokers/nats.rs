//! A real `nats-server -js` for the NATS sink's tests: started on a free
//! loopback port with its own temporary store directory, killed (SIGKILL)
//! and restarted on the same port and store on demand, killed on drop.
//!
//! What the tests read back goes through async-nats's own JetStream
//! consumer: enough at this level (the sink is async-nats too, but the
//! consumer reads what the server stored, not what the client sent); the
//! bridge's end-to-end tests read with another client (nats-py).

#![allow(dead_code)]

use crate::common::{dies_with_parent, free_port};
use async_nats::jetstream;
use futures_util::StreamExt;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `nats-server` (see the module docs).
pub struct NatsServer {
    child: Option<Child>,
    pub port: u16,
    extra: Vec<String>,
    /// Holds `store/` (JetStream's files) and `server.log`.
    dir: tempfile::TempDir,
}

/// `$FLOODGATE_NATS_SERVER`, else `nats-server` on PATH, else Debian's
/// /usr/sbin/nats-server (not on every PATH), as `ensure_nats` finds it.
fn program() -> PathBuf {
    if let Some(path) = std::env::var_os("FLOODGATE_NATS_SERVER") {
        return path.into();
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join("nats-server"))
        .find(|path| path.is_file());
    on_path.unwrap_or_else(|| "nats-server".into())
}

impl NatsServer {
    /// `nats-server -js` on a free port.
    pub fn start() -> NatsServer {
        NatsServer::start_with(&["-js"])
    }

    /// `nats-server` with `args` (e.g. without `-js`, or with `--user`).
    pub fn start_with(args: &[&str]) -> NatsServer {
        let mut server = NatsServer {
            child: None,
            port: free_port(),
            extra: args.iter().map(|a| a.to_string()).collect(),
            dir: tempfile::tempdir().unwrap(),
        };
        server.run();
        server
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    fn run(&mut self) {
        assert!(self.child.is_none());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .unwrap();
        let child = dies_with_parent(&mut Command::new(program()))
            .args(&self.extra)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-sd"])
            .arg(self.store())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| {
                panic!(
                    "cannot run nats-server ({err}); install it: `. scripts/common.sh && \
                     ensure_nats` (Debian: apt-get install nats-server)"
                )
            });
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("nats-server exited ({status}) at start:\n{}", self.log());
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nats-server not listening on {addr} after 10 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's process id (to kill it from another task).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("not running").id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// SIGKILL: no clean shutdown, no flush.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts again on the same port and store directory.
    pub fn restart(&mut self) {
        self.kill();
        self.run();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A stored message: its `Nats-Msg-Id` and its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub id: Option<String>,
    pub subject: String,
    pub body: Vec<u8>,
}

/// Every message of `stream`, in stream order, read with an ephemeral pull
/// consumer.
pub async fn read_stream(url: &str, stream: &str) -> Vec<Stored> {
    let client = async_nats::connect(url).await.unwrap();
    let js = jetstream::new(client);
    let mut stream = js.get_stream(stream).await.unwrap();
    let count = stream.info().await.unwrap().state.messages as usize;
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::Config {
            deliver_policy: jetstream::consumer::DeliverPolicy::All,
            ack_policy: jetstream::consumer::AckPolicy::None,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let message = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .unwrap_or_else(|_| panic!("{} of {count} messages read back", out.len()))
            .expect("the consumer ended")
            .unwrap();
        let id = message
            .headers
            .as_ref()
            .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
            .map(|v| v.as_str().to_owned());
        out.push(Stored {
            id,
            subject: message.subject.to_string(),
            body: message.payload.to_vec(),
        });
    }
    out
}

/// The names of the server's streams.
pub async fn stream_names(url: &str) -> Vec<String> {
    let client = async_nats::connect(url).await.unwrap();
    let js = jetstream::new(client);
    let mut names: Vec<String> = js.stream_names().map(|name| name.unwrap()).collect().await;
    names.sort();
    names
}
