//! The JSON-lines sink (`floodgate::sink::JsonLines`, feature `sink`):
//! what it writes, read back with a JSON parser.
#![cfg(feature = "sink")]

#[path = "brokers/common.rs"]
mod common;

use common::records;
use floodgate::sink::{JsonLines, RunId, Sink, SinkError};
use floodgate::Message;

#[tokio::test]
async fn every_message_is_one_line_read_back_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.jsonl");
    let run = RunId(0x0123_4567_89ab_cdef);
    let tricky = "quote \" backslash \\ newline \n tab \t nul \u{0} line-sep \u{2028} é 🦀";
    let first = [Message::text("plain"), Message::text(tricky)];
    let second = [
        Message::binary(vec![0u8, 255, 10, 13, b'"']),
        Message::text(""),
    ];
    let mut sink = JsonLines::create(&path).await.unwrap().sync(true);
    assert_eq!(sink.describe(), format!("file:{}", path.display()));
    sink.publish(&records(run, 0, &first)).await.unwrap();
    // A second sink on the same file appends (a restarted bridge).
    drop(sink);
    let mut sink = JsonLines::create(&path).await.unwrap();
    sink.publish(&records(run, 2, &second)).await.unwrap();

    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    assert_eq!(lines.len(), 4, "{text}");
    let ids: Vec<&str> = lines.iter().map(|l| l["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "0123456789abcdef-0",
            "0123456789abcdef-1",
            "0123456789abcdef-2",
            "0123456789abcdef-3"
        ]
    );
    assert_eq!(lines[0]["text"], "plain");
    assert_eq!(lines[1]["text"], tricky);
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(lines[2]["binary"].as_str().unwrap())
        .unwrap();
    assert_eq!(bytes, [0u8, 255, 10, 13, b'"']);
    assert!(lines[2].get("text").is_none());
    assert_eq!(lines[3]["text"], "");
}

#[tokio::test]
async fn a_file_that_cannot_be_opened_is_an_io_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing-dir").join("out.jsonl");
    let err = JsonLines::create(&path).await.unwrap_err();
    assert!(matches!(err, SinkError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("missing-dir"), "{err}");
    assert!(err.is_retryable());
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_full_device_fails_the_publish() {
    // /dev/full: every write fails with ENOSPC.
    let mut sink = JsonLines::create("/dev/full").await.unwrap();
    let messages = [Message::text("x")];
    let err = sink
        .publish(&records(RunId(1), 0, &messages))
        .await
        .unwrap_err();
    match &err {
        SinkError::Io { source, .. } => assert_eq!(source.raw_os_error(), Some(28), "{err}"),
        other => panic!("{other:?}"),
    }
}
