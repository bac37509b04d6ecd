//! In-memory fakes of the ports, for use-case tests (here and in other crates' unit tests).
//! They follow the ports' contracts, guards included, but prove nothing about a real adapter.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ensinalab_domain::{
    BriefingDraft, BriefingId, BriefingStatus, Cancel, CancelReason, Lifecycle, OptionId,
    ResourceKind, TaskId, UserId, VideoId, VideoStatus,
};
use time::{Date, OffsetDateTime};

use crate::{Service, Settings};
use ensinalab_ports::MailSlots;
use ensinalab_ports::{
    ActivePage, ActivePosition, ActiveResource, ActiveRows, AnyStatus, Briefing, BriefingOption,
    BriefingUpdate, Caller, CancelledAll, ExpiredJob, InFlightTask, NewVideo, Resource, ResourceId,
    ResourceRef, RevokeOutcome, RevokeReport, TaskRequest, TaskSnapshot, Transition, Video,
    VideoUpdate,
};
use ensinalab_ports::{Briefings, Cancels, SecurityLog, Status, Tasks, Videos};
use ensinalab_ports::{BrokerError, StoreError};
use ensinalab_ports::{Census, DayCounts, Statistics};
use ensinalab_ports::{ChangeSink, TaskChange};
use ensinalab_ports::{CleanupOutbox, OwedCleanup};
use ensinalab_ports::{FIRST_ATTEMPT_GRACE, OwedRevoke, RevokeOutbox, settles};
use ensinalab_ports::{SecurityEvent, SecurityEventPage, SecurityEventQuery, StoredSecurityEvent};
use ensinalab_ports::{TakenOut, TaskBroker};

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

/// A service over fresh fakes, with the default settings.
pub fn service() -> Service<InMemoryStore, RecordingBroker> {
    Service::new(
        InMemoryStore::default(),
        RecordingBroker::default(),
        Settings::default(),
    )
}

