//! The fake's security trail ([`SecurityLog`]).

use time::OffsetDateTime;

use super::*;
use ensinalab_ports::{
    SecurityEvent, SecurityEventPage, SecurityEventQuery, SecurityLog, StoreError,
};

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
