//! A small line editor for the interactive client: it prints lines that
//! arrive from another thread above the line being typed, and redraws
//! that line below them, so a message from the server never breaks what
//! the user is typing.
//!
//! Written by hand because the two well-kept crates fail at exactly this:
//! rustyline's external printer (17 and 18) loses input that arrives in
//! one burst (a paste, fast typing over SSH: only the first character is
//! handled until the next key press, rustyline issue #976), and reedline
//! waits for the terminal to answer a cursor-position query on every
//! prompt, which a pseudo-terminal in a test never does. What it does is
//! kept small: editing keys of readline's emacs mode, history (in memory
//! and in a file), and one event loop that waits on the terminal and on a
//! wake-up pipe with `poll`, so input bursts and printed lines are both
//! handled whatever their order.
//!
//! Keys: printable characters insert; Enter sends; Backspace, Delete,
//! Left, Right, Home, End, Ctrl-A, Ctrl-E, Ctrl-B, Ctrl-F, Ctrl-U (kill to
//! start), Ctrl-K (kill to end), Ctrl-W (kill word), Ctrl-L (redraw), Up
//! and Down (history); Ctrl-D on an empty line and Ctrl-C end input.
//!
//! Unix only (termios and poll); the interactive client needs a terminal.

use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::io::{self, BufRead, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

/// How many history lines are kept.
const HISTORY_LIMIT: usize = 1000;

/// What one call to [`Editor::read_line`] gives.
#[derive(Debug, PartialEq, Eq)]
pub enum Input {
    /// A line (without its end).
    Line(String),
    /// Ctrl-D on an empty line, or the end of the terminal's input.
    Eof,
    /// Ctrl-C.
    Interrupted,
}

/// Lines waiting to be printed, behind the one lock under which the
/// editor writes to the terminal: the editor (while it edits) and
/// [`LinePrinter::finish`] (at the end) never interleave, and once
/// finished the editor draws nothing more.
type Pending = Arc<Mutex<Screen>>;

struct Screen {
    lines: mpsc::Receiver<String>,
    /// The command is ending: the terminal is no longer the editor's.
    finished: bool,
}

/// Prints lines above the prompt from any thread.
#[derive(Clone)]
pub struct LinePrinter {
    lines: mpsc::Sender<String>,
    pending: Pending,
    wake: Arc<OwnedFd>,
}

impl LinePrinter {
    /// Prints `line` above the line being edited.
    ///
    /// # Errors
    ///
    /// The editor is gone.
    pub fn print(&self, line: String) -> io::Result<()> {
        self.lines
            .send(line)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the line editor ended"))?;
        // SAFETY: writes one byte from a live buffer to a pipe we own.
        let n = unsafe { libc::write(self.wake.as_raw_fd(), [1u8].as_ptr().cast(), 1) };
        if n < 0 {
            let e = io::Error::last_os_error();
            // A full pipe already holds a wake-up.
            if e.kind() != io::ErrorKind::WouldBlock {
                return Err(e);
            }
        }
        Ok(())
    }

    /// At the end: prints, on this thread, every line the editor has not
    /// drawn yet (it may be busy closing, or waiting for a key that will
    /// never come), and takes the terminal back from the editor.
    pub fn finish(&self) {
        let mut screen = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = io::stdout().lock();
        while let Ok(text) = screen.lines.try_recv() {
            let _ = write!(out, "\r\x1b[K{}\r\n", text.replace('\n', "\r\n"));
        }
        let _ = out.flush();
        screen.finished = true;
    }
}

/// The editor; lives on the thread that reads the terminal. Lines sent
/// by its [`LinePrinter`] between two calls of
/// [`read_line`](Editor::read_line) are drawn when the next one starts.
pub struct Editor {
    /// The terminal stays raw for the editor's whole life: switching back
    /// to cooked mode between lines would let the terminal eat keys typed
    /// ahead (a Ctrl-D would become its end-of-file).
    _raw: RawMode,
    prompt: String,
    pending: Pending,
    wake_read: OwnedFd,
    history: Vec<String>,
    history_file: Option<PathBuf>,
    reader: KeyReader,
    /// Keys read but not handled yet: what was typed after an Enter in
    /// the same burst belongs to the next line.
    queued: VecDeque<Key>,
}

/// A non-blocking, close-on-exec pipe (`pipe` and `fcntl` rather than
/// Linux's `pipe2`, so that macOS builds too).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe fills the two descriptors, which we then own.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both were just created and are owned by nobody else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    for fd in [read.as_raw_fd(), write.as_raw_fd()] {
        // SAFETY: fcntl on descriptors we own.
        let ok = unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) == 0
                && libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) == 0
        };
        if !ok {
            return Err(io::Error::last_os_error());
        }
    }
    Ok((read, write))
}

