//! Many concurrent cancels, cancel-alls and worker completions on the same rows, over HTTP on
//! PostgreSQL: every row ends in exactly one terminal state, every cancel response matches what
//! happened, and the security trail has one event per real cancellation.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ensinalab_app::new_task_id;
use ensinalab_domain::{BriefingDraft, GeneratedOption, UserId, VideoId, VideoStatus};
use ensinalab_local::{LocalBroker, LocalConfig};
use ensinalab_ports::{
    BriefingUpdate, Briefings, NewVideo, SecurityEventQuery, SecurityLog, VideoUpdate, Videos,
};
use ensinalab_store::testing::TestPostgres;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::sync::Barrier;

use crate::support::*;

const VIDEOS: usize = 24;
const CANCELS_PER_VIDEO: usize = 3;
const CANCEL_ALLS: usize = 3;

pub(crate) async fn processing_video(store: &ensinalab_store::SqlStore, user: UserId) -> VideoId {
    let draft = BriefingDraft::new("Gestão de Sala de Aula", "...", 10).unwrap();
    let b = store
        .create_briefing(user, &draft, &new_task_id(), u32::MAX)
        .await
        .unwrap()
        .expect("a free job slot");
    let option = GeneratedOption {
        title: "Como usar Google Classroom".into(),
        description: "d".into(),
        generator_type: "simple".into(),
    };
    let ready = BriefingUpdate::OptionsReady(vec![option]);
    assert!(
        store
            .apply_briefing_update(b.id, &ready)
            .await
            .unwrap()
            .is_some()
    );
    let (_, options) = store.briefing(b.id).await.unwrap().unwrap();
    let v = store
        .create_video(
            &NewVideo {
                user_id: user,
                briefing_id: b.id,
                option_id: options[0].id,
                title: "Como usar Google Classroom".into(),
                generator_type: "simple".into(),
                task_id: new_task_id(),
            },
            u32::MAX,
        )
        .await
        .unwrap()
        .expect("a free job slot");
    let running = VideoUpdate::Running { progress: 0.5 };
    assert!(
        store
            .apply_video_update(v.id, &running)
            .await
            .unwrap()
            .is_some()
    );
    v.id
}

