"""The claim: a Celery (5.3 or later) worker runs a task only if it wins the task's result key.

Right before a worker hands a task message to its pool, it runs one atomic command on the Redis
result backend:

    SET celery-task-meta-<id> <RECEIVED> NX GET EX <result_expires>

and then:

- nothing was there: the task is this worker's, it runs;
- the key held REVOKED (written the same way by a cancel that came first): the task id goes into
  the worker's revoked set and Celery discards the message its usual way ("Discarding revoked
  task", REVOKED written again, message acked); the task never runs;
- any other value (RECEIVED, STARTED, ...): a copy delivered again; it runs, as Celery would;
- the command failed (a Redis error): the task is not run here; the message is rejected back to
  the queue after a one-second pause, and tried again.

Tasks with ``ignore_result`` keep no result key and are not claimed.

Adoption is one line in the module that makes the Celery app, before the worker starts::

    import ensinalab_claim
    ensinalab_claim.install(app)

Every task of ``app`` (registered before or after the call) then runs through a request class
that takes the claim: its own ``Task.Request`` (a class or the qualified name of one) subclassed
with the claim, so a custom request class keeps its behaviour.
"""
import logging
import time

import celery
import redis
from celery import signals, states
from celery.backends.redis import RedisBackend
from celery.worker import state as worker_state
from celery.worker.request import Request
from kombu.utils.imports import symbol_by_name

__all__ = ["ClaimingRequest", "claiming", "install", "RETRY_PAUSE_SECS"]
__version__ = "1.0.0"

# A Redis error at claim time puts the message back at once; the pause keeps an error that
# persists from spinning through the queue.
RETRY_PAUSE_SECS = 1.0

logger = logging.getLogger(__name__)

# What the claim relies on in Celery, checked at import so a Celery without it fails here
# instead of running tasks unclaimed:
# - from 5.3.0 on, the worker calls `Request.revoked()` right before it hands any message to the
#   pool (before 5.3, only for a message with an expiry or an id already revoked, so the claim
#   would never be taken);
# - `state.revoked`, the revoked-id set `Request.revoked()` consults;
# - `state.task_ready`, which forgets a request the worker reserved.
if celery.VERSION[:2] < (5, 3):
    raise ImportError(f"ensinalab_claim needs Celery 5.3 or later, not {celery.__version__}: "
                      "older workers do not ask Request.revoked() before every task")
for _name, _present in (
    ("celery.worker.request.Request.revoked", callable(getattr(Request, "revoked", None))),
    ("celery.worker.state.revoked", hasattr(getattr(worker_state, "revoked", None), "add")),
    ("celery.worker.state.task_ready", callable(getattr(worker_state, "task_ready", None))),
):
    if not _present:
        raise ImportError(f"ensinalab_claim: this Celery has no {_name}; the claim cannot run")


class _Claim:
    """The claim, mixed in front of a Celery request class (see `claiming`)."""

    def revoked(self):
        if self.id not in worker_state.revoked and not self.task.ignore_result:
            if not self._claim():
                return True
        return super().revoked()

    def _claim(self):
        """Takes the claim. False when the task must not run here (Redis error: requeued);
        True otherwise, with the id added to the revoked set when a cancel came first."""
        backend = self.task.backend
        received = backend.encode({
            "status": states.RECEIVED, "result": None, "traceback": None,
            "children": [], "date_done": None, "task_id": self.id,
        })
        try:
            before = backend.client.set(
                backend.get_key_for_task(self.id), received,
                nx=True, get=True, ex=int(backend.expires) if backend.expires else None,
            )
        except redis.RedisError as exc:
            # Fail closed: a task whose claim is unknown is not run here; the message goes back
            # to the queue (or stays in `unacked`, to be restored) and is tried again.
            logger.error("claim of %s[%s] failed (%r): not run, requeued",
                         self.name, self.id, exc)
            time.sleep(RETRY_PAUSE_SECS)
            self.reject(requeue=True)
            worker_state.task_ready(self)
            return False
        if before is not None and _status(backend, before) == states.REVOKED:
            worker_state.revoked.add(self.id)
        return True


def _status(backend, raw):
    try:
        return backend.decode(raw).get("status")
    except Exception:  # noqa: BLE001 - a value nobody can read claims nothing
        logger.warning("unreadable result value %r", raw[:80])
        return None


_claiming = {}


def claiming(base):
    """The request class `base` (a Celery request class, or the qualified name of one) with the
    claim taken first; `base` itself when it already claims. One class per base."""
    base = symbol_by_name(base)
    if issubclass(base, _Claim):
        return base
    if base not in _claiming:
        _claiming[base] = type(f"Claiming{base.__name__}", (_Claim, base), {
            "__module__": __name__,
            "__doc__": f"{base.__module__}.{base.__qualname__}, run only if it wins the claim.",
        })
    return _claiming[base]


ClaimingRequest = claiming(Request)


def install(app):
    """Makes every task of the Celery app `app` take the claim before it runs.

    Call it once where the app is made, before the worker starts; tasks registered before or
    after the call are all covered. The tasks are changed when a worker of `app` starts
    (Celery's `worker_init` signal, after the worker imported the app's task modules and before
    it builds its per-task message handlers): each task's `Request` becomes `claiming(Request)`.
    A worker whose result backend is not Redis refuses to start.
    """
    def claim_tasks(sender=None, **_):
        if getattr(sender, "app", None) is not app:
            return
        if not isinstance(app.backend, RedisBackend):
            # SystemExit passes through the signal's handler, which logs any Exception and
            # carries on: a worker that cannot claim must not run tasks.
            raise SystemExit(
                f"ensinalab_claim: the claim needs a Redis result backend, not "
                f"{type(app.backend).__name__}")
        for task in app.tasks.values():
            task.Request = claiming(task.Request)

    signals.worker_init.connect(
        claim_tasks, weak=False, dispatch_uid=f"ensinalab_claim.install:{id(app)}")
