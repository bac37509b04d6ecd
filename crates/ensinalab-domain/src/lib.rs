//! EnsinaLab's pure rules, shared by every Rust service that touches generation jobs.
//!
//! This crate owns the vocabulary (typed ids, briefing and video statuses, Celery task states)
//! and the rules over it: the cancel (who may cancel what, for which reason, and what it
//! writes: [`Cancel::new`], guarded by [`Cancel::allows`]), when a running job has run too long
//! ([`AutoCancel::cutoff`]), which transitions a background writer may make ([`Lifecycle`]),
//! how long a job has run and whether it is stuck ([`Elapsed`]), when a task's worker counts as
//! lost ([`lost_worker_grace`]), and how a Celery state maps to the
//! `ready`/`successful`/`failed` triple the API shows ([`CeleryState`]). It does no IO, has no
//! async and knows no framework: every rule is a plain function, and time is always passed in
//! as `now`.
//!
//! # Example
//!
//! What a service that controls jobs asks of it: may this job be cancelled, and what does the
//! cancel write; is it stuck; is it late for the automatic timeout; what does its task's state
//! mean.
//!
//! ```
//! use std::time::Duration;
//!
//! use ensinalab_domain::{
//!     AutoCancel, CANCELLED_BY_TIMEOUT, CANCELLED_BY_USER, Cancel, CancelReason, CeleryState,
//!     DEFAULT_TASK_TIME_LIMIT_SECS, Elapsed, ResourceKind, VideoStatus,
//! };
//! use time::macros::datetime;
//!
//! // A user's cancel of a video: the statuses it may move from, and what it writes.
//! let cancel = Cancel::<VideoStatus>::new(CancelReason::User);
//! assert!(cancel.allows(VideoStatus::Processing));
//! assert!(cancel.allows(VideoStatus::PendingApproval));
//! assert!(!cancel.allows(VideoStatus::Completed));
//! assert_eq!(cancel.to, VideoStatus::Cancelled);
//! assert_eq!(cancel.error_message, Some(CANCELLED_BY_USER));
//! assert_eq!(cancel.progress, Some(0.0));
//! // A store runs it as ONE `UPDATE … WHERE status IN (<from>)`, never reading first.
//! let guard: Vec<&str> = cancel.from.iter().map(|s| s.as_str()).collect();
//! assert_eq!(guard, ["queued", "processing", "pending_approval"]);
//!
//! // Stuck: running longer than the task time limit since its creation (a flag only).
//! let created = datetime!(2025-11-13 10:30:00 UTC);
//! let now = datetime!(2025-11-13 10:36:05 UTC);
//! let elapsed = Elapsed::between(created, now);
//! assert_eq!(elapsed.formatted(), "6m 5s");
//! assert!(elapsed.is_stuck(DEFAULT_TASK_TIME_LIMIT_SECS));
//!
//! // Late: the automatic timeout cancels the running jobs that started before the cutoff,
//! // for `CancelReason::Timeout`, whose guard leaves a job waiting in the queue alone.
//! let policy = AutoCancel::new(2.0, Duration::from_secs(60), Duration::from_secs(150)).unwrap();
//! assert_eq!(policy.cutoff(ResourceKind::Video, now), datetime!(2025-11-13 10:31:05 UTC));
//! assert_eq!(policy.cutoff(ResourceKind::Briefing, now), datetime!(2025-11-13 10:34:05 UTC));
//! let timeout = Cancel::<VideoStatus>::new(CancelReason::Timeout);
//! assert!(timeout.allows(VideoStatus::Processing));
//! assert!(!timeout.allows(VideoStatus::Queued));
//! assert_eq!(timeout.error_message, Some(CANCELLED_BY_TIMEOUT));
//!
//! // A Celery state, as the API's `ready` / `successful` / `failed`.
//! let failed = CeleryState::parse("FAILURE");
//! assert_eq!((failed.ready(), failed.successful(), failed.failed()), (true, Some(false), Some(true)));
//! let running = CeleryState::parse("PROGRESS");
//! assert_eq!((running.ready(), running.successful(), running.failed()), (false, None, None));
//! assert!(running.is_running());
//! // REVOKED is final for Celery, but the seed's contract shows it as not ready.
//! let revoked = CeleryState::parse("REVOKED");
//! assert!(revoked.is_final() && !revoked.ready());
//! ```

#![deny(missing_docs)]

mod cancel;
mod celery;
mod draft;
mod elapsed;
mod ids;
mod status;
mod timeout;

pub use cancel::{CANCELLED_BY_TIMEOUT, CANCELLED_BY_USER, Cancel, CancelReason};
pub use celery::{CeleryState, progress_fraction};
pub use draft::{BriefingDraft, DraftError, GeneratedOption};
pub use elapsed::{DEFAULT_TASK_TIME_LIMIT_SECS, Elapsed, lost_worker_grace};
pub use ids::{BriefingId, IdError, OptionId, TaskId, UserId, VideoId};
pub use status::{
    BriefingStatus, Lifecycle, ResourceKind, UnknownKind, UnknownStatus, VideoStatus,
};
pub use timeout::AutoCancel;
