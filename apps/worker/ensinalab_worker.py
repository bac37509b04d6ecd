"""EnsinaLab's reference Celery worker: the task contract of docs/celery-contract.md with
simulated work. Stock Celery, no database: the service owns every row and learns results
from the Redis result backend.

Start (from the repo root, after scripts/ensure-redis.sh and scripts/ensure-celery-venv.sh):

    .venv/worker/bin/celery --workdir apps/worker -A ensinalab_worker worker -P prefork -c 2 -l INFO

Environment:
    REDIS_URL              broker and result backend (default redis://127.0.0.1:6379/0)
    CELERY_QUEUE           queue to consume (default celery)
    ENSINALAB_OPTIONS_SECS simulated duration of generate_options (default 2)
    ENSINALAB_VIDEO_SECS   simulated duration of generate_video (default 10)
    ENSINALAB_VIDEO_STEPS  PROGRESS updates per video (default 10)
    ENSINALAB_RESULT_COMPRESSION  optional result_compression (e.g. gzip), to test readers

A title starting with "[fail]" makes either task raise
ConnectionError("Failed to connect to OpenAI API"), so failures can be tested.

A task runs only if this worker wins its claim (docs/celery-contract.md, "Cancelling"): right
before a task message goes to a pool process, the worker writes RECEIVED into the task's result
key unless the key exists. If the service's cancel wrote REVOKED there first, the task is
discarded as revoked and never runs, whatever revoke broadcasts this worker heard or missed.
"""
import logging
import os
import time

import redis
from celery import Celery, Task, states
from celery.worker.request import Request
from celery.worker.state import revoked as revoked_ids
from celery.worker.state import task_ready

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
QUEUE = os.environ.get("CELERY_QUEUE", "celery")
OPTIONS_SECS = float(os.environ.get("ENSINALAB_OPTIONS_SECS", "2"))
VIDEO_SECS = float(os.environ.get("ENSINALAB_VIDEO_SECS", "10"))
VIDEO_STEPS = max(1, int(os.environ.get("ENSINALAB_VIDEO_STEPS", "10")))
FAIL_PREFIX = "[fail]"
CLAIM_RETRY_PAUSE_SECS = 1.0

logger = logging.getLogger(__name__)


class ClaimedRequest(Request):
    """A task message that runs only if this worker wins the task's claim.

    Celery asks `revoked()` right before it hands a message to the pool (and on receipt, for
    messages with an expiry), so the claim is taken there: one `SET <result key> <RECEIVED> NX
    GET`, atomic against the service's cancel, which writes REVOKED the same way.
    """

    def revoked(self):
        if self.id not in revoked_ids:
            backend = self.task.backend
            received = backend.encode({
                "status": states.RECEIVED, "result": None, "traceback": None,
                "children": [], "date_done": None, "task_id": self.id,
            })
            try:
                before = backend.client.set(
                    backend.get_key_for_task(self.id), received,
                    nx=True, get=True, ex=backend.expires or None,
                )
            except redis.RedisError as exc:
                # Fail closed: a task whose claim is unknown is not run here; the message goes
                # back to the queue (or stays in `unacked`, to be restored) and is tried again.
                # The pause keeps an error that persists from spinning through the queue.
                logger.error("claim of %s[%s] failed (%r): not run, requeued",
                             self.name, self.id, exc)
                time.sleep(CLAIM_RETRY_PAUSE_SECS)
                self.reject(requeue=True)
                task_ready(self)
                return True
            if before is not None and _status(backend, before) == states.REVOKED:
                revoked_ids.add(self.id)
        return super().revoked()


def _status(backend, raw):
    try:
        return backend.decode(raw).get("status")
    except Exception:  # noqa: BLE001 - a value nobody can read claims nothing
        logger.warning("unreadable result value %r", raw[:80])
        return None


class ClaimingTask(Task):
    Request = ClaimedRequest


app = Celery("ensinalab", broker=REDIS_URL, backend=REDIS_URL, task_cls=ClaimingTask)
app.conf.update(
    task_default_queue=QUEUE,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    # STARTED (with the pool child's pid) is what lets the service show "processing" and check
    # that a cancel really killed the process.
    task_track_started=True,
    # name/args/kwargs/worker/queue in the backend value, for operators and the reconciler.
    result_extended=True,
    # Take a message only when a pool process is free: a queued task stays in the Redis list,
    # visible to operators and to other workers, instead of in this worker's memory.
    worker_prefetch_multiplier=1,
    worker_disable_prefetch=True,
    broker_connection_retry_on_startup=True,
    # Off by default (the service reads plain, gzip/zlib values; other codecs are reported).
    result_compression=os.environ.get("ENSINALAB_RESULT_COMPRESSION") or None,
)


def _maybe_fail(title):
    if title.startswith(FAIL_PREFIX):
        raise ConnectionError("Failed to connect to OpenAI API")


@app.task(name="ensinalab.generate_options", bind=True)
def generate_options(self, briefing_id, title, description, duration_minutes):
    """Returns {"options": [{"title", "description", "generator_type"}, ...]}."""
    _maybe_fail(title)
    time.sleep(OPTIONS_SECS)
    return {
        "options": [
            {
                "title": f"{title}: {label}",
                "description": f"{label} de {duration_minutes} min sobre: {description}",
                "generator_type": generator_type,
            }
            for label, generator_type in (
                ("Aula expositiva", "simple"),
                ("Apresentador virtual", "avatar"),
                ("Animação", "animation"),
            )
        ]
    }


@app.task(name="ensinalab.generate_video", bind=True)
def generate_video(self, video_id, briefing_id, option_id, title, generator_type,
                   duration_minutes):
    """Reports PROGRESS {"current", "total"} and returns {"video_id", "status", "url"?}.

    Avatar videos need a human's approval before they are published, so they end in
    "pending_approval" without a url; the others end "completed" with one.
    """
    _maybe_fail(title)
    pid = os.getpid()
    for step in range(VIDEO_STEPS):
        self.update_state(state="PROGRESS",
                          meta={"current": step, "total": VIDEO_STEPS, "pid": pid})
        time.sleep(VIDEO_SECS / VIDEO_STEPS)
    if generator_type == "avatar":
        return {"video_id": video_id, "status": "pending_approval"}
    return {
        "video_id": video_id,
        "status": "completed",
        "url": f"https://videos.ensinalab.invalid/{video_id}.mp4",
    }
