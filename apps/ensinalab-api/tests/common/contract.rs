//! The seed's response bodies that several test binaries assert, written once.

use serde_json::{Value, json};

/// `POST /videos/{hash}/cancel`: the seed's body plus the added `revoke`.
pub fn video_cancelled(hash: &str, task_revoked: bool, revoke: &str) -> Value {
    json!({
        "video_id": hash,
        "message": "Vídeo cancelado com sucesso",
        "task_revoked": task_revoked,
        "status": "cancelled",
        "revoke": revoke,
    })
}

/// `POST /briefings/{hash}/cancel-generation`: the seed's body plus the added `revoke`.
pub fn briefing_cancelled(hash: &str, task_revoked: bool, revoke: &str) -> Value {
    json!({
        "briefing_id": hash,
        "message": "Geração de opções cancelada com sucesso",
        "task_revoked": task_revoked,
        "status": "cancelled",
        "revoke": revoke,
    })
}

/// `GET /tasks/{task}/status` of a failed task, as its owner (not an admin) sees it.
pub fn failed_task(task: &str, error: &str) -> Value {
    json!({
        "task_id": task,
        "state": "FAILURE",
        "ready": true,
        "successful": false,
        "failed": true,
        "error": error,
    })
}
