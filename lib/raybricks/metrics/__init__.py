"""What the cluster did while a run ran: each Ray node's own Prometheus metrics, sampled
from the driver (`sampler`) and read with prometheus_client's parser (`prometheus`)."""
