//! A `flowhost` process whose stderr is read line by line on a thread, for tests that wait
//! for what it logs (a `serve` that must reload, notify or stop). Dropped while it still
//! runs (a test that failed), it is killed: no test leaves a `serve` behind.

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
        (status, std::mem::take(&mut self.seen))
    }

    /// SIGTERM, then [`Flowhost::finish`]; panics (after killing it) when it has not exited
    /// within [`PATIENCE`].
    pub fn stop(mut self) -> (ExitStatus, Vec<String>) {
        self.signal(libc::SIGTERM);
        let started = std::time::Instant::now();
        while self.child.try_wait().unwrap().is_none() {
            if started.elapsed() > PATIENCE {
                let _ = self.child.kill();
                panic!(
                    "flowhost did not stop on SIGTERM:\n{}",
                    self.seen.join("\n")
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        self.finish()
    }

    /// Waits for `serve`'s "listening on http://ADDR" line and returns `http://ADDR`.
    pub fn listening(&mut self) -> String {
        let line = self.wait_line("the listener's address", |l| {
            l.contains("listening on http://")
        });
        let start = line.find("http://").unwrap_or(0);
        line[start..]
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string()
    }
}

impl Drop for Flowhost {
    fn drop(&mut self) {
        // Harmless once it has exited (`finish`): the status is kept.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
