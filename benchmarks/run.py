"""Every comparison of the performance work, side by side on this machine; writes
benchmarks/RESULTS.md. Not a test: it measures, it does not judge.

    .venv/bin/python -m benchmarks.run [--repeat 3]

Each run starts once every process of the run before it has ended (Ray's nodes copy
their logs and clean up after the driver exits), so no run pays for another's exit.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from benchmarks.machine import described
from benchmarks.processes import left_after, marked_env
from benchmarks.rounds import ROUNDS, paired_ratio
from benchmarks.standalone import StandaloneCluster
from benchmarks.start_legs import start_legs
from raybricks.stages.registry import BUILT_IN

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent


def started(command, **kwargs):
    """The command, started quietly with a mark its processes inherit; and the mark."""
    env, mark = marked_env(RAY_USAGE_STATS_ENABLED="0")
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs
    )
    return proc, mark


def measured(command, with_machine=False, **kwargs):
    """Wall seconds, the peak RSS (MiB) of the process itself, and its exit code (and,
    `with_machine`, the peak of the machine's used memory above what it used before, in
    MiB); returns once the processes it started have ended too."""
    before = psutil.virtual_memory().used
    clock = time.perf_counter()
    proc, mark = started(command, **kwargs)
    watched, peak, machine = psutil.Process(proc.pid), 0, 0
    while proc.poll() is None:
        try:
            peak = max(peak, watched.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        machine = max(machine, psutil.virtual_memory().used - before)
        time.sleep(0.1)
    seconds, code = time.perf_counter() - clock, proc.wait()
    left_after(mark)
    if with_machine:
        return seconds, peak / 2**20, code, machine / 2**20
    return seconds, peak / 2**20, code


def conf_file(folder, fast_start):
    path = Path(folder) / f"fast-{fast_start}.yml"
    path.write_text(f"cluster:\n  fast_start: {str(fast_start).lower()}\n")
    return path


def raybricks(folder, fast_start, subcommand, *rest, namespace="bench"):
    """`raybricks run|exec` with the fast start on or off; the args and the log folder."""
    logs = Path(tempfile.mkdtemp(dir=folder))
    conf = conf_file(folder, fast_start)
    args = [BIN / "raybricks", subcommand, "--conf", conf, "--namespace", namespace]
    return [*args, "--log-path", logs, *rest], logs


def exec_cmd(folder, fast_start, *command, namespace="bench"):
    return raybricks(folder, fast_start, "exec", "--", *command, namespace=namespace)


def summary_of(logs):
    from raybricks.report.model import read_report
    from raybricks.report.summary import format_summary

    return "\n".join(format_summary(read_report(run)) for run in logs.iterdir())


def report_in(logs):
    """The report of the one run under `logs`."""
    (report,) = (json.loads(path.read_text()) for path in logs.glob("*/report.json"))
    return report


def startup_seconds(logs):
    return report_in(logs)["cluster"]["startup_seconds"]


def cluster_start(folder, repeat):
    """The cluster as `raybricks run` starts it (with its shortest stage), either way;
    and each fast start's legs."""
    times, legs = {True: [], False: []}, []
    for round_ in range(repeat):
        for fast in (True, False) if round_ % 2 == 0 else (False, True):
            args, logs = raybricks(folder, fast, "run", "--stages", "namespaces")
            assert measured(args, cwd=ROOT)[2] == 0, f"run failed (fast_start={fast})"
            times[fast].append(startup_seconds(logs))
            if fast:
                (run_dir,) = logs.iterdir()
                legs.append(start_legs(run_dir))
    return times, legs


def leg_rows(legs):
    return [
        "| leg of a fast start | seconds |",
        "|---|---|",
        *(f"| {leg} | {statistics.median(run[leg] for run in legs):.2f} |" for leg in legs[0]),
    ]


NODE_COUNTS = (1, 2, 4)
START_NAMES = {True: "fast start", False: "Ray's own start"}


def startup_by_nodes(folder, repeat):
    """Cluster-ready seconds at each count of Ray worker nodes on a Spark standalone
    cluster of one-core workers (one Ray worker node each), either way, taking turns."""
    times = {(nodes, fast): [] for nodes in NODE_COUNTS for fast in (True, False)}
    cluster = StandaloneCluster(workers=max(NODE_COUNTS), cores=1, memory="2g").start()
    try:
        for round_ in range(repeat):
            for nodes in NODE_COUNTS:
                for fast in (True, False) if (round_ + nodes) % 2 == 0 else (False, True):
                    args, logs = raybricks(
                        folder,
                        fast,
                        "run",
                        *("--stages", "namespaces", "--spark-master", cluster.url),
                        *("--min-worker-nodes", str(nodes), "--max-worker-nodes", str(nodes)),
                    )
                    code = measured(args, cwd=ROOT)[2]
                    assert code == 0, f"run on {nodes} node(s) failed:\n{summary_of(logs)}"
                    times[nodes, fast].append(startup_seconds(logs))
    finally:
        cluster.stop()
    return times


