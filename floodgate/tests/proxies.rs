//! Connecting through proxies: real ones, and hostile fakes.
//!
//! The real components, started by each test on a free loopback port with
//! a configuration file written to a temporary directory, and stopped
//! (SIGTERM, then SIGKILL) when the guard drops:
//!
//! - **tinyproxy** (Debian's `tinyproxy` package, 1.11): the HTTP
//!   `CONNECT` proxy, without and with `BasicAuth`, run in the foreground
//!   with `tinyproxy -d -c FILE`. It allows `CONNECT` only to the ports
//!   listed by `ConnectPort`, so the configuration lists the WebSocket
//!   server's port.
//! - **Dante** (Debian's `dante-server` package, `danted` 1.4): the SOCKS
//!   proxy, with `socksmethod: none` (SOCKS4, SOCKS4a, SOCKS5, SOCKS5h) or
//!   `socksmethod: username` (RFC 1929), run with `danted -f FILE`.
//!   Dante checks user names and passwords against the system's password
//!   database, so the username tests use a dedicated system user,
//!   `floodgate-socks` (password `floodgate-socks-pw`), created with
//!   `useradd` + `chpasswd` when missing; that, and letting `danted` read
//!   `/etc/shadow`, needs root (`scripts/test`'s `proxies` step creates
//!   the user with `sudo` when not root, but the tests themselves must run
//!   as root for Dante to check passwords).
//! - behind them, floodgate's own server ([`floodgate_server::echo`]),
//!   plain (`ws://`) or with rustls (`wss://`, `Server::bind_tls`, with a
//!   CA and certificate made by `rcgen` in the test, as in `tests/tls.rs`):
//!   TLS runs end to end through the tunnel.
//!
//! Those tests are `#[ignore]`d (a plain `cargo test` must pass on a
//! machine without the proxies); `./scripts/test` (step `proxies`)
//! installs the packages and runs them with `--ignored`. The tests
//! against fakes (a raw `TcpListener` playing a broken or hostile proxy),
//! the no-proxy bypass and the unreachable proxy need nothing installed
//! and always run.

#[path = "support/tls_server.rs"]
mod tls_server;

use floodgate::proxy::{Socks4Reply, TunnelError};
use floodgate::tls::RootCertificates;
use floodgate::{Client, ConfigError, ErrorKind, ProxyError};
use floodgate_server::{self as server, Server};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};
use tls_server::TestCa;

const SOCKS_USER: &str = "floodgate-socks";
const SOCKS_PASSWORD: &str = "floodgate-socks-pw";

// ----- helpers ----------------------------------------------------------------

fn echo_server() -> Server {
    Server::bind("127.0.0.1:0", server::echo).expect("bind the echo server")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A directory under the system's temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "floodgate-proxies-{}-{}-{name}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create a temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// `name` on PATH or in the sbin directories (not on a normal user's PATH).
