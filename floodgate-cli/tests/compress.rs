//! `floodgate connect --compress`: permessage-deflate is offered, used, and
//! shown with `-v`; `floodgate serve --compress` accepts it.

mod support;

use floodgate::DeflateConfig;
use floodgate_server::Options;
use support::{floodgate, text};

fn compressing_echo() -> floodgate_server::Server {
    let options = Options {
        compression: Some(DeflateConfig::default()),
        ..Options::default()
    };
    floodgate_server::Server::bind_with("127.0.0.1:0", options, |mut ws, request| {
        // Tell the client whether the server side negotiated, then echo.
        let _ = ws.send_text(&format!("server deflate: {}", ws.deflate().is_some()));
        floodgate_server::echo(ws, request);
    })
    .unwrap()
}

#[test]
fn compress_offers_permessage_deflate_and_v_shows_what_was_negotiated() {
    let server = compressing_echo();
    let long = "compressible text ".repeat(5_000);
    let out = floodgate()
        .args([
            "-v",
            "connect",
            &server.url(),
            "--compress",
            "--eof-wait",
            "2s",
        ])
        .write_stdin(format!("hello\n{long}\n"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        text(&out.stdout),
        format!("server deflate: true\nhello\n{long}\n")
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("compression: permessage-deflate; client_no_context_takeover"),
        "{stderr}"
    );
}

#[test]
fn without_compress_nothing_is_offered() {
    let server = compressing_echo();
    let out = floodgate()
        .args(["connect", &server.url(), "--eof-wait", "1s"])
        .write_stdin("hi\n")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out.stdout), "server deflate: false\nhi\n");
}

#[test]
fn v_says_when_the_server_declines() {
    let server = floodgate_server::Server::bind("127.0.0.1:0", floodgate_server::echo).unwrap();
    let out = floodgate()
        .args([
            "-v",
            "connect",
            &server.url(),
            "--compress",
            "--eof-wait",
            "1s",
        ])
        .write_stdin("hi\n")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out.stdout), "hi\n");
    assert!(
        text(&out.stderr).contains("the server declined permessage-deflate"),
        "{out:?}"
    );
}

#[test]
fn bench_compress_negotiates_with_the_embedded_server_and_runs_both_tests() {
    let out = floodgate()
        .args([
            "bench",
            "--compress",
            "--messages",
            "200",
            "--duration",
            "300ms",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stderr = text(&out.stderr);
    assert_eq!(
        stderr.matches("compression: permessage-deflate").count(),
        2,
        "one line per test: {stderr}"
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("echo round trip") && stdout.contains("stream receive"),
        "{stdout}"
    );
}