def per_added_node(medians):
    """The least-squares slope of seconds over node counts."""
    counts = list(medians)
    mean_n, mean_s = statistics.mean(counts), statistics.mean(medians.values())
    spread = sum((n - mean_n) ** 2 for n in counts)
    return sum((n - mean_n) * (s - mean_s) for n, s in medians.items()) / spread


def node_rows(times):
    mid = statistics.median
    fast = {n: mid(times[n, True]) for n in NODE_COUNTS}
    own = {n: mid(times[n, False]) for n in NODE_COUNTS}
    return [
        "| Ray worker nodes | fast start (s) | Ray's own start (s) | ratio |",
        "|---|---|---|---|",
        *(
            f"| {n} | {fast[n]:.1f} | {own[n]:.1f} | "
            f"{paired_ratio(times[n, True], times[n, False]):.2f}x |"
            for n in NODE_COUNTS
        ),
        f"| each added node (slope) | {per_added_node(fast):+.2f} | {per_added_node(own):+.2f} "
        "| goal: fast start <= 1.5 s |",
    ]


def two_clusters_at_once(folder):
    runs = [exec_cmd(folder, True, "true", namespace=f"pair-{i}") for i in range(2)]
    procs = [started(args) for args, _ in runs]
    codes = [proc.wait() for proc, _ in procs]
    for _, mark in procs:
        left_after(mark)
    return codes, [
        startup_seconds(logs) if code == 0 else None
        for (_, logs), code in zip(runs, codes, strict=True)
    ]


PHASES = (
    "Spark start (and settings, imports)",
    "Ray cluster start",
    "stages",
    "teardown and report",
    "process start and exit",
)


def phases(logs, wall):
    """Where the seconds of one whole run went, from its report: each phase's share."""
    report = report_in(logs)
    starts = [stage["started_at_seconds"] for stage in report["stages"]]
    ends = [stage["started_at_seconds"] + stage["seconds"] for stage in report["stages"]]
    ray = report["cluster"]["startup_seconds"]
    spans = (min(starts) - ray, ray, max(ends) - min(starts), report["seconds"] - max(ends))
    return dict(zip(PHASES, (*spans, wall - report["seconds"]), strict=True))


def job_vs_seed(folder, repeat):
    """Wall seconds of each whole job and of each seed script, the job's peak RSS, and
    where each job's seconds went."""
    job, seed, peaks, spent = [], [], [], []
    for round_ in range(repeat):
        for which in ("job", "seed") if round_ % 2 == 0 else ("seed", "job"):
            if which == "seed":
                seconds, _, code = measured([sys.executable, HERE / "seed_demos.py"])
                assert code == 0, "the seed script failed"
                seed.append(seconds)
                continue
            logs = Path(tempfile.mkdtemp(dir=folder))
            seconds, peak, code = measured(
                [BIN / "raybricks", "run", "--target", "local", "--log-path", logs,
                 "--stages", ",".join(LESSON)],
                cwd=ROOT,
            )  # fmt: skip
            if code != 0:
                raise SystemExit(f"raybricks run failed:\n{summary_of(logs)}")
            job.append(seconds)
            peaks.append(peak)
            spent.append(phases(logs, seconds))
    return {"job": job, "seed": seed}, max(peaks), spent


LESSON = list(BUILT_IN)[:6]  # the lesson's six stages: what the seed's script runs too
SCORING = {"rows": 1_000_000, "partitions": 16}
LOADS = (0.0, 1.0, 5.0)  # a model's load in seconds, for the batch scoring rows
WAYS = ("actors", "mapInPandas", "predict_batch_udf")
# Goals against each baseline, by model load.
SCORING_GOALS = {("mapInPandas", 1.0): "<= 0.5x", ("predict_batch_udf", 5.0): "<= 1.25x"}


def batch_scoring(folder, repeat):
    """Seconds from table in to table out of batch_inference's scoring on Ray actors (the
    model loaded once per actor), with Spark's mapInPandas (once per task) and with its
    predict_batch_udf (once per Python worker), taking turns, at each model load; and
    the peaks of the driver's RSS and the machine's memory of each."""
    runs = {(load, way): [] for load in LOADS for way in WAYS}
    for round_ in range(repeat):
        for load in LOADS:
            for way in WAYS if round_ % 2 == 0 else reversed(WAYS):
                measure = scored_on_actors if way == "actors" else scored_in_spark
                runs[load, way].append(measure(folder, load, way))
    return runs


