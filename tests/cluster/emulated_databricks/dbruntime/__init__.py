"""A stand-in for the Databricks runtime's `dbruntime`: the entry-point calls Ray's
Databricks hook makes (as Ray's own tests/spark/test_databricks_hook.py fakes them).
Each call is appended to the file named by RAYBRICKS_EMULATED_DBRUNTIME_LOG."""

from __future__ import annotations

import os


class _EntryPoint:
    def registerBackgroundSparkJobGroup(self, job_group_id: str) -> None:
        with open(os.environ["RAYBRICKS_EMULATED_DBRUNTIME_LOG"], "a") as log:
            log.write(f"registerBackgroundSparkJobGroup {job_group_id}\n")

    def getIdleTimeMillisSinceLastNotebookExecution(self) -> int:
        return 0


class UserNamespaceInitializer:
    @classmethod
    def getOrCreate(cls) -> UserNamespaceInitializer:
        return cls()

    def get_spark_entry_point(self) -> _EntryPoint:
        return _EntryPoint()
