//! The byte streams a server connection runs over.
//!
//! [`Transport`] is what [`WebSocket`](crate::WebSocket) needs of a stream
//! beyond `Read + Write`: timeouts and shutdown. [`Stream`] is what the
//! [`Server`](crate::Server) hands its handlers: TCP, or TLS over TCP.
//! Other streams (a Unix socket, a test's own TLS wrapper) go through
//! [`accept`](crate::accept).

use crate::tls::TlsStream;
use bytes::BytesMut;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

/// A byte stream a server connection can run over.
///
/// Implemented for [`TcpStream`], [`Stream`] and (on Unix)
/// `std::os::unix::net::UnixStream`; implement it for your own stream to
/// [`accept`](crate::accept) a WebSocket over it.
pub trait Transport: Read + Write {
    /// Reads at most `max` bytes into the spare capacity of `buf` (it has
    /// at least one byte of it) and extends `buf` by the count read.
    /// Returns 0 at end of stream.
    ///
    /// The default zero-fills that capacity and calls [`Read::read`];
    /// sockets receive into it directly.
    fn read_into(&mut self, buf: &mut BytesMut, max: usize) -> io::Result<usize> {
        let start = buf.len();
        let spare = (buf.capacity() - start).min(max.max(1));
        buf.resize(start + spare, 0);
        let result = self.read(&mut buf[start..]);
        buf.truncate(start + *result.as_ref().unwrap_or(&0));
        result
    }

    /// Sets the read timeout (`None`: block).
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;

    /// The read timeout.
    fn read_timeout(&self) -> io::Result<Option<Duration>>;

    /// Sets the write timeout (`None`: block).
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;

    /// The write timeout.
    fn write_timeout(&self) -> io::Result<Option<Duration>>;

    /// Shuts down both directions (the client sees end of stream).
    fn shutdown(&self) -> io::Result<()>;
}

/// Receives into the spare capacity of `buf` without zero-filling it
/// first: a read of the default 256 KiB chunk that brings a 20-byte
/// message would otherwise clear 256 KiB for nothing.
#[cfg(unix)]
fn recv_uninit<F: std::os::fd::AsFd>(
    socket: &F,
    buf: &mut BytesMut,
    max: usize,
) -> io::Result<usize> {
    let spare = buf.spare_capacity_mut();
    let limit = spare.len().min(max.max(1));
    let n = loop {
        match socket2::SockRef::from(socket).recv(&mut spare[..limit]) {
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
}

#[cfg(unix)]
impl Transport for std::os::unix::net::UnixStream {
    fn read_into(&mut self, buf: &mut BytesMut, max: usize) -> io::Result<usize> {
        recv_uninit(self, buf, max)
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
}

/// A connection accepted by a [`Server`](crate::Server): plain TCP, or
/// TLS over TCP for a server bound with
/// [`bind_tls`](crate::Server::bind_tls).
#[derive(Debug)]
#[non_exhaustive]
pub enum Stream {
    /// `ws://`.
    Tcp(TcpStream),
    /// `wss://`.
    Tls(TlsStream),
}

impl Stream {
    /// The TCP socket underneath (for its addresses and socket options).
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Tcp(tcp) => tcp,
            Stream::Tls(tls) => tls.tcp(),
        }
    }

    /// A second handle to the same connection, for a reader thread beside
    /// a writer (the [feed](crate::feed) runs one).
    pub(crate) fn try_clone(&self) -> io::Result<Stream> {
        Ok(match self {
            Stream::Tcp(tcp) => Stream::Tcp(tcp.try_clone()?),
            Stream::Tls(tls) => Stream::Tls(tls.try_clone()?),
        })
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(tcp) => tcp.read(buf),
            Stream::Tls(tls) => tls.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(tcp) => tcp.write(buf),
            Stream::Tls(tls) => tls.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(tcp) => tcp.flush(),
            Stream::Tls(tls) => tls.flush(),
        }
    }
}

impl Transport for Stream {
    fn read_into(&mut self, buf: &mut BytesMut, max: usize) -> io::Result<usize> {
        match self {
            Stream::Tcp(tcp) => tcp.read_into(buf, max),
            Stream::Tls(tls) => tls.read_into(buf, max),
        }
    }
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.tcp().set_read_timeout(timeout)
    }
    fn read_timeout(&self) -> io::Result<Option<Duration>> {
        self.tcp().read_timeout()
    }
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.tcp().set_write_timeout(timeout)
    }
    fn write_timeout(&self) -> io::Result<Option<Duration>> {
        self.tcp().write_timeout()
    }
    fn shutdown(&self) -> io::Result<()> {
        self.tcp().shutdown(Shutdown::Both)
    }
}