def scored_on_actors(folder, load, _way):
    conf = Path(folder) / f"scoring-{load:g}.yml"
    params = {**SCORING, "load_seconds": load}
    conf.write_text(f"stage_params:\n  batch_inference: {json.dumps(params)}\n")
    logs = Path(tempfile.mkdtemp(dir=folder))
    args = [BIN / "raybricks", "run", "--conf", conf, "--stages", "batch_inference"]
    _, peak, code, machine = measured([*args, "--log-path", logs], True, cwd=ROOT)
    assert code == 0, f"batch_inference failed:\n{summary_of(logs)}"
    report = report_in(logs)
    evidence = report["stages"][0]["evidence"]
    routes = "/".join(handoff["route"] for handoff in evidence["handoffs"])
    legs = {**evidence["seconds"], "routes": routes}
    return {
        "seconds": sum(evidence["seconds"].values()),
        "legs": legs,
        "driver": peak,
        "machine": machine,
    }


def scored_in_spark(folder, load, way):
    out = Path(folder) / "spark-scoring.json"
    args = [sys.executable, "-m", "benchmarks.spark_scoring", way, *map(str, SCORING.values())]
    _, _, code, machine = measured([*args, str(load), out], True, cwd=ROOT)
    assert code == 0, f"the {way} job failed"
    result = json.loads(out.read_text())
    return {"seconds": result["seconds"], "driver": result["driver_peak_mib"], "machine": machine}


def scoring_rows(runs):
    """A row per baseline and model load: the actors' seconds against the baseline's."""
    return [
        row(
            f"batch scoring, table in to table out (s): Ray actors vs {way}, "
            f"{f'{load:g} s load' if load else 'no load'}",
            [run["seconds"] for run in runs[load, "actors"]],
            [run["seconds"] for run in runs[load, way]],
            SCORING_GOALS.get((way, load), ""),
        )
        for load in LOADS
        for way in WAYS[1:]
    ]


LEGS = {"spark_to_ray": "to Ray", "actors": "scored on the actors", "ray_to_spark": "to Spark"}


def scoring_legs(runs):
    """Where the actors' seconds go: each leg's median over the runs, per model load."""
    return [
        f"| model load (s) | {' | '.join(LEGS.values())} (s) | routes |",
        "|---|---|---|---|---|",
        *(
            f"| {load:g} | "
            + " | ".join(
                f"{statistics.median(r['legs'][leg] for r in runs[load, 'actors']):.1f}"
                for leg in LEGS
            )
            + f" | {runs[load, 'actors'][0]['legs']['routes']} |"
            for load in LOADS
        ),
    ]


def scoring_memory(runs):
    """The peaks of each way, the highest of its runs."""
    return [
        "| way | model load (s) | driver peak RSS (MiB) | machine's peak above idle (MiB) |",
        "|---|---|---|---|",
        *(
            f"| {way} | {load:g} | {max(r['driver'] for r in runs[load, way]):,.0f} "
            f"| {max(r['machine'] for r in runs[load, way]):,.0f} |"
            for load in LOADS
            for way in WAYS
        ),
    ]


ROUND_TRIPS = 5


def round_trip(folder):
    """Seconds of each round trip of a 1,000-row table (the first cold), and its routes."""
    out = Path(folder) / "round-trip.json"
    args = [sys.executable, "-m", "benchmarks.round_trip", str(ROUND_TRIPS), out]
    assert measured(args, cwd=ROOT)[2] == 0, "the round trip failed"
    return json.loads(out.read_text())


def pool_rates(folder):
    out = Path(folder) / "pool.json"
    args, _ = exec_cmd(folder, True, sys.executable, HERE / "pool_throughput.py", out)
    assert measured(args)[2] == 0, "the pool benchmark failed"
    return json.loads(out.read_text())


def counter_rates(folder):
    out = Path(folder) / "counter.json"
    args, _ = exec_cmd(folder, True, sys.executable, HERE / "counter_calls.py", out)
    assert measured(args)[2] == 0, "the counter benchmark failed"
    return json.loads(out.read_text())


def row(label, ours, baseline, goal):
    """The medians of two figures measured round by round side by side, and the median
    of their rounds' ratios."""
    mid, ratio = statistics.median, paired_ratio(ours, baseline)
    return f"| {label} | {mid(ours):,.1f} | {mid(baseline):,.1f} | {ratio:.2f}x | {goal} |"


