//! Records that cross the ports. Plain data: storage and wire formats live in the adapters and
//! the api crate.

use ensinalab_domain::{
    BriefingId, BriefingStatus, CancelReason, CeleryState, GeneratedOption, Lifecycle, OptionId,
    ResourceKind, TaskId, UserId, VideoId, VideoStatus,
};
use time::OffsetDateTime;

use crate::changes::ChangeKind;

/// Who is asking, as established by authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's subject.
    pub user_id: UserId,
    /// Admins also see tracebacks; ownership rules apply to them like to anyone.
    pub is_admin: bool,
    /// For the security trail.
    pub client_ip: Option<String>,
}

/// A briefing row.
#[derive(Debug, Clone, PartialEq)]
pub struct Briefing {
    pub id: BriefingId,
    pub user_id: UserId,
    pub title: String,
    pub description: String,
    pub duration_minutes: u32,
    pub status: BriefingStatus,
    /// The `generate_options` task; `None` only for rows made before tasks were tracked.
    pub task_id: Option<TaskId>,
    pub error_message: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// When a worker first reported the job running; `None` while it waits.
    pub started_at: Option<OffsetDateTime>,
}

/// An option generated for a briefing.
#[derive(Debug, Clone, PartialEq)]
pub struct BriefingOption {
    pub id: OptionId,
    pub briefing_id: BriefingId,
    pub title: String,
    pub description: String,
    pub generator_type: String,
    pub created_at: OffsetDateTime,
}

/// A video row.
#[derive(Debug, Clone, PartialEq)]
pub struct Video {
    pub id: VideoId,
    pub user_id: UserId,
    pub briefing_id: BriefingId,
    pub option_id: OptionId,
    pub title: String,
    pub generator_type: String,
    pub status: VideoStatus,
    /// `0.0..=1.0`.
    pub progress: f64,
    pub task_id: Option<TaskId>,
    pub error_message: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// When a worker first reported the job running; `None` while it waits.
    pub started_at: Option<OffsetDateTime>,
}

/// What the use cases need of a briefing or a video, so that a rule over either (the cancel,
/// ownership, the change it emits) is written once.
pub trait Resource: Clone + Send + Sync + 'static {
    /// Its status type, which also names its kind.
    type Status: Lifecycle + Into<AnyStatus>;
    /// The row's key.
    fn id(&self) -> i64;
    /// Who owns it.
    fn owner(&self) -> UserId;
    fn status(&self) -> Self::Status;
    fn task_id(&self) -> Option<&TaskId>;
    /// Videos only.
    fn progress(&self) -> Option<f64>;
    /// When a worker first reported it running.
    fn started_at(&self) -> Option<OffsetDateTime>;

    /// Its kind and key, as the trail and the change stream name it.
    fn key(&self) -> (ResourceKind, i64) {
        (<Self::Status as Lifecycle>::KIND, self.id())
    }
}

/// The typed id of a resource: what a call names, and the kind of row it gets back.
pub trait ResourceId: Copy + Send + Sync + std::fmt::Debug + 'static {
    type Row: Resource;
    /// The database key.
    fn key(self) -> i64;
}

impl ResourceId for BriefingId {
    type Row = Briefing;
    fn key(self) -> i64 {
        self.get()
    }
}

impl ResourceId for VideoId {
    type Row = Video;
    fn key(self) -> i64 {
        self.get()
    }
}

impl Resource for Briefing {
    type Status = BriefingStatus;
    fn id(&self) -> i64 {
        self.id.get()
    }
    fn owner(&self) -> UserId {
        self.user_id
    }
    fn status(&self) -> BriefingStatus {
        self.status
    }
    fn task_id(&self) -> Option<&TaskId> {
        self.task_id.as_ref()
    }
    fn progress(&self) -> Option<f64> {
        None
    }
    fn started_at(&self) -> Option<OffsetDateTime> {
        self.started_at
    }
}

