//! The transports a WebSocket runs over.
//!
//! [`Transport`] is what [`crate::WebSocket`] needs of a byte stream beyond
//! `Read + Write`: timeouts, shutdown, and a read into the spare capacity
//! of the receive buffer. [`Stream`] is the transport `connect` returns:
//! plain TCP, TLS ([`crate::tls::TlsStream`]) or a Unix socket.

use bytes::BytesMut;
use std::io::{self, Read, Write};
use std::mem::MaybeUninit;
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

/// A byte stream a WebSocket can run over.
///
/// Implemented for [`TcpStream`], [`Stream`] and (on Unix)
/// `std::os::unix::net::UnixStream`. Implement it for your own stream to run
/// a WebSocket over it with [`crate::Client::connect_over`].
pub trait Transport: Read + Write {
    /// Reads at most `max` bytes into the spare capacity of `buf` (at
    /// least one byte of capacity is available) and extends its length by
    /// the count read. Returns 0 at end of stream.
    ///
    /// The default zero-fills the spare capacity and calls
    /// [`Read::read`]; sockets override it to receive straight into the
    /// uninitialised memory, which saves a memset per read.
    fn read_into(&mut self, buf: &mut BytesMut, max: usize) -> io::Result<usize> {
        let start = buf.len();
        let spare = (buf.capacity() - start).min(max.max(1));
        buf.resize(start + spare, 0);
        let result = self.read(&mut buf[start..]);
        let n = *result.as_ref().unwrap_or(&0);
        buf.truncate(start + n);
        result
    }

    /// Reads what has already arrived, never waiting: like
    /// [`read_into`](Self::read_into), but `Err(WouldBlock)` when nothing
    /// is available right now.
    ///
    /// A buffered connection's reader uses it to learn that the socket is
    /// drained, the moment to wake a waiting consumer: while more data is
    /// already there, it keeps decoding and wakes the consumer once per
    /// run of reads rather than once per read. The default returns
    /// `WouldBlock` (cannot tell), which only costs those extra wake-ups.
    fn read_available_into(&mut self, buf: &mut BytesMut, max: usize) -> io::Result<usize> {
        let _ = (buf, max);
        Err(io::ErrorKind::WouldBlock.into())
    }

    /// Sets the read timeout (`None`: block).
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;

    /// The read timeout.
    fn read_timeout(&self) -> io::Result<Option<Duration>>;

    /// Sets the write timeout (`None`: block).
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;

    /// The write timeout.
    fn write_timeout(&self) -> io::Result<Option<Duration>>;

    /// Shuts down both directions (the peer sees end of stream).
    fn shutdown(&self) -> io::Result<()>;

    /// The socket underneath, for socket options (`getsockopt`,
    /// `setsockopt`) and readiness only: reading or writing it would take
    /// bytes from under the connection. `None` (the default) when the
    /// transport is not a socket of its own.
    #[cfg(unix)]
    fn socket_fd(&self) -> Option<std::os::fd::RawFd> {
        None
    }

    /// A second handle to the same connection, so that a buffered
    /// connection's reader thread can read while other threads write.
    /// Sockets implement it (`dup` of the descriptor); the default says the
    /// transport cannot be split.
    fn try_clone(&self) -> io::Result<Self>
    where
        Self: Sized,
    {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this transport cannot be shared between a reader thread and writers; \
             implement Transport::try_clone for it to use a buffered connection",
        ))
    }
}

/// Receives into the spare capacity of `buf` through `socket2`, whose
/// `recv` takes uninitialised memory safely.
#[cfg(unix)]
fn recv_uninit<F: std::os::fd::AsFd>(
    socket: &F,
    buf: &mut BytesMut,
    max: usize,
) -> io::Result<usize> {
    recv_uninit_with(socket, buf, max, 0)
}

/// [`recv_uninit`] with `recv(2)` flags (`MSG_DONTWAIT` for
/// [`Transport::read_available_into`]).
#[cfg(unix)]
fn recv_uninit_with<F: std::os::fd::AsFd>(
    socket: &F,
    buf: &mut BytesMut,
    max: usize,
    flags: libc::c_int,
) -> io::Result<usize> {
    let spare: &mut [MaybeUninit<u8>] = buf.spare_capacity_mut();
    let limit = spare.len().min(max.max(1));
    let spare = &mut spare[..limit];
    let n = loop {
        match socket2::SockRef::from(socket).recv_with_flags(spare, flags) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => break other?,
        }
    };
    // SAFETY: `recv` initialised the first `n` bytes of the spare capacity.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

impl Transport for TcpStream {
    #[cfg(unix)]
    fn read_into(&mut self, buf: &mut BytesMut, max: usize) -> io::Result<usize> {
        recv_uninit(self, buf, max)
    }
    #[cfg(unix)]
    fn read_available_into(&mut self, buf: &mut BytesMut, max: usize) -> io::Result<usize> {
        recv_uninit_with(self, buf, max, libc::MSG_DONTWAIT)
    }
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }
    fn read_timeout(&self) -> io::Result<Option<Duration>> {
        TcpStream::read_timeout(self)
    }
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_write_timeout(self, timeout)
    }
    fn write_timeout(&self) -> io::Result<Option<Duration>> {
        TcpStream::write_timeout(self)
    }
    fn shutdown(&self) -> io::Result<()> {
        TcpStream::shutdown(self, Shutdown::Both)
    }
    #[cfg(unix)]
    fn socket_fd(&self) -> Option<std::os::fd::RawFd> {
        Some(std::os::fd::AsRawFd::as_raw_fd(self))
    }
    fn try_clone(&self) -> io::Result<Self> {
        TcpStream::try_clone(self)
    }
}

