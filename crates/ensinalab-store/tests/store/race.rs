//! A user's cancel racing a worker's report, on PostgreSQL (where the two really run at once on
//! separate connections): each row ends in exactly one terminal state and the loser is told.

use std::sync::Arc;

use ensinalab_domain::{BriefingStatus, CANCELLED_BY_USER, VideoStatus};
use ensinalab_ports::{BriefingUpdate, Briefings, Transition, VideoUpdate, Videos};
use ensinalab_store::testing::TestPostgres;
use tokio::sync::Barrier;

use crate::support::*;

const PAIRS: usize = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancel_racing_a_completion_ends_in_exactly_one_terminal_state_and_the_loser_knows() {
    let db = TestPostgres::new()
        .await
        .expect("a fresh PostgreSQL database");
    let store = db.store().clone();
    let mut videos = Vec::with_capacity(PAIRS);
    for _ in 0..PAIRS {
        videos.push(video_in(&store, ALICE, VideoStatus::Processing).await);
    }

    let mut races = Vec::with_capacity(PAIRS);
    for v in &videos {
        let start = Arc::new(Barrier::new(2));
        let (canceller, finisher) = (store.clone(), store.clone());
        let (start_cancel, start_finish) = (start.clone(), start);
        let id = v.id;
        let cancel = tokio::spawn(async move {
            start_cancel.wait().await;
            canceller.cancel(ALICE, id, &by_user()).await
        });
        let finish = tokio::spawn(async move {
            start_finish.wait().await;
            finisher
                .apply_video_update(id, &VideoUpdate::Finished(VideoStatus::Completed))
                .await
        });
        races.push((id, cancel, finish));
    }

    let (mut cancels_won, mut completions_won) = (0, 0);
    for (id, cancel, finish) in races {
        let cancelled = cancel.await.unwrap().unwrap();
        let completed = finish.await.unwrap().unwrap();
        let row = store.video(id).await.unwrap().unwrap();
        match (cancelled, completed) {
            (Transition::Done(done), None) => {
                cancels_won += 1;
                assert_eq!(row.status, VideoStatus::Cancelled);
                assert_eq!(row.error_message.as_deref(), Some(CANCELLED_BY_USER));
                assert_eq!(row.progress, 0.0);
                assert_eq!(done, row);
            }
            (Transition::Refused(VideoStatus::Completed), Some(_)) => {
                completions_won += 1;
                assert_eq!(row.status, VideoStatus::Completed);
                assert_eq!(row.error_message, None);
                assert_eq!(row.progress, 1.0);
            }
            other => panic!("video {id}: both or neither won: {other:?}, row {row:?}"),
        }
    }
    eprintln!("{PAIRS} races: cancel won {cancels_won}, completion won {completions_won}");
    db.cleanup().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancel_racing_options_ready_never_leaves_options_on_a_cancelled_briefing() {
    let db = TestPostgres::new()
        .await
        .expect("a fresh PostgreSQL database");
    let store = db.store().clone();
    let mut races = Vec::with_capacity(PAIRS);
    for _ in 0..PAIRS {
        let b = store
            .create_briefing(ALICE, &draft(), &task(), u32::MAX)
            .await
            .unwrap()
            .expect("a free job slot");
        let start = Arc::new(Barrier::new(2));
        let (canceller, reporter) = (store.clone(), store.clone());
        let (start_cancel, start_report) = (start.clone(), start);
        let id = b.id;
        let cancel = tokio::spawn(async move {
            start_cancel.wait().await;
            canceller.cancel(ALICE, id, &by_user()).await
        });
        let report = tokio::spawn(async move {
            start_report.wait().await;
            let options = vec![generated("Primeira"), generated("Segunda")];
            reporter
                .apply_briefing_update(id, &BriefingUpdate::OptionsReady(options))
                .await
        });
        races.push((id, cancel, report));
    }

    let (mut cancels_won, mut reports_won) = (0, 0);
    for (id, cancel, report) in races {
        let cancelled = cancel.await.unwrap().unwrap();
        let reported = report.await.unwrap().unwrap();
        let (row, options) = store.briefing(id).await.unwrap().unwrap();
        match (cancelled, reported) {
            (Transition::Done(done), None) => {
                cancels_won += 1;
                assert_eq!(row.status, BriefingStatus::Cancelled);
                assert!(
                    options.is_empty(),
                    "briefing {id}: options on a cancelled row"
                );
                assert_eq!(done, row);
            }
            (Transition::Refused(BriefingStatus::OptionsReady), Some(_)) => {
                reports_won += 1;
                assert_eq!(row.status, BriefingStatus::OptionsReady);
                assert_eq!(options.len(), 2);
            }
            other => panic!("briefing {id}: both or neither won: {other:?}, row {row:?}"),
        }
    }
    eprintln!("{PAIRS} races: cancel won {cancels_won}, options won {reports_won}");
    db.cleanup().await.unwrap();
}