impl Editor {
    /// An editor with this prompt and history file, and its printer. The
    /// terminal is in raw mode from now until the editor is dropped.
    ///
    /// # Errors
    ///
    /// Stdin is not a terminal, or the wake-up pipe cannot be made.
    pub fn new(prompt: &str, history_file: Option<PathBuf>) -> io::Result<(Editor, LinePrinter)> {
        let raw = RawMode::enter()?;
        let (wake_read, wake_write) = pipe()?;
        let (tx, rx) = mpsc::channel();
        let mut history = Vec::new();
        if let Some(path) = &history_file {
            if let Ok(file) = std::fs::File::open(path) {
                history = io::BufReader::new(file)
                    .lines()
                    .map_while(Result::ok)
                    .filter(|l| !l.is_empty())
                    .collect();
                let excess = history.len().saturating_sub(HISTORY_LIMIT);
                history.drain(..excess);
            }
        }
        let pending = Arc::new(Mutex::new(Screen {
            lines: rx,
            finished: false,
        }));
        Ok((
            Editor {
                _raw: raw,
                prompt: prompt.to_owned(),
                pending: pending.clone(),
                wake_read,
                history,
                history_file,
                reader: KeyReader::default(),
                queued: VecDeque::new(),
            },
            LinePrinter {
                lines: tx,
                pending,
                wake: Arc::new(wake_write),
            },
        ))
    }

    /// Reads one line, printing what the printer sends meanwhile.
    ///
    /// # Errors
    ///
    /// The terminal cannot be read.
    pub fn read_line(&mut self) -> io::Result<Input> {
        let result = self.edit();
        let screen = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if !screen.finished {
            let mut out = io::stdout().lock();
            let _ = out.write_all(b"\r\n");
            let _ = out.flush();
        }
        drop(screen);
        if let Ok(Input::Line(line)) = &result {
            self.remember(line);
        }
        result
    }

    fn remember(&mut self, line: &str) {
        if line.trim().is_empty() || self.history.last().is_some_and(|l| l == line) {
            return;
        }
        self.history.push(line.to_owned());
        if self.history.len() > HISTORY_LIMIT {
            self.history.remove(0);
        }
        if let Some(path) = &self.history_file {
            if let Ok(mut file) = OpenOptions::new().create(true).append(true).open(path) {
                let _ = writeln!(file, "{line}");
            }
        }
    }