impl Resource for Video {
    type Status = VideoStatus;
    fn id(&self) -> i64 {
        self.id.get()
    }
    fn owner(&self) -> UserId {
        self.user_id
    }
    fn status(&self) -> VideoStatus {
        self.status
    }
    fn task_id(&self) -> Option<&TaskId> {
        self.task_id.as_ref()
    }
    fn progress(&self) -> Option<f64> {
        Some(self.progress)
    }
    fn started_at(&self) -> Option<OffsetDateTime> {
        self.started_at
    }
}

/// A video to insert (status `queued`, progress 0).
#[derive(Debug, Clone, PartialEq)]
pub struct NewVideo {
    pub user_id: UserId,
    pub briefing_id: BriefingId,
    pub option_id: OptionId,
    pub title: String,
    pub generator_type: String,
    pub task_id: TaskId,
}

/// The status of either kind of resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnyStatus {
    Briefing(BriefingStatus),
    Video(VideoStatus),
}

impl From<BriefingStatus> for AnyStatus {
    fn from(s: BriefingStatus) -> Self {
        Self::Briefing(s)
    }
}

impl From<VideoStatus> for AnyStatus {
    fn from(s: VideoStatus) -> Self {
        Self::Video(s)
    }
}

impl AnyStatus {
    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Briefing(s) => s.as_str(),
            Self::Video(s) => s.as_str(),
        }
    }

    /// Whether the owner may cancel it now.
    pub fn is_cancellable(self) -> bool {
        match self {
            Self::Briefing(s) => s.is_cancellable(),
            Self::Video(s) => s.is_cancellable(),
        }
    }

    /// Whether the owner's active list holds it (the domain's `is_listed`).
    pub fn is_listed(self) -> bool {
        match self {
            Self::Briefing(s) => s.is_listed(),
            Self::Video(s) => s.is_listed(),
        }
    }

    /// Which kind of resource has it.
    pub fn kind(self) -> ResourceKind {
        match self {
            Self::Briefing(_) => ResourceKind::Briefing,
            Self::Video(_) => ResourceKind::Video,
        }
    }
}

/// One row of a user's active list (a cancellable briefing or video).
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveResource {
    /// Briefing or video key (the kind is in `status`).
    pub id: i64,
    pub title: String,
    pub status: AnyStatus,
    /// Videos only.
    pub progress: Option<f64>,
    /// Videos only.
    pub generator_type: Option<String>,
    pub task_id: Option<TaskId>,
    pub created_at: OffsetDateTime,
}

/// The largest page of the active list a caller may ask for.
pub const MAX_ACTIVE_PAGE: u32 = 500;
/// The page of the active list when the caller names none.
pub const DEFAULT_ACTIVE_PAGE: u32 = 100;

/// Which page of a user's active list to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActivePage {
    /// `1..=MAX_ACTIVE_PAGE`.
    pub limit: u32,
    /// The last row of the previous page; `None` for the first page.
    pub after: Option<ActivePosition>,
}

impl Default for ActivePage {
    fn default() -> Self {
        Self {
            limit: DEFAULT_ACTIVE_PAGE,
            after: None,
        }
    }
}

/// A row's place in the active list's order (newest first, then kind, then id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActivePosition {
    pub created_at: OffsetDateTime,
    pub kind: ResourceKind,
    pub id: i64,
}

impl ActivePosition {
    /// Where `row` stands.
    pub fn of(row: &ActiveResource) -> Self {
        Self {
            created_at: row.created_at,
            kind: row.status.kind(),
            id: row.id,
        }
    }
}

/// What [`crate::Tasks::active`] read: a page, and the counts of the whole list.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ActiveRows {
    pub rows: Vec<ActiveResource>,
    pub briefings: u64,
    pub videos: u64,
}

/// Which resource a task belongs to, for ownership checks and the reconciler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceRef {
    pub kind: ResourceKind,
    pub id: i64,
    pub user_id: UserId,
}

