"""Databricks: what a run on a Databricks cluster learns about it, whether Ray on Spark
can work there (preflight, and `raybricks doctor` for a cluster from outside), and a
Ray start hook that works in a job, where no notebook runs."""