fn find_binary(name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` not found: install Debian's {package} package \
                 (`sudo apt-get install --no-install-recommends {package}`), or run \
                 ./scripts/test, whose `proxies` step installs it"
            )
        })
}

/// A proxy process; stopped on drop.
struct ProxyProcess {
    name: &'static str,
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: TempDir,
}

impl ProxyProcess {
    /// Runs `program args` with its output in DIR/log, and waits until
    /// `port` accepts connections.
    fn start(
        name: &'static str,
        dir: TempDir,
        port: u16,
        program: &Path,
        args: &[&Path],
    ) -> ProxyProcess {
        let log = dir.0.join("log");
        let out = std::fs::File::create(&log).expect("create the log file");
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("clone the log file"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {name} ({program:?}): {e}"));
        let mut proxy = ProxyProcess {
            name,
            child,
            port,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return proxy;
            }
            if let Ok(Some(status)) = proxy.child.try_wait() {
                panic!(
                    "{name} exited ({status}) before listening:\n{}",
                    proxy.log_text()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "{name} did not listen on port {port} within 15 s:\n{}",
                    proxy.log_text()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn url(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    fn url_with(&self, scheme: &str, user: &str, password: &str) -> String {
        format!("{scheme}://{user}:{password}@127.0.0.1:{}", self.port)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        // SIGTERM first: danted's main process then stops its children.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill has no memory preconditions; pid is our child.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        eprintln!("{} did not stop on SIGTERM; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// tinyproxy allowing CONNECT to `ports`, with `BasicAuth` when given.
fn tinyproxy(ports: &[u16], auth: Option<(&str, &str)>) -> ProxyProcess {
    let program = find_binary("tinyproxy", "tinyproxy");
    let dir = TempDir::new("tinyproxy");
    let port = free_port();
    let mut conf = format!(
        "Port {port}\nListen 127.0.0.1\nAllow 127.0.0.1\nTimeout 30\nMaxClients 50\nLogLevel Info\n"
    );
    for p in ports {
        conf.push_str(&format!("ConnectPort {p}\n"));
    }
    if let Some((user, password)) = auth {
        conf.push_str(&format!("BasicAuth {user} {password}\n"));
    }
    let file = dir.0.join("tinyproxy.conf");
    std::fs::write(&file, conf).expect("write tinyproxy.conf");
    ProxyProcess::start(
        "tinyproxy",
        dir,
        port,
        &program,
        &[Path::new("-d"), Path::new("-c"), &file],
    )
}

/// danted with this `socksmethod` (`none` or `username`).
fn danted(method: &str) -> ProxyProcess {
    let program = find_binary("danted", "dante-server");
    if method == "username" {
        ensure_socks_user();
    }
    let dir = TempDir::new("danted");
    let port = free_port();
    // As root, Dante wants to know which users to switch to; `nobody`
    // exists on every Debian system.
    let users = if is_root() {
        "user.privileged: root\nuser.unprivileged: nobody\nuser.libwrap: nobody\n"
    } else {
        ""
    };
    let conf = format!(
        "logoutput: stderr\n\
         debug: 0\n\
         internal: 127.0.0.1 port = {port}\n\
         external: 127.0.0.1\n\
         clientmethod: none\n\
         socksmethod: {method}\n\
         {users}\
         client pass {{\n  from: 127.0.0.0/8 to: 0.0.0.0/0\n  log: error\n}}\n\
         socks pass {{\n  from: 127.0.0.0/8 to: 0.0.0.0/0\n  protocol: tcp\n  log: error\n}}\n"
    );
    let file = dir.0.join("danted.conf");
    let pid = dir.0.join("danted.pid");
    std::fs::write(&file, conf).expect("write danted.conf");
    ProxyProcess::start(
        "danted",
        dir,
        port,
        &program,
        &[Path::new("-f"), &file, Path::new("-p"), &pid],
    )
}

/// The system user Dante checks the username tests' credentials against
/// (once per test process: two `chpasswd` at once can fail to lock
/// `/etc/shadow`).
fn ensure_socks_user() {
    assert!(
        is_root(),
        "the SOCKS5 username tests need root: Dante checks passwords in /etc/shadow \
         (run them as root, e.g. in the CI container, or with sudo -E)"
    );
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(create_socks_user);
}

fn create_socks_user() {
    let exists = Command::new("id")
        .arg(SOCKS_USER)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !exists {
        let status = Command::new(find_binary("useradd", "passwd"))
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SOCKS_USER,
            ])
            .status()
            .expect("run useradd");
        // Another test may have created it at the same time.
        assert!(
            status.success()
                || Command::new("id")
                    .arg(SOCKS_USER)
                    .output()
                    .is_ok_and(|o| o.status.success()),
            "useradd {SOCKS_USER} failed"
        );
    }
    let mut chpasswd = Command::new(find_binary("chpasswd", "passwd"))
        .stdin(Stdio::piped())
        .spawn()
        .expect("run chpasswd");
    chpasswd
        .stdin
        .take()
        .expect("piped")
        .write_all(format!("{SOCKS_USER}:{SOCKS_PASSWORD}\n").as_bytes())
        .expect("write to chpasswd");
    assert!(
        chpasswd.wait().expect("wait for chpasswd").success(),
        "chpasswd failed"
    );
}

/// A `wss://` echo server for `localhost` and `127.0.0.1`, and the CA
/// that signed its certificate.
fn tls_echo_server() -> (Server, TestCa) {
    let ca = TestCa::new("floodgate proxy test CA");
    let cert = ca.server_cert(&["localhost", "127.0.0.1"]);
    let tls =
        floodgate_server::tls::server_config_from_pem(cert.pem.as_bytes(), cert.key_pem.as_bytes())
            .expect("the test certificate");
    let server = Server::bind_tls(
        "127.0.0.1:0",
        floodgate_server::Options::default(),
        tls,
        server::echo,
    )
    .expect("bind the TLS echo server");
    (server, ca)
}

/// A client through `proxy` that trusts only `ca`.
fn tls_client(proxy: &str, ca: &TestCa) -> Client {
    Client::builder()
        .proxy(proxy)
        .proxy_from_env(false)
        .tls_roots(RootCertificates::None)
        .add_root_certificates_pem(ca.pem().as_bytes())
        .connect_timeout(Some(Duration::from_secs(10)))
        .build()
        .unwrap_or_else(|e| panic!("{proxy}: {e}"))
}

fn client(proxy: &str) -> Client {
    Client::builder()
        .proxy(proxy)
        .proxy_from_env(false)
        .connect_timeout(Some(Duration::from_secs(10)))
        .build()
        .unwrap_or_else(|e| panic!("{proxy}: {e}"))
}

/// Text and binary both ways, over a plain and a buffered connection.
fn assert_echo_through(client: &Client, url: &str) {
    let mut ws = client
        .connect(url)
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    ws.send_text("hello through the proxy").unwrap();
    assert_eq!(
        ws.recv().unwrap().as_text(),
        Some("hello through the proxy")
    );
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    ws.send_binary(&big).unwrap();
    assert_eq!(ws.recv().unwrap().as_bytes(), &big[..]);
    ws.close(1000, "").unwrap();

    let mut ws = client
        .connect_buffered(url)
        .unwrap_or_else(|e| panic!("connect_buffered to {url}: {e}"));
    for i in 0..20 {
        ws.send_text(&format!("m{i}")).unwrap();
    }
    for i in 0..20 {
        assert_eq!(ws.recv().unwrap().as_text(), Some(format!("m{i}").as_str()));
    }
    ws.close(1000, "").unwrap();
}

fn proxy_error(result: floodgate::Result<impl std::fmt::Debug>) -> (String, ProxyError) {
    let err = result.expect_err("the connection should fail");
    let text = err.to_string();
    match err.into_kind() {
        ErrorKind::Proxy { reason, .. } => (text, reason),
        other => panic!("expected ErrorKind::Proxy, got {other:?} ({text})"),
    }
}

// ----- tinyproxy (HTTP CONNECT) ---------------------------------------------

#[test]
#[ignore = "needs tinyproxy: ./scripts/test runs it (step proxies)"]
fn tinyproxy_without_auth_tunnels_messages_both_ways() {
    let server = echo_server();
    let proxy = tinyproxy(&[server.local_addr().port()], None);
    assert_echo_through(&client(&proxy.url("http")), &server.url());
}

#[test]
#[ignore = "needs tinyproxy: ./scripts/test runs it (step proxies)"]
fn tinyproxy_with_basic_auth_accepts_the_right_credentials() {
    let server = echo_server();
    let proxy = tinyproxy(&[server.local_addr().port()], Some(("alice", "s3cret")));
    assert_echo_through(
        &client(&proxy.url_with("http", "alice", "s3cret")),
        &server.url(),
    );
}

#[test]
#[ignore = "needs tinyproxy: ./scripts/test runs it (step proxies)"]
fn tinyproxy_answers_missing_or_wrong_credentials_with_a_typed_407_or_401() {
    let server = echo_server();
    let proxy = tinyproxy(&[server.local_addr().port()], Some(("alice", "s3cret")));
    // tinyproxy answers 407 without credentials and 401 to wrong ones.
    for (url, status) in [
        (proxy.url("http"), 407),
        (proxy.url_with("http", "alice", "wrong"), 401),
    ] {
        let (text, reason) = proxy_error(client(&url).connect(&server.url()));
        assert_eq!(reason.http_status(), Some(status), "{url}: {text}");
        assert!(reason.is_auth(), "{text}");
        assert!(
            text.starts_with(&format!("HTTP proxy 127.0.0.1:{}", proxy.port)),
            "{text}"
        );
        assert!(text.contains("credentials"), "{text}");
        assert!(
            !text.contains("wrong"),
            "the password must not be shown: {text}"
        );
    }
}

#[test]
#[ignore = "needs tinyproxy: ./scripts/test runs it (step proxies)"]
fn tinyproxy_carries_wss_end_to_end() {
    let (server, ca) = tls_echo_server();
    let port = server.local_addr().port();
    let proxy = tinyproxy(&[port], Some(("alice", "s3cret")));
    let client = tls_client(&proxy.url_with("http", "alice", "s3cret"), &ca);
    let url = format!("wss://localhost:{port}/");
    let ws = client.connect(&url).unwrap();
    assert!(ws.get_ref().tls().is_some(), "a TLS stream");
    drop(ws);
    assert_echo_through(&client, &url);
}

#[test]
#[ignore = "needs tinyproxy: ./scripts/test runs it (step proxies)"]
fn tinyproxy_tunnels_to_an_ipv6_server() {
    let Ok(server) = Server::bind("[::1]:0", server::echo) else {
        eprintln!("no IPv6 loopback here; nothing to test");
        return;
    };
    let proxy = tinyproxy(&[server.local_addr().port()], None);
    let url = format!("ws://[::1]:{}/", server.local_addr().port());
    assert_echo_through(&client(&proxy.url("http")), &url);
}

#[test]
#[ignore = "needs tinyproxy: ./scripts/test runs it (step proxies)"]
fn tinyproxy_refuses_ports_it_does_not_allow_with_a_typed_403() {
    let server = echo_server();
    let proxy = tinyproxy(&[1], None);
    let (text, reason) = proxy_error(client(&proxy.url("http")).connect(&server.url()));
    assert_eq!(reason.http_status(), Some(403), "{text}");
}

// ----- Dante (SOCKS) ------------------------------------------------------------

#[test]
#[ignore = "needs danted: ./scripts/test runs it (step proxies)"]
fn dante_socks5_without_auth_tunnels_messages_both_ways() {
    let server = echo_server();
    let proxy = danted("none");
    assert_echo_through(&client(&proxy.url("socks5")), &server.url());
}

#[test]
#[ignore = "needs danted: ./scripts/test runs it (step proxies)"]
fn dante_carries_wss_end_to_end_with_the_name_resolved_by_the_proxy() {
    let (server, ca) = tls_echo_server();
    let proxy = danted("none");
    // The certificate is checked against the URL's host, which only the
    // proxy resolved.
    let url = format!("wss://localhost:{}/", server.local_addr().port());
    assert_echo_through(&tls_client(&proxy.url("socks5h"), &ca), &url);
}

#[test]
#[ignore = "needs danted: ./scripts/test runs it (step proxies)"]
fn dante_socks5h_resolves_localhost_itself() {
    let server = echo_server();
    let proxy = danted("none");
    let url = format!("ws://localhost:{}/", server.local_addr().port());
    assert_echo_through(&client(&proxy.url("socks5h")), &url);
    // socks5 resolves the name here and sends the address.
    assert_echo_through(&client(&proxy.url("socks5")), &url);
}

#[test]
#[ignore = "needs danted: ./scripts/test runs it (step proxies)"]
fn dante_socks4_tunnels_messages_both_ways() {
    let server = echo_server();
    let proxy = danted("none");
    let by_name = format!("ws://localhost:{}/", server.local_addr().port());
    assert_echo_through(&client(&proxy.url("socks4")), &server.url());
    // socks4 resolves the name here and sends the IPv4 address.
    assert_echo_through(&client(&proxy.url("socks4")), &by_name);
}

/// Dante 1.4 does not implement SOCKS4a (it takes 0.0.0.1 as the
/// destination address and answers 91), so SOCKS4a is checked against
/// this relay: it checks the request's bytes, resolves the name itself,
/// and relays both ways.
#[test]
fn socks4a_sends_the_name_for_the_proxy_to_resolve() {
    let server = echo_server();
    let port = server.local_addr().port();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy_port = listener.local_addr().unwrap().port();
    let relay = thread::spawn(move || {
        for _ in 0..2 {
            let (mut client_side, _) = listener.accept().unwrap();
            let mut head = [0u8; 8];
            client_side.read_exact(&mut head).unwrap();
            assert_eq!(head[..2], [4, 1]);
            assert_eq!(u16::from_be_bytes([head[2], head[3]]), port);
            assert_eq!(head[4..], [0, 0, 0, 1], "the SOCKS4a marker address");
            let mut rest = Vec::new();
            let mut byte = [0u8; 1];
            while rest.iter().filter(|b| **b == 0).count() < 2 {
                client_side.read_exact(&mut byte).unwrap();
                rest.push(byte[0]);
            }
            assert_eq!(rest, b"\0localhost\0");
            let server_side = TcpStream::connect(("localhost", port)).unwrap();
            client_side.write_all(&[0, 90, 0, 0, 0, 0, 0, 0]).unwrap();
            relay_both_ways(client_side, server_side);
        }
    });
    let by_name = format!("ws://localhost:{port}/");
    assert_echo_through(
        &client(&format!("socks4a://127.0.0.1:{proxy_port}")),
        &by_name,
    );
    relay.join().unwrap();
}

fn relay_both_ways(a: TcpStream, b: TcpStream) {
    let (mut a2, mut b2) = (a.try_clone().unwrap(), b.try_clone().unwrap());
    let (mut a, mut b) = (a, b);
    let up = thread::spawn(move || {
        let _ = std::io::copy(&mut a, &mut b);
        let _ = b.shutdown(std::net::Shutdown::Write);
    });
    let _ = std::io::copy(&mut b2, &mut a2);
    let _ = a2.shutdown(std::net::Shutdown::Write);
    let _ = up.join();
}

#[test]
#[ignore = "needs danted: ./scripts/test runs it (step proxies)"]
fn dante_reports_a_closed_destination_port_as_a_typed_refusal() {
    let proxy = danted("none");
    let closed = format!("ws://127.0.0.1:{}/", free_port());
    let (text, reason) = proxy_error(client(&proxy.url("socks5")).connect(&closed));
    assert!(
        matches!(
            reason,
            ProxyError::Tunnel(TunnelError::Socks5Refused { .. })
        ),
        "{text}"
    );
    assert!(
        text.starts_with(&format!("SOCKS5 proxy 127.0.0.1:{} refused: ", proxy.port)),
        "{text}"
    );
    let (text, reason) = proxy_error(client(&proxy.url("socks4")).connect(&closed));
    assert!(
        matches!(
            reason,
            ProxyError::Tunnel(TunnelError::Socks4Refused {
                reply: Socks4Reply::Rejected
            })
        ),
        "{text}"
    );
}

#[test]
#[ignore = "needs danted and root: ./scripts/test runs it (step proxies)"]
fn dante_socks5_username_auth_accepts_the_right_credentials() {
    let server = echo_server();
    let proxy = danted("username");
    for scheme in ["socks5", "socks5h"] {
        assert_echo_through(
            &client(&proxy.url_with(scheme, SOCKS_USER, SOCKS_PASSWORD)),
            &server.url(),
        );
    }
}

#[test]
#[ignore = "needs danted and root: ./scripts/test runs it (step proxies)"]
fn dante_socks5_username_auth_refuses_wrong_or_missing_credentials_with_typed_errors() {
    let server = echo_server();
    let proxy = danted("username");
    let (text, reason) =
        proxy_error(client(&proxy.url_with("socks5", SOCKS_USER, "wrong")).connect(&server.url()));
    assert!(
        matches!(reason, ProxyError::Tunnel(TunnelError::AuthFailed { .. })) && reason.is_auth(),
        "{text}"
    );
    assert!(!text.contains("wrong"), "{text}");
    let (text, reason) = proxy_error(client(&proxy.url("socks5")).connect(&server.url()));
    assert!(
        matches!(
            reason,
            ProxyError::Tunnel(TunnelError::NoAcceptableAuth { .. })
        ),
        "{text}"
    );
    assert!(text.contains("user name and password"), "{text}");
}

// ----- no proxy, unreachable proxies, hostile fakes ---------------------------

#[test]
fn hosts_in_no_proxy_bypass_the_proxy() {
    let server = echo_server();
    let dead_proxy = format!("http://127.0.0.1:{}", free_port());
    for list in ["127.0.0.1", "localhost,127.0.0.0/8", "*"] {
        let client = Client::builder()
            .proxy(dead_proxy.as_str())
            .no_proxy(list)
            .proxy_from_env(false)
            .build()
            .unwrap();
        assert_echo_through(&client, &server.url());
    }
    // Without the list the dead proxy is used, and fails.
    let (text, reason) = proxy_error(client(&dead_proxy).connect(&server.url()));
    assert!(matches!(reason, ProxyError::Unreachable(_)), "{text}");
}

#[test]
fn a_proxy_that_is_not_listening_is_a_connect_error_naming_the_proxy() {
    let port = free_port();
    for scheme in ["http", "socks4", "socks5h"] {
        let (text, reason) = proxy_error(
            client(&format!("{scheme}://127.0.0.1:{port}")).connect("ws://example.com/"),
        );
        assert!(matches!(reason, ProxyError::Unreachable(_)), "{text}");
        assert!(
            text.contains(&format!("proxy 127.0.0.1:{port} could not be reached")),
            "{text}"
        );
        assert!(text.contains("example.com:80"), "{text}");
    }
}

#[test]
fn invalid_proxy_urls_are_refused_by_build() {
    for bad in ["https://127.0.0.1:1", "gopher://h", "socks4://u:p@h"] {
        let err = Client::builder().proxy(bad).build().unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::Config(ConfigError::ProxyUrl { .. })),
            "{bad}: {err}"
        );
        let text = err.to_string();
        assert!(
            text.starts_with("invalid configuration: proxy URL"),
            "{text}"
        );
        assert_eq!(text.matches("invalid configuration").count(), 1, "{text}");
    }
}