/// A task whose resource is still in flight, for the reconciler's sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct InFlightTask {
    pub resource: ResourceRef,
    pub task_id: TaskId,
    pub status: AnyStatus,
    /// Videos only.
    pub progress: Option<f64>,
    /// Whether a worker has reported it running yet.
    pub started: bool,
}

/// A running job the automatic timeout cancelled.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpiredJob {
    pub resource: ResourceRef,
    pub task_id: Option<TaskId>,
    pub started_at: OffsetDateTime,
}

/// The outcome of a guarded transition on one resource.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition<T, S> {
    /// The row moved; here it is after the change.
    Done(T),
    /// No such row.
    NotFound,
    /// The row exists but belongs to someone else (reported to the user as `NotFound`; kept
    /// apart only for the security trail).
    NotOwned,
    /// The row is in a status the transition may not leave.
    Refused(S),
}

/// What cancel-all changed, in one transaction.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CancelledAll {
    pub briefings: Vec<(BriefingId, Option<TaskId>)>,
    pub videos: Vec<(VideoId, Option<TaskId>)>,
}

/// A task report the reconciler applies to a briefing (only while it is in flight).
#[derive(Debug, Clone, PartialEq)]
pub enum BriefingUpdate {
    /// The task started: `pending` becomes `processing`.
    Running,
    /// The options arrived: stored with the briefing, which becomes `options_ready`.
    OptionsReady(Vec<GeneratedOption>),
    /// The task failed: `failed` with the message.
    Failed(String),
    /// The task was revoked: `cancelled`.
    Revoked,
}

impl BriefingUpdate {
    /// The change a briefing makes when this update moves it.
    pub fn change(&self) -> ChangeKind {
        match self {
            Self::Running => ChangeKind::Started,
            Self::OptionsReady(_) => ChangeKind::OptionsReady,
            Self::Failed(_) => ChangeKind::Failed,
            Self::Revoked => ChangeKind::Cancelled(CancelReason::Revoked),
        }
    }
}

/// A task report the reconciler applies to a video (only while it is in flight).
#[derive(Debug, Clone, PartialEq)]
pub enum VideoUpdate {
    /// Running: `processing` with this progress.
    Running { progress: f64 },
    /// Finished: `completed` or `pending_approval`, progress 1.
    Finished(VideoStatus),
    /// The task failed: `failed` with the message.
    Failed(String),
    /// The task was revoked: `cancelled`.
    Revoked,
}

impl VideoUpdate {
    /// The change a video makes when this update moves it (a running report is progress; the
    /// reconciler knows when it is the start).
    pub fn change(&self) -> ChangeKind {
        match self {
            Self::Running { .. } => ChangeKind::Progress,
            Self::Finished(VideoStatus::PendingApproval) => ChangeKind::PendingApproval,
            Self::Finished(_) => ChangeKind::Completed,
            Self::Failed(_) => ChangeKind::Failed,
            Self::Revoked => ChangeKind::Cancelled(CancelReason::Revoked),
        }
    }
}

/// A task's state as the broker's result backend knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSnapshot {
    pub task_id: TaskId,
    pub state: CeleryState,
    /// The backend's `result`: the meta of a custom state (`{current, total}`), the return value
    /// of a SUCCESS, the worker's `{pid, hostname}` of a STARTED; `None` when absent or an
    /// exception (see `error`).
    pub info: Option<serde_json::Value>,
    /// `"ValueError: boom"` for FAILURE/RETRY; the revoke reason for REVOKED (`"terminated"`).
    pub error: Option<String>,
    /// Python traceback of a FAILURE/RETRY. Shown to admins only.
    pub traceback: Option<String>,
    /// From a `{current, total}` meta, already clamped to `0.0..=1.0`.
    pub progress: Option<f64>,
}