/// A service over fresh fakes with `settings`, and the sink that records every change it emits.
pub fn recorded_service(
    settings: Settings,
) -> (Service<InMemoryStore, RecordingBroker>, Arc<RecordingSink>) {
    let sink = Arc::new(RecordingSink::default());
    let svc = Service::new(
        InMemoryStore::default(),
        RecordingBroker::default(),
        settings,
    )
    .with_sink(sink.clone());
    (svc, sink)
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

/// A row the fake can cancel: where its table is, and what `cancel` says, written into it.
trait Cancelable: Resource {
    fn table(t: &mut Tables) -> &mut Vec<Self>;
    fn write(&mut self, cancel: &Cancel<Self::Status>);
}

impl Cancelable for Video {
    fn table(t: &mut Tables) -> &mut Vec<Self> {
        &mut t.videos
    }

    fn write(&mut self, cancel: &Cancel<VideoStatus>) {
        self.status = cancel.to;
        if let Some(message) = cancel.error_message {
            self.error_message = Some(message.to_owned());
        }
        if let Some(progress) = cancel.progress {
            self.progress = progress;
        }
        self.updated_at = OffsetDateTime::now_utc();
    }
}

impl Cancelable for Briefing {
    fn table(t: &mut Tables) -> &mut Vec<Self> {
        &mut t.briefings
    }

    fn write(&mut self, cancel: &Cancel<BriefingStatus>) {
        self.status = cancel.to;
        if let Some(message) = cancel.error_message {
            self.error_message = Some(message.to_owned());
        }
        self.updated_at = OffsetDateTime::now_utc();
    }
}

/// A user's guarded cancel of one row; the owed revoke is recorded with it.
impl<I: ResourceId> Cancels<I> for InMemoryStore
where
    I::Row: Cancelable,
{
    async fn cancel(
        &self,
        user: UserId,
        id: I,
        cancel: &Cancel<Status<I>>,
    ) -> Result<Transition<I::Row, Status<I>>, StoreError> {
        self.with(|t| cancel_row(t, id.key(), user, cancel))
    }
}

fn cancel_row<R: Cancelable>(
    t: &mut Tables,
    id: i64,
    user: UserId,
    cancel: &Cancel<R::Status>,
) -> Transition<R, R::Status> {
    let moved = match R::table(t).iter_mut().find(|r| r.id() == id) {
        None => Transition::NotFound,
        Some(r) if r.owner() != user => Transition::NotOwned,
        Some(r) if !cancel.allows(r.status()) => Transition::Refused(r.status()),
        Some(r) => {
            r.write(cancel);
            Transition::Done(r.clone())
        }
    };
    if let Transition::Done(row) = &moved {
        owe_revoke(t, row.task_id(), row.key());
    }
    moved
}

impl Briefings for InMemoryStore {
    async fn create_briefing(
        &self,
        user: UserId,
        draft: &BriefingDraft,
        task_id: &TaskId,
        slots: u32,
    ) -> Result<Option<Briefing>, StoreError> {
        self.with(|t| {
            if t.held_slots(user) >= slots as usize {
                return None;
            }
            let now = OffsetDateTime::now_utc();
            let b = Briefing {
                id: BriefingId(t.next()),
                user_id: user,
                title: draft.title().to_owned(),
                description: draft.description().to_owned(),
                duration_minutes: draft.duration_minutes(),
                status: BriefingStatus::Processing,
                task_id: Some(task_id.clone()),
                error_message: None,
                created_at: now,
                updated_at: now,
                started_at: None,
            };
            t.briefings.push(b.clone());
            Some(b)
        })
    }

    async fn briefing(
        &self,
        id: BriefingId,
    ) -> Result<Option<(Briefing, Vec<BriefingOption>)>, StoreError> {
        self.with(|t| {
            let b = t.briefings.iter().find(|b| b.id == id)?.clone();
            let options = t
                .options
                .iter()
                .filter(|o| o.briefing_id == id)
                .cloned()
                .collect();
            Some((b, options))
        })
    }

    async fn option(&self, id: OptionId) -> Result<Option<(Briefing, BriefingOption)>, StoreError> {
        self.with(|t| {
            let o = t.options.iter().find(|o| o.id == id)?.clone();
            let b = t.briefings.iter().find(|b| b.id == o.briefing_id)?.clone();
            Some((b, o))
        })
    }

    async fn apply_briefing_update(
        &self,
        id: BriefingId,
        update: &BriefingUpdate,
    ) -> Result<Option<Briefing>, StoreError> {
        self.with(|t| {
            let b = t
                .briefings
                .iter_mut()
                .find(|b| b.id == id && b.status.is_in_flight())?;
            b.updated_at = OffsetDateTime::now_utc();
            let mut new_options = Vec::new();
            match update {
                BriefingUpdate::Running => {
                    if b.started_at.is_some() {
                        return None;
                    }
                    b.status = BriefingStatus::Processing;
                    b.started_at = Some(OffsetDateTime::now_utc());
                }
                BriefingUpdate::OptionsReady(options) => {
                    b.status = BriefingStatus::OptionsReady;
                    new_options.clone_from(options);
                }
                BriefingUpdate::Failed(msg) => {
                    b.status = BriefingStatus::Failed;
                    b.error_message = Some(msg.clone());
                }
                BriefingUpdate::Revoked => b.write(&Cancel::new(CancelReason::Revoked)),
            }
            let moved = b.clone();
            for o in new_options {
                let option = BriefingOption {
                    id: OptionId(t.next()),
                    briefing_id: id,
                    title: o.title,
                    description: o.description,
                    generator_type: o.generator_type,
                    created_at: OffsetDateTime::now_utc(),
                };
                t.options.push(option);
            }
            Some(moved)
        })
    }
}

impl Videos for InMemoryStore {
    async fn create_video(&self, new: &NewVideo, slots: u32) -> Result<Option<Video>, StoreError> {
        self.with(|t| {
            if t.held_slots(new.user_id) >= slots as usize {
                return None;
            }
            let now = OffsetDateTime::now_utc();
            let v = Video {
                id: VideoId(t.next()),
                user_id: new.user_id,
                briefing_id: new.briefing_id,
                option_id: new.option_id,
                title: new.title.clone(),
                generator_type: new.generator_type.clone(),
                status: VideoStatus::Queued,
                progress: 0.0,
                task_id: Some(new.task_id.clone()),
                error_message: None,
                created_at: now,
                updated_at: now,
                started_at: None,
            };
            t.videos.push(v.clone());
            Some(v)
        })
    }

    async fn video(&self, id: VideoId) -> Result<Option<Video>, StoreError> {
        self.with(|t| t.videos.iter().find(|v| v.id == id).cloned())
    }

    async fn apply_video_update(
        &self,
        id: VideoId,
        update: &VideoUpdate,
    ) -> Result<Option<Video>, StoreError> {
        self.with(|t| {
            let v = t
                .videos
                .iter_mut()
                .find(|v| v.id == id && v.status.is_in_flight())?;
            v.updated_at = OffsetDateTime::now_utc();
            match update {
                VideoUpdate::Running { progress } => {
                    v.status = VideoStatus::Processing;
                    v.progress = *progress;
                    v.started_at.get_or_insert_with(OffsetDateTime::now_utc);
                }
                VideoUpdate::Finished(status) => {
                    v.status = *status;
                    v.progress = 1.0;
                }
                VideoUpdate::Failed(msg) => {
                    v.status = VideoStatus::Failed;
                    v.error_message = Some(msg.clone());
                }
                VideoUpdate::Revoked => v.write(&Cancel::new(CancelReason::Revoked)),
            }
            Some(v.clone())
        })
    }
}

impl Tasks for InMemoryStore {
    async fn active(&self, user: UserId, page: &ActivePage) -> Result<ActiveRows, StoreError> {
        self.with(|t| {
            let briefings = t
                .briefings
                .iter()
                .filter(|b| b.user_id == user && b.status.is_cancellable())
                .map(|b| ActiveResource {
                    id: b.id.get(),
                    title: b.title.clone(),
                    status: AnyStatus::Briefing(b.status),
                    progress: None,
                    generator_type: None,
                    task_id: b.task_id.clone(),
                    created_at: b.created_at,
                });
            let videos = t
                .videos
                .iter()
                .filter(|v| v.user_id == user && v.status.is_cancellable())
                .map(|v| ActiveResource {
                    id: v.id.get(),
                    title: v.title.clone(),
                    status: AnyStatus::Video(v.status),
                    progress: Some(v.progress),
                    generator_type: Some(v.generator_type.clone()),
                    task_id: v.task_id.clone(),
                    created_at: v.created_at,
                });
            let mut all: Vec<ActiveResource> = briefings.chain(videos).collect();
            let key = |r: &ActiveResource| {
                let p = ActivePosition::of(r);
                (p.created_at, p.kind == ResourceKind::Video, p.id)
            };
            all.sort_by_key(|r| std::cmp::Reverse(key(r)));
            let counts = |kind| all.iter().filter(|r| r.status.kind() == kind).count() as u64;
            let (briefings, videos) = (counts(ResourceKind::Briefing), counts(ResourceKind::Video));
            let after = page
                .after
                .map(|p| (p.created_at, p.kind == ResourceKind::Video, p.id));
            let rows = all
                .into_iter()
                .filter(|r| after.is_none_or(|after| key(r) < after))
                .take(page.limit as usize + 1)
                .collect();
            ActiveRows {
                rows,
                briefings,
                videos,
            }
        })
    }

    async fn resource_for_task(&self, task_id: &TaskId) -> Result<Option<ResourceRef>, StoreError> {
        self.with(|t| {
            let b = t
                .briefings
                .iter()
                .find(|b| b.task_id.as_ref() == Some(task_id))
                .map(|b| ResourceRef {
                    kind: ResourceKind::Briefing,
                    id: b.id.get(),
                    user_id: b.user_id,
                });
            b.or_else(|| {
                t.videos
                    .iter()
                    .find(|v| v.task_id.as_ref() == Some(task_id))
                    .map(|v| ResourceRef {
                        kind: ResourceKind::Video,
                        id: v.id.get(),
                        user_id: v.user_id,
                    })
            })
        })
    }

    async fn cancel_all(
        &self,
        user: UserId,
        briefings: &Cancel<BriefingStatus>,
        videos: &Cancel<VideoStatus>,
    ) -> Result<CancelledAll, StoreError> {
        self.with(|t| {
            let mut out = CancelledAll::default();
            let mut owed = Vec::new();
            for b in t
                .briefings
                .iter_mut()
                .filter(|b| b.user_id == user && briefings.allows(b.status))
            {
                b.write(briefings);
                out.briefings.push((b.id, b.task_id.clone()));
                owed.push((b.task_id.clone(), b.key()));
            }
            for v in t
                .videos
                .iter_mut()
                .filter(|v| v.user_id == user && videos.allows(v.status))
            {
                v.write(videos);
                out.videos.push((v.id, v.task_id.clone()));
                owed.push((v.task_id.clone(), v.key()));
            }
            for (task, resource) in owed {
                owe_revoke(t, task.as_ref(), resource);
            }
            out
        })
    }

    async fn cancel_expired(
        &self,
        briefings: &Cancel<BriefingStatus>,
        briefings_started_before: OffsetDateTime,
        videos: &Cancel<VideoStatus>,
        videos_started_before: OffsetDateTime,
    ) -> Result<Vec<ExpiredJob>, StoreError> {
        fn expire<R: Cancelable>(
            rows: &mut [R],
            cancel: &Cancel<R::Status>,
            before: OffsetDateTime,
        ) -> Vec<ExpiredJob> {
            rows.iter_mut()
                .filter_map(|r| {
                    let started_at = r.started_at().filter(|at| *at < before)?;
                    cancel.allows(r.status()).then(|| {
                        r.write(cancel);
                        let (kind, id) = r.key();
                        ExpiredJob {
                            resource: ResourceRef {
                                kind,
                                id,
                                user_id: r.owner(),
                            },
                            task_id: r.task_id().cloned(),
                            started_at,
                        }
                    })
                })
                .collect()
        }
        self.with(|t| {
            let mut out = expire(&mut t.briefings, briefings, briefings_started_before);
            out.extend(expire(&mut t.videos, videos, videos_started_before));
            for job in &out {
                owe_revoke(
                    t,
                    job.task_id.as_ref(),
                    (job.resource.kind, job.resource.id),
                );
            }
            out
        })
    }

    async fn in_flight(&self, limit: u32) -> Result<Vec<InFlightTask>, StoreError> {
        self.with(|t| {
            let briefings = t
                .briefings
                .iter()
                .filter(|b| b.status.is_in_flight())
                .filter_map(|b| {
                    Some(InFlightTask {
                        resource: ResourceRef {
                            kind: ResourceKind::Briefing,
                            id: b.id.get(),
                            user_id: b.user_id,
                        },
                        task_id: b.task_id.clone()?,
                        status: AnyStatus::Briefing(b.status),
                        progress: None,
                        started: b.started_at.is_some(),
                    })
                });
            let videos = t
                .videos
                .iter()
                .filter(|v| v.status.is_in_flight())
                .filter_map(|v| {
                    Some(InFlightTask {
                        resource: ResourceRef {
                            kind: ResourceKind::Video,
                            id: v.id.get(),
                            user_id: v.user_id,
                        },
                        task_id: v.task_id.clone()?,
                        status: AnyStatus::Video(v.status),
                        progress: Some(v.progress),
                        started: v.started_at.is_some(),
                    })
                });
            briefings.chain(videos).take(limit as usize).collect()
        })
    }
}

impl SecurityLog for InMemoryStore {
    async fn record(&self, event: &SecurityEvent) -> Result<(), StoreError> {
        self.with(|t| t.push_event(event.clone()))
    }

    async fn prune_security_events(
        &self,
        before: OffsetDateTime,
        limit: u32,
    ) -> Result<u64, StoreError> {
        self.with(|t| {
            let mut left = limit;
            let kept_before = t.events.len();
            t.events.retain(|e| {
                let prune = left > 0 && e.created_at < before;
                left -= u32::from(prune);
                !prune
            });
            (kept_before - t.events.len()) as u64
        })
    }

    async fn security_events(
        &self,
        query: &SecurityEventQuery,
    ) -> Result<SecurityEventPage, StoreError> {
        let limit = query.clamped_limit();
        self.with(|t| {
            let matching = t
                .events
                .iter()
                .rev()
                .filter(|e| query.matches(e))
                .take(limit as usize + 1)
                .cloned()
                .collect();
            SecurityEventPage::from_overfetch(matching, limit)
        })
    }
}

/// A change sink that keeps every change it was given.
#[derive(Default)]
pub struct RecordingSink {
    changes: Mutex<Vec<TaskChange>>,
}

impl RecordingSink {
    /// The changes so far, in emission order.
    pub fn changes(&self) -> Vec<TaskChange> {
        self.changes.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

impl ChangeSink for RecordingSink {
    fn publish(&self, change: &TaskChange) {
        if let Ok(mut c) = self.changes.lock() {
            c.push(change.clone());
        }
    }
}

/// A broker that records what it was asked and answers from a table of states.
#[derive(Default)]
pub struct RecordingBroker {
    published: Mutex<Vec<TaskRequest>>,
    revoked: Mutex<Vec<Vec<TaskId>>>,
    states: Mutex<HashMap<TaskId, TaskSnapshot>>,
    /// Calls still to fail with `Unavailable` (any method).
    pub fail_next: AtomicUsize,
    /// What every revoke reports.
    pub revoke_outcome: Mutex<Option<RevokeOutcome>>,
    /// How many `states` calls were made (to check batch shapes).
    pub state_calls: AtomicUsize,
    /// What `running` reports: `None`, the broker cannot tell.
    pub running: Mutex<Option<Vec<TaskId>>>,
    /// What `take_out_cancelled` reports, one pass after the other (an empty pass once they
    /// are used up); `None`: the broker keeps no queue to take messages out of.
    pub taken_out: Mutex<Option<VecDeque<TakenOut>>>,
}

impl RecordingBroker {
    fn failing(&self) -> Result<(), BrokerError> {
        let left = self.fail_next.load(Ordering::SeqCst);
        if left > 0 {
            self.fail_next.store(left - 1, Ordering::SeqCst);
            return Err(BrokerError::Unavailable(
                "recording broker told to fail".into(),
            ));
        }
        Ok(())
    }

    /// Sets what `states` reports for a task.
    pub fn set_state(&self, snapshot: TaskSnapshot) {
        if let Ok(mut s) = self.states.lock() {
            s.insert(snapshot.task_id.clone(), snapshot);
        }
    }

    /// Tasks published so far.
    pub fn published(&self) -> Vec<TaskRequest> {
        self.published.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// Revoke calls so far, each with its ids.
    pub fn revoke_calls(&self) -> Vec<Vec<TaskId>> {
        self.revoked.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl TaskBroker for RecordingBroker {
    async fn publish(&self, task: &TaskRequest) -> Result<(), BrokerError> {
        self.failing()?;
        if let Ok(mut p) = self.published.lock() {
            p.push(task.clone());
        }
        Ok(())
    }

    async fn states(&self, ids: &[TaskId]) -> Result<Vec<TaskSnapshot>, BrokerError> {
        self.state_calls.fetch_add(1, Ordering::SeqCst);
        self.failing()?;
        let states = self
            .states
            .lock()
            .map_err(|_| BrokerError::Protocol("poisoned".into()))?;
        Ok(ids
            .iter()
            .map(|id| {
                states
                    .get(id)
                    .cloned()
                    .unwrap_or_else(|| TaskSnapshot::pending(id.clone()))
            })
            .collect())
    }

    async fn revoke(&self, ids: &[TaskId]) -> Result<Vec<RevokeReport>, BrokerError> {
        self.failing()?;
        if let Ok(mut r) = self.revoked.lock() {
            r.push(ids.to_vec());
        }
        let outcome = self
            .revoke_outcome
            .lock()
            .ok()
            .and_then(|o| *o)
            .unwrap_or(RevokeOutcome::Signalled);
        Ok(ids
            .iter()
            .map(|id| RevokeReport {
                task_id: id.clone(),
                outcome,
            })
            .collect())
    }

    async fn ping(&self) -> Result<(), BrokerError> {
        self.failing()
    }

    async fn running(&self) -> Result<Option<Vec<TaskId>>, BrokerError> {
        self.failing()?;
        Ok(self.running.lock().ok().and_then(|r| r.clone()))
    }

    async fn take_out_cancelled(&self) -> Result<Option<TakenOut>, BrokerError> {
        self.failing()?;
        let mut passes = self
            .taken_out
            .lock()
            .map_err(|_| BrokerError::Protocol("poisoned".into()))?;
        Ok(passes
            .as_mut()
            .map(|passes| passes.pop_front().unwrap_or_default()))
    }
}

/// One row of the fake's revoke outbox.
#[derive(Debug, Clone)]
struct OutboxRow {
    owed: OwedRevoke,
    next_attempt_at: OffsetDateTime,
    last_broadcast_at: Option<OffsetDateTime>,
    /// The first delivery's outcome, or the one that settled it later.
    outcome: Option<RevokeOutcome>,
    settled: bool,
    overdue_at: Option<OffsetDateTime>,
}

/// The outbox half of a cancel's transaction (the fake's mutex makes it atomic).
fn owe_revoke(t: &mut Tables, task_id: Option<&TaskId>, resource: (ResourceKind, i64)) {
    let Some(task_id) = task_id else { return };
    if t.outbox.iter().any(|r| &r.owed.task_id == task_id) {
        return;
    }
    let now = OffsetDateTime::now_utc();
    t.outbox.push(OutboxRow {
        owed: OwedRevoke {
            task_id: task_id.clone(),
            resource,
            created_at: now,
            attempts: 0,
            delivered_at: None,
        },
        next_attempt_at: now + FIRST_ATTEMPT_GRACE,
        last_broadcast_at: None,
        outcome: None,
        settled: false,
        overdue_at: None,
    });
}

impl InMemoryStore {
    /// The revoke outbox: every owed revoke with whether it is settled.
    pub fn owed_revokes(&self) -> Vec<(OwedRevoke, bool)> {
        self.with(|t| {
            t.outbox
                .iter()
                .map(|r| (r.owed.clone(), r.settled))
                .collect()
        })
        .unwrap_or_default()
    }
}

impl RevokeOutbox for InMemoryStore {
    async fn due_revokes(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<OwedRevoke>, StoreError> {
        self.with(|t| {
            t.outbox
                .iter()
                .filter(|r| r.owed.delivered_at.is_none() && r.next_attempt_at <= now)
                .take(limit as usize)
                .map(|r| r.owed.clone())
                .collect()
        })
    }

    async fn revokes_delivered(
        &self,
        reports: &[RevokeReport],
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.with(|t| {
            for report in reports {
                if let Some(r) = t
                    .outbox
                    .iter_mut()
                    .find(|r| r.owed.task_id == report.task_id)
                {
                    if r.owed.delivered_at.is_none() {
                        r.outcome = Some(report.outcome);
                    }
                    r.owed.delivered_at.get_or_insert(now);
                    r.last_broadcast_at = Some(now);
                    r.settled |= settles(report.outcome);
                }
            }
        })
    }

    async fn settle_revokes(
        &self,
        reports: &[RevokeReport],
        _now: OffsetDateTime,
    ) -> Result<Vec<TaskId>, StoreError> {
        self.with(|t| {
            let mut settled = Vec::new();
            for report in reports.iter().filter(|r| settles(r.outcome)) {
                if let Some(r) = t.outbox.iter_mut().find(|r| {
                    r.owed.task_id == report.task_id && !r.settled && r.owed.delivered_at.is_some()
                }) {
                    r.settled = true;
                    r.outcome = Some(report.outcome);
                    settled.push(report.task_id.clone());
                }
            }
            settled
        })
    }

    async fn revokes_failed(
        &self,
        ids: &[TaskId],
        retry_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.with(|t| {
            for r in t
                .outbox
                .iter_mut()
                .filter(|r| ids.contains(&r.owed.task_id))
            {
                r.owed.attempts += 1;
                r.next_attempt_at = retry_at;
            }
        })
    }

    async fn open_revokes(
        &self,
        since: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<OwedRevoke>, StoreError> {
        self.with(|t| {
            let mut open: Vec<&OutboxRow> = t
                .outbox
                .iter()
                .filter(|r| r.owed.delivered_at.is_some() && !r.settled)
                .filter(|r| r.owed.created_at >= since)
                .collect();
            open.sort_by_key(|r| r.last_broadcast_at);
            open.into_iter()
                .take(limit as usize)
                .map(|r| r.owed.clone())
                .collect()
        })
    }

    async fn overdue_candidates(
        &self,
        before: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<OwedRevoke>, StoreError> {
        self.with(|t| {
            t.outbox
                .iter()
                .filter(|r| !r.settled && r.overdue_at.is_none())
                .filter(|r| match r.owed.delivered_at {
                    None => r.owed.created_at < before,
                    Some(at) => at < before,
                })
                .take(limit as usize)
                .map(|r| r.owed.clone())
                .collect()
        })
    }

    async fn mark_overdue(
        &self,
        ids: &[TaskId],
        now: OffsetDateTime,
    ) -> Result<Vec<TaskId>, StoreError> {
        self.with(|t| {
            let mut marked = Vec::new();
            for r in t.outbox.iter_mut() {
                if ids.contains(&r.owed.task_id) && r.overdue_at.is_none() {
                    r.overdue_at = Some(now);
                    marked.push(r.owed.task_id.clone());
                }
            }
            marked
        })
    }
}

impl MailSlots for InMemoryStore {
    async fn claim_mail_slot(
        &self,
        now: OffsetDateTime,
        every: std::time::Duration,
    ) -> Result<bool, StoreError> {
        self.with(|t| {
            let free = t.last_mail.is_none_or(|last| last + every <= now);
            if free {
                t.last_mail = Some(now);
            }
            free
        })
    }
}

impl InMemoryStore {
    /// The cleanup outbox: every cleanup owed and not sent yet.
    pub fn owed_cleanups(&self) -> Vec<OwedCleanup> {
        self.with(|t| t.cleanups.iter().map(|(c, _)| c.clone()).collect())
            .unwrap_or_default()
    }
}

impl CleanupOutbox for InMemoryStore {
    async fn owe_cleanups(&self, cleanups: &[OwedCleanup]) -> Result<(), StoreError> {
        self.with(|t| {
            for cleanup in cleanups {
                match t
                    .cleanups
                    .iter_mut()
                    .find(|(c, _)| c.task_id == cleanup.task_id)
                {
                    Some((kept, _)) if cleanup.reason.supersedes() => {
                        kept.reason = cleanup.reason;
                    }
                    Some(_) => {}
                    None => t.cleanups.push((cleanup.clone(), cleanup.created_at)),
                }
            }
        })
    }

    async fn due_cleanups(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<OwedCleanup>, StoreError> {
        self.with(|t| {
            let never_started = |task: &TaskId| {
                t.outbox.iter().any(|r| {
                    &r.owed.task_id == task && r.outcome.is_some_and(|o| !o.may_have_started())
                })
            };
            let outbox = &t.outbox;
            t.cleanups
                .retain(|(c, _)| !(c.reason.waits_for_revoke() && never_started(&c.task_id)));
            let killed = |task: &TaskId| {
                outbox
                    .iter()
                    .any(|r| &r.owed.task_id == task && r.owed.delivered_at.is_some())
            };
            t.cleanups
                .iter()
                .filter(|(c, next)| {
                    *next <= now && (!c.reason.waits_for_revoke() || killed(&c.task_id))
                })
                .take(limit as usize)
                .map(|(c, _)| c.clone())
                .collect()
        })
    }

    async fn cleanups_sent(&self, ids: &[TaskId]) -> Result<(), StoreError> {
        self.with(|t| t.cleanups.retain(|(c, _)| !ids.contains(&c.task_id)))
    }

    async fn cleanups_failed(
        &self,
        ids: &[TaskId],
        retry_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.with(|t| {
            for (c, next) in t
                .cleanups
                .iter_mut()
                .filter(|(c, _)| ids.contains(&c.task_id))
            {
                c.attempts += 1;
                *next = retry_at;
            }
        })
    }
}

/// The fake keeps no `finished_at` or cancel reason: a final row counts as finished at its
/// `updated_at`, and its cancel reason is read from its message (so a cancel-all counts as
/// `user`, and a revoke from elsewhere, which writes no message, as no cancellation).
impl Statistics for InMemoryStore {
    async fn daily_counts(&self, first: Date, last: Date) -> Result<Vec<DayCounts>, StoreError> {
        self.with(|t| {
            let mut days: std::collections::BTreeMap<Date, DayCounts> =
                std::collections::BTreeMap::new();
            let rows = t
                .briefings
                .iter()
                .map(|b| {
                    (
                        b.created_at,
                        b.updated_at,
                        AnyStatus::from(b.status),
                        b.error_message.as_deref(),
                    )
                })
                .chain(t.videos.iter().map(|v| {
                    (
                        v.created_at,
                        v.updated_at,
                        AnyStatus::from(v.status),
                        v.error_message.as_deref(),
                    )
                }));
            for (created, updated, status, message) in rows {
                let mut on = |at: OffsetDateTime, count: &dyn Fn(&mut DayCounts)| {
                    let date = at.date();
                    if (first..=last).contains(&date) {
                        count(days.entry(date).or_insert_with(|| DayCounts::empty(date)));
                    }
                };
                on(created, &|d| d.created += 1);
                match (status.as_str(), message) {
                    ("completed", _) => on(updated, &|d| d.completed += 1),
                    ("failed", _) => on(updated, &|d| d.failed += 1),
                    ("cancelled", Some(ensinalab_domain::CANCELLED_BY_USER)) => {
                        on(updated, &|d| d.cancelled_user += 1);
                    }
                    ("cancelled", Some(ensinalab_domain::CANCELLED_BY_TIMEOUT)) => {
                        on(updated, &|d| d.cancelled_timeout += 1);
                    }
                    _ => {}
                }
            }
            days.into_values().collect()
        })
    }

    async fn census(&self) -> Result<Census, StoreError> {
        self.with(|t| {
            let mut in_flight: Vec<(AnyStatus, u64)> = Vec::new();
            let statuses = t
                .briefings
                .iter()
                .filter(|b| b.status.is_in_flight())
                .map(|b| AnyStatus::from(b.status))
                .chain(
                    t.videos
                        .iter()
                        .filter(|v| v.status.is_in_flight())
                        .map(|v| AnyStatus::from(v.status)),
                );
            for status in statuses {
                match in_flight.iter_mut().find(|(s, _)| *s == status) {
                    Some((_, n)) => *n += 1,
                    None => in_flight.push((status, 1)),
                }
            }
            Census {
                in_flight,
                revokes_pending: t
                    .outbox
                    .iter()
                    .filter(|r| r.owed.delivered_at.is_none())
                    .count() as u64,
            }
        })
    }
}
