//! `roach demo` as a person runs it: the built binary starting real node processes on
//! 127.0.0.1, driven through its shell's piped stdin, and stopped by the end of that input or
//! by SIGINT. After every run the temporary directory it printed is gone, no `roach start`
//! process naming that directory is left, and no replication password was printed.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const ROACH: &str = env!("CARGO_BIN_EXE_roach");

/// How long a whole demo may take to start, replicate and stop on a busy 2-core machine.
const DEMO_WAIT: Duration = Duration::from_secs(300);
/// How long a demo may take to stop after its input ended or a signal.
const STOP_WAIT: Duration = Duration::from_secs(60);
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Each demo runs up to six nodes: one demo at a time on a small machine.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running `roach demo` with its stdout and stderr collected by two threads; on drop (a
/// failed test) it is sent SIGINT so it cleans up, then killed if it does not exit.
struct RunningDemo {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout_lines: Receiver<String>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

impl RunningDemo {
    fn must_spawn(args: &[&str]) -> RunningDemo {
        let mut child = Command::new(ROACH)
            .arg("demo")
            .args(args)
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn roach demo");
        let stdin = child.stdin.take();
        let stdout_pipe = child.stdout.take().expect("stdout is piped");
        let mut stderr_pipe = child.stderr.take().expect("stderr is piped");
        let stdout: Arc<Mutex<String>> = Arc::default();
        let stderr: Arc<Mutex<String>> = Arc::default();
        let (lines_tx, stdout_lines) = channel();
        let collected = Arc::clone(&stdout);
        let stdout_reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout_pipe).lines() {
                let Ok(line) = line else { break };
                let mut all = collected.lock().expect("stdout buffer");
                all.push_str(&line);
                all.push('\n');
                // The test may have stopped listening; the text is kept above anyway.
                let _ = lines_tx.send(line);
            }
        });
        let collected = Arc::clone(&stderr);
        let stderr_reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let text = String::from_utf8_lossy(&buf[..n]);
                collected.lock().expect("stderr buffer").push_str(&text);
            }
        });
        RunningDemo {
            child,
            stdin,
            stdout_lines,
            stdout,
            stderr,
            readers: vec![stdout_reader, stderr_reader],
        }
    }

    /// Writes `text` to the demo's stdin and closes it.
    fn must_send_and_close(&mut self, text: &str) {
        let mut stdin = self.stdin.take().expect("stdin still open");
        stdin.write_all(text.as_bytes()).expect("write stdin");
    }

    /// Runs a demo with `args` and `input` on stdin to its end; it must exit 0. Returns
    /// (stdout, stderr).
    fn must_succeed_with_input(args: &[&str], input: &str) -> (String, String) {
        let mut demo = RunningDemo::must_spawn(args);
        demo.must_send_and_close(input);
        let status = demo.must_exit(DEMO_WAIT);
        let (stdout, stderr) = demo.output();
        assert!(
            status.success(),
            "{status}\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
        (stdout, stderr)
    }

    /// What the demo printed so far: (stdout, stderr).
    fn output(&self) -> (String, String) {
        (
            self.stdout.lock().expect("stdout buffer").clone(),
            self.stderr.lock().expect("stderr buffer").clone(),
        )
    }

    /// Waits for a stdout line starting with `prefix`; returns the rest of it.
    fn must_see_line(&self, prefix: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout_lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return rest.to_string();
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    let (out, err) = self.output();
                    panic!("no line {prefix:?} within {within:?}\nstdout:\n{out}\nstderr:\n{err}");
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let (out, err) = self.output();
                    panic!(
                        "the demo ended before printing {prefix:?}\nstdout:\n{out}\nstderr:\n{err}"
                    );
                }
            }
        }
    }

    /// Waits for the demo to exit and for its output to be read to the end.
    fn must_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() > deadline {
                let (out, err) = self.output();
                panic!("the demo did not exit within {within:?}\nstdout:\n{out}\nstderr:\n{err}");
            }
            std::thread::sleep(POLL_INTERVAL);
        };
        for reader in self.readers.drain(..) {
            reader.join().expect("output reader");
        }
        status
    }
}

impl Drop for RunningDemo {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            sigint(self.child.id());
            let deadline = Instant::now() + STOP_WAIT;
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(POLL_INTERVAL);
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `kill -INT pid`.
fn sigint(pid: u32) {
    let status = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -INT {pid}: {status}");
}

/// The directory named on the demo's `temporary directory: ` line.
fn must_temp_dir(stdout: &str) -> PathBuf {
    let dir = stdout
        .lines()
        .find_map(|l| l.strip_prefix("temporary directory: "))
        .unwrap_or_else(|| panic!("no temporary directory line in:\n{stdout}"));
    PathBuf::from(dir)
}

/// The PIDs of `roach start` processes whose command line names `dir`.
fn start_processes_in(dir: &Path) -> Vec<u32> {
    let dir = dir.to_str().expect("utf8 dir");
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        // The process may have gone in the meantime.
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.iter().any(|a| a == "start") && args.iter().any(|a| a.contains(dir)) {
            pids.push(pid);
        }
    }
    pids
}