    fn edit(&mut self) -> io::Result<Input> {
        let mut line = Line::default();
        let mut browse = self.history.len(); // index into history; len = the new line
        let mut saved = String::new(); // the new line while browsing history
        self.redraw(&line)?;
        loop {
            if self
                .pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .finished
            {
                return Ok(Input::Eof);
            }
            // Keys typed ahead come first; then wait for more.
            let (stdin_ready, wake_ready) = if self.queued.is_empty() {
                wait(self.wake_read.as_raw_fd())?
            } else {
                (false, false)
            };
            if wake_ready {
                drain(self.wake_read.as_raw_fd());
                let screen = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                if screen.finished {
                    return Ok(Input::Eof);
                }
                let mut out = io::stdout().lock();
                while let Ok(text) = screen.lines.try_recv() {
                    out.write_all(b"\r\x1b[K")?;
                    out.write_all(text.replace('\n', "\r\n").as_bytes())?;
                    out.write_all(b"\r\n")?;
                }
                drop(out);
                drop(screen);
            }
            if stdin_ready {
                self.read_keys()?;
                if self.queued.is_empty() && self.reader.eof {
                    return Ok(Input::Eof);
                }
            }
            while let Some(key) = self.queued.pop_front() {
                match key {
                    Key::Enter => return Ok(Input::Line(line.text())),
                    Key::Interrupt => return Ok(Input::Interrupted),
                    Key::EofOrDelete if line.is_empty() => return Ok(Input::Eof),
                    Key::EofOrDelete | Key::Delete => line.delete(),
                    Key::Char(c) => line.insert(c),
                    Key::Backspace => line.backspace(),
                    Key::Left => line.left(),
                    Key::Right => line.right(),
                    Key::Home => line.cursor = 0,
                    Key::End => line.cursor = line.chars.len(),
                    Key::KillStart => line.kill_start(),
                    Key::KillEnd => line.chars.truncate(line.cursor),
                    Key::KillWord => line.kill_word(),
                    Key::Redraw => {}
                    Key::Up if browse > 0 => {
                        if browse == self.history.len() {
                            saved = line.text();
                        }
                        browse -= 1;
                        line = Line::from(self.history[browse].as_str());
                    }
                    Key::Down if browse < self.history.len() => {
                        browse += 1;
                        line = if browse == self.history.len() {
                            Line::from(saved.as_str())
                        } else {
                            Line::from(self.history[browse].as_str())
                        };
                    }
                    Key::Up | Key::Down | Key::Ignored => {}
                }
            }
            self.redraw(&line)?;
        }
    }

