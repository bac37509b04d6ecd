//! In-memory fakes of the ports, for use-case tests (here and in other crates' unit tests).
//! They follow the ports' contracts, guards included, but prove nothing about a real adapter.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ensinalab_domain::{
    BriefingId, BriefingStatus, Lifecycle, OptionId, TaskId, UserId, VideoId, VideoStatus,
};
use time::OffsetDateTime;

use ensinalab_ports::{
    Briefing, BriefingOption, Caller, OwedCleanup, SecurityEvent, SecurityLog, StoreError,
    StoredSecurityEvent, Video,
};

use crate::{Drains, RefusalGate, Service, Settings};

mod briefings;
mod broker;
mod cancels;
mod cleanup_outbox;
mod mail_slots;
mod revoke_outbox;
mod security_log;
mod sink;
mod statistics;
mod tasks;
mod videos;

use cancels::Cancelable;
use revoke_outbox::{OutboxRow, owe_revoke};

pub use broker::RecordingBroker;
pub use sink::RecordingSink;

#[derive(Default)]
struct Tables {
    next_id: i64,
    briefings: Vec<Briefing>,
    options: Vec<BriefingOption>,
    videos: Vec<Video>,
    /// The revoke outbox: (owed revoke, next attempt, settled).
    outbox: Vec<OutboxRow>,
    /// The cleanup outbox: (owed cleanup, next attempt).
    cleanups: Vec<(OwedCleanup, OffsetDateTime)>,
    /// When the last alert e-mail slot was taken.
    last_mail: Option<OffsetDateTime>,
    events: Vec<StoredSecurityEvent>,
}

impl Tables {
    /// The jobs `user` holds (`Lifecycle::ACTIVE`).
    fn held_slots(&self, user: UserId) -> usize {
        let briefings = self.briefings.iter().filter(|b| {
            b.user_id == user && <BriefingStatus as Lifecycle>::ACTIVE.contains(&b.status)
        });
        let videos = self.videos.iter().filter(|v| {
            v.user_id == user && <VideoStatus as Lifecycle>::ACTIVE.contains(&v.status)
        });
        briefings.count() + videos.count()
    }

    fn next(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }

    fn push_event(&mut self, event: SecurityEvent) {
        let stored = StoredSecurityEvent {
            id: self.next(),
            created_at: OffsetDateTime::now_utc(),
            event,
        };
        self.events.push(stored);
    }
}

/// The caller of a use-case test: `user`, not an admin, from a documentation address.
pub fn caller(user: UserId) -> Caller {
    Caller {
        user_id: user,
        is_admin: false,
        client_ip: Some("203.0.113.7".into()),
    }
}

/// Task id number `n`: a valid UUID, the same for the same `n`.
pub fn task(n: u32) -> TaskId {
    TaskId::parse(&format!("550e8400-e29b-41d4-a716-{n:012}")).expect("a valid uuid")
}

/// A service over fresh fakes, with the default settings. What it owes its jobs is dropped:
/// see [`wired`] for a test that drains it.
pub fn service() -> Service<InMemoryStore, RecordingBroker> {
    wired(Settings::default()).0
}

/// A service over fresh fakes with `settings`, and the sink that records every change it emits.
/// What it owes its jobs is dropped: see [`wired`].
pub fn recorded_service(
    settings: Settings,
) -> (Service<InMemoryStore, RecordingBroker>, Arc<RecordingSink>) {
    let (svc, _, sink) = wired(settings);
    (svc, sink)
}

/// A service over fresh fakes with `settings`, the drains its jobs would hold, and the sink
/// that records every change it emits.
pub fn wired(
    settings: Settings,
) -> (
    Service<InMemoryStore, RecordingBroker>,
    Drains,
    Arc<RecordingSink>,
) {
    let sink = Arc::new(RecordingSink::default());
    let (svc, drains) = Service::new(
        InMemoryStore::default(),
        RecordingBroker::default(),
        settings,
    );
    (svc.with_sink(sink.clone()), drains, sink)
}

/// Writes the trail's queued events as the trail writer does, through `gate`.
pub async fn write_trail<S: SecurityLog, B>(
    svc: &Service<S, B>,
    drains: &mut Drains,
    gate: &mut RefusalGate,
) {
    while let Ok(event) = drains.trail.try_recv() {
        svc.write_security_event(gate, event).await;
    }
}

