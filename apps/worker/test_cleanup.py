"""The reference worker's file handling, without a broker: a generation's partial directory,
its cleanup (and, for a task that finished between its cancel and the kill, its finished
output), and the orphan sweep delete only task directories directly under the work dir (the
output dir), never through a symbolic link, whatever their arguments say.

Run: .venv/worker/bin/python -m unittest discover -s apps/worker -p 'test_*.py'
(scripts/test.sh does.)
"""
import os
import shutil
import tempfile
import time
import unittest
import uuid

ROOT = tempfile.mkdtemp(prefix="ensinalab-worker-test-")
os.environ["ENSINALAB_WORK_DIR"] = os.path.join(ROOT, "work")
os.environ["ENSINALAB_OUTPUT_DIR"] = os.path.join(ROOT, "output")

import ensinalab_worker as w  # noqa: E402  (reads the directories above at import)


def tearDownModule():
    shutil.rmtree(ROOT, ignore_errors=True)


def task_id():
    return str(uuid.uuid4())


class FileHandling(unittest.TestCase):
    def setUp(self):
        os.makedirs(w.WORK_DIR, exist_ok=True)
        # Something of value next to the work dir, and a link to it from inside.
        self.outside = tempfile.mkdtemp(dir=ROOT, prefix="outside-")
        self.precious = os.path.join(self.outside, "precious.txt")
        with open(self.precious, "w", encoding="utf-8") as f:
            f.write("keep me")

    def partial(self, tid, age_secs=0):
        out = w.PartialOutput(tid)
        out.write("video.part", "frame 0\n")
        if age_secs:
            then = time.time() - age_secs
            os.utime(out.path, (then, then))
        return out.path

    def assert_outside_untouched(self):
        with open(self.precious, encoding="utf-8") as f:
            self.assertEqual(f.read(), "keep me")

    def test_a_finished_generation_moves_its_output_out_of_the_work_dir(self):
        tid = task_id()
        out = w.PartialOutput(tid)
        out.write("options.json.part", "x")
        out.finish()
        self.assertFalse(os.path.exists(os.path.join(w.WORK_DIR, tid)))
        self.assertTrue(os.path.isfile(os.path.join(w.OUTPUT_DIR, tid, "options.json.part")))

    def test_cleanup_deletes_the_tasks_directory_and_is_idempotent(self):
        tid = task_id()
        path = self.partial(tid)
        self.assertTrue(w.cleanup_partial_files("video", 7, tid, "user"))
        self.assertFalse(os.path.exists(path))
        self.assertFalse(w.cleanup_partial_files("video", 7, tid, "user"))

    def test_cleanup_refuses_anything_but_a_task_id(self):
        victim = os.path.join(w.WORK_DIR, "not-a-task")
        os.makedirs(victim, exist_ok=True)
        for bad in ("../" + os.path.basename(self.outside), self.outside, "not-a-task", "",
                    ".", "..", task_id().upper(), task_id() + "/..", None, 7):
            with self.assertRaises(ValueError, msg=repr(bad)):
                w.cleanup_partial_files("video", 7, bad, "user")
        self.assertTrue(os.path.isdir(victim))
        self.assertTrue(os.path.isdir(w.WORK_DIR))
        self.assert_outside_untouched()

    def test_a_link_in_the_work_dir_is_removed_never_followed(self):
        tid = task_id()
        link = os.path.join(w.WORK_DIR, tid)
        os.symlink(self.outside, link)
        self.assertTrue(w.cleanup_partial_files("video", 7, tid, "timeout"))
        self.assertFalse(os.path.lexists(link))
        self.assert_outside_untouched()

    def test_a_link_inside_a_partial_directory_is_not_followed(self):
        tid = task_id()
        path = self.partial(tid)
        os.symlink(self.outside, os.path.join(path, "escape"))
        w.cleanup_partial_files("briefing", 3, tid, "failed")
        self.assertFalse(os.path.exists(path))
        self.assert_outside_untouched()

    def finished(self, tid):
        out = w.PartialOutput(tid)
        out.write("video.part", "frame 0\n")
        out.finish()
        return os.path.join(w.OUTPUT_DIR, tid)

    def test_a_finished_first_cleanup_deletes_the_finished_output_too_and_is_idempotent(self):
        tid = task_id()
        final = self.finished(tid)
        self.assertTrue(os.path.isdir(final))
        self.assertTrue(w.cleanup_partial_files("video", 7, tid, "finished_first"))
        self.assertFalse(os.path.lexists(final))
        self.assertFalse(w.cleanup_partial_files("video", 7, tid, "finished_first"))

    def test_a_finished_first_cleanup_deletes_a_partial_directory_as_well(self):
        tid = task_id()
        final = self.finished(tid)
        partial = self.partial(tid)
        self.assertTrue(w.cleanup_partial_files("briefing", 3, tid, "finished_first"))
        self.assertFalse(os.path.lexists(partial))
        self.assertFalse(os.path.lexists(final))

    def test_other_reasons_keep_the_finished_output(self):
        for reason in ("user", "user_all", "timeout", "revoked", "failed"):
            tid = task_id()
            final = self.finished(tid)
            self.assertFalse(w.cleanup_partial_files("video", 7, tid, reason), reason)
            self.assertTrue(os.path.isfile(os.path.join(final, "video.part")), reason)

    def test_a_finished_first_cleanup_refuses_anything_but_a_task_id(self):
        os.makedirs(w.OUTPUT_DIR, exist_ok=True)
        victim = os.path.join(w.OUTPUT_DIR, "not-a-task")
        os.makedirs(victim, exist_ok=True)
        for bad in ("../" + os.path.basename(self.outside), self.outside, "not-a-task", "",
                    ".", "..", task_id().upper(), task_id() + "/..", None, 7):
            with self.assertRaises(ValueError, msg=repr(bad)):
                w.cleanup_partial_files("video", 7, bad, "finished_first")
        self.assertTrue(os.path.isdir(victim))
        self.assertTrue(os.path.isdir(w.OUTPUT_DIR))
        self.assert_outside_untouched()

    def test_a_link_in_the_output_dir_is_removed_never_followed(self):
        os.makedirs(w.OUTPUT_DIR, exist_ok=True)
        tid = task_id()
        link = os.path.join(w.OUTPUT_DIR, tid)
        os.symlink(self.outside, link)
        self.assertTrue(w.cleanup_partial_files("video", 7, tid, "finished_first"))
        self.assertFalse(os.path.lexists(link))
        self.assert_outside_untouched()

    def test_a_link_inside_a_finished_directory_is_not_followed(self):
        tid = task_id()
        final = self.finished(tid)
        os.symlink(self.outside, os.path.join(final, "escape"))
        w.cleanup_partial_files("video", 7, tid, "finished_first")
        self.assertFalse(os.path.lexists(final))
        self.assert_outside_untouched()

    def test_the_sweep_deletes_old_orphans_only(self):
        orphan = self.partial(task_id(), age_secs=3600)
        live_tid = task_id()
        live = self.partial(live_tid, age_secs=3600)
        fresh = self.partial(task_id())
        stranger = os.path.join(w.WORK_DIR, "operator-notes")
        os.makedirs(stranger, exist_ok=True)
        os.utime(stranger, (time.time() - 3600,) * 2)
        linked = os.path.join(w.WORK_DIR, task_id())
        os.symlink(self.outside, linked)
        os.utime(linked, (time.time() - 3600,) * 2, follow_symlinks=False)

        removed = w.sweep_orphans([live_tid], time.time() - 60)

        self.assertEqual(removed, 2)
        self.assertFalse(os.path.exists(orphan))
        self.assertFalse(os.path.lexists(linked))
        self.assertTrue(os.path.isdir(live), "in flight")
        self.assertTrue(os.path.isdir(fresh), "younger than the sweep's list")
        self.assertTrue(os.path.isdir(stranger), "not a task directory")
        self.assert_outside_untouched()


if __name__ == "__main__":
    unittest.main()