#[cfg(unix)]
impl Transport for std::os::unix::net::UnixStream {
    fn read_into(&mut self, buf: &mut BytesMut, max: usize) -> io::Result<usize> {
        recv_uninit(self, buf, max)
    }
    fn read_available_into(&mut self, buf: &mut BytesMut, max: usize) -> io::Result<usize> {
        recv_uninit_with(self, buf, max, libc::MSG_DONTWAIT)
    }
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        std::os::unix::net::UnixStream::set_read_timeout(self, timeout)
    }
    fn read_timeout(&self) -> io::Result<Option<Duration>> {
        std::os::unix::net::UnixStream::read_timeout(self)
    }
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        std::os::unix::net::UnixStream::set_write_timeout(self, timeout)
    }
    fn write_timeout(&self) -> io::Result<Option<Duration>> {
        std::os::unix::net::UnixStream::write_timeout(self)
    }
    fn shutdown(&self) -> io::Result<()> {
        std::os::unix::net::UnixStream::shutdown(self, Shutdown::Both)
    }
    fn socket_fd(&self) -> Option<std::os::fd::RawFd> {
        Some(std::os::fd::AsRawFd::as_raw_fd(self))
    }
    fn try_clone(&self) -> io::Result<Self> {
        std::os::unix::net::UnixStream::try_clone(self)
    }
}

/// The transport of a connection made by [`crate::connect`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Stream {
    /// Plain TCP (`ws://`).
    Tcp(TcpStream),
    /// TLS over TCP (`wss://`).
    Tls(crate::dial::tls::TlsStream),
    /// A Unix domain socket ([`crate::ClientBuilder::unix_socket`]).
    #[cfg(unix)]
    Unix(std::os::unix::net::UnixStream),
}

/// Calls `$body` with the inner transport of any variant.
macro_rules! each {
    ($stream:expr, $s:ident => $body:expr) => {
        match $stream {
            Stream::Tcp($s) => $body,
            Stream::Tls($s) => $body,
            #[cfg(unix)]
            Stream::Unix($s) => $body,
        }
    };
}

impl Stream {
    /// The TCP socket underneath, for socket options (`None` on a Unix
    /// socket).
    pub fn tcp(&self) -> Option<&TcpStream> {
        match self {
            Stream::Tcp(s) => Some(s),
            Stream::Tls(s) => Some(s.tcp()),
            #[cfg(unix)]
            Stream::Unix(_) => None,
        }
    }

    /// The TLS connection, on `wss://`.
    pub fn tls(&self) -> Option<&crate::dial::tls::TlsStream> {
        match self {
            Stream::Tls(s) => Some(s),
            _ => None,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        each!(self, s => s.read(buf))
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        each!(self, s => s.write(buf))
    }
    fn flush(&mut self) -> io::Result<()> {
        each!(self, s => s.flush())
    }
}

impl Transport for Stream {
    fn read_into(&mut self, buf: &mut BytesMut, max: usize) -> io::Result<usize> {
        each!(self, s => s.read_into(buf, max))
    }
    fn read_available_into(&mut self, buf: &mut BytesMut, max: usize) -> io::Result<usize> {
        each!(self, s => s.read_available_into(buf, max))
    }
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        each!(self, s => Transport::set_read_timeout(s, timeout))
    }
    fn read_timeout(&self) -> io::Result<Option<Duration>> {
        each!(self, s => Transport::read_timeout(s))
    }
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        each!(self, s => Transport::set_write_timeout(s, timeout))
    }
    fn write_timeout(&self) -> io::Result<Option<Duration>> {
        each!(self, s => Transport::write_timeout(s))
    }
    fn shutdown(&self) -> io::Result<()> {
        each!(self, s => Transport::shutdown(s))
    }
    #[cfg(unix)]
    fn socket_fd(&self) -> Option<std::os::fd::RawFd> {
        each!(self, s => Transport::socket_fd(s))
    }
    fn try_clone(&self) -> io::Result<Self> {
        Ok(match self {
            Stream::Tcp(s) => Stream::Tcp(s.try_clone()?),
            Stream::Tls(s) => Stream::Tls(Transport::try_clone(s)?),
            #[cfg(unix)]
            Stream::Unix(s) => Stream::Unix(s.try_clone()?),
        })
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn read_available_into_returns_what_has_arrived_and_never_waits() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        // A blocking socket with no read timeout: a plain read would wait
        // forever here.
        client.set_read_timeout(None).unwrap();
        let mut buf = BytesMut::with_capacity(64);
        let err = client.read_available_into(&mut buf, 64).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        assert!(buf.is_empty());

        server.write_all(b"hello").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let n = loop {
            match client.read_available_into(&mut buf, 64) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    assert!(std::time::Instant::now() < deadline, "data never arrived");
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(n, 5);
        assert_eq!(&buf[..], b"hello");
        // The socket stays blocking for ordinary reads.
        drop(server);
        assert_eq!(client.read_into(&mut buf, 64).unwrap(), 0);
    }
}
