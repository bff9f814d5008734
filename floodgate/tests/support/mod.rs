//! Helpers shared by the integration tests: servers written by others,
//! started as child processes and stopped when the guard is dropped, and
//! [`ScriptedServer`], a raw loopback server whose every byte a test chooses.
#![allow(dead_code)] // each test crate uses a different subset

pub mod flood;
pub mod lifecycle;

/// What the App tests' handlers saw, collected from any thread or task.
#[derive(Default, Clone)]
pub struct Log(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl Log {
    pub fn push(&self, entry: impl Into<String>) {
        self.0.lock().unwrap().push(entry.into());
    }
    pub fn entries(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    pub fn count(&self, prefix: &str) -> usize {
        self.entries()
            .iter()
            .filter(|e| e.starts_with(prefix))
            .count()
    }
}

/// A reconnect backoff without jitter, so that its delays are exact.
pub fn exact_backoff(first: Duration, attempts: u32) -> floodgate::reconnect::Backoff {
    floodgate::reconnect::Backoff::new()
        .initial(first)
        .jitter(0.0)
        .max_attempts(Some(attempts))
}

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// How long a server may take to print its port.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The repository root (the workspace holding this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the floodgate crate sits in the workspace root")
        .to_path_buf()
}

/// The Python interpreter named by `FLOODGATE_PYTHON` (a relative path is
/// taken from the repository root). Panics with instructions when unset.
pub fn python() -> PathBuf {
    let Some(python) = std::env::var_os("FLOODGATE_PYTHON").filter(|p| !p.is_empty()) else {
        panic!(
            "FLOODGATE_PYTHON is not set. These tests need a Python with the `websockets` \
             package; `./scripts/test` creates target/pyenv and runs them, or run \
             `FLOODGATE_PYTHON=$PWD/target/pyenv/bin/python cargo test -p floodgate \
             --test interop_python -- --ignored` after it has made the venv once."
        )
    };
    let path = PathBuf::from(&python);
    if path.is_relative() && path.components().count() > 1 {
        repo_root().join(path)
    } else {
        path
    }
}

/// A child process that prints `LISTENING <port>` on its first stdout line
/// once it accepts connections; killed (and reaped) on drop.
pub struct ServerProcess {
    child: Child,
    port: u16,
}

impl ServerProcess {
    /// Starts `program args...`, waits for its `LISTENING <port>` line.
    pub fn start(name: &str, program: impl Into<OsString>, args: &[OsString]) -> ServerProcess {
        let program = program.into();
        let mut child = Command::new(&program)
            .args(args)
            .current_dir(repo_root())
            // The server exits when this pipe closes, even if the test
            // process dies without running `Drop`.
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start the {name} ({program:?} {args:?}): {e}"));

        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut line = String::new();
            let result = BufReader::new(stdout).read_line(&mut line).map(|_| line);
            let _ = tx.send(result);
        });
        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("reading the {name}'s stdout failed: {e}");
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the {name} did not print `LISTENING <port>` within {START_TIMEOUT:?}");
            }
        };
        let port = line
            .trim()
            .strip_prefix("LISTENING ")
            .and_then(|p| p.parse::<u16>().ok())
            .unwrap_or_else(|| {
                let _ = child.kill();
                let status = child.wait().ok();
                panic!("the {name} printed {line:?} instead of `LISTENING <port>` (exit status: {status:?})")
            });
        ServerProcess { child, port }
    }

    /// The port the server listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `scripts/echo_server.py`: Python `websockets` echoing text as text and
/// binary as binary, selecting the subprotocols "chat" / "superchat", and
/// closing with CODE and REASON on the text message `close:CODE:REASON`.
pub struct EchoServer {
    process: ServerProcess,
}

impl EchoServer {
    /// Starts the echo server on a free loopback port.
    pub fn start() -> EchoServer {
        let script = repo_root().join("scripts").join("echo_server.py");
        let args: Vec<OsString> = vec![
            script.into(),
            "--port".into(),
            "0".into(),
            "--exit-on-stdin-eof".into(),
        ];
        EchoServer {
            process: ServerProcess::start("Python echo server", python(), &args),
        }
    }

    /// `ws://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/", self.process.port())
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.process.port()
    }
}

// ----- scripted raw server ---------------------------------------------------

