"""The actor-patterns job: start Ray on Spark, run the stages, write the report.

Takes the flags of `raybricks run` and works under `python`, `spark-submit` and a
Databricks `spark_python_task`. The conf files sit beside this folder in the bundle.
"""

import sys
from pathlib import Path

from raybricks.entry import entry

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"

if __name__ == "__main__":
    sys.exit(entry(["run", *sys.argv[1:]], conf_dir=CONF_DIR if CONF_DIR.is_dir() else None))
