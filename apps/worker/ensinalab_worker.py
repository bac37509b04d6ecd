"""EnsinaLab's reference Celery worker: the task contract of docs/celery-contract.md with
simulated work. Stock Celery with the claim package, no database: the service owns every row
and learns results from the Redis result backend.

Start (from the repo root, after scripts/ensure-redis.sh and scripts/ensure-celery-venv.sh):

    .venv/worker/bin/celery --workdir apps/worker -A ensinalab_worker worker -P prefork -c 2 -l INFO

Environment:
    REDIS_URL              result backend, and the broker unless CELERY_BROKER_URL is set
                           (default redis://127.0.0.1:6379/0)
    CELERY_BROKER_URL      the broker when it is not REDIS_URL, e.g. RabbitMQ:
                           amqp://guest:guest@127.0.0.1:5672//
    CELERY_QUEUE           queue to consume (default celery)
    ENSINALAB_OPTIONS_SECS simulated duration of generate_options (default 2)
    ENSINALAB_VIDEO_SECS   simulated duration of generate_video (default 10)
    ENSINALAB_VIDEO_STEPS  PROGRESS updates per video (default 10)
    ENSINALAB_RESULT_COMPRESSION  optional result_compression (e.g. gzip), to test readers
    ENSINALAB_WORK_DIR     where each task writes its partial output, under <task_id>/
                           (default <tmp>/ensinalab/work)
    ENSINALAB_OUTPUT_DIR   where a finished task's output is moved, under <task_id>/
                           (default <tmp>/ensinalab/output)
    ENSINALAB_CLAIM        "on" (default): every task takes the claim below; "off": a STOCK
                           worker, the same tasks and settings without it (for tests that
                           show what a worker without the claim does)

A title starting with "[fail]" makes either task raise
ConnectionError("Failed to connect to OpenAI API") after it wrote some partial output, so
failures and their cleanup can be tested.

Partial files: a generation task writes under ENSINALAB_WORK_DIR/<task_id>/ while it runs and
moves that directory to ENSINALAB_OUTPUT_DIR/<task_id>/ when it succeeds. The service sends
`cleanup_partial_files` after every cancel and failure, and `sweep_orphans` now and then; both
delete only directories directly under the work dir whose name is a task id, never following a
symbolic link, whatever their kwargs say. A cleanup whose reason is "finished_first" (the task
finished between a cancel and its kill) deletes the task's finished output under
ENSINALAB_OUTPUT_DIR the same way.

A task runs only if this worker wins its claim (docs/celery-contract.md, "Cancelling"; the
ensinalab-claim package of packages/ensinalab-claim, adopted with its one line
`ensinalab_claim.install(app)`): right before a task message goes to a pool process, the worker
writes RECEIVED into the task's result key unless the key exists. If the service's cancel wrote
REVOKED there first, the task is discarded as revoked and never runs, whatever revoke
broadcasts this worker heard or missed. With ENSINALAB_CLAIM=off that line is skipped.
"""
import logging
import os
import re
import shutil
import tempfile
import time

import ensinalab_claim
from celery import Celery

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
BROKER_URL = os.environ.get("CELERY_BROKER_URL") or REDIS_URL
QUEUE = os.environ.get("CELERY_QUEUE", "celery")
OPTIONS_SECS = float(os.environ.get("ENSINALAB_OPTIONS_SECS", "2"))
VIDEO_SECS = float(os.environ.get("ENSINALAB_VIDEO_SECS", "10"))
VIDEO_STEPS = max(1, int(os.environ.get("ENSINALAB_VIDEO_STEPS", "10")))
WORK_DIR = os.path.realpath(os.environ.get(
    "ENSINALAB_WORK_DIR", os.path.join(tempfile.gettempdir(), "ensinalab", "work")))
OUTPUT_DIR = os.path.realpath(os.environ.get(
    "ENSINALAB_OUTPUT_DIR", os.path.join(tempfile.gettempdir(), "ensinalab", "output")))
CLAIM = os.environ.get("ENSINALAB_CLAIM", "on")
if CLAIM not in ("on", "off"):
    # A typo must not start a worker without the claim.
    raise ValueError(f'ENSINALAB_CLAIM must be "on" or "off", not {CLAIM!r}')
FAIL_PREFIX = "[fail]"
# The cleanup reason of a job whose task finished between its cancel and the kill.
FINISHED_FIRST = "finished_first"
# A Celery task id as the service makes them: a lowercase hyphenated UUID.
TASK_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

logger = logging.getLogger(__name__)


app = Celery("ensinalab", broker=BROKER_URL, backend=REDIS_URL)
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
if CLAIM == "on":
    ensinalab_claim.install(app)


def _maybe_fail(title):
    if title.startswith(FAIL_PREFIX):
        raise ConnectionError("Failed to connect to OpenAI API")


