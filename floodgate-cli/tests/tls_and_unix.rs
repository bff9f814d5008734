//! `floodgate connect` over TLS (a rustls server with certificates made by
//! `rcgen`, from `floodgate/tests/support/tls_server.rs`) and over a Unix
//! socket (a `UnixListener` with the embedded server's handshake).

mod support;
#[path = "../../floodgate/tests/support/tls_server.rs"]
mod tls_server;

use support::{floodgate, text};
use tls_server::{server_config, TestCa, TlsEchoServer};

fn write_temp(name: &str, contents: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("floodgate-cli-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

#[test]
fn wss_with_a_ca_file_echoes_and_without_it_exits_3_naming_the_check() {
    let ca = TestCa::new("cli test CA");
    let server = TlsEchoServer::start(server_config(&ca.server_cert(&["localhost"]), None));
    let ca_file = write_temp("ca.pem", &ca.pem());
    let out = floodgate()
        .args([
            "connect",
            &server.url("localhost"),
            "--eof-wait",
            "1s",
            "--ca-file",
        ])
        .arg(&ca_file)
        .write_stdin("one\ntwo\n")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(text(&out.stdout), "one\ntwo\n");

    let out = floodgate()
        .args([
            "connect",
            &server.url("localhost"),
            "--tls-roots",
            "mozilla",
        ])
        .write_stdin("")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(
        text(&out.stderr).contains("not signed by a trusted certificate authority"),
        "{out:?}"
    );
}

#[test]
fn insecure_accepts_a_certificate_for_another_host() {
    let ca = TestCa::new("cli test CA");
    let server = TlsEchoServer::start(server_config(&ca.server_cert(&["other.example"]), None));
    let out = floodgate()
        .args([
            "connect",
            &server.url("127.0.0.1"),
            "--eof-wait",
            "1s",
            "-k",
        ])
        .write_stdin("insecure\n")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(text(&out.stdout), "insecure\n");
    // --server-name verifies the name the certificate holds instead.
    let ca_file = write_temp("ca2.pem", &ca.pem());
    let out = floodgate()
        .args(["connect", &server.url("127.0.0.1"), "--eof-wait", "1s"])
        .args([
            "--server-name",
            "other.example",
            "--tls-roots",
            "none",
            "--ca-file",
        ])
        .arg(&ca_file)
        .write_stdin("named\n")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(text(&out.stdout), "named\n");
}

#[test]
fn a_client_certificate_is_shown_to_a_server_that_requires_one() {
    let ca = TestCa::new("cli test CA");
    let server = TlsEchoServer::start(server_config(&ca.server_cert(&["localhost"]), Some(&ca)));
    let client = ca.client_cert("cli");
    let (ca_file, cert, key) = (
        write_temp("ca3.pem", &ca.pem()),
        write_temp("client.pem", &client.pem),
        write_temp("client.key", &client.key_pem),
    );
    let out = floodgate()
        .args([
            "connect",
            &server.url("localhost"),
            "--eof-wait",
            "1s",
            "--ca-file",
        ])
        .arg(&ca_file)
        .arg("--cert")
        .arg(&cert)
        .arg("--key")
        .arg(&key)
        .write_stdin("mtls\n")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(text(&out.stdout), "mtls\n");
    let out = floodgate()
        .args(["connect", &server.url("localhost"), "--ca-file"])
        .arg(&ca_file)
        .write_stdin("")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(text(&out.stderr).contains("client certificate"), "{out:?}");
}

#[test]
fn unix_socket_sends_the_bytes_to_the_socket_path() {
    use std::os::unix::net::UnixListener;
    let dir = std::env::temp_dir().join(format!("floodgate-cli-unix-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ws.sock");
    let listener = UnixListener::bind(&path).unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let options = floodgate_server::Options::default();
                if let Ok((ws, head)) = floodgate_server::accept(stream, &options) {
                    floodgate_server::echo(ws, head);
                }
            });
        }
    });
    let out = floodgate()
        .args([
            "connect",
            "ws://localhost/x",
            "--eof-wait",
            "1s",
            "--unix-socket",
        ])
        .arg(&path)
        .write_stdin("via unix\n")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(text(&out.stdout), "via unix\n");
}

#[test]
fn serve_with_a_certificate_speaks_wss_to_connect() {
    let ca = TestCa::new("cli serve CA");
    let cert = ca.server_cert(&["localhost", "127.0.0.1"]);
    let (ca_file, cert_file, key_file) = (
        write_temp("serve-ca.pem", &ca.pem()),
        write_temp("serve-cert.pem", &cert.pem),
        write_temp("serve-key.pem", &cert.key_pem),
    );
    let serve = support::ServeProcess::start(&[
        "--echo",
        "--tls-cert",
        cert_file.to_str().unwrap(),
        "--tls-key",
        key_file.to_str().unwrap(),
    ]);
    assert!(serve.url.starts_with("wss://127.0.0.1:"), "{}", serve.url);
    let out = floodgate()
        .args(["connect", &serve.url, "--eof-wait", "1s", "--ca-file"])
        .arg(&ca_file)
        .write_stdin("tls both ends\n")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(text(&out.stdout), "tls both ends\n");
}
