"""The claim against a real Redis and a real Celery worker of the interpreter that runs these
tests (one venv per Celery version: packages/ensinalab-claim/check.sh).

The broker is the shared Redis on a DB of its own (support.BROKER); the result backend is a
redis-server of the tests' own, so every command it serves can be recorded (MONITOR) and it can
be stopped and started again.
"""
import json
import unittest

import celery
from celery import Celery
from celery.worker.request import Request

import ensinalab_claim
from support import (BROKER, Monitor, OwnRedis, Scratch, Worker, new_id, received_value,
                     result_key, revoked_value, wait_until, written_value)

print(f"celery {celery.__version__}", flush=True)

RESULT_EXPIRES = 7200  # claimapp.RESULT_EXPIRES


def publisher():
    app = Celery("claimtest-publisher", broker=BROKER)
    app.conf.update(task_serializer="json", accept_content=["json"])
    return app


def status(client, task_id):
    raw = client.get(result_key(task_id))
    return None if raw is None else json.loads(raw)


class Claiming(unittest.TestCase):
    """The request classes `install` gives the tasks, without a worker."""

    def test_a_claiming_class_subclasses_the_tasks_own_class_and_keeps_its_overrides(self):
        class Own(Request):
            def on_accepted(self, pid, time_accepted):
                return "own"

        cls = ensinalab_claim.claiming(Own)
        self.assertTrue(issubclass(cls, Own))
        self.assertIs(cls.on_accepted, Own.on_accepted)
        self.assertIsNot(cls.revoked, Own.revoked, "the claim comes first")
        self.assertIs(ensinalab_claim.claiming(Own), cls, "one class per base")
        self.assertIs(ensinalab_claim.claiming(cls), cls, "a claiming class is not wrapped again")

    def test_a_qualified_name_is_resolved_as_celery_resolves_task_request(self):
        self.assertIs(ensinalab_claim.claiming("celery.worker.request:Request"),
                      ensinalab_claim.ClaimingRequest)
        self.assertTrue(issubclass(ensinalab_claim.ClaimingRequest, Request))