def samples(label, values):
    return f"- {label}: {', '.join(f'{v:.1f}' for v in values)}"


SECTIONS = ("cluster", "scoring", "metrics")
SCORING_HEADING = "## Spark data through Ray actors"
METRICS_HEADING = "## What sampling the cluster's metrics costs"
HEADINGS = {"scoring": SCORING_HEADING, "metrics": METRICS_HEADING}  # in the file's order


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (median)")
    parser.add_argument(
        "--only", choices=SECTIONS, help="measure this section; keep the others as they are"
    )
    args = parser.parse_args()
    kept = _sections((HERE / "RESULTS.md").read_text()) if args.only else {}
    measures = {"cluster": cluster_section, "scoring": scoring_section, "metrics": metrics_section}
    with tempfile.TemporaryDirectory(prefix="raybricks-bench-") as folder:
        made = {
            name: measure(folder, args.repeat)
            for name, measure in measures.items()
            if args.only in (None, name)
        }
    lines = [line for name in SECTIONS for line in [*made.get(name, kept.get(name, [])), ""]]
    (HERE / "RESULTS.md").write_text("\n".join(lines).strip() + "\n")
    print("\n".join(lines))


def _sections(text):
    """RESULTS.md's sections as written: the cluster's (from the top), then each under
    its heading."""
    found, rest = {}, text
    for name, heading in reversed(HEADINGS.items()):
        rest, given, section = rest.partition(heading)
        found[name] = [heading, "", *section.strip().splitlines()] if given else []
    return {"cluster": rest.strip().splitlines(), **found}


def written_by(repeat, section):
    return (
        f"Written by `python -m benchmarks.run --repeat {repeat}` (section {section}) on "
        f"{time.strftime('%Y-%m-%d')}: {described()}."
    )


def scoring_section(folder, repeat):
    scoring = batch_scoring(folder, repeat)
    trips = round_trip(folder)
    return [
        SCORING_HEADING,
        "",
        f"{written_by(repeat, 'scoring')} Each figure is the median of {repeat} runs, the "
        "three ways taking turns; each ratio is the median of the rounds' own ratios. "
        f"{SCORING['rows']:,} rows in {SCORING['partitions']} partitions; Ray actors is the "
        "sum of the batch_inference stage's legs (the table to Ray by its route while two "
        "scorer actors load the model, scored a block a call, back to Spark by its route "
        "and counted there); mapInPandas and predict_batch_udf are the same table scored "
        "in Spark without Ray (on local-cluster[3,1,1024], every executor Spark's) and "
        "written as Parquet, the model loaded in each task and in each Python worker.",
        "",
        "| comparison | raybricks | baseline | ratio | goal |",
        "|---|---|---|---|---|",
        *scoring_rows(scoring),
        f"| a 1,000-row table to Ray and back (s), the first of a run | "
        f"{trips['seconds'][0]:.2f} |  |  | <= 2 s |",
        "",
        "Every run, in seconds:",
        *(
            samples(f"batch scoring on {way}, {load:g} s load", [r["seconds"] for r in values])
            for (load, way), values in scoring.items()
        ),
        samples(
            f"a 1,000-row round trip through {'/'.join(trips['routes'])}, {ROUND_TRIPS} in a row",
            trips["seconds"],
        ),
        "",
        "Where the actors' seconds go (each leg's median; the model loads run beside the "
        "leg to Ray, what is left of them waits in the actors' leg; to Spark ends with "
        "Spark's count of what came back):",
        "",
        *scoring_legs(scoring),
        "",
        "The peaks of each way (the driver: the process that runs the job; the machine: "
        "its used memory above what it used before the run, every process of the run "
        "included):",
        "",
        *scoring_memory(scoring),
    ]


SAMPLED_EVERY = 5.0  # the default of metrics.sample_seconds


def sampling_on_and_off(folder, repeat):
    """Wall seconds of the whole local job with the cluster's metrics sampled and not,
    taking turns; and the sampler's own busy seconds in each sampled run."""
    seconds, busy = {True: [], False: []}, []
    for round_ in range(repeat):
        for sampled in (True, False) if round_ % 2 == 0 else (False, True):
            conf = Path(folder) / f"sampled-{sampled}.yml"
            conf.write_text(f"metrics:\n  sample_seconds: {SAMPLED_EVERY if sampled else 0}\n")
            logs = Path(tempfile.mkdtemp(dir=folder))
            wall, _, code = measured(
                [BIN / "raybricks", "run", "--conf", conf, "--log-path", logs], cwd=ROOT
            )
            if code != 0:
                raise SystemExit(f"raybricks run failed:\n{summary_of(logs)}")
            seconds[sampled].append(wall)
            if sampled:
                busy.append(report_in(logs)["metrics"]["busy_seconds"])
    return seconds, busy


