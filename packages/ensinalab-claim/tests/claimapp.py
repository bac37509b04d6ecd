"""The Celery app the tests run a real worker of: an existing app that adopts the claim with the
one line, tasks defined on both sides of it, one of them with a request class of its own.

Environment (set by the tests):
    CLAIM_TEST_BROKER   broker URL
    CLAIM_TEST_BACKEND  result backend URL
    CLAIM_TEST_QUEUE    the queue
    CLAIM_TEST_MARKS    directory where tasks leave a file per run, to tell what ran
"""
import os

from celery import Celery
from celery.worker.request import Request

import ensinalab_claim

MARKS = os.environ.get("CLAIM_TEST_MARKS", "/nonexistent")
RESULT_EXPIRES = 7200

app = Celery(
    "claimtest",
    broker=os.environ.get("CLAIM_TEST_BROKER"),
    backend=os.environ.get("CLAIM_TEST_BACKEND"),
)
app.conf.update(
    task_default_queue=os.environ.get("CLAIM_TEST_QUEUE", "celery"),
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_track_started=True,
    result_expires=RESULT_EXPIRES,
    worker_prefetch_multiplier=1,
)


def mark(task_id, what):
    with open(os.path.join(MARKS, f"{task_id}.{what}"), "a", encoding="utf-8") as f:
        f.write("x")


@app.task(name="claimtest.work", bind=True)
def work(self, label):
    mark(self.request.id, "ran")
    return {"label": label}


ensinalab_claim.install(app)


@app.task(name="claimtest.tidy", bind=True, ignore_result=True)
def tidy(self):
    mark(self.request.id, "ran")


class MarkingRequest(Request):
    """A request class of the app's own: it notes when a pool process accepted the task."""

    def on_accepted(self, pid, time_accepted):
        mark(self.id, "accepted")
        return super().on_accepted(pid, time_accepted)


class MarkingTask(app.Task):
    # By qualified name, as Celery documents it may be given.
    Request = "claimapp:MarkingRequest"


@app.task(name="claimtest.custom", bind=True, base=MarkingTask)
def custom(self, label):
    mark(self.request.id, "ran")
    return {"label": label}