/// Asserts that `dir` is gone and that no `roach start` process names it (polled: a process
/// may still be exiting).
fn must_leave_nothing(dir: &Path) {
    assert!(!dir.exists(), "{} still exists", dir.display());
    let deadline = Instant::now() + STOP_WAIT;
    loop {
        let left = start_processes_in(dir);
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "roach start processes of {} still running: {left:?}",
            dir.display()
        );
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Asserts that every `repl:` user information the demo printed is `repl:redacted@`, and that
/// the replication URI was printed (redacted).
fn must_not_show_password(output: &str) {
    assert!(output.contains("postgresql://repl:redacted@"), "{output}");
    for (at, _) in output.match_indices("repl:") {
        assert!(
            output[at..].starts_with("repl:redacted@"),
            "a repl password may be shown at: {}",
            &output[at..(at + 40).min(output.len())]
        );
    }
}

/// The rows of every table in `stdout` as trimmed cells (lines with `|` that are not a
/// header, i.e. not followed by a `---+---` line).
fn table_rows(stdout: &str) -> Vec<Vec<String>> {
    let lines: Vec<&str> = stdout.lines().collect();
    let mut rows = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let is_header = lines.get(i + 1).is_some_and(|next| next.starts_with("--"));
        if line.contains(" | ") && !is_header {
            rows.push(line.split('|').map(|c| c.trim().to_string()).collect());
        }
    }
    rows
}

/// Whether some row of `rows` has every `(column index, value)` of `cells`.
fn has_row(rows: &[Vec<String>], cells: &[(usize, &str)]) -> bool {
    rows.iter().any(|row| {
        cells
            .iter()
            .all(|(i, v)| row.get(*i).is_some_and(|c| c == v))
    })
}

#[test]
fn demo_replicates_then_cleans_up_at_the_end_of_input() {
    // Goal: `roach demo` starts a 3-node primary and a 3-node standby, replicates the
    // application virtual cluster, opens the shell on the standby with the replication status
    // shown, runs the piped statement, and at EOF exits 0 leaving no directory and no node,
    // without ever printing the replication password. Method: the real binary with
    // `SHOW VIRTUAL CLUSTERS;` piped in; parse its tables; scan /proc afterwards.
    let _serial = serial();
    let (stdout, stderr) = RunningDemo::must_succeed_with_input(&[], "SHOW VIRTUAL CLUSTERS;\n");

    let rows = table_rows(&stdout);
    // SHOW VIRTUAL CLUSTER application WITH REPLICATION STATUS: status is the last column.
    assert!(
        rows.iter()
            .any(|r| r.get(1).is_some_and(|c| c == "application")
                && r.last().is_some_and(|c| c == "replicating")),
        "no replicating status row:\n{stdout}"
    );
    // The piped SHOW VIRTUAL CLUSTERS on the standby.
    assert!(
        has_row(&rows, &[(1, "system"), (2, "ready"), (3, "shared")]),
        "{stdout}"
    );
    assert!(
        has_row(&rows, &[(1, "template"), (2, "ready"), (3, "none")]),
        "{stdout}"
    );
    assert!(
        has_row(
            &rows,
            &[(1, "application"), (2, "replicating"), (3, "none")]
        ),
        "{stdout}"
    );
    assert_eq!(
        stdout.matches("system virtual cluster:").count(),
        2,
        "{stdout}"
    );
    assert!(
        stdout.contains("COMPLETE REPLICATION TO LATEST"),
        "{stdout}"
    );
    assert!(stderr.contains("starting standby node 3 of 3"), "{stderr}");
    must_not_show_password(&format!("{stdout}{stderr}"));
    must_leave_nothing(&must_temp_dir(&stdout));
}

#[test]
fn demo_without_replication_starts_only_the_primary() {
    // Goal: `--no-replication --nodes 1` starts one primary node and no standby, and the
    // shell on the primary's system virtual cluster shows `application` ready; EOF cleans up.
    // Method: the real binary with `SHOW VIRTUAL CLUSTERS;` piped in.
    let _serial = serial();
    let (stdout, stderr) = RunningDemo::must_succeed_with_input(
        &["--no-replication", "--nodes", "1"],
        "SHOW VIRTUAL CLUSTERS;\n",
    );

    let rows = table_rows(&stdout);
    assert!(
        has_row(&rows, &[(1, "application"), (2, "ready"), (3, "shared")]),
        "{stdout}"
    );
    assert!(stderr.contains("starting primary node 1 of 1"), "{stderr}");
    assert!(!stderr.contains("standby"), "{stderr}");
    assert!(!stdout.contains("Standby cluster"), "{stdout}");
    assert!(
        !format!("{stdout}{stderr}").contains("repl:"),
        "{stdout}{stderr}"
    );
    must_leave_nothing(&must_temp_dir(&stdout));
}

#[test]
fn sigint_stops_a_running_demo_and_cleans_up() {
    // Goal: SIGINT to a demo whose shell waits for input stops every node and removes the
    // temporary directory, and the demo exits with 130. Method: a one-node primary and standby
    // with stdin left open; once the URLs are printed, check that its nodes run, send
    // `kill -INT`, wait for the exit, scan /proc.
    let _serial = serial();
    let mut demo = RunningDemo::must_spawn(&["--nodes", "1"]);
    let dir = PathBuf::from(demo.must_see_line("temporary directory: ", DEMO_WAIT));
    assert_eq!(start_processes_in(&dir).len(), 2, "one node per cluster");
    sigint(demo.child.id());
    let status = demo.must_exit(STOP_WAIT);
    let (stdout, stderr) = demo.output();
    assert_eq!(
        status.code(),
        Some(130),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stderr.contains("SIGINT received"), "{stderr}");
    must_not_show_password(&format!("{stdout}{stderr}"));
    must_leave_nothing(&dir);
}
