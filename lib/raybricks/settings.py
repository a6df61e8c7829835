"""One typed settings model per run: built-in defaults < conf/<target>.yml < flags.

Every way a value can be wrong ends in `BadInput` with one line that names the setting,
the value, where it came from and the fix, before anything is started.
"""

from __future__ import annotations

import difflib
import importlib.util
import logging
import os
import re
from collections.abc import Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from raybricks.cluster.gpus import BUILT_IN as BUILT_IN_DISCOVERY
from raybricks.errors import BadInput
from raybricks.paths import to_local_path, unwritable_reason
from raybricks.platform.master import check_known, spark_master
from raybricks.stages.registry import BUILT_IN, Catalog

logger = logging.getLogger(__name__)

TARGETS = ("local", "local-gpu", "dev", "gpu", "prod")

# Each run flag and the setting it overrides; the CLI builds its parser from this.
FLAG_SETTINGS: dict[str, str] = {
    "--max-worker-nodes": "cluster.max_worker_nodes",
    "--min-worker-nodes": "cluster.min_worker_nodes",
    "--num-cpus-worker-node": "cluster.num_cpus_worker_node",
    "--num-gpus-worker-node": "cluster.num_gpus_worker_node",
    "--spark-master": "cluster.spark_master",
    "--log-path": "log_path",
    "--namespace": "namespace",
    "--stages": "stages",
    "--job-run-id": "job_run_id",
}

# The lesson's argument names, removed from Ray since, and what they are called today.
LEGACY_CLUSTER_KEYS = {
    "num_worker_nodes": "max_worker_nodes",
    "num_cpus_per_node": "num_cpus_worker_node",
    "num_gpus_per_node": "num_gpus_worker_node",
}

_NAMESPACE = re.compile(r"[A-Za-z0-9_.\-]+")
_FILE_SCHEME = re.compile(r"^file:(//)?")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")

