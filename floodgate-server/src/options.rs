//! [`Options`]: what the server accepts and how long it waits.

use floodgate_proto::deflate::DeflateConfig;
use std::time::Duration;

/// The server's options, shared by every connection of a [`Server`]
/// (or given to [`accept`]).
///
/// A plain struct: set the fields you need and take the rest from
/// [`Default`].
///
/// ```
/// use floodgate_server::Options;
/// let options = Options {
///     subprotocols: vec!["chat.v2".into()],
///     compression: Some(floodgate_proto::deflate::DeflateConfig::default()),
///     ..Options::default()
/// };
/// # let _ = options;
/// ```
///
/// [`Server`]: crate::Server
/// [`accept`]: crate::accept
#[derive(Debug, Clone)]
pub struct Options {
    /// Subprotocols the server speaks: it selects the first one the client
    /// offers that is in this list. Default none.
    pub subprotocols: Vec<String>,
    /// Accept a client's permessage-deflate offer with this configuration
    /// (`None`, the default: decline compression).
    pub compression: Option<DeflateConfig>,
    /// Limit for the TLS handshake and the upgrade request together
    /// (`None`: none). Default 30 s.
    pub handshake_timeout: Option<Duration>,
    /// Read timeout once the handshake is done (`None`, the default: block).
    pub read_timeout: Option<Duration>,
    /// Write timeout once the handshake is done (`None`, the default: block).
    pub write_timeout: Option<Duration>,
    /// How long [`WebSocket::close`](crate::WebSocket::close) waits for
    /// the client's close. Default 5 s.
    pub close_timeout: Duration,
    /// Largest accepted frame (`None`: no limit). Default 16 MiB.
    pub max_frame_size: Option<usize>,
    /// Largest accepted message, after inflation (`None`: no limit).
    /// Default 64 MiB.
    pub max_message_size: Option<usize>,
    /// Largest accepted upgrade request head. Default 64 KiB.
    pub max_handshake_size: usize,
    /// Bytes asked of the socket per read (more when a frame in progress
    /// needs more). Default 256 KiB.
    pub read_chunk_size: usize,
    /// Return pings, pongs and the client's close from
    /// [`WebSocket::recv`](crate::WebSocket::recv) as messages. Default
    /// off (they are still answered).
    pub return_control_frames: bool,
    /// Answer pings automatically. Default on.
    pub auto_pong: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            subprotocols: Vec::new(),
            compression: None,
            handshake_timeout: Some(Duration::from_secs(30)),
            read_timeout: None,
            write_timeout: None,
            close_timeout: Duration::from_secs(5),
            max_frame_size: Some(floodgate_proto::protocol::DEFAULT_MAX_FRAME_SIZE),
            max_message_size: Some(floodgate_proto::protocol::DEFAULT_MAX_MESSAGE_SIZE),
            max_handshake_size: floodgate_proto::handshake::DEFAULT_MAX_HEAD_SIZE,
            read_chunk_size: 256 << 10,
            return_control_frames: false,
            auto_pong: true,
        }
    }
}

impl Options {
    pub(crate) fn protocol_config(&self) -> floodgate_proto::Config {
        floodgate_proto::Config {
            max_frame_size: self.max_frame_size,
            max_message_size: self.max_message_size,
            auto_pong: self.auto_pong,
        }
    }
}
