//! What the alerts need from the store: a revoke is overdue once (one marker wins), and one
//! alert e-mail slot per interval, whoever asks.

use std::time::Duration as StdDuration;

use ensinalab_domain::VideoStatus;
use ensinalab_ports::{MailSlots, RevokeOutbox, RevokeOutcome, RevokeReport};
use time::{Duration, OffsetDateTime};

use crate::support::*;

on_both_backends! {
    async fn overdue_revokes_are_the_late_unsettled_ones_and_each_is_marked_once(store: Store) {
        let pending = video_in(&store, ALICE, VideoStatus::Processing).await;
        let delivered = video_in(&store, ALICE, VideoStatus::Processing).await;
        let settled = video_in(&store, ALICE, VideoStatus::Processing).await;
        for v in [&pending, &delivered, &settled] {
            store.cancel(ALICE, v.id, &by_user()).await.unwrap();
        }
        let (p, d, s) = (
            pending.task_id.clone().unwrap(),
            delivered.task_id.clone().unwrap(),
            settled.task_id.clone().unwrap(),
        );
        let now = OffsetDateTime::now_utc();
        let reports = [
            RevokeReport { task_id: d.clone(), outcome: RevokeOutcome::Signalled },
            RevokeReport { task_id: s.clone(), outcome: RevokeOutcome::AlreadyFinished },
        ];
        store.revokes_delivered(&reports, now).await.unwrap();

        let within = store.overdue_candidates(now - Duration::seconds(60), 10).await.unwrap();
        assert!(within.is_empty(), "{within:?}");
        let later = now + Duration::seconds(61);
        let mut late: Vec<_> = store
            .overdue_candidates(later - Duration::seconds(60), 10)
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.task_id, r.delivered_at.is_some()))
            .collect();
        late.sort();
        let mut expected = vec![(p.clone(), false), (d.clone(), true)];
        expected.sort();
        assert_eq!(late, expected, "the settled one is never overdue");

        let first = store.mark_overdue(&[p.clone(), d.clone()], later).await.unwrap();
        assert_eq!(first.len(), 2);
        assert!(store.mark_overdue(&[p.clone(), d.clone()], later).await.unwrap().is_empty());
        assert!(store.overdue_candidates(later, 10).await.unwrap().is_empty());
    }
}

on_both_backends! {
    async fn one_mail_slot_per_interval(store: Store) {
        let every = StdDuration::from_secs(300);
        let t0 = OffsetDateTime::now_utc();
        assert!(store.claim_mail_slot(t0, every).await.unwrap());
        assert!(!store.claim_mail_slot(t0, every).await.unwrap(), "taken");
        assert!(!store.claim_mail_slot(t0 + Duration::seconds(299), every).await.unwrap());
        assert!(store.claim_mail_slot(t0 + Duration::seconds(300), every).await.unwrap());
        assert!(!store.claim_mail_slot(t0 + Duration::seconds(301), every).await.unwrap());
    }
}