class AWorkerStartedAfterTheCancels(unittest.TestCase):
    """One worker, started once every message below waits in its queue and every key below was
    written: it never heard of any cancel but what the keys say."""

    @classmethod
    def setUpClass(cls):
        cls.backend = OwnRedis()
        cls.addClassCleanup(cls.backend.stop)
        cls.monitor = Monitor(cls.backend.port)
        cls.addClassCleanup(cls.monitor.close)
        cls.results = cls.backend.client()
        cls.scratch = Scratch("started-after")
        cls.addClassCleanup(cls.scratch.close)
        cls.ids = {name: new_id() for name in (
            "revoked", "revoked_custom", "fresh", "redelivered", "tidy", "custom")}
        cls.results.set(result_key(cls.ids["revoked"]), revoked_value(cls.ids["revoked"]))
        cls.results.set(result_key(cls.ids["revoked_custom"]),
                        revoked_value(cls.ids["revoked_custom"]))
        cls.results.set(result_key(cls.ids["redelivered"]), received_value(cls.ids["redelivered"]))
        app = publisher()
        for name, task_id in cls.ids.items():
            task, kwargs = {
                "tidy": ("claimtest.tidy", {}),
                "custom": ("claimtest.custom", {"label": name}),
                "revoked_custom": ("claimtest.custom", {"label": name}),
            }.get(name, ("claimtest.work", {"label": name}))
            app.send_task(task, kwargs=kwargs, task_id=task_id, queue=cls.scratch.queue)
        app.close()
        cls.worker = Worker(cls.backend.url, cls.scratch.queue, cls.scratch.marks)
        cls.addClassCleanup(cls.worker.stop)

    def wait_succeeded(self, name):
        task_id = self.ids[name]
        wait_until(f"{name} SUCCESS", lambda: (status(self.results, task_id) or {}).get(
            "status") == "SUCCESS", log=self.worker.log)

    def assert_discarded_unrun(self, name):
        task_id = self.ids[name]
        wait_until(f"{name} discarded", lambda: self.worker.discarded(task_id),
                   log=self.worker.log)
        # Celery acks the message it discards: once the queue is empty, nothing of it is left
        # to run later.
        wait_until("queue drained", lambda: self.scratch.waiting() == 0, log=self.worker.log)
        self.assertFalse(self.scratch.ran(task_id), f"{name} ran")
        value = status(self.results, task_id)
        self.assertEqual(value["status"], "REVOKED")
        self.assertEqual(value["result"]["exc_type"], "TaskRevokedError")
        self.assertEqual(value["result"]["exc_message"], ["revoked"])

    def test_a_task_whose_key_held_revoked_is_discarded_and_never_runs(self):
        self.assert_discarded_unrun("revoked")
        self.assertNotIn("Task claimtest.work[{}] succeeded".format(self.ids["revoked"]),
                         self.worker.log())

    def test_a_task_with_no_key_is_claimed_with_received_then_runs(self):
        self.wait_succeeded("fresh")
        task_id = self.ids["fresh"]
        self.assertEqual(self.scratch.runs(task_id), 1)
        writes = self.monitor.writes_of(result_key(task_id))
        self.assertEqual([written_value(w)["status"] for w in writes],
                         ["RECEIVED", "STARTED", "SUCCESS"], writes)
        claim = writes[0]
        options = [a.upper() for a in claim[3:]]
        self.assertEqual(sorted(options), sorted(["NX", "GET", "EX", str(RESULT_EXPIRES)]), claim)
        self.assertEqual(options[options.index("EX") + 1], str(RESULT_EXPIRES), claim)
        self.assertEqual(written_value(claim), {
            "status": "RECEIVED", "result": None, "traceback": None, "children": [],
            "date_done": None, "task_id": task_id})

    def test_a_redelivered_task_whose_key_held_received_runs(self):
        self.wait_succeeded("redelivered")
        self.assertEqual(self.scratch.runs(self.ids["redelivered"]), 1)

    def test_a_task_that_ignores_its_result_is_not_claimed(self):
        task_id = self.ids["tidy"]
        wait_until("tidy ran", lambda: self.scratch.ran(task_id), log=self.worker.log)
        wait_until("tidy done", lambda: f"[{task_id}] succeeded" in self.worker.log(),
                   log=self.worker.log)
        self.assertEqual(self.monitor.writes_of(result_key(task_id)), [])
        self.assertIsNone(self.results.get(result_key(task_id)))

    def test_install_keeps_a_tasks_own_request_class(self):
        self.wait_succeeded("custom")
        self.assertTrue(self.scratch.accepted(self.ids["custom"]),
                        "the task's own request class ran its on_accepted")
        writes = self.monitor.writes_of(result_key(self.ids["custom"]))
        self.assertEqual(written_value(writes[0])["status"], "RECEIVED", writes)
        self.assert_discarded_unrun("revoked_custom")
        self.assertFalse(self.scratch.accepted(self.ids["revoked_custom"]))


class AWorkerThatCannotClaim(unittest.TestCase):
    def test_a_worker_without_a_redis_result_backend_refuses_to_start(self):
        scratch = Scratch("no-backend")
        self.addCleanup(scratch.close)
        with self.assertRaises(AssertionError) as refused:
            Worker("", scratch.queue, scratch.marks)
        self.assertIn("worker exited", str(refused.exception))
        self.assertIn("the claim needs a Redis result backend", str(refused.exception))


class ARedisErrorAtClaimTime(unittest.TestCase):
    def setUp(self):
        self.backend = OwnRedis()
        self.addCleanup(self.backend.stop)
        self.scratch = Scratch("redis-error")
        self.addCleanup(self.scratch.close)
        self.worker = Worker(self.backend.url, self.scratch.queue, self.scratch.marks,
                             concurrency=1)
        self.addCleanup(self.worker.stop)

    def test_the_task_is_not_run_but_requeued_and_runs_once_redis_is_back(self):
        self.backend.stop()
        task_id = new_id()
        app = publisher()
        app.send_task("claimtest.work", kwargs={"label": "outage"}, task_id=task_id,
                      queue=self.scratch.queue)
        app.close()
        # A second failed claim of the same task means its message came back to the queue and
        # was delivered again.
        wait_until("two failed claims", lambda: self.worker.claim_failures(task_id) >= 2,
                   log=self.worker.log)
        self.assertFalse(self.scratch.ran(task_id))
        self.assertIn("not run, requeued", self.worker.log())

        self.backend.start()
        results = self.backend.client()
        wait_until("SUCCESS once Redis is back", lambda: (status(results, task_id) or {}).get(
            "status") == "SUCCESS", log=self.worker.log)
        self.assertEqual(self.scratch.runs(task_id), 1)
        self.assertEqual(self.scratch.waiting(), 0)


if __name__ == "__main__":
    unittest.main()