/// A fake proxy: accepts one connection and runs `script` on it.
fn fake_proxy(script: impl FnOnce(TcpStream) + Send + 'static) -> (u16, thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = thread::spawn(move || {
        if let Ok((stream, _)) = listener.accept() {
            script(stream);
        }
    });
    (port, handle)
}

/// Reads what the client sends (up to 1 KiB), so it is not left unread.
fn read_some(stream: &mut TcpStream) {
    let mut buf = [0u8; 1024];
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.read(&mut buf);
}

fn connect_within(proxy: &str, timeout: Duration) -> (Duration, String, ProxyError) {
    let client = Client::builder()
        .proxy(proxy)
        .proxy_from_env(false)
        .connect_timeout(Some(timeout))
        .max_handshake_size(4096)
        .build()
        .unwrap();
    let start = Instant::now();
    let (text, reason) = proxy_error(client.connect("ws://127.0.0.1:9/"));
    (start.elapsed(), text, reason)
}

#[test]
fn an_http_proxy_sending_endless_headers_is_cut_off_at_the_head_limit() {
    let (port, fake) = fake_proxy(|mut s| {
        read_some(&mut s);
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\n");
        let line = b"X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
        while s.write_all(line).is_ok() {}
    });
    let (took, text, reason) =
        connect_within(&format!("http://127.0.0.1:{port}"), Duration::from_secs(10));
    assert!(
        matches!(
            reason,
            ProxyError::Tunnel(TunnelError::HeadTooLarge { limit: 4096 })
        ),
        "{text}"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
    fake.join().unwrap();
}

#[test]
fn garbage_from_a_proxy_is_a_malformed_answer_for_each_protocol() {
    for scheme in ["http", "socks4", "socks5"] {
        let (port, fake) = fake_proxy(|mut s| {
            read_some(&mut s);
            let _ = s.write_all(&[0xde, 0xad, 0xbe, 0xef, 0xde, 0xad, 0xbe, 0xef, 0, 0]);
        });
        let (_, text, reason) = connect_within(
            &format!("{scheme}://127.0.0.1:{port}"),
            Duration::from_secs(10),
        );
        assert!(
            matches!(reason, ProxyError::Tunnel(TunnelError::Malformed { .. })),
            "{scheme}: {text}"
        );
        fake.join().unwrap();
    }
}

#[test]
fn a_proxy_that_closes_mid_handshake_is_reported_as_closed() {
    for scheme in ["http", "socks4", "socks5"] {
        let (port, fake) = fake_proxy(|mut s| {
            read_some(&mut s);
            let _ = s.write_all(&[5]);
        });
        let (_, text, reason) = connect_within(
            &format!("{scheme}://127.0.0.1:{port}"),
            Duration::from_secs(10),
        );
        assert!(
            matches!(
                reason,
                ProxyError::Tunnel(TunnelError::Closed { .. } | TunnelError::Malformed { .. })
            ),
            "{scheme}: {text}"
        );
        fake.join().unwrap();
    }
}

#[test]
fn a_silent_or_trickling_proxy_is_cut_off_at_the_connect_timeout() {
    for scheme in ["http", "socks5"] {
        // Silent: accepts and never answers.
        let (port, fake) = fake_proxy(|mut s| {
            read_some(&mut s);
            thread::sleep(Duration::from_secs(2));
        });
        let (took, text, reason) = connect_within(
            &format!("{scheme}://127.0.0.1:{port}"),
            Duration::from_millis(300),
        );
        assert!(matches!(reason, ProxyError::TimedOut), "{scheme}: {text}");
        assert!(took < Duration::from_millis(1500), "{scheme}: {took:?}");
        fake.join().unwrap();
    }
    // Trickling: one byte of a never-ending header every 20 ms, well within
    // any read timeout, but the deadline covers the whole handshake.
    let (port, fake) = fake_proxy(|mut s| {
        read_some(&mut s);
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nX: ");
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(3) && s.write_all(b"a").is_ok() {
            thread::sleep(Duration::from_millis(20));
        }
    });
    let (took, text, reason) = connect_within(
        &format!("http://127.0.0.1:{port}"),
        Duration::from_millis(400),
    );
    assert!(matches!(reason, ProxyError::TimedOut), "{text}");
    assert!(took < Duration::from_millis(1500), "{took:?}");
    fake.join().unwrap();
}

#[test]
fn a_socks5_reply_of_5_reads_as_connection_refused() {
    let (port, fake) = fake_proxy(|mut s| {
        let mut greeting = [0u8; 3];
        s.read_exact(&mut greeting).unwrap();
        assert_eq!(greeting, [5, 1, 0]);
        s.write_all(&[5, 0]).unwrap();
        let mut request = [0u8; 10];
        s.read_exact(&mut request).unwrap();
        assert_eq!(request, [5, 1, 0, 1, 127, 0, 0, 1, 0, 9]);
        s.write_all(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0]).unwrap();
    });
    let (_, text, _) = connect_within(
        &format!("socks5://127.0.0.1:{port}"),
        Duration::from_secs(10),
    );
    assert_eq!(
        text,
        format!(
            "SOCKS5 proxy 127.0.0.1:{port} refused: connection refused by destination host (reply 5) \
             (tunnel to 127.0.0.1:9)"
        )
    );
    fake.join().unwrap();
}

