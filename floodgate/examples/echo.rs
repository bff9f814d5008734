//! The quick tour: starts floodgate's embedded echo server on loopback,
//! connects, sends text, binary, a ping and a message fragmented by hand,
//! prints what comes back, and closes cleanly.
//!
//!     cargo run --example echo
//!
//! Give a URL to talk to another echo server instead:
//!
//!     cargo run --example echo -- ws://127.0.0.1:9001/

use floodgate::{Client, Message, OpCode};
use floodgate_server::{echo, Server};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server;
    let url = match std::env::args().nth(1) {
        Some(url) => url,
        None => {
            server = Server::bind("127.0.0.1:0", echo)?;
            println!("embedded echo server on {}", server.url());
            server.url()
        }
    };

    let mut ws = Client::builder()
        .return_control_frames(true)
        .connect(&url)?;
    println!("connected: HTTP {}", ws.status());

    ws.send_text("hello, floodgate")?;
    ws.send_binary(&[0xde, 0xad, 0xbe, 0xef])?;
    ws.ping(b"are you there?")?;
    ws.send_frame(OpCode::Text, b"sent in ", false)?;
    ws.send_frame(OpCode::Continuation, b"three ", false)?;
    ws.send_frame(OpCode::Continuation, b"fragments", true)?;

    let mut data_messages = 0;
    while data_messages < 3 {
        match ws.recv()? {
            Message::Text(text) => {
                data_messages += 1;
                println!("< text   {text:?}");
            }
            Message::Binary(data) => {
                data_messages += 1;
                println!("< binary {data:02x?}");
            }
            Message::Pong(payload) => println!("< pong   {:?}", String::from_utf8_lossy(&payload)),
            other => println!("< {other:?}"),
        }
    }
    ws.close(1000, "done")?;
    println!("closed cleanly");
    Ok(())
}
