"""GPUs for the Spark that raybricks starts itself (a `local-cluster` master): each of
its workers gets `cluster.spark_worker_gpus` GPUs, found by a discovery script.

Spark gives a worker the addresses its discovery script prints, and a Ray worker node
the addresses of its Spark task; Ray sets `CUDA_VISIBLE_DEVICES` from them for each task
and actor. A local cluster's workers share one machine, so each must get its own: the
script raybricks writes claims addresses for one worker at a time (an atomic `mkdir`
each) from those `nvidia-smi` lists (`gpu_discovery: nvidia-smi`, real GPUs), or from
made-up ones (`fake`: scheduling-only GPUs, for trying the GPU path without any). A
script of the user's own (a path) is used as it is.

    with discovery_script("fake", per_worker=1, workers=3, folder=temp) as script:
        conf = spark_gpu_conf(1, script)    # builder.config(...) each, before Spark starts
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BUILT_IN = ("nvidia-smi", "fake")
NVIDIA_SMI = "nvidia-smi --query-gpu=index --format=csv,noheader"

_SCRIPT = """#!/bin/sh
# Written by raybricks for one run: GPU addresses for one Spark worker, none another has.
set -e
claimed=""
count=0
for address in $({addresses}); do
    [ "$count" -ge {per_worker} ] && break
    if mkdir "{claims}/$address" 2>/dev/null; then
        claimed="$claimed${{claimed:+,}}\\"$address\\""
        count=$((count + 1))
    fi
done
echo "{{\\"name\\": \\"gpu\\", \\"addresses\\": [$claimed]}}"
"""


def spark_gpu_conf(per_worker: int, script: Path) -> dict[str, str]:
    """Spark conf for workers of `per_worker` GPUs found by `script`: each executor takes
    them all, Spark's own tasks none (they would hold the GPUs Ray's nodes need), and
    Ray on Spark is told the count (else it asks nvidia-smi)."""
    return {
        "spark.worker.resource.gpu.amount": str(per_worker),
        "spark.worker.resource.gpu.discoveryScript": str(script),
        "spark.executor.resource.gpu.amount": str(per_worker),
        "spark.executorEnv.RAY_ON_SPARK_WORKER_GPU_NUM": str(per_worker),
    }


@contextmanager
def discovery_script(kind: str, per_worker: int, workers: int, folder: Path) -> Iterator[Path]:
    """The discovery script for `kind` ("nvidia-smi", "fake", or a script's path), for
    the length of Spark's start (its workers run it as they start); what it leaves in
    `folder` goes on exit."""
    if kind not in BUILT_IN:
        yield Path(kind)
        return
    own = Path(tempfile.mkdtemp(prefix="raybricks-gpus-", dir=folder))
    try:
        addresses = NVIDIA_SMI if kind == "nvidia-smi" else f"seq 0 {per_worker * workers - 1}"
        (own / "claims").mkdir()
        script = own / "discover.sh"
        script.write_text(
            _SCRIPT.format(addresses=addresses, per_worker=per_worker, claims=own / "claims")
        )
        script.chmod(0o700)
        yield script
    finally:
        shutil.rmtree(own, ignore_errors=True)