// ----- the async client through the real proxies (feature tokio) -------------------

/// [`assert_echo_through`] with the async client.
#[cfg(feature = "tokio")]
fn assert_async_echo_through(client: &Client, url: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut ws = client
            .connect_async(url)
            .await
            .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
        ws.send_text("hello through the proxy").await.unwrap();
        assert_eq!(
            ws.recv().await.unwrap().as_text(),
            Some("hello through the proxy")
        );
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        ws.send_binary(&big).await.unwrap();
        assert_eq!(ws.recv().await.unwrap().as_bytes(), &big[..]);
        ws.close(1000, "").await.unwrap();
        let ws = client.connect_buffered_async(url).await.unwrap();
        ws.send_text("buffered").await.unwrap();
        assert_eq!(
            ws.recv().await.unwrap().message().as_text(),
            Some("buffered")
        );
    });
}

#[cfg(feature = "tokio")]
#[test]
#[ignore = "needs tinyproxy: ./scripts/test runs it (step proxies)"]
fn async_client_through_tinyproxy_with_auth_carries_ws_and_wss() {
    let server = echo_server();
    let (tls_server, ca) = tls_echo_server();
    let tls_port = tls_server.local_addr().port();
    let proxy = tinyproxy(
        &[server.local_addr().port(), tls_port],
        Some(("alice", "s3cret")),
    );
    let url = proxy.url_with("http", "alice", "s3cret");
    assert_async_echo_through(&client(&url), &server.url());
    assert_async_echo_through(
        &tls_client(&url, &ca),
        &format!("wss://localhost:{tls_port}/"),
    );
}

