//! The automatic timeout on the embedded default (SQLite, the in-process broker): a video that
//! runs past its limit is cancelled by the server, and its task stopped.

use std::time::Duration;

use ensinalab_domain::{AutoCancel, CANCELLED_BY_TIMEOUT};

use crate::both;
use crate::helpers::{Settings, TestApp};

fn one_second_limit() -> Settings {
    Settings {
        auto_cancel: AutoCancel::new(1.0, Duration::from_secs(60), Duration::from_secs(1)),
        auto_cancel_sweep: Duration::from_secs(1),
        ..Settings::default()
    }
}

async fn a_video_running_past_its_limit_is_cancelled_by_the_server(app: &TestApp) {
    let token = app.token(1);
    let hash = app.select_video(1, &token).await;

    let mut last = serde_json::Value::Null;
    for _ in 0..150 {
        let (_, body) = app.get(&format!("/videos/{hash}/status"), &token).await;
        if body["status"] == "cancelled" {
            last = body;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(last["status"], "cancelled", "{last}");
    assert_eq!(last["error_message"], CANCELLED_BY_TIMEOUT);
    assert_eq!(app.broker().running(), 0, "its task was stopped");
    // The event is written after the row's commit and the revoke: wait for it too.
    let mut events = Vec::new();
    for _ in 0..50 {
        events = ensinalab_store::testing::security_events(&app.store)
            .await
            .expect("events");
        if events.iter().any(|e| e.event.as_str() == "auto_cancelled") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let auto: Vec<_> = events
        .iter()
        .filter(|e| e.event.as_str() == "auto_cancelled")
        .collect();
    assert_eq!(auto.len(), 1, "{events:?}");
    assert_eq!(auto[0].details["limit_secs"], 1);
}
both!(
    a_video_running_past_its_limit_is_cancelled_by_the_server,
    one_second_limit
);