use floodgate_proto::handshake::{parse_request_head, server_accept_response, RequestHead};
use std::io::{ErrorKind as IoErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::thread::JoinHandle;

/// How long a scripted server waits for the client before its script
/// fails: a broken client makes the test fail, never hang.
pub const SCRIPT_TIMEOUT: Duration = Duration::from_secs(10);

/// A loopback server that accepts one connection, reads the upgrade
/// request, and hands the connection to a script that writes whatever bytes
/// the test wants and checks what the client sends.
///
/// Assertions in the script fail the test: [`join`](Self::join) re-raises
/// the script's panic, and so does dropping the server.
pub struct ScriptedServer {
    addr: SocketAddr,
    request: mpsc::Receiver<RequestHead>,
    thread: Option<JoinHandle<()>>,
}

impl ScriptedServer {
    /// Binds 127.0.0.1:0 and runs `script` on the first connection once its
    /// upgrade request has been read (the script must still answer it).
    pub fn start<F>(script: F) -> ScriptedServer
    where
        F: FnOnce(RawConn) + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let (tx, request) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("scripted-server".into())
            .spawn(move || {
                let (stream, _) = listener.accept().expect("accept the client");
                let conn = RawConn::read_upgrade(stream);
                let _ = tx.send(conn.request.clone());
                script(conn);
            })
            .expect("spawn the server thread");
        ScriptedServer {
            addr,
            request,
            thread: Some(thread),
        }
    }

    /// `ws://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The upgrade request the client sent (waits for it).
    pub fn request(&self) -> RequestHead {
        self.request
            .recv_timeout(SCRIPT_TIMEOUT)
            .expect("the server received no upgrade request")
    }

    /// Waits for the script to end and re-raises its panic, if any.
    pub fn join(mut self) {
        self.join_thread();
    }

    fn join_thread(&mut self) {
        if let Some(thread) = self.thread.take() {
            if let Err(panic) = thread.join() {
                std::panic::resume_unwind(panic);
            }
        }
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        // A test that failed already must not hang on, or double-panic in,
        // a script that waits for the client.
        if !thread::panicking() {
            self.join_thread();
        }
    }
}

/// The server's end of one connection, past the upgrade request.
pub struct RawConn {
    stream: TcpStream,
    /// Bytes read but not yet used (past the request head, or of a frame).
    buf: Vec<u8>,
    /// The client's upgrade request.
    pub request: RequestHead,
}