/// All repositories over vectors behind one mutex (never held across an await).
#[derive(Default)]
pub struct InMemoryStore {
    tables: Mutex<Tables>,
    /// When set, every call fails with `Unavailable`.
    pub down: AtomicBool,
    /// When above 0: this many more calls succeed, then the store goes `down`.
    pub fail_after: AtomicUsize,
}

impl ensinalab_ports::Store for InMemoryStore {}

fn down_error() -> StoreError {
    StoreError::Unavailable("in-memory store is down".into())
}

impl InMemoryStore {
    fn with<T>(&self, f: impl FnOnce(&mut Tables) -> T) -> Result<T, StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(down_error());
        }
        let left = self.fail_after.load(Ordering::SeqCst);
        if left > 0 {
            self.fail_after.store(left - 1, Ordering::SeqCst);
            self.down.store(left == 1, Ordering::SeqCst);
        }
        let mut tables = self.tables.lock().map_err(|_| down_error())?;
        Ok(f(&mut tables))
    }

    /// Inserts a briefing directly, in any status (test setup).
    pub fn insert_briefing(
        &self,
        user: UserId,
        status: BriefingStatus,
        task_id: Option<TaskId>,
    ) -> Briefing {
        self.with(|t| {
            let now = OffsetDateTime::now_utc();
            let b = Briefing {
                id: BriefingId(t.next()),
                user_id: user,
                title: "Gestão de Sala de Aula".into(),
                description: String::new(),
                duration_minutes: 10,
                status,
                task_id,
                error_message: None,
                created_at: now,
                updated_at: now,
                started_at: None,
            };
            t.briefings.push(b.clone());
            b
        })
        .expect("fake store is up during setup")
    }

    /// Adds an option to a briefing (test setup).
    pub fn insert_option(&self, briefing: BriefingId) -> BriefingOption {
        self.with(|t| {
            let o = BriefingOption {
                id: OptionId(t.next()),
                briefing_id: briefing,
                title: "Como usar Google Classroom".into(),
                description: String::new(),
                generator_type: "simple".into(),
                created_at: OffsetDateTime::now_utc(),
            };
            t.options.push(o.clone());
            o
        })
        .expect("fake store is up during setup")
    }

    /// Inserts a video directly, in any status (test setup).
    pub fn insert_video(
        &self,
        user: UserId,
        status: VideoStatus,
        task_id: Option<TaskId>,
    ) -> Video {
        self.with(|t| {
            let now = OffsetDateTime::now_utc();
            let v = Video {
                id: VideoId(t.next()),
                user_id: user,
                briefing_id: BriefingId(0),
                option_id: OptionId(0),
                title: "Como usar Google Classroom".into(),
                generator_type: "simple".into(),
                status,
                progress: 0.4,
                task_id,
                error_message: None,
                created_at: now,
                updated_at: now,
                started_at: None,
            };
            t.videos.push(v.clone());
            v
        })
        .expect("fake store is up during setup")
    }

    /// Records that a worker started video `id` at `at` (test setup).
    pub fn start_video(&self, id: VideoId, at: OffsetDateTime) {
        let _ = self.with(|t| {
            if let Some(v) = t.videos.iter_mut().find(|v| v.id == id) {
                v.started_at = Some(at);
            }
        });
    }

    /// Records that a worker started briefing `id` at `at` (test setup).
    pub fn start_briefing(&self, id: BriefingId, at: OffsetDateTime) {
        let _ = self.with(|t| {
            if let Some(b) = t.briefings.iter_mut().find(|b| b.id == id) {
                b.started_at = Some(at);
            }
        });
    }

    /// The security events recorded so far.
    pub fn events(&self) -> Vec<SecurityEvent> {
        self.with(|t| t.events.iter().map(|e| e.event.clone()).collect())
            .unwrap_or_default()
    }

    /// A video by id, whoever owns it.
    pub fn video_row(&self, id: VideoId) -> Option<Video> {
        self.with(|t| t.videos.iter().find(|v| v.id == id).cloned())
            .ok()
            .flatten()
    }

    /// A briefing by id, whoever owns it.
    pub fn briefing_row(&self, id: BriefingId) -> Option<Briefing> {
        self.with(|t| t.briefings.iter().find(|b| b.id == id).cloned())
            .ok()
            .flatten()
    }

    /// The options of a briefing.
    pub fn options_of(&self, id: BriefingId) -> Vec<BriefingOption> {
        self.with(|t| {
            t.options
                .iter()
                .filter(|o| o.briefing_id == id)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
    }
}
