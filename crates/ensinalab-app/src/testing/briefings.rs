//! The fake's [`Briefings`].

use ensinalab_domain::{
    BriefingDraft, BriefingId, BriefingStatus, Cancel, CancelReason, OptionId, TaskId, UserId,
};
use time::OffsetDateTime;

use super::*;
use ensinalab_ports::{Briefing, BriefingOption, BriefingUpdate, Briefings, StoreError};

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