#[cfg(feature = "tokio")]
#[test]
#[ignore = "needs danted: ./scripts/test runs it (step proxies)"]
fn async_client_through_dante_socks5h_and_socks4_carries_ws_and_wss() {
    let server = echo_server();
    let (tls_server, ca) = tls_echo_server();
    let proxy = danted("none");
    let wss = format!("wss://localhost:{}/", tls_server.local_addr().port());
    assert_async_echo_through(&tls_client(&proxy.url("socks5h"), &ca), &wss);
    assert_async_echo_through(&client(&proxy.url("socks4")), &server.url());
}

#[cfg(feature = "tokio")]
#[test]
#[ignore = "needs danted and root: ./scripts/test runs it (step proxies)"]
fn async_client_through_dante_socks5_with_username_auth_carries_ws() {
    let server = echo_server();
    let proxy = danted("username");
    let url = proxy.url_with("socks5", SOCKS_USER, SOCKS_PASSWORD);
    assert_async_echo_through(&client(&url), &server.url());
}

// ----- the async dial against fakes (feature tokio) ----------------------------

#[cfg(feature = "tokio")]
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// [`connect_within`] with the async client.
#[cfg(feature = "tokio")]
fn async_connect_within(proxy: &str, timeout: Duration) -> (Duration, String, ProxyError) {
    let client = Client::builder()
        .proxy(proxy)
        .proxy_from_env(false)
        .connect_timeout(Some(timeout))
        .max_handshake_size(4096)
        .build()
        .unwrap();
    let start = Instant::now();
    let result = runtime().block_on(client.connect_async("ws://127.0.0.1:9/"));
    let took = start.elapsed();
    let (text, reason) = proxy_error(result.map(|_| ()));
    (took, text, reason)
}