enum Outcome {
    Cancel(VideoId, StatusCode, Value),
    CancelAll(Value),
    Complete(VideoId, bool),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_cancels_cancel_alls_and_completions_end_in_one_terminal_state_each() {
    let db = TestPostgres::new()
        .await
        .expect("PostgreSQL at 127.0.0.1:5432 (scripts/ensure-postgres.sh)");
    let store = db.store().clone();
    let broker = LocalBroker::new(LocalConfig {
        options_duration: Duration::from_secs(600),
        video_duration: Duration::from_secs(600),
    });
    let app = Arc::new(spawn(store.clone(), broker, Feeds::default(), &[]));
    let token = app.token(1);
    let user = UserId(1);
    // The briefings made for the videos are options_ready: cancel-all leaves them alone.
    let mut videos = Vec::with_capacity(VIDEOS);
    for _ in 0..VIDEOS {
        videos.push(processing_video(&store, user).await);
    }

    let contenders = VIDEOS * (CANCELS_PER_VIDEO + 1) + CANCEL_ALLS;
    let start = Arc::new(Barrier::new(contenders));
    let mut tasks = Vec::with_capacity(contenders);
    for &id in &videos {
        for _ in 0..CANCELS_PER_VIDEO {
            let (app, start, token) = (Arc::clone(&app), Arc::clone(&start), token.clone());
            let hash = app.ids.encode(id.get());
            tasks.push(tokio::spawn(async move {
                start.wait().await;
                let (status, body) = app.post(&format!("/videos/{hash}/cancel"), &token).await;
                Outcome::Cancel(id, status, body)
            }));
        }
        let (store, start) = (store.clone(), Arc::clone(&start));
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            // What the reconciler writes when a worker reports SUCCESS.
            let done = VideoUpdate::Finished(VideoStatus::Completed);
            Outcome::Complete(
                id,
                store.apply_video_update(id, &done).await.unwrap().is_some(),
            )
        }));
    }
    for _ in 0..CANCEL_ALLS {
        let (app, start, token) = (Arc::clone(&app), Arc::clone(&start), token.clone());
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            let (status, body) = app.post("/tasks/cancel-all", &token).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            Outcome::CancelAll(body)
        }));
    }

    // Per video: who says they won.
    let mut cancelled_by: HashMap<VideoId, usize> = HashMap::new();
    let mut completed_by: HashMap<VideoId, usize> = HashMap::new();
    let mut refused_as: HashMap<VideoId, Vec<String>> = HashMap::new();
    let mut single_cancels = 0;
    let mut all_counts = Vec::new();
    let by_hash: HashMap<String, VideoId> = videos
        .iter()
        .map(|&v| (app.ids.encode(v.get()), v))
        .collect();
    for task in tasks {
        match task.await.unwrap() {
            Outcome::Cancel(id, StatusCode::OK, body) => {
                assert_eq!(body["status"], "cancelled", "{body}");
                *cancelled_by.entry(id).or_default() += 1;
                single_cancels += 1;
            }
            Outcome::Cancel(id, status, body) => {
                assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
                let detail = body["detail"].as_str().unwrap().to_owned();
                refused_as.entry(id).or_default().push(detail);
            }
            Outcome::CancelAll(body) => {
                let listed = body["cancelled"]["videos"].as_array().unwrap();
                all_counts.push(listed.len());
                for hash in listed {
                    let id = by_hash[hash.as_str().unwrap()];
                    *cancelled_by.entry(id).or_default() += 1;
                }
            }
            Outcome::Complete(id, true) => *completed_by.entry(id).or_default() += 1,
            Outcome::Complete(_, false) => {}
        }
    }

    for &id in &videos {
        let row = store.video(id).await.unwrap().unwrap();
        let cancels = cancelled_by.get(&id).copied().unwrap_or(0);
        let completions = completed_by.get(&id).copied().unwrap_or(0);
        match row.status {
            VideoStatus::Cancelled => assert_eq!((cancels, completions), (1, 0), "{id:?}"),
            VideoStatus::Completed => assert_eq!((cancels, completions), (0, 1), "{id:?}"),
            other => panic!("{id:?} ended {other}"),
        }
        // Every refusal names a terminal status, and `completed` only if it really completed.
        for detail in refused_as.get(&id).into_iter().flatten() {
            let current = detail.rsplit(": ").next().unwrap();
            assert!(
                current == "cancelled" || current == row.status.as_str(),
                "{id:?} ended {} but a refusal said {detail}",
                row.status
            );
        }
    }

    // The trail: one video_cancelled per single cancel that won, one tasks_cancelled_all per
    // call whose counts add up to what the calls moved.
    let trail = store
        .security_events(&SecurityEventQuery {
            user_id: Some(user),
            limit: 200,
            ..SecurityEventQuery::default()
        })
        .await
        .unwrap();
    let named = |name: &str| {
        trail
            .events
            .iter()
            .filter(|e| e.event.event.as_str() == name)
            .collect::<Vec<_>>()
    };
    assert_eq!(named("video_cancelled").len(), single_cancels);
    let alls = named("tasks_cancelled_all");
    assert_eq!(alls.len(), CANCEL_ALLS);
    let logged: u64 = alls
        .iter()
        .map(|e| e.event.details["videos"].as_u64().unwrap())
        .sum();
    assert_eq!(logged, all_counts.iter().sum::<usize>() as u64);
    assert_eq!(
        named("cancel_refused").len(),
        refused_as.values().map(Vec::len).sum::<usize>()
    );
    drop(app);
    db.cleanup().await.unwrap();
}
