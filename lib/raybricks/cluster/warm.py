"""`python -m raybricks.cluster.warm`: the local Spark's JVM class archives made now
(`make setup` runs it), not at the end of a first run. Once per Spark install and JVM."""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from pathlib import Path

from raybricks.cluster.jvm_archive import trained
from raybricks.cluster.spark import LOCAL_SPARK_JVM, train_class_archives
from raybricks.settings import ClusterSettings

logger = logging.getLogger("raybricks.warm")


def main() -> int:
    logging.basicConfig(format="%(message)s", level=logging.INFO)
    if trained(LOCAL_SPARK_JVM):
        logger.info("Spark's JVM class archives: already made")
        return 0
    logger.info("Spark's JVM class archives: making them (once per Spark install) ...")
    clock = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="raybricks-warm-") as temp_root:
        made = train_class_archives(ClusterSettings(), Path(temp_root))
    seconds = time.monotonic() - clock
    logger.info("Spark's JVM class archives: %s in %.0f s", "made" if made else "not made", seconds)
    return 0  # without them Spark only starts slower: never a failed set-up


if __name__ == "__main__":
    sys.exit(main())
