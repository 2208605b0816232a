"""Run under torchrun by tests/test_elastic.py: ``antlers train classify ARGS...`` in which rank 1
raises an error in training step FAIL_AT (the environment's ANTLERS_TEST_FAIL_AT), or with
ANTLERS_TEST_HANG never joins the others (it sleeps until torchrun stops it), through the
command line's own error handling.

``failing_worker.py ARGS...``
"""

import os
import sys
import time

from antlers.cli import main
from antlers.tasks import TASKS
from antlers.tasks.classify.task import ClassifyTask

CALLS = [0]


class Failing(ClassifyTask):
    def loss(self, model, batch):
        fail_at = int(os.environ.get("ANTLERS_TEST_FAIL_AT", "-1"))
        if os.environ["RANK"] == "1" and CALLS[0] == fail_at:
            raise ValueError("shard 1 holds a broken batch (the test's injected fault)")
        CALLS[0] += 1
        return super().loss(model, batch)


TASKS["classify"] = ("__main__", "Failing")
if os.environ.get("ANTLERS_TEST_HANG") and os.environ["RANK"] == "1":
    time.sleep(3600)
sys.exit(main(sys.argv[1:]))
