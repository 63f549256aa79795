//! A `flowhost` process whose stderr is read line by line on a thread, for tests that wait
//! for what it logs (a `serve` that must reload, notify or stop).

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::Receiver;

use super::PATIENCE;

pub struct Flowhost {
    pub child: Child,
    lines: Receiver<String>,
    /// Every stderr line read so far.
    pub seen: Vec<String>,
}

impl Flowhost {
    /// `flowhost --config CONFIG ARGS` with `envs` set (and `RUST_LOG` unset).
    pub fn spawn(config: &Path, args: &[&str], envs: &[(&str, &str)]) -> Flowhost {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_flowhost"));
        cmd.arg("--config")
            .arg(config)
            .args(args)
            .env_remove("RUST_LOG")
            .stderr(Stdio::piped());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Flowhost {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits (up to [`PATIENCE`]) for a new line that `want` accepts and returns it; panics
    /// with `what` and everything read so far otherwise.
    pub fn wait_line(&mut self, what: &str, want: impl Fn(&str) -> bool) -> String {
        let started = std::time::Instant::now();
        loop {
            let left = PATIENCE.saturating_sub(started.elapsed());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if want(&line) {
                        return line;
                    }
                }
                Err(e) => panic!(
                    "no line with {what} ({e}); stderr so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    pub fn signal(&self, sig: i32) {
        let pid = i32::try_from(self.child.id()).unwrap();
        // SAFETY: sending a signal to our own child process.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
    }

    /// Waits for the process to exit and returns its status and every stderr line.
    pub fn finish(mut self) -> (ExitStatus, Vec<String>) {
        let status = self.child.wait().unwrap();
        // The reader thread ends at EOF; take what is left.
        while let Ok(line) = self.lines.recv_timeout(PATIENCE) {
            self.seen.push(line);
        }
        (status, self.seen)
    }
}