NodeOptions = dict[str, str | int | float | bool | None]
MAX_TEMP_ROOT_BYTES = 18  # 107 minus the longest path Ray makes below the temp root


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClusterSettings(_Strict):
    """How big a Ray cluster to start inside Spark (`setup_ray_cluster`'s arguments)."""

    spark_master: str = Field(
        "local-cluster[3,1,1024]",
        description="master of the Spark that raybricks starts itself; ignored when a "
        "session exists already (Databricks, spark-submit)",
    )
    max_worker_nodes: int = Field(2, ge=1)
    min_worker_nodes: int | None = Field(None, ge=1, description="below max: autoscaling")
    num_cpus_worker_node: int | None = Field(1, ge=1)
    num_gpus_worker_node: int | None = Field(None, ge=0)
    spark_worker_gpus: int = Field(
        0,
        ge=0,
        description="GPUs each worker of the Spark raybricks starts gets (a local-cluster "
        "master), found by gpu_discovery",
    )
    gpu_discovery: str = Field(
        "nvidia-smi",
        description="how those GPUs are found: nvidia-smi (real ones), fake (scheduling-only, "
        "to try the GPU path without any) or a discovery script's path",
    )
    memory_worker_node: int | None = Field(None, ge=1, description="heap bytes per node")
    object_store_memory_worker_node: int | None = Field(None, ge=1)
    num_cpus_head_node: int | None = Field(None, ge=0)
    head_node_options: NodeOptions = Field(default_factory=dict)
    worker_node_options: NodeOptions = Field(default_factory=dict)
    include_dashboard: bool = True
    fast_start: bool = Field(True, description="skip Ray's fixed start-up waits (Ray 2.60)")
    spark_class_archive: bool = Field(
        True,
        description="a Spark started here maps its JVMs' classes from archives cached by "
        "the first run (JDK class-data sharing)",
    )
    spark_class_archive_sets_kept: int = Field(
        2,
        ge=1,
        description="sets of class archives kept in the cache (one per JDK, Spark, options)",
    )
    auth: Literal["token", "disabled"] = Field(
        "token", description="token: a fresh token per run; disabled: anyone may connect"
    )
    autoscale_idle_timeout_minutes: float | None = Field(
        None, gt=0, description="with min below max: an idle extra worker node goes after this"
    )
    autoscale_upscaling_speed: float | None = Field(
        None, gt=0, description="with min below max: how fast worker nodes are added (Ray's)"
    )
    temp_root: str | None = Field(
        None,
        description="where Ray's nodes keep their temp folders (default: Ray's choice, "
        "/local_disk0/tmp on Databricks)",
    )

    @model_validator(mode="before")
    @classmethod
    def _translate_legacy_keys(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        for old, new in LEGACY_CLUSTER_KEYS.items():
            if old not in data:
                continue
            if new in data:
                raise ValueError(f"'{old}' is the old name of '{new}'; keep only '{new}'")
            logger.warning(
                "cluster.%s is deprecated (removed from Ray's setup_ray_cluster); "
                "read as cluster.%s. Rename it in the conf file.",
                old,
                new,
            )
            data[new] = data.pop(old)
        return data

    @field_validator("spark_master")
    @classmethod
    def _known_master(cls, master: str) -> str:
        return check_known(master)

    @field_validator("temp_root")
    @classmethod
    def _short_enough_for_sockets(cls, temp_root: str | None) -> str | None:
        # Ray keeps its sockets under <temp root>/ray-<port>-<id>[-node-<n>]/session_<time>
        # _<pid>/sockets/, and AF_UNIX paths end at 107 bytes.
        if temp_root is None:
            return None
        if not temp_root.startswith("/"):
            raise ValueError("use an absolute path, such as /local_disk0/tmp or /tmp")
        if len(temp_root.encode()) > MAX_TEMP_ROOT_BYTES:
            raise ValueError(
                f"Ray's socket paths under it would pass AF_UNIX's 107 bytes; use a path of "
                f"at most {MAX_TEMP_ROOT_BYTES} bytes, such as /tmp/ray-runs"
            )
        return temp_root

    @field_validator("gpu_discovery")
    @classmethod
    def _a_script_that_runs(cls, kind: str) -> str:
        if kind in BUILT_IN_DISCOVERY:
            return kind
        path = Path(kind)
        if not path.is_file():
            raise ValueError("no such file; give nvidia-smi, fake or a discovery script's path")
        if not os.access(path, os.X_OK):
            raise ValueError(f"not executable; chmod +x {path}")
        return str(path.absolute())

    @field_validator("num_gpus_worker_node", "spark_worker_gpus")
    @classmethod
    def _gpus_where_spark_gives_them(cls, gpus: int | None, info: ValidationInfo) -> int | None:
        given = info.data.get("spark_master")  # validated before these
        if not gpus or not given:
            return gpus
        master = spark_master(given)
        if master.local_mode:
            raise ValueError(
                f"GPUs asked of Spark master {given}: Ray on Spark cannot give GPUs to "
                "worker nodes in local mode; use local-cluster[W,C,MB]"
            )
        if info.field_name == "spark_worker_gpus" and master.workers is None:
            raise ValueError(
                f"only a local-cluster master's workers get GPUs from raybricks, not {given}'s "
                "(their own configuration gives them); set it to 0"
            )
        return gpus

    @model_validator(mode="after")
    def _consistent_counts(self) -> ClusterSettings:
        if self.num_gpus_worker_node is not None and self.num_cpus_worker_node is None:
            raise ValueError(
                "num_gpus_worker_node needs num_cpus_worker_node: Ray on Spark takes both "
                "or neither; set num_cpus_worker_node too"
            )
        if self.min_worker_nodes is not None and self.min_worker_nodes > self.max_worker_nodes:
            raise ValueError(
                f"min_worker_nodes ({self.min_worker_nodes}) is above max_worker_nodes "
                f"({self.max_worker_nodes}); lower min_worker_nodes or raise max_worker_nodes"
            )
        return self


class DataSettings(_Strict):
    """Where stages hand Spark data to Ray and back (`raybricks.data`)."""

    handoff_root: str | None = Field(
        None,
        description="a folder every node sees; default the run folder's handoff/ "
        "(dbfs:/x is read as /dbfs/x, file:/x as /x)",
    )
    keep_handoff: bool = Field(False, description="keep each stage's handoff, to debug it")
    route: Literal["auto", "arrow", "parquet", "databricks"] = Field(
        "auto",
        description="how tables go between Spark and Ray: auto takes databricks where the "
        "runtime has it, arrow up to the bounds below, parquet beyond",
    )
    to_ray_arrow_max_mb: float = Field(
        128.0, ge=0, description="the largest table (MB) to Ray through the driver's memory"
    )
    to_spark_arrow_max_mb: float = Field(
        4.0,
        ge=0,
        description="the largest table (MB) back to Spark through the driver's memory "
        "(Spark ships such a table inside its tasks: past a few MB, files are faster)",
    )

    @field_validator("handoff_root")
    @classmethod
    def _a_path_both_sides_read(cls, root: str | None) -> str | None:
        if root is None:
            return None
        path = _FILE_SCHEME.sub("", root)
        if path.startswith("dbfs:"):
            return str(to_local_path(path))
        if _SCHEME.match(path):
            raise ValueError(
                "Spark writes it and Ray Data reads it as a path: use a folder every node "
                "sees, such as /Volumes/<catalog>/<schema>/<volume>/handoff or /dbfs/..."
            )
        if not path.startswith("/"):
            raise ValueError("use an absolute path, such as /Volumes/main/raybricks/handoff")
        return str(Path(path))


class MetricsSettings(_Strict):
    """What the run keeps of the cluster's own metrics (`raybricks.metrics`)."""

    sample_seconds: float = Field(
        5.0,
        ge=0,
        description="how often each Ray node's metrics are sampled into the report; 0: never "
        "(nodes then export them at Ray's own pace)",
    )

    @field_validator("sample_seconds")
    @classmethod
    def _zero_or_a_second(cls, seconds: float) -> float:
        if 0 < seconds < 1:
            raise ValueError("Ray's nodes export metrics at most once a second: use 0 or >= 1")
        return seconds


class MlflowSettings(_Strict):
    """Where a run is logged in MLflow (`raybricks.report.mlflow_run`); nowhere by default."""

    experiment: str | None = Field(
        None,
        description="the experiment to log each run to; on Databricks a workspace path, "
        "such as /Users/<you>/raybricks",
    )
    tracking_uri: str | None = Field(
        None, description="default MLflow's own: the workspace on Databricks, ./mlruns elsewhere"
    )

    @field_validator("experiment")
    @classmethod
    def _mlflow_is_here(cls, experiment: str | None) -> str | None:
        if experiment is not None and importlib.util.find_spec("mlflow") is None:
            raise ValueError(
                "MLflow is not installed here: pip install mlflow-skinny (Databricks ML "
                "runtimes have it), or leave mlflow.experiment unset"
            )
        return experiment


class Settings(_Strict):
    target: str
    namespace: str = "raybricks"
    log_path: str = "runs"
    stages: list[str] = Field(
        default_factory=list,
        validate_default=True,
        description="empty, or 'all': every stage, in catalog order",
    )
    job_run_id: int | None = Field(
        None, ge=1, description="the Databricks job run's id ({{job.run_id}}): names the run folder"
    )
    stage_timeout_seconds: float = Field(
        300.0, gt=0, description="a stage still running after this fails as timed out"
    )
    parallel_stages: int = Field(
        3, ge=1, description="stages run at once, started in order; 1 runs one after another"
    )
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)
    data: DataSettings = Field(default_factory=DataSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    mlflow: MlflowSettings = Field(default_factory=MlflowSettings)
    stage_params: Any = None  # typed per stage catalog: see `settings_model`
    known_stages: ClassVar[tuple[str, ...]] = tuple(BUILT_IN)

    @field_validator("namespace")
    @classmethod
    def _namespace_shape(cls, namespace: str) -> str:
        if not _NAMESPACE.fullmatch(namespace):
            raise ValueError("use letters, digits, '_', '-' or '.', at least one")
        return namespace

    @field_validator("log_path")
    @classmethod
    def _log_path_is_local(cls, log_path: str) -> str:
        return str(to_local_path(log_path))

    @field_validator("stages", mode="before")
    @classmethod
    def _split_stage_list(cls, stages: Any) -> Any:
        if stages is None or (isinstance(stages, str) and stages.strip() in ("", "all")):
            return list(cls.known_stages)
        if isinstance(stages, str):
            return [name.strip() for name in stages.split(",")]
        return stages

    @field_validator("stages")
    @classmethod
    def _known_stages(cls, stages: list[str]) -> list[str]:
        known = cls.known_stages
        if not stages:
            return list(known)
        if any(not name for name in stages):
            raise ValueError(f"a stage name is empty; name stages from: {', '.join(known)}")
        for name in stages:
            if name not in known:
                hint = difflib.get_close_matches(name, known, n=1)
                maybe = f"did you mean '{hint[0]}'? " if hint else ""
                raise ValueError(f"unknown stage '{name}'; {maybe}known: {', '.join(known)}")
        if len(set(stages)) != len(stages):
            raise ValueError("a stage is named twice; name each once")
        return stages

    @property
    def autoscaling(self) -> bool:
        c = self.cluster
        return c.min_worker_nodes is not None and c.min_worker_nodes < c.max_worker_nodes

    @property
    def log_root(self) -> Path:
        return Path(self.log_path)

    def params_for(self, stage: str) -> Any:
        return getattr(self.stage_params, stage)


@cache
def _settings_model(names: tuple[str, ...], params: tuple[type[BaseModel], ...]) -> type[Settings]:
    section: type[BaseModel] = create_model(  # type: ignore[call-overload]
        "StageParamsSection",
        __config__=ConfigDict(extra="forbid", frozen=True),
        **{name: (model, model()) for name, model in zip(names, params, strict=True)},
    )
    model: type[Settings] = create_model(
        "Settings", __base__=Settings, stage_params=(section, Field(default_factory=section))
    )
    model.known_stages = names
    return model


def settings_model(catalog: Catalog = BUILT_IN) -> type[Settings]:
    """The settings model for this stage catalog: one `stage_params` section per stage,
    typed by the stage's own parameters."""
    names = tuple(catalog)
    return _settings_model(names, tuple(catalog[name].params for name in names))


def packaged_conf_dir() -> Path:
    """The conf files shipped inside the wheel (a deployed job has no repository)."""
    return Path(str(resources.files("raybricks") / "conf"))


def default_conf_dir() -> Path:
    """`./conf` when run from the repository, else the copy inside the wheel."""
    local = Path.cwd() / "conf"
    return local if local.is_dir() else packaged_conf_dir()


def load_settings(
    target: str = "local",
    conf: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    conf_dir: Path | None = None,
    catalog: Catalog = BUILT_IN,
    check_log_path: bool = True,
) -> Settings:
    """Settings for `target` from its conf file (or `conf`), with `overrides` on top.

    `overrides` maps dotted setting names (`cluster.max_worker_nodes`) to values as
    given on the command line; `None` values are ignored.
    """
    if target not in TARGETS:
        raise BadInput(f"target = {target!r} is unknown; use one of: {', '.join(TARGETS)}")
    conf_path = conf or (conf_dir or default_conf_dir()) / f"{target}.yml"
    data = _read_conf(conf_path)
    given = {key: value for key, value in (overrides or {}).items() if value is not None}
    for dotted, value in given.items():
        _set_dotted(data, dotted, value)
    try:
        model = settings_model(catalog)
        settings = model.model_validate({**data, "target": target})
    except ValidationError as exc:
        raise BadInput(_one_line(exc, conf_path, given, model)) from None
    reason = unwritable_reason(settings.log_root) if check_log_path else None
    if reason:
        origin = "--log-path" if "log_path" in given else str(conf_path)
        raise BadInput(
            f"log_path = {settings.log_path!r} ({origin}) cannot hold run folders: "
            f"{reason}; choose a writable folder"
        )
    root = settings.data.handoff_root
    if check_log_path and root and (reason := unwritable_reason(Path(root))):
        raise BadInput(
            f"data.handoff_root = {root!r} ({conf_path}) cannot hold handoffs: {reason}; "
            "choose a writable folder every node sees"
        )
    return settings


def _read_conf(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(
            f"conf file {path} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at "
            f"offset {exc.start}); save it as UTF-8 YAML"
        ) from None
    except FileNotFoundError:
        raise BadInput(
            f"conf file {path} does not exist; pass --conf FILE or add {path.name} "
            f"under {path.parent}"
        ) from None
    except OSError as exc:
        raise BadInput(
            f"conf file {path} cannot be read ({exc.strerror}); fix its permissions"
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise BadInput(
            f"conf file {path} is not valid YAML{where}: {problem}; fix the YAML"
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BadInput(
            f"conf file {path} holds a {type(data).__name__}, not a mapping of settings; "
            "start it with keys such as 'cluster:'"
        )
    return data


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = data
    for key in parents:
        child = node.get(key)
        node[key] = child = dict(child) if isinstance(child, Mapping) else {}
        node = child
    node[leaf] = value


def _one_line(
    exc: ValidationError, conf_path: Path, given: Mapping[str, Any], model: type[Settings]
) -> str:
    """The first validation error as one line: setting, value, origin, fix."""
    error = exc.errors()[0]
    loc = [str(part) for part in error["loc"]]
    setting = ".".join(loc) or "settings"
    flag = next((f for f, key in FLAG_SETTINGS.items() if key == setting), None)
    origin = flag if flag and setting in given else str(conf_path)
    value = _short(error.get("input"))
    if error["type"] == "extra_forbidden":
        fix = _unknown_key_fix(loc, model)
    else:
        fix = error["msg"].removeprefix("Value error, ")
    more = len(exc.errors()) - 1
    tail = f" (and {more} more problem{'s' * (more > 1)})" if more else ""
    return f"{setting} = {value} ({origin}): {fix}{tail}"


def _unknown_key_fix(loc: list[str], settings: type[Settings]) -> str:
    model: Any = settings
    for part in loc[:-1]:
        field = model.model_fields.get(part)
        model = field.annotation if field else None
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return "unknown setting; remove it"
    known = [name for name in model.model_fields if name != "target"]
    hint = difflib.get_close_matches(loc[-1], known, n=1)
    maybe = f"did you mean '{hint[0]}'? " if hint else ""
    return f"unknown setting; {maybe}known here: {', '.join(known)}"


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