def metrics_section(folder, repeat):
    seconds, busy = sampling_on_and_off(folder, repeat)
    return [
        METRICS_HEADING,
        "",
        f"{written_by(repeat, 'metrics')} The whole local job (`raybricks run`, every "
        f"stage) with each Ray node's metrics sampled every {SAMPLED_EVERY:g} s (the "
        "default; the nodes then export them at that pace, not Ray's 10 s) and with "
        "`metrics.sample_seconds: 0`, taking turns; each figure the median of "
        f"{repeat} runs, the ratio the median of the rounds' own ratios.",
        "",
        "| comparison | raybricks | baseline | ratio | goal |",
        "|---|---|---|---|---|",
        row("whole local job (s), sampled vs not", seconds[True], seconds[False], "<= 1.02x"),
        "",
        "Every run, in seconds:",
        samples("sampled", seconds[True]),
        samples("not sampled", seconds[False]),
        "- the sampler busy (listing the nodes, scraping, reading), each sampled run: "
        + ", ".join(f"{b:.2f}" for b in busy),
    ]


def cluster_section(folder, repeat):
    starts, legs = cluster_start(folder, repeat)
    pair_codes, pair_starts = two_clusters_at_once(folder)
    wall, peak, spent = job_vs_seed(folder, repeat)
    pool = pool_rates(folder)
    counter = counter_rates(folder)
    by_nodes = startup_by_nodes(folder, repeat)
    direct = pool.pop("direct round-robin")
    return [
        "# Benchmark results",
        "",
        f"{written_by(repeat, 'cluster')} Each figure is "
        f"the median of {repeat} runs, the two compared taking turns (call rates: of {ROUNDS} "
        "alternating rounds); each ratio is the median of the rounds' own ratios. On "
        "local-cluster[3,1,1024] with two Ray worker nodes (the third executor is Spark's "
        "own); the cluster is timed as `raybricks run` starts it; the whole job runs the "
        "lesson's six stages, as the seed's script does.",
        "",
        "| comparison | raybricks | baseline | ratio | goal |",
        "|---|---|---|---|---|",
        row(
            "cluster ready (s), fast start vs Ray's own",
            starts[True],
            starts[False],
            "<= 0.25x",
        ),
        row(
            "whole local job (s) vs the seed's demos as a script",
            wall["job"],
            wall["seed"],
            "<= 0.5x",
        ),
        *(
            row(
                f"{name} vs direct round-robin (items/s)",
                rate,
                direct,
                ">= 0.9x" if name.startswith("Pipelined") else "",
            )
            for name, rate in pool.items()
        ),
        *(
            row(
                f"detached_actors counter calls {where} vs a bare loop (calls/s)",
                counter[f"stage: {where}"],
                counter[f"bare: {where}"],
                ">= 0.9x",
            )
            for where in ("from a driver", "from a task")
        ),
        "",
        "Every run, in seconds:",
        samples("cluster ready with fast start", starts[True]),
        samples("cluster ready, Ray's own start", starts[False]),
        samples("whole local job", wall["job"]),
        samples("the seed's demos as a script", wall["seed"]),
        "",
        "Where a fast start's seconds go, read off each run's logs (driver.log and the "
        "nodes' own, on one clock; each leg from the end of the one above, the median of "
        "its runs):",
        "",
        *leg_rows(legs),
        "",
        f"Two fast-started clusters at once: exit codes {pair_codes}, ready in {pair_starts} s.",
        f"Peak RSS of the driver process over a whole local job: {peak:.0f} MiB.",
        "",
        "Where a whole local job's seconds go (median of its runs):",
        "",
        "| phase | seconds |",
        "|---|---|",
        *(f"| {name} | {statistics.median(s[name] for s in spent):.1f} |" for name in PHASES),
        "",
        "## How start-up grows with nodes",
        "",
        f"On a Spark standalone cluster (`benchmarks/standalone.py`): a master and "
        f"{max(NODE_COUNTS)} workers of one core each, one Ray worker node per worker; "
        f"`raybricks run --stages namespaces` with min = max worker nodes. {max(NODE_COUNTS)} "
        "one-core workers oversubscribe this machine's cores, so each added node also adds "
        "processes competing for them: a real cluster adds machines instead.",
        "",
        *node_rows(by_nodes),
        "",
        *(
            samples(f"{n} node(s), {START_NAMES[fast]}", values)
            for (n, fast), values in by_nodes.items()
        ),
    ]


if __name__ == "__main__":
    main()