class PartialOutput:
    """A generation's output while it runs: ENSINALAB_WORK_DIR/<task_id>/, moved to
    ENSINALAB_OUTPUT_DIR/<task_id>/ by finish()."""

    def __init__(self, task_id):
        self.path = _task_dir(WORK_DIR, task_id)
        self.task_id = task_id
        os.makedirs(self.path, exist_ok=True)

    def write(self, name, text):
        with open(os.path.join(self.path, name), "a", encoding="utf-8") as f:
            f.write(text)

    def finish(self):
        final = _task_dir(OUTPUT_DIR, self.task_id)
        os.makedirs(OUTPUT_DIR, exist_ok=True)
        _remove(final)
        os.replace(self.path, final)


def _task_dir(root, task_id):
    """root/<task_id>, for a well-formed task id only (never a path that leaves root)."""
    if not isinstance(task_id, str) or not TASK_ID.fullmatch(task_id):
        raise ValueError(f"not a task id: {task_id!r}")
    return os.path.join(root, task_id)


def _remove(path):
    """Deletes a task directory: a symbolic link is unlinked, never followed; a directory is
    removed with its contents (rmtree does not follow links inside it); anything else, or
    nothing, is left. Returns whether something was deleted."""
    if os.path.islink(path):
        os.unlink(path)
        return True
    if os.path.isdir(path):
        shutil.rmtree(path)
        return True
    return False


@app.task(name="ensinalab.generate_options", bind=True)
def generate_options(self, briefing_id, title, description, duration_minutes):
    """Returns {"options": [{"title", "description", "generator_type"}, ...]}."""
    out = PartialOutput(self.request.id)
    out.write("options.json.part", f"briefing {briefing_id}: {title}\n")
    _maybe_fail(title)
    time.sleep(OPTIONS_SECS)
    options = [
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
    out.finish()
    return {"options": options}


@app.task(name="ensinalab.generate_video", bind=True)
def generate_video(self, video_id, briefing_id, option_id, title, generator_type,
                   duration_minutes):
    """Reports PROGRESS {"current", "total"} and returns {"video_id", "status", "url"?}.

    Avatar videos need a human's approval before they are published, so they end in
    "pending_approval" without a url; the others end "completed" with one.
    """
    out = PartialOutput(self.request.id)
    out.write("video.part", f"video {video_id}, option {option_id}\n")
    _maybe_fail(title)
    pid = os.getpid()
    for step in range(VIDEO_STEPS):
        self.update_state(state="PROGRESS",
                          meta={"current": step, "total": VIDEO_STEPS, "pid": pid})
        out.write("video.part", f"frame {step}\n")
        time.sleep(VIDEO_SECS / VIDEO_STEPS)
    out.finish()
    if generator_type == "avatar":
        return {"video_id": video_id, "status": "pending_approval"}
    return {
        "video_id": video_id,
        "status": "completed",
        "url": f"https://videos.ensinalab.invalid/{video_id}.mp4",
    }


@app.task(name="ensinalab.cleanup_partial_files", ignore_result=True)
def cleanup_partial_files(resource_type, resource_id, task_id, reason):
    """Deletes ENSINALAB_WORK_DIR/<task_id>/, the partial output of a cancelled or failed job,
    and, when the reason is "finished_first" (the task finished between a cancel and its kill:
    the job is cancelled, so its output must go), ENSINALAB_OUTPUT_DIR/<task_id>/ too.
    Idempotent; a task_id that is not a task id deletes nothing and raises. Returns whether
    anything was deleted."""
    dirs = [_task_dir(WORK_DIR, task_id)]
    if reason == FINISHED_FIRST:
        dirs.append(_task_dir(OUTPUT_DIR, task_id))
    removed = [_remove(d) for d in dirs]
    logger.info("cleanup of %s %s (task %s, %s): %s", resource_type, resource_id, task_id,
                reason, "files deleted" if any(removed) else "nothing to delete")
    return any(removed)


@app.task(name="ensinalab.sweep_orphans", ignore_result=True)
def sweep_orphans(in_flight, modified_before):
    """Deletes every task directory under ENSINALAB_WORK_DIR not named in `in_flight` and last
    modified before `modified_before` (epoch seconds). Entries whose name is not a task id are
    not ours and are left alone. Returns how many were deleted."""
    keep = set(in_flight)
    removed = 0
    try:
        entries = list(os.scandir(WORK_DIR))
    except FileNotFoundError:
        return 0
    for entry in entries:
        if not TASK_ID.fullmatch(entry.name) or entry.name in keep:
            continue
        if entry.stat(follow_symlinks=False).st_mtime >= modified_before:
            continue
        if _remove(os.path.join(WORK_DIR, entry.name)):
            removed += 1
    logger.info("orphan sweep: %d partial directories deleted, %d jobs in flight spared",
                removed, len(keep))
    return removed
