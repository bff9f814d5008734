//! Puts the terminal back the way it was.
//!
//! The line editor keeps the terminal in raw mode while it waits for a
//! line. When the connection ends on its own (the server closed) the
//! editor is still waiting, and nothing can make it return; the command
//! then restores the terminal settings saved at the start and exits, so
//! that the shell does not inherit a raw terminal.

use std::sync::Mutex;

static SAVED: Mutex<Option<libc::termios>> = Mutex::new(None);

/// Saves stdin's terminal settings.
pub fn save() {
    // SAFETY: tcgetattr only writes the termios struct we own; fd 0 is
    // stdin, checked to be a terminal by the caller.
    unsafe {
        let mut settings: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(libc::STDIN_FILENO, &mut settings) == 0 {
            *SAVED.lock().unwrap_or_else(|e| e.into_inner()) = Some(settings);
        }
    }
}

/// Restores what [`save`] saved.
pub fn restore() {
    if let Some(settings) = *SAVED.lock().unwrap_or_else(|e| e.into_inner()) {
        // SAFETY: tcsetattr reads the termios struct saved above.
        unsafe {
            libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &settings);
        }
    }
}