impl TaskSnapshot {
    /// What the backend says of an id it has no key for.
    pub fn pending(task_id: TaskId) -> Self {
        Self {
            task_id,
            state: CeleryState::Pending,
            info: None,
            error: None,
            traceback: None,
            progress: None,
        }
    }
}

/// What revoking one task achieved: each outcome is one fact the broker observed, never more
/// than happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeOutcome {
    /// The cancel claimed the task before any worker did. A claiming worker never runs it; the
    /// message may still be queued (see [`Self::RemovedFromQueue`]).
    Claimed,
    /// The task's message was taken out of the queue: no worker can take it any more. Reported
    /// after the cancel, by the pass that removes cancelled tasks' messages.
    RemovedFromQueue,
    /// A worker had the task; the kill broadcast reached at least one worker, and no worker has
    /// confirmed the kill yet.
    Signalled,
    /// A worker confirmed it terminated the task (it wrote REVOKED with the reason `terminated`).
    Killed,
    /// A worker had the task and nobody heard the broadcast (no worker subscribed); it may still
    /// run.
    NoWorkerListening,
    /// The task was revoked before this call (an earlier revoke): nothing to stop.
    AlreadyFinished,
    /// The task finished (succeeded or failed) before the kill reached it: its output exists
    /// and goes with the cleanup.
    FinishedFirst,
}

impl RevokeOutcome {
    /// Every outcome.
    pub const ALL: [Self; 7] = [
        Self::Claimed,
        Self::RemovedFromQueue,
        Self::Signalled,
        Self::Killed,
        Self::NoWorkerListening,
        Self::AlreadyFinished,
        Self::FinishedFirst,
    ];

    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Claimed => "claimed",
            Self::RemovedFromQueue => "removed_from_queue",
            Self::Signalled => "signalled",
            Self::Killed => "killed",
            Self::NoWorkerListening => "no_worker_listening",
            Self::AlreadyFinished => "already_finished",
            Self::FinishedFirst => "finished_first",
        }
    }

    /// The outcome whose wire string is `s`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == s)
    }

    /// The seed's `task_revoked`: true only when the task is known to be stopped or stopping.
    pub fn revoked(self) -> bool {
        matches!(
            self,
            Self::Claimed | Self::RemovedFromQueue | Self::Signalled | Self::Killed
        )
    }

    /// Whether the task may have started: its partial files may exist, so a cleanup is owed.
    pub fn may_have_started(self) -> bool {
        !matches!(self, Self::Claimed | Self::RemovedFromQueue)
    }

    /// What a task's final state says its revoke achieved; `None` while it is not final (a
    /// worker still has it). Only a REVOKED whose reason is `terminated` (what a worker writes
    /// once it killed the task) confirms a kill.
    pub fn settled_by(snapshot: &TaskSnapshot) -> Option<Self> {
        match snapshot.state {
            CeleryState::Revoked if snapshot.error.as_deref() == Some("terminated") => {
                Some(Self::Killed)
            }
            CeleryState::Revoked => Some(Self::AlreadyFinished),
            CeleryState::Success | CeleryState::Failure => Some(Self::FinishedFirst),
            _ => None,
        }
    }
}

/// What happened to one task of a revoke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokeReport {
    pub task_id: TaskId,
    pub outcome: RevokeOutcome,
}

/// What became of the revoke that follows a cancel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeStatus {
    /// The broker did this.
    Done(RevokeOutcome),
    /// The resource had no task id: nothing to revoke.
    NoTask,
    /// The broker could not be reached; the database says `cancelled` and holds the revoke,
    /// which the dispatcher delivers when the broker is back.
    Pending,
}

impl RevokeStatus {
    /// The seed's `task_revoked`.
    pub fn revoked(self) -> bool {
        matches!(self, Self::Done(o) if o.revoked())
    }

    /// The wire string of the added `revoke` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Done(o) => o.as_str(),
            Self::NoTask => "no_task",
            Self::Pending => "pending",
        }
    }
}
