//! [`ReadySignal`]: a file descriptor that is readable exactly when a
//! receive would not block, for `select`, `poll`, selectors and event
//! loops (websocket-client's `fileno()` and `ws.sock`).
//!
//! Why not the socket itself: the connection's reader thread reads the
//! socket, so the socket is readable when *bytes* arrive (often a partial
//! frame, a ping it answers itself), and not readable while whole
//! messages wait in the buffer. A program that `select`s on it would miss
//! messages or spin. Instead, one end of a socket pair is made readable
//! (one byte written) when the buffer has a message or the connection has
//! ended, and drained when a receive leaves the buffer empty.
//!
//! The level is kept in step with the buffer by [`ReadySignal::sync`],
//! called after every take: it drains the byte, then asks the buffer
//! ([`floodgate::buffer::Buffer::poll_ready`]) and lights it again if a
//! message is there; otherwise the buffer keeps the signal's waker and
//! wakes it (lighting the byte) when a message arrives or the connection
//! ends. Syncs are serialised by the `lit` lock, so the last sync after
//! the last take decides the level even with several consumer threads.
//! The pings and pongs recorded for `recv_data(control_frame=True)` do not
//! make it readable: the reader has answered them already, and a program
//! that never asks for them would otherwise spin on a readable descriptor.

use floodgate::buffer::Buffer;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Wake, Waker};

/// See the module docs.
pub(crate) struct ReadySignal {
    inner: Arc<Inner>,
}

struct Inner {
    /// The end the application waits on.
    read: UnixStream,
    write: UnixStream,
    /// Whether the byte is in the pair (readable); held across a sync.
    lit: Mutex<bool>,
    /// Weak: the buffer keeps this (as a waker) while it waits, and must
    /// not be kept alive by it.
    buffer: Weak<Buffer>,
}

impl ReadySignal {
    /// A new signal, in step with `buffer`.
    pub(crate) fn new(buffer: &Arc<Buffer>) -> io::Result<ReadySignal> {
        // std's socket pair is close-on-exec; non-blocking so that neither
        // side can ever wait on it (the byte is written only when the pair
        // is empty, and read only when it holds one).
        let (read, write) = UnixStream::pair()?;
        read.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        let inner = Arc::new(Inner {
            read,
            write,
            lit: Mutex::new(false),
            buffer: Arc::downgrade(buffer),
        });
        inner.sync();
        Ok(ReadySignal { inner })
    }

    /// The descriptor to wait on.
    pub(crate) fn fd(&self) -> RawFd {
        self.inner.read.as_raw_fd()
    }

    /// Sets the level from the buffer; called after every take.
    pub(crate) fn sync(&self) {
        self.inner.sync();
    }
}

impl Inner {
    /// Readable if a receive would return at once; else dark, with this
    /// left with the buffer as its waker. A wake-up syncs again rather
    /// than lighting blindly: a message taken between the buffer's
    /// decision to wake and the wake itself must not leave the level lit
    /// over an empty buffer.
    fn sync(self: &Arc<Self>) {
        let mut lit = self.lit.lock().unwrap_or_else(|e| e.into_inner());
        if *lit {
            let mut byte = [0u8; 8];
            // Non-blocking: reads the one byte written.
            while matches!((&self.read).read(&mut byte), Ok(n) if n > 0) {}
            *lit = false;
        }
        let ready = match self.buffer.upgrade() {
            Some(buffer) => buffer
                .poll_ready(&mut Context::from_waker(&Waker::from(self.clone())))
                .is_ready(),
            // The connection is gone: a receive would not wait.
            None => true,
        };
        if ready {
            // One byte into an empty pair cannot block or fail short; if
            // it failed anyway (never seen), the level stays dark and the
            // next sync tries again.
            *lit = (&self.write).write(&[1]).is_ok_and(|n| n == 1);
        }
    }
}

impl Wake for Inner {
    fn wake(self: Arc<Self>) {
        self.sync();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.sync();
    }
}