/// A frame as the client sent it, unmasked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFrame {
    pub fin: bool,
    pub rsv: u8,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl RawConn {
    fn read_upgrade(stream: TcpStream) -> RawConn {
        stream
            .set_read_timeout(Some(SCRIPT_TIMEOUT))
            .expect("set the read timeout");
        let _ = stream.set_nodelay(true);
        let mut conn = RawConn {
            stream,
            buf: Vec::new(),
            request: RequestHead {
                path: String::new(),
                headers: Default::default(),
            },
        };
        loop {
            if let Some((head, len)) =
                parse_request_head(&conn.buf, 64 << 10).expect("a valid upgrade request")
            {
                conn.buf.drain(..len);
                conn.request = head;
                return conn;
            }
            assert!(
                conn.fill() > 0,
                "the client left before ending its upgrade request"
            );
        }
    }

    /// The client's `Sec-WebSocket-Key`.
    pub fn key(&self) -> String {
        self.request
            .websocket_key()
            .expect("the request is a WebSocket upgrade")
            .to_owned()
    }

    /// Answers `101 Switching Protocols` with this subprotocol.
    pub fn accept_upgrade(&mut self, subprotocol: Option<&str>) {
        let response = server_accept_response(&self.key(), subprotocol);
        self.write_raw(&response);
    }

    /// Answers `101` and sends `then` in the same write.
    pub fn accept_upgrade_with(&mut self, subprotocol: Option<&str>, then: &[u8]) {
        let mut bytes = server_accept_response(&self.key(), subprotocol);
        bytes.extend_from_slice(then);
        self.write_raw(&bytes);
    }

    /// Writes these bytes as they are.
    pub fn write_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to the client");
    }

    /// Writes these bytes, reporting failure instead of panicking (for a
    /// client that is expected to go away).
    pub fn try_write_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Sends one frame; `opcode` may be reserved. `mask`: mask it, as a
    /// server must not.
    pub fn send_frame(&mut self, fin: bool, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) {
        let bytes = frame_bytes(u8::from(fin) << 7 | opcode, payload, mask);
        self.write_raw(&bytes);
    }

    /// Sends a final text frame.
    pub fn send_text(&mut self, text: &str) {
        self.send_frame(true, 0x1, text.as_bytes(), None);
    }

    /// Sends a close frame with this code and reason.
    pub fn send_close(&mut self, code: u16, reason: &str) {
        self.write_raw(&close_frame_bytes(code, reason));
    }

    /// Reads the next frame from the client, which must be masked; returns
    /// it unmasked.
    pub fn read_frame(&mut self) -> ClientFrame {
        let (frame, len) = loop {
            if let Some(parsed) = parse_client_frame(&self.buf) {
                break parsed;
            }
            assert!(
                self.fill() > 0,
                "the client ended the connection where a frame was expected"
            );
        };
        self.buf.drain(..len);
        frame
    }

    /// Reads the next frame, which must be a close; returns its code and
    /// reason (`None`: a close without code).
    pub fn expect_close(&mut self) -> Option<(u16, String)> {
        let frame = self.read_frame();
        assert_eq!(
            frame.opcode, 0x8,
            "expected a close frame from the client, got {frame:?}"
        );
        match frame.payload.len() {
            0 => None,
            1 => panic!("the client sent a close frame with a 1-byte payload"),
            _ => {
                let code = u16::from_be_bytes([frame.payload[0], frame.payload[1]]);
                let reason =
                    String::from_utf8(frame.payload[2..].to_vec()).expect("a UTF-8 close reason");
                Some((code, reason))
            }
        }
    }

    /// The close handshake's server side after the client's close: answers
    /// with the same code, ends its half of TCP (as RFC 6455 asks the
    /// server to do first), and waits for the client to end the rest.
    /// Returns the client's close.
    pub fn answer_close(&mut self) -> Option<(u16, String)> {
        let close = self.expect_close();
        match &close {
            Some((code, _)) => self.send_close(*code, ""),
            None => self.write_raw(&[0x88, 0x00]),
        }
        self.shutdown_write();
        let rest = self.read_to_eof();
        assert!(
            rest.is_empty(),
            "the client sent {} bytes after its close frame",
            rest.len()
        );
        close
    }

    /// Reads until the client ends the connection; returns what it sent
    /// (a reset counts as the end).
    pub fn read_to_eof(&mut self) -> Vec<u8> {
        let mut all = std::mem::take(&mut self.buf);
        while self.fill() > 0 {
            all.append(&mut self.buf);
        }
        all
    }

    /// Ends the server's sending half (the client reads end of stream).
    pub fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// The socket.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// One read into `buf`; 0 at end of stream or reset.
    fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 16 << 10];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return n;
                }
                Err(e) if e.kind() == IoErrorKind::Interrupted => {}
                Err(e) if e.kind() == IoErrorKind::ConnectionReset => return 0,
                Err(e) if matches!(e.kind(), IoErrorKind::WouldBlock | IoErrorKind::TimedOut) => {
                    panic!("the client sent nothing for {SCRIPT_TIMEOUT:?}")
                }
                Err(e) => panic!("reading from the client failed: {e}"),
            }
        }
    }
}

/// A frame with first byte `b0` (FIN, RSV1-3, any opcode), a correctly
/// encoded length and, if `mask` is given, a masked payload.
pub fn frame_bytes(b0: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let mut out = vec![b0];
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= 0xFFFF => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// A server's close frame with this code and reason.
pub fn close_frame_bytes(code: u16, reason: &str) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason.as_bytes());
    frame_bytes(0x88, &payload, None)
}

/// Parses one masked client frame from the front of `buf`: the frame and
/// its length on the wire, or `None` if incomplete.
fn parse_client_frame(buf: &[u8]) -> Option<(ClientFrame, usize)> {
    let [b0, b1, ..] = *buf else { return None };
    assert!(
        b1 & 0x80 != 0,
        "the client sent an unmasked frame (first bytes {b0:#04x} {b1:#04x})"
    );
    let (len, mut at) = match b1 & 0x7F {
        126 => (
            u16::from_be_bytes(buf.get(2..4)?.try_into().unwrap()) as usize,
            4,
        ),
        127 => (
            u64::from_be_bytes(buf.get(2..10)?.try_into().unwrap()) as usize,
            10,
        ),
        n => (n as usize, 2),
    };
    let key: [u8; 4] = buf.get(at..at + 4)?.try_into().unwrap();
    at += 4;
    let masked = buf.get(at..at + len)?;
    let payload = masked
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ key[i % 4])
        .collect();
    let frame = ClientFrame {
        fin: b0 & 0x80 != 0,
        rsv: (b0 >> 4) & 0x07,
        opcode: b0 & 0x0F,
        payload,
    };
    Some((frame, at + len))
}
