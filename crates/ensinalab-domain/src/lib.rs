//! EnsinaLab's pure rules, shared by every Rust service that touches generation jobs.
//!
//! This crate owns the vocabulary (typed ids, briefing and video statuses, Celery task states)
//! and the rules over it: the cancel (who may cancel what, for which reason, and what it
//! writes: [`decide_cancel`]), when a running job has run too long ([`AutoCancel`]), which
//! transitions a background writer may make, how long a job has run and whether it is stuck,
//! and how a Celery state maps to the `ready`/`successful`/`failed` triple the API shows. It does no IO, has no async and
//! knows no framework: every rule is a plain function, and time is always passed in as `now`.

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