/// A proxy that reads the client's first request, reports it, and then
/// answers nothing: it reports when the client's end closes (the
/// `Instant` of EOF, or the read error).
#[cfg(feature = "tokio")]
fn silent_proxy() -> (
    u16,
    tokio::sync::oneshot::Receiver<()>,
    std::sync::mpsc::Receiver<std::io::Result<Instant>>,
    thread::JoinHandle<()>,
) {
    let (got_request, request_seen) = tokio::sync::oneshot::channel();
    let (tx, closed) = std::sync::mpsc::channel();
    let (port, fake) = fake_proxy(move |mut s| {
        let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
        let mut buf = [0u8; 1024];
        if matches!(s.read(&mut buf), Ok(n) if n > 0) {
            let _ = got_request.send(());
        }
        let end = loop {
            match s.read(&mut buf) {
                Ok(0) => break Ok(Instant::now()),
                Ok(_) => {}
                Err(e) => break Err(e),
            }
        };
        let _ = tx.send(end);
    });
    (port, request_seen, closed, fake)
}

#[cfg(feature = "tokio")]
#[test]
fn a_cancelled_async_connect_through_a_silent_proxy_closes_its_socket_at_once() {
    for scheme in ["http", "socks5", "socks4"] {
        let (port, request_seen, closed, fake) = silent_proxy();
        let client = Client::builder()
            .proxy(format!("{scheme}://127.0.0.1:{port}").as_str())
            .proxy_from_env(false)
            .connect_timeout(Some(Duration::from_secs(30)))
            .build()
            .unwrap();
        let cancelled = runtime().block_on(async {
            let mut connect = Box::pin(client.connect_async("ws://127.0.0.1:9/"));
            tokio::select! {
                result = &mut connect => panic!("{scheme}: the connect ended: {:?}", result.err()),
                seen = request_seen => seen.expect("the fake proxy read the request"),
            }
            // The connect is now waiting for the proxy's answer: cancel it.
            let cancelled = Instant::now();
            drop(connect);
            cancelled
        });
        let eof = closed
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("{scheme}: the proxy never saw the connection end"))
            .unwrap_or_else(|e| panic!("{scheme}: the proxy's read failed instead of EOF: {e}"));
        let after = eof.saturating_duration_since(cancelled);
        assert!(
            after < Duration::from_millis(500),
            "{scheme}: the socket was closed {after:?} after the cancel"
        );
        fake.join().unwrap();
    }
}

