"""raybricks: Ray actor workloads as Databricks jobs, on a Ray cluster started inside Spark."""

__version__ = "0.1.0"