    /// Reads what the terminal has and queues its keys.
    fn read_keys(&mut self) -> io::Result<()> {
        let mut buf = [0u8; 4096];
        // SAFETY: reads into a live buffer of the given length.
        let n = unsafe { libc::read(libc::STDIN_FILENO, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if matches!(
                e.kind(),
                io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
            ) {
                return Ok(());
            }
            return Err(e);
        }
        if n == 0 {
            self.reader.eof = true;
        }
        self.queued.extend(self.reader.feed(&buf[..n as usize]));
        Ok(())
    }

    /// Draws the prompt and the line, scrolled so that the cursor shows
    /// on one terminal row (unless the terminal was taken back).
    fn redraw(&self, line: &Line) -> io::Result<()> {
        let screen = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if screen.finished {
            return Ok(());
        }
        let room = terminal_columns()
            .saturating_sub(self.prompt.chars().count() + 1)
            .max(8);
        let start = line.cursor.saturating_sub(room.saturating_sub(1));
        let end = (start + room).min(line.chars.len());
        let shown: String = line.chars[start..end].iter().collect();
        let back = end - line.cursor;
        let mut out = io::stdout().lock();
        write!(out, "\r\x1b[K{}{shown}", self.prompt)?;
        if back > 0 {
            write!(out, "\x1b[{back}D")?;
        }
        out.flush()?;
        drop(screen);
        Ok(())
    }
}

/// The line being edited.
#[derive(Debug, Default)]
struct Line {
    chars: Vec<char>,
    cursor: usize,
}

impl From<&str> for Line {
    fn from(text: &str) -> Line {
        let chars: Vec<char> = text.chars().collect();
        Line {
            cursor: chars.len(),
            chars,
        }
    }
}

impl Line {
    fn text(&self) -> String {
        self.chars.iter().collect()
    }
    fn is_empty(&self) -> bool {
        self.chars.is_empty()
    }
    fn insert(&mut self, c: char) {
        self.chars.insert(self.cursor, c);
        self.cursor += 1;
    }
    fn backspace(&mut self) {
        if self.cursor > 0 {
            self.cursor -= 1;
            self.chars.remove(self.cursor);
        }
    }
    fn delete(&mut self) {
        if self.cursor < self.chars.len() {
            self.chars.remove(self.cursor);
        }
    }
    fn left(&mut self) {
        self.cursor = self.cursor.saturating_sub(1);
    }
    fn right(&mut self) {
        self.cursor = (self.cursor + 1).min(self.chars.len());
    }
    fn kill_start(&mut self) {
        self.chars.drain(..self.cursor);
        self.cursor = 0;
    }
    fn kill_word(&mut self) {
        let mut start = self.cursor;
        while start > 0 && self.chars[start - 1] == ' ' {
            start -= 1;
        }
        while start > 0 && self.chars[start - 1] != ' ' {
            start -= 1;
        }
        self.chars.drain(start..self.cursor);
        self.cursor = start;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Char(char),
    Enter,
    Backspace,
    Delete,
    EofOrDelete,
    Interrupt,
    Left,
    Right,
    Up,
    Down,
    Home,
    End,
    KillStart,
    KillEnd,
    KillWord,
    Redraw,
    Ignored,
}

/// Turns bytes into keys; an escape sequence or a UTF-8 character split
/// across reads is kept until its end arrives.
#[derive(Debug, Default)]
struct KeyReader {
    pending: Vec<u8>,
    /// The terminal's input ended.
    eof: bool,
}

impl KeyReader {
    fn feed(&mut self, bytes: &[u8]) -> Vec<Key> {
        self.pending.extend_from_slice(bytes);
        let mut keys = Vec::new();
        let mut at = 0;
        while at < self.pending.len() {
            match parse_key(&self.pending[at..]) {
                Some((key, used)) => {
                    keys.push(key);
                    at += used;
                }
                None => break, // incomplete: wait for more
            }
        }
        self.pending.drain(..at);
        keys
    }
}

/// One key from the start of `b`, and the bytes it used; `None` when the
/// bytes end in the middle of a key.
fn parse_key(b: &[u8]) -> Option<(Key, usize)> {
    let key = match b[0] {
        b'\r' | b'\n' => Key::Enter,
        0x7f | 0x08 => Key::Backspace,
        0x01 => Key::Home,
        0x02 => Key::Left,
        0x03 => Key::Interrupt,
        0x04 => Key::EofOrDelete,
        0x05 => Key::End,
        0x06 => Key::Right,
        0x0b => Key::KillEnd,
        0x0c => Key::Redraw,
        0x0e => Key::Down,
        0x10 => Key::Up,
        0x15 => Key::KillStart,
        0x17 => Key::KillWord,
        0x1b => return parse_escape(b),
        c if c < 0x20 => Key::Ignored,
        _ => {
            let len = utf8_len(b[0]);
            if b.len() < len {
                return None;
            }
            return Some(match std::str::from_utf8(&b[..len]) {
                Ok(s) => (Key::Char(s.chars().next().unwrap_or(' ')), len),
                Err(_) => (Key::Ignored, 1),
            });
        }
    };
    Some((key, 1))
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf7 => 4,
        _ => 1,
    }
}

/// `ESC [ ... final` and `ESC O x`: arrows, Home, End, Delete; anything
/// else is read to its end and ignored.
fn parse_escape(b: &[u8]) -> Option<(Key, usize)> {
    match b.get(1) {
        None => None,
        Some(b'[') => {
            let end = b[2..].iter().position(|c| (0x40..=0x7e).contains(c))? + 2;
            let key = match (&b[2..end], b[end]) {
                (_, b'A') => Key::Up,
                (_, b'B') => Key::Down,
                (_, b'C') => Key::Right,
                (_, b'D') => Key::Left,
                (_, b'H') => Key::Home,
                (_, b'F') => Key::End,
                (b"1" | b"7", b'~') => Key::Home,
                (b"4" | b"8", b'~') => Key::End,
                (b"3", b'~') => Key::Delete,
                _ => Key::Ignored,
            };
            Some((key, end + 1))
        }
        Some(b'O') => {
            let key = match b.get(2)? {
                b'H' => Key::Home,
                b'F' => Key::End,
                b'A' => Key::Up,
                b'B' => Key::Down,
                b'C' => Key::Right,
                b'D' => Key::Left,
                _ => Key::Ignored,
            };
            Some((key, 3))
        }
        Some(_) => Some((Key::Ignored, 2)), // Alt-key: not bound
    }
}

/// Waits until stdin or the wake-up pipe is readable.
fn wait(wake: i32) -> io::Result<(bool, bool)> {
    let mut fds = [
        libc::pollfd {
            fd: libc::STDIN_FILENO,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: wake,
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    loop {
        // SAFETY: polls two live pollfd structs.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if n >= 0 {
            let ready =
                |f: &libc::pollfd| f.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0;
            return Ok((ready(&fds[0]), ready(&fds[1])));
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn drain(fd: i32) {
    let mut buf = [0u8; 256];
    // SAFETY: reads into a live buffer; the pipe is non-blocking.
    while unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
}

fn terminal_columns() -> usize {
    // SAFETY: TIOCGWINSZ fills the winsize struct we own.
    unsafe {
        let mut size: libc::winsize = std::mem::zeroed();
        if libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) == 0 && size.ws_col > 0 {
            usize::from(size.ws_col)
        } else {
            80
        }
    }
}

/// The terminal in raw mode (no echo, no line buffering, no signals from
/// Ctrl-C) until dropped; output processing stays on.
struct RawMode {
    saved: libc::termios,
}

impl RawMode {
    fn enter() -> io::Result<RawMode> {
        // SAFETY: tcgetattr/tcsetattr on stdin with termios structs we own.
        unsafe {
            let mut saved: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(libc::STDIN_FILENO, &mut saved) != 0 {
                return Err(io::Error::last_os_error());
            }
            let mut raw = saved;
            raw.c_iflag &= !(libc::BRKINT | libc::ICRNL | libc::INPCK | libc::ISTRIP | libc::IXON);
            raw.c_cflag |= libc::CS8;
            raw.c_lflag &= !(libc::ECHO | libc::ICANON | libc::IEXTEN | libc::ISIG);
            raw.c_cc[libc::VMIN] = 1;
            raw.c_cc[libc::VTIME] = 0;
            if libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &raw) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(RawMode { saved })
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restores the settings read in `enter`.
        unsafe {
            libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &self.saved);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_bytes_gives_every_key_in_order() {
        let mut reader = KeyReader::default();
        let keys = reader.feed("hé\x1b[D!\r".as_bytes());
        assert_eq!(
            keys,
            [
                Key::Char('h'),
                Key::Char('é'),
                Key::Left,
                Key::Char('!'),
                Key::Enter
            ]
        );
    }

    #[test]
    fn a_key_split_across_reads_waits_for_its_end() {
        let mut reader = KeyReader::default();
        let e_acute = "é".as_bytes();
        assert_eq!(reader.feed(&e_acute[..1]), []);
        assert_eq!(reader.feed(&e_acute[1..]), [Key::Char('é')]);
        assert_eq!(reader.feed(b"\x1b["), []);
        assert_eq!(reader.feed(b"3~"), [Key::Delete]);
    }

    #[test]
    fn editing_keys_change_the_line_as_readline_does() {
        let mut line = Line::from("hello world");
        line.kill_word();
        assert_eq!(line.text(), "hello ");
        line.left();
        line.left();
        line.insert('X');
        assert_eq!(line.text(), "hellXo ");
        line.kill_start();
        assert_eq!((line.text().as_str(), line.cursor), ("o ", 0));
        line.delete();
        line.backspace(); // at the start: nothing
        assert_eq!(line.text(), " ");
    }
}
