use super::*;
use ensinalab_domain::TaskId;
use serde_json::json;
use time::macros::datetime;

fn snapshot(state: &str) -> TaskSnapshot {
    let failing = matches!(state, "FAILURE" | "RETRY");
    TaskSnapshot {
        state: CeleryState::parse(state),
        info: match state {
            "SUCCESS" => Some(json!({"video_id": 123, "status": "completed"})),
            "PROGRESS" => Some(json!({"current": 50, "total": 100})),
            _ => None,
        },
        error: failing.then(|| "ConnectionError: Failed to connect to OpenAI API".into()),
        traceback: failing.then(|| "Traceback (most recent call last):\n  File...".into()),
        progress: None,
        ..TaskSnapshot::pending(TaskId::parse("550e8400-e29b-41d4-a716-446655440000").unwrap())
    }
}

#[test]
fn task_status_bodies_have_the_seeds_fields_for_each_state() {
    let id = "550e8400-e29b-41d4-a716-446655440000";
    let table = [
        (
            "PROGRESS",
            json!({"task_id": id, "state": "PROGRESS", "ready": false, "successful": null,
                   "failed": null, "info": {"current": 50, "total": 100}}),
        ),
        (
            "PENDING",
            json!({"task_id": id, "state": "PENDING", "ready": false, "successful": null,
                   "failed": null, "info": null}),
        ),
        (
            "SUCCESS",
            json!({"task_id": id, "state": "SUCCESS", "ready": true, "successful": true,
                   "failed": false, "result": {"video_id": 123, "status": "completed"}}),
        ),
        (
            "FAILURE",
            json!({"task_id": id, "state": "FAILURE", "ready": true, "successful": false,
                   "failed": true, "error": "ConnectionError: Failed to connect to OpenAI API",
                   "traceback": "Traceback (most recent call last):\n  File..."}),
        ),
        (
            "REVOKED",
            json!({"task_id": id, "state": "REVOKED", "ready": false, "successful": null,
                   "failed": null, "info": "Task foi cancelada"}),
        ),
    ];
    for (state, expected) in table {
        let body = serde_json::to_value(TaskStatusResponse::from(snapshot(state))).unwrap();
        assert_eq!(body, expected, "{state}");
    }
}

#[test]
fn times_are_rfc3339_utc_to_the_second() {
    let t = datetime!(2025-11-13 07:30:00.123456 -3);
    assert_eq!(rfc3339(t), "2025-11-13T10:30:00Z");
}
