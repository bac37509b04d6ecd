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
"""
import os
import time

from celery import Celery

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
QUEUE = os.environ.get("CELERY_QUEUE", "celery")
OPTIONS_SECS = float(os.environ.get("ENSINALAB_OPTIONS_SECS", "2"))
VIDEO_SECS = float(os.environ.get("ENSINALAB_VIDEO_SECS", "10"))
VIDEO_STEPS = max(1, int(os.environ.get("ENSINALAB_VIDEO_STEPS", "10")))
FAIL_PREFIX = "[fail]"

app = Celery("ensinalab", broker=REDIS_URL, backend=REDIS_URL)
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
    # Fetch a message only when a pool process is free: a queued task stays in the Redis list
    # (where the service can remove it atomically on cancel) instead of in worker memory.
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
