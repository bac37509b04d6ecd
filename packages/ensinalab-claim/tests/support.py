"""Real parts for the tests: a redis-server of the tests' own, a real Celery worker of
claimapp.py run from the interpreter that runs the tests, and a record of every command a Redis
served (MONITOR)."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import redis

HERE = os.path.dirname(os.path.abspath(__file__))
# The broker: the shared Redis, on a DB number no other test of the repository uses. Nothing is
# flushed; the tests delete the keys of their own queues.
BROKER = os.environ.get("CLAIM_TEST_REDIS_URL", "redis://127.0.0.1:6379/2")
WAIT_SECS = 30


def wait_until(what, check, within=WAIT_SECS, log=None):
    """Polls `check` until it returns something true, and returns that; fails after `within`."""
    deadline = time.monotonic() + within
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} within {within} s" + (f"; log:\n{log()}" if log else ""))
        time.sleep(0.05)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OwnRedis:
    """A redis-server on a free loopback port, without persistence; `stop` and `start` again
    on the same port make a Redis outage."""

    def __init__(self):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None
        self.start()

    def start(self):
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until("redis-server listening", self._answers, within=10)
        except BaseException:
            self.stop()
            raise

    def _answers(self):
        try:
            return redis.Redis(port=self.port).ping()
        except redis.RedisError:
            return False

    def stop(self):
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def client(self):
        return redis.Redis.from_url(self.url)


class Monitor:
    """Every command a Redis serves, from `redis-cli monitor`, as lists of arguments."""

    LINE = re.compile(r'^\d+\.\d+ \[\d+ [^\]]*\] (.*)$')
    ARG = re.compile(r'"((?:[^"\\]|\\.)*)"')

    def __init__(self, port):
        self.file = tempfile.NamedTemporaryFile(prefix="claim-monitor-", delete=False)
        self.process = subprocess.Popen(
            ["redis-cli", "-p", str(port), "monitor"], stdout=self.file,
            stderr=subprocess.DEVNULL)
        probe = f"claim-monitor-probe-{uuid.uuid4()}"
        client = redis.Redis(port=port)

        def reported():
            client.exists(probe)
            return any(probe in c for c in self.commands())

        # MONITOR is on once it reports a command sent after it started.
        try:
            wait_until("MONITOR on", reported, within=10)
        except BaseException:
            self.close()
            raise

    def commands(self):
        with open(self.file.name, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
        out = []
        for line in lines:
            m = self.LINE.match(line)
            if m:
                out.append([_unescape(a) for a in self.ARG.findall(m.group(1))])
        return out

    def writes_of(self, key):
        """The commands that wrote `key`, in order."""
        return [c for c in self.commands()
                if len(c) > 1 and c[0].upper() in ("SET", "SETEX") and c[1] == key]

    def close(self):
        self.process.kill()
        self.process.wait()
        os.unlink(self.file.name)


_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "a": "\a", "b": "\b"}


def _unescape(arg):
    r"""One argument as redis-cli prints it: quoted, with \\, \", control characters and \xNN
    escaped."""
    def one(m):
        escaped = m.group(1)
        if escaped[0] == "x" and len(escaped) == 3:
            return chr(int(escaped[1:], 16))
        return _ESCAPES.get(escaped, escaped)

    return re.sub(r'\\(x[0-9a-fA-F]{2}|.)', one, arg)


def written_value(command):
    """The JSON value a SET/SETEX command wrote, decoded."""
    if command[0].upper() == "SETEX":
        return json.loads(command[3])
    return json.loads(command[2])


class Worker:
    """`celery -A claimapp worker -P prefork` of this interpreter, in a process group of its
    own (stopping it kills its pool too), with its log in a file."""

    def __init__(self, backend, queue, marks, concurrency=2, env=None):
        self.node = f"claim-{uuid.uuid4().hex[:12]}@test"
        self.log_file = tempfile.NamedTemporaryFile(prefix="claim-worker-", suffix=".log",
                                                    delete=False)
        environment = dict(os.environ, CLAIM_TEST_BROKER=BROKER, CLAIM_TEST_BACKEND=backend,
                           CLAIM_TEST_QUEUE=queue, CLAIM_TEST_MARKS=marks,
                           PYTHONPATH=HERE, **(env or {}))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "claimapp", "worker", "-P", "prefork",
             "-c", str(concurrency), "-l", "INFO", "-n", self.node, "--without-mingle",
             "--without-gossip", "--without-heartbeat"],
            cwd=HERE, env=environment, stdin=subprocess.DEVNULL, stdout=self.log_file,
            stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_until("worker ready", lambda: " ready." in self.log()
                       or self.process.poll() is not None, log=self.log)
            if self.process.poll() is not None:
                raise AssertionError(
                    f"worker exited ({self.process.returncode}); log:\n{self.log()}")
        except BaseException:
            self.stop()
            raise

    def log(self):
        with open(self.log_file.name, encoding="utf-8", errors="replace") as f:
            return f.read()

    def discarded(self, task_id):
        return any("Discarding revoked task" in line and f"[{task_id}]" in line
                   for line in self.log().splitlines())

    def claim_failures(self, task_id):
        return sum(1 for line in self.log().splitlines()
                   if f"[{task_id}] failed" in line and "claim of" in line)

    def stop(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        os.unlink(self.log_file.name)
        # A killed worker leaves its control queue bound to the broadcast exchange.
        redis.Redis.from_url(BROKER).srem("_kombu.binding.celery.pidbox",
                                          f"\x06\x16\x06\x16{self.node}.celery.pidbox")


class Scratch:
    """A unique queue on the broker and a directory for the tasks' marks; `close` deletes the
    queue's keys and the directory."""

    def __init__(self, name):
        self.queue = f"ensinalab-claim-test-{name}-{uuid.uuid4().hex}"
        self.marks = tempfile.mkdtemp(prefix="claim-marks-")
        self.broker = redis.Redis.from_url(BROKER)

    def ran(self, task_id):
        return os.path.exists(os.path.join(self.marks, f"{task_id}.ran"))

    def runs(self, task_id):
        try:
            with open(os.path.join(self.marks, f"{task_id}.ran"), encoding="utf-8") as f:
                return len(f.read())
        except FileNotFoundError:
            return 0

    def accepted(self, task_id):
        return os.path.exists(os.path.join(self.marks, f"{task_id}.accepted"))

    def waiting(self):
        return self.broker.llen(self.queue)

    def close(self):
        self.broker.delete(self.queue, f"_kombu.binding.{self.queue}",
                           f"_kombu.binding_permanent.{self.queue}",
                           *(f"{self.queue}\x06\x16{p}" for p in (3, 6, 9)))
        shutil.rmtree(self.marks, ignore_errors=True)


def new_id():
    return str(uuid.uuid4())


def result_key(task_id):
    return f"celery-task-meta-{task_id}"


def revoked_value(task_id):
    """The REVOKED value a cancel writes into a key no worker claimed (docs/celery-contract.md,
    "Cancelling"): the one a worker writes when it discards a revoked message."""
    return json.dumps({
        "status": "REVOKED",
        "result": {"exc_type": "TaskRevokedError", "exc_message": ["revoked"],
                   "exc_module": "celery.exceptions"},
        "traceback": None, "children": [], "date_done": "2026-01-01T00:00:00.000000",
        "task_id": task_id,
    })


def received_value(task_id):
    return json.dumps({"status": "RECEIVED", "result": None, "traceback": None, "children": [],
                       "date_done": None, "task_id": task_id})
