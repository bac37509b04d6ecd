//! The fake's guarded cancel of one row ([`Cancels`]).

use ensinalab_domain::{BriefingStatus, Cancel, UserId, VideoStatus};
use time::OffsetDateTime;

use super::*;
use ensinalab_ports::{
    Briefing, Cancels, Resource, ResourceId, Status, StoreError, Transition, Video,
};

/// A row the fake can cancel: where its table is, and what `cancel` says, written into it.
pub(super) trait Cancelable: Resource {
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

pub(super) fn cancel_row<R: Cancelable>(
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
