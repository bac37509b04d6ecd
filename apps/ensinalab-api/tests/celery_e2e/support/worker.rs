//! Process helpers around the shared real worker (`ensinalab_celery::testing::Worker`): who a
//! pid's parent is, and a watch that says when a process died.

use std::time::{Duration, Instant};

pub use ensinalab_celery::testing::{Durations, Worker, process_is_dead};

/// The parent of a live process `pid`.
pub fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "<pid> (<comm>) <state> <ppid> ...": comm may hold spaces and parentheses.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Watches `pid` from a thread of its own (1 ms polls, independent of the test's runtime) and
/// says when it died; gives up after `within`.
pub struct DeathWatch {
    handle: std::thread::JoinHandle<Option<Instant>>,
}

impl DeathWatch {
    pub fn start(pid: u32, within: Duration) -> Self {
        let handle = std::thread::spawn(move || {
            let started = Instant::now();
            while started.elapsed() < within {
                if process_is_dead(pid) {
                    return Some(Instant::now());
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            None
        });
        Self { handle }
    }

    /// When the process was first seen dead, if it died in time.
    pub async fn died_at(self) -> Option<Instant> {
        tokio::task::spawn_blocking(move || self.handle.join().expect("death watch thread"))
            .await
            .expect("death watch join")
    }
}
