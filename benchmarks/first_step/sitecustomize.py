"""Put on PYTHONPATH by benchmarks/perf.py for *both* tools' processes: records when the first optimizer
step finishes, as a Unix time, in the file named by $PEFTBENCH_FIRST_STEP_FILE (nothing without it).

Neutral by construction: no tool code is touched. A daemon thread waits until ``torch.optim.optimizer``
is imported (polling every 5 ms), then registers torch's *global* optimizer post-step hook, which fires
for any optimizer (HF Trainer's AdamW, fused or not) and writes once.
"""

import os
import sys
import threading
import time

_FILE = os.environ.get("PEFTBENCH_FIRST_STEP_FILE")


def _watch() -> None:
    while (
        getattr(sys.modules.get("torch.optim.optimizer"), "register_optimizer_step_post_hook", None) is None
    ):
        time.sleep(0.005)
    done = []

    def first_step(optimizer, args, kwargs) -> None:
        if not done:  # a flag, not handle.remove(): torch is iterating over its hooks right now
            done.append(True)
            with open(_FILE, "w") as f:
                f.write(repr(time.time()))

    sys.modules["torch.optim.optimizer"].register_optimizer_step_post_hook(first_step)


if _FILE:
    threading.Thread(target=_watch, name="first-step-watch", daemon=True).start()
