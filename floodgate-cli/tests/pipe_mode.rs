//! `floodgate connect` in a pipe, driven as a user would: lines in, one
//! message per line out, exit codes and one-line reasons for every way it
//! can fail.

mod support;

use floodgate::Message;
use floodgate_server::feed::FeedMessage;
use support::{
    assert_counters_add_up, echo_then_close, floodgate, http_404, send_then_close, stats_of, text,
    ServeProcess,
};

#[test]
fn lines_from_a_pipe_come_back_one_per_line_including_empty_unicode_and_long_ones() {
    let long = "x".repeat(200_000);
    let input = format!("hello\n\nünïcode ✓ 日本\r\n{long}\nlast\n");
    let server = echo_then_close(5);
    let out = floodgate()
        .args(["connect", &server.url(), "--eof-wait", "30s"])
        .write_stdin(input)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.split('\n').collect();
    assert_eq!(
        lines,
        ["hello", "", "ünïcode ✓ 日本", long.as_str(), "last", ""]
    );
}

#[test]
fn binary_messages_print_as_hex_or_raw_bytes() {
    let messages = || {
        vec![
            Message::binary(vec![0u8, 1, 0xab, 0xff]),
            Message::text("t"),
        ]
    };
    let server = send_then_close(messages(), 1000);
    let out = floodgate()
        .args(["connect", &server.url(), "--eof-wait", "30s"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out.stdout), "0001abff\nt\n");

    let server = send_then_close(messages(), 1000);
    let out = floodgate()
        .args(["connect", &server.url(), "--raw", "--eof-wait", "30s"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, b"\x00\x01\xab\xfft\n");
}

#[test]
fn json_output_gives_type_size_time_and_data_per_message() {
    let server = send_then_close(
        vec![Message::text("héllo"), Message::binary(vec![7u8])],
        1000,
    );
    let out = floodgate()
        .args(["connect", &server.url(), "--json", "--eof-wait", "30s"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let objects: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(objects.len(), 2);
    assert_eq!(objects[0]["type"], "text");
    assert_eq!(objects[0]["size"], 6);
    assert_eq!(objects[0]["data"], "héllo");
    assert!(objects[0]["time"].as_f64().unwrap() > 1.7e9, "Unix time");
    assert_eq!(objects[1]["type"], "binary");
    assert_eq!(objects[1]["hex"], "07");
}

#[test]
fn text_given_with_t_is_sent_first_and_timings_prefix_each_message() {
    let server = echo_then_close(2);
    let out = floodgate()
        .args([
            "connect",
            &server.url(),
            "-t",
            "first",
            "--timings",
            "--eof-wait",
            "30s",
        ])
        .write_stdin("second\n")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    for (line, want) in lines.iter().zip(["first", "second"]) {
        let (stamp, message) = line.split_once("] ").expect("a [time] prefix");
        let seconds: f64 = stamp.trim_start_matches('[').trim().parse().unwrap();
        assert!((0.0..60.0).contains(&seconds), "{line}");
        assert_eq!(message, want);
    }
}

#[test]
fn after_the_end_of_input_it_waits_then_closes_cleanly() {
    // The echo server never closes: the command must, after --eof-wait.
    let server = floodgate_server::Server::bind("127.0.0.1:0", floodgate_server::echo).unwrap();
    let out = floodgate()
        .args(["connect", &server.url(), "--eof-wait", "2s", "--stats"])
        .write_stdin("ping?\n")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out.stdout), "ping?\n");
    let stats: serde_json::Value = stats_of(&out);
    assert_eq!(stats["received"], 1);
    assert_eq!(stats["delivered"], 1);
}

#[test]
fn a_refused_connection_exits_3_with_a_reason() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port(); // bound, then freed: nothing listens there now
    let out = floodgate()
        .args(["connect", &format!("ws://127.0.0.1:{port}/")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("floodgate: could not connect"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
}

#[test]
fn a_404_handshake_exits_3_and_names_the_status() {
    let out = floodgate().args(["connect", &http_404()]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("404"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn an_invalid_url_exits_2() {
    for url in ["http://example.com/", "ws://", "not a url"] {
        let out = floodgate().args(["connect", url]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{url}: {out:?}");
        assert!(
            text(&out.stderr).contains("invalid WebSocket URL"),
            "{url}: {out:?}"
        );
    }
}

#[test]
fn a_ping_timeout_without_a_ping_interval_exits_2_instead_of_being_ignored() {
    // Nothing would send the ping whose pong the timeout waits for.
    let out = floodgate()
        .args(["connect", "ws://127.0.0.1:9/", "--ping-timeout", "1s"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(!text(&out.stderr).is_empty());
}

#[test]
fn a_proxy_that_is_not_listening_exits_3_and_names_the_proxy() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let proxy = format!("socks5h://127.0.0.1:{port}");
    let out = floodgate()
        .args(["connect", "ws://example.com/", "--proxy", &proxy])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "SOCKS5h proxy 127.0.0.1:{port} could not be reached"
        )),
        "{stderr}"
    );
}

#[test]
fn no_proxy_lets_the_command_bypass_a_dead_proxy() {
    let server = send_then_close(vec![Message::text("direct")], 1000);
    let out = floodgate()
        .args(["connect", &server.url(), "--eof-wait", "30s"])
        .args(["--proxy", "http://127.0.0.1:9", "--no-proxy", "127.0.0.1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(text(&out.stdout).contains("direct"), "{out:?}");
}

#[test]
fn an_invalid_proxy_url_exits_2() {
    let out = floodgate()
        .args([
            "connect",
            "ws://127.0.0.1:9/",
            "--proxy",
            "https://127.0.0.1:1",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(text(&out.stderr).contains("not supported"), "{out:?}");
}

#[test]
fn a_server_close_with_an_error_code_exits_4_and_names_the_code() {
    let server = send_then_close(vec![Message::text("bye")], 4000);
    let out = floodgate()
        .args(["connect", &server.url(), "--eof-wait", "30s"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert_eq!(
        text(&out.stdout),
        "bye\n",
        "messages before the close are printed"
    );
    assert!(text(&out.stderr).contains("4000"), "{out:?}");
}

#[test]
fn every_message_of_serve_feed_arrives_through_connect() {
    let serve = ServeProcess::start(&[
        "--feed",
        "--count",
        "3000",
        "--rate",
        "0",
        "--channels",
        "4",
    ]);
    let out = floodgate()
        .args(["connect", &serve.url, "--eof-wait", "60s", "--stats"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = text(&out.stdout);
    let mut next = [0u64; 4];
    let mut n = 0;
    for line in stdout.lines() {
        let m = FeedMessage::parse(line).unwrap_or_else(|| panic!("not a feed message: {line}"));
        assert_eq!(m.n, n, "in order, no gap");
        assert_eq!(m.seq, next[m.channel as usize]);
        next[m.channel as usize] += 1;
        n += 1;
    }
    assert_eq!(n, 3000);
    let stats: serde_json::Value = stats_of(&out);
    assert_eq!(stats["received"], 3000);
    assert_eq!(stats["delivered"], 3000);
}

#[test]
fn a_slow_consumer_under_drop_oldest_prints_fewer_and_the_stats_add_up() {
    let serve = ServeProcess::start(&["--feed", "--count", "5000", "--rate", "0"]);
    let out = floodgate()
        .args([
            "connect",
            &serve.url,
            "--eof-wait",
            "60s",
            "--policy",
            "drop-oldest",
            "--max-messages",
            "50",
            "--slow",
            "1ms",
            "--recv-buffer",
            "4KiB",
            "--stats",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let printed = text(&out.stdout).lines().count() as u64;
    let s: serde_json::Value = stats_of(&out);
    let n = |k: &str| s[k].as_u64().unwrap_or_else(|| panic!("{k} in {s}"));
    assert_eq!(n("received"), 5000);
    assert_counters_add_up(&s);
    assert_eq!(
        n("delivered"),
        printed,
        "every delivered message is printed"
    );
    assert!(
        n("dropped_oldest") > 0,
        "a 1 ms consumer cannot keep up: {s}"
    );
    assert!(n("high_water_messages") <= 50);
}

#[test]
fn conflation_by_a_json_pointer_keeps_the_last_message_of_every_channel() {
    let serve = ServeProcess::start(&[
        "--feed",
        "--count",
        "4000",
        "--rate",
        "0",
        "--channels",
        "5",
    ]);
    let out = floodgate()
        .args([
            "connect",
            &serve.url,
            "--eof-wait",
            "60s",
            "--policy",
            "conflate",
            "--conflate-key",
            "/channel",
            "--slow",
            "2ms",
            "--stats",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = text(&out.stdout);
    let mut last = [None; 5];
    for line in stdout.lines() {
        let m = FeedMessage::parse(line).unwrap();
        last[m.channel as usize] = Some(m.seq);
    }
    // 4000 messages on 5 channels: each channel's last is number 799.
    assert_eq!(last, [Some(799); 5], "{stdout}");
    let s: serde_json::Value = stats_of(&out);
    assert!(s["conflated"].as_u64().unwrap() > 0, "{s}");
    assert!(
        s["high_water_messages"].as_u64().unwrap() <= 5,
        "one per channel: {s}"
    );
}

#[test]
fn the_disconnect_policy_exits_1_and_says_the_consumer_fell_behind() {
    let serve = ServeProcess::start(&["--feed", "--rate", "0"]);
    let out = floodgate()
        .args([
            "connect",
            &serve.url,
            "--eof-wait",
            "60s",
            "--policy",
            "disconnect",
            "--max-messages",
            "10",
            "--slow",
            "20ms",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("fell behind") && stderr.contains("1008"),
        "{stderr}"
    );
    assert_eq!(
        text(&out.stdout).lines().count(),
        10,
        "the buffered ten are printed first"
    );
}

#[test]
fn headers_origin_and_subprotocols_reach_the_server() {
    let server = floodgate_server::Server::bind_with(
        "127.0.0.1:0",
        floodgate_server::Options {
            subprotocols: vec!["v2.chat".into()],
            ..floodgate_server::Options::default()
        },
        |mut ws, request| {
            let header = |name: &str| {
                request
                    .headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-")
                    .to_owned()
            };
            let seen = format!(
                "token={} origin={} protocol={}",
                header("x-token"),
                header("origin"),
                ws.subprotocol().unwrap_or("-")
            );
            let _ = ws.send_text(&seen);
            let _ = ws.close(1000, "");
        },
    )
    .unwrap();
    let out = floodgate()
        .args([
            "connect",
            &server.url(),
            "-H",
            "X-Token: s3cr3t",
            "--origin",
            "https://example.test",
            "--subprotocol",
            "v1.chat",
            "--subprotocol",
            "v2.chat",
            "--eof-wait",
            "30s",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        text(&out.stdout),
        "token=s3cr3t origin=https://example.test protocol=v2.chat\n"
    );
}

#[test]
fn verbose_traces_the_handshake_on_stderr() {
    let server = echo_then_close(0);
    let out = floodgate()
        .args(["connect", &server.url(), "-v", "--eof-wait", "30s"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("sending the opening handshake"), "{stderr}");
    assert!(stderr.contains("Sec-WebSocket-Key"), "{stderr}");
    assert!(stderr.contains("101 Switching Protocols"), "{stderr}");
    assert!(text(&out.stdout).is_empty(), "traces stay off stdout");
}

#[test]
fn serve_routes_echo_and_feed_by_path() {
    let serve = ServeProcess::start(&[]);
    let out = floodgate()
        .args(["connect", &format!("{}echo", serve.url), "--eof-wait", "2s"])
        .write_stdin("round trip\n")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out.stdout), "round trip\n");
    let out = floodgate()
        .args([
            "connect",
            &format!("{}feed?count=3&rate=0", serve.url),
            "--eof-wait",
            "30s",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let ns: Vec<u64> = text(&out.stdout)
        .lines()
        .map(|l| FeedMessage::parse(l).unwrap().n)
        .collect();
    assert_eq!(ns, [0, 1, 2]);
}

#[test]
fn empty_input_with_no_eof_wait_closes_at_once_against_a_server_that_never_closes() {
    let server = floodgate_server::Server::bind("127.0.0.1:0", floodgate_server::echo).unwrap();
    for _ in 0..5 {
        let out = floodgate()
            .args(["connect", &server.url()])
            .write_stdin("")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert!(out.stdout.is_empty());
    }
}