#[cfg(feature = "tokio")]
#[test]
fn an_async_connect_through_a_silent_proxy_times_out_at_the_connect_timeout() {
    for scheme in ["http", "socks5"] {
        let (port, _request_seen, closed, fake) = silent_proxy();
        let timeout = Duration::from_millis(300);
        let (took, text, reason) =
            async_connect_within(&format!("{scheme}://127.0.0.1:{port}"), timeout);
        assert!(matches!(reason, ProxyError::TimedOut), "{scheme}: {text}");
        assert!(
            took < timeout + Duration::from_millis(200),
            "{scheme}: took {took:?}"
        );
        assert!(
            text.starts_with(&format!(
                "{} proxy 127.0.0.1:{port} did not finish",
                scheme.to_uppercase()
            )),
            "{text}"
        );
        // And the socket went with the error.
        assert!(closed.recv_timeout(Duration::from_secs(5)).unwrap().is_ok());
        fake.join().unwrap();
    }
}

#[cfg(feature = "tokio")]
#[test]
fn the_async_dial_gives_the_blocking_dials_typed_errors_for_hostile_proxies() {
    // Endless headers.
    let (port, fake) = fake_proxy(|mut s| {
        read_some(&mut s);
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\n");
        let line = b"X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
        while s.write_all(line).is_ok() {}
    });
    let (_, text, reason) =
        async_connect_within(&format!("http://127.0.0.1:{port}"), Duration::from_secs(10));
    assert!(
        matches!(
            reason,
            ProxyError::Tunnel(TunnelError::HeadTooLarge { limit: 4096 })
        ),
        "{text}"
    );
    fake.join().unwrap();
    // Garbage, and an early close.
    for scheme in ["http", "socks4", "socks5"] {
        let (port, fake) = fake_proxy(|mut s| {
            read_some(&mut s);
            let _ = s.write_all(&[0xde, 0xad, 0xbe, 0xef, 0xde, 0xad, 0xbe, 0xef, 0, 0]);
        });
        let (_, text, reason) = async_connect_within(
            &format!("{scheme}://127.0.0.1:{port}"),
            Duration::from_secs(10),
        );
        assert!(
            matches!(reason, ProxyError::Tunnel(TunnelError::Malformed { .. })),
            "{scheme}: {text}"
        );
        fake.join().unwrap();
        let (port, fake) = fake_proxy(|mut s| read_some(&mut s));
        let (_, text, reason) = async_connect_within(
            &format!("{scheme}://127.0.0.1:{port}"),
            Duration::from_secs(10),
        );
        assert!(
            matches!(reason, ProxyError::Tunnel(TunnelError::Closed { .. })),
            "{scheme}: {text}"
        );
        fake.join().unwrap();
    }
    // A SOCKS5 refusal, word for word as the blocking client says it.
    let (port, fake) = fake_proxy(|mut s| {
        let mut greeting = [0u8; 3];
        s.read_exact(&mut greeting).unwrap();
        s.write_all(&[5, 0]).unwrap();
        let mut request = [0u8; 10];
        s.read_exact(&mut request).unwrap();
        assert_eq!(request, [5, 1, 0, 1, 127, 0, 0, 1, 0, 9]);
        s.write_all(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0]).unwrap();
    });
    let (_, text, _) = async_connect_within(
        &format!("socks5://127.0.0.1:{port}"),
        Duration::from_secs(10),
    );
    assert_eq!(
        text,
        format!(
            "SOCKS5 proxy 127.0.0.1:{port} refused: connection refused by destination host (reply 5) \
             (tunnel to 127.0.0.1:9)"
        )
    );
    fake.join().unwrap();
    // Nobody listening.
    let port = free_port();
    let (_, text, reason) = async_connect_within(
        &format!("socks5h://127.0.0.1:{port}"),
        Duration::from_secs(10),
    );
    assert!(matches!(reason, ProxyError::Unreachable(_)), "{text}");
}

#[cfg(feature = "tokio")]
#[test]
fn the_async_dial_sends_socks4a_names_and_relays_through_the_tunnel() {
    let server = echo_server();
    let port = server.local_addr().port();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy_port = listener.local_addr().unwrap().port();
    let relay = thread::spawn(move || {
        for _ in 0..2 {
            let (mut client_side, _) = listener.accept().unwrap();
            let mut request = [0u8; 8 + 1 + 10];
            client_side.read_exact(&mut request).unwrap();
            assert_eq!(
                request[..8],
                [4, 1, (port >> 8) as u8, port as u8, 0, 0, 0, 1]
            );
            assert_eq!(&request[8..], b"\0localhost\0");
            let server_side = TcpStream::connect(("localhost", port)).unwrap();
            client_side.write_all(&[0, 90, 0, 0, 0, 0, 0, 0]).unwrap();
            relay_both_ways(client_side, server_side);
        }
    });
    assert_async_echo_through(
        &client(&format!("socks4a://127.0.0.1:{proxy_port}")),
        &format!("ws://localhost:{port}/"),
    );
    relay.join().unwrap();
}
