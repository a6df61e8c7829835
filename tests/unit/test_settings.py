"""Settings: defaults < conf file < flags, the lesson's legacy names, and every bad input."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from raybricks.errors import BadInput
from raybricks.settings import FLAG_SETTINGS, TARGETS, load_settings
from raybricks.stages.registry import BUILT_IN as STAGES

REPO_CONF = Path(__file__).resolve().parents[2] / "conf"


def write_conf(tmp_path: Path, text: str) -> Path:
    conf = tmp_path / "conf.yml"
    conf.write_text(text)
    return conf


def test_every_target_has_a_conf_file_that_validates():
    for target in TARGETS:
        settings = load_settings(target, conf_dir=REPO_CONF)
        assert settings.target == target
        assert settings.stages == list(STAGES)


def test_defaults_apply_under_an_empty_conf_file(tmp_path):
    settings = load_settings(conf=write_conf(tmp_path, ""), overrides={"log_path": str(tmp_path)})
    assert settings.cluster.max_worker_nodes == 2
    assert settings.cluster.spark_master == "local-cluster[3,1,1024]"
    assert settings.cluster.auth == "token"
    assert settings.namespace == "raybricks"


def test_flags_override_the_conf_file_which_overrides_defaults(tmp_path):
    conf = write_conf(tmp_path, "namespace: from-conf\ncluster:\n  max_worker_nodes: 3\n")
    settings = load_settings(
        conf=conf,
        overrides={"cluster.max_worker_nodes": "4", "log_path": str(tmp_path), "namespace": None},
    )
    assert settings.cluster.max_worker_nodes == 4  # flag beats conf
    assert settings.namespace == "from-conf"  # an absent flag (None) leaves the conf value
    assert settings.cluster.num_cpus_worker_node == 1  # default where neither speaks


def test_stage_list_from_a_flag_and_stage_params_from_the_conf(tmp_path):
    conf = write_conf(tmp_path, "stage_params:\n  options_override:\n    override_num_cpus: 0\n")
    settings = load_settings(
        conf=conf, overrides={"stages": "options_override", "log_path": str(tmp_path)}
    )
    assert settings.stages == ["options_override"]
    assert settings.params_for("options_override").override_num_cpus == 0


def test_the_lessons_argument_names_are_translated_with_a_warning(tmp_path, caplog):
    conf = write_conf(tmp_path, "cluster:\n  num_worker_nodes: 3\n  num_cpus_per_node: 2\n")
    with caplog.at_level(logging.WARNING, logger="raybricks.settings"):
        settings = load_settings(conf=conf, overrides={"log_path": str(tmp_path)})
    assert settings.cluster.max_worker_nodes == 3
    assert settings.cluster.num_cpus_worker_node == 2
    warned = " ".join(caplog.messages)
    assert "num_worker_nodes is deprecated" in warned
    assert "num_cpus_per_node is deprecated" in warned


def test_dbfs_log_path_becomes_a_fuse_path(tmp_path, monkeypatch):
    monkeypatch.setattr("raybricks.settings.unwritable_reason", lambda path: None)
    settings = load_settings(conf=write_conf(tmp_path, "log_path: dbfs:/ray/logs\n"))
    assert settings.log_path == "/dbfs/ray/logs"


BAD_INPUT = [
    # (conf text, flag overrides, words the one-line error must hold)
    (
        "",
        {"cluster.max_worker_nodes": "0"},
        ["cluster.max_worker_nodes", "'0'", "--max-worker-nodes", "greater than or equal to 1"],
    ),
    (
        "",
        {"cluster.max_worker_nodes": "two"},
        ["cluster.max_worker_nodes", "'two'", "valid integer"],
    ),
    (
        "",
        {"cluster.min_worker_nodes": "0"},
        ["cluster.min_worker_nodes", "'0'", "greater than or equal to 1"],
    ),
    (
        "",
        {"cluster.min_worker_nodes": "3", "cluster.max_worker_nodes": "2"},
        ["min_worker_nodes (3)", "above"],
    ),
    (
        "",
        {"cluster.num_cpus_worker_node": "0"},
        ["cluster.num_cpus_worker_node", "'0'", "greater than or equal to 1"],
    ),
    ("", {"stages": "nope"}, ["stages", "'nope'", "unknown stage 'nope'", "known:"]),
    ("", {"stages": "namespaces,"}, ["stages", "a stage name is empty"]),
    ("", {"stages": "options_override,options_override"}, ["stages", "named twice"]),
    ("", {"namespace": ""}, ["namespace", "''", "at least one"]),
    ("", {"namespace": "has space"}, ["namespace", "'has space'"]),
    (
        "",
        {"cluster.spark_master": "mesos://m:5050"},
        ["cluster.spark_master", "mesos://", "local-cluster[W,C,MB]"],
    ),
    ("", {"log_path": "s3://bucket/logs"}, ["log_path", "s3://bucket/logs", "FUSE path"]),
    (
        "clusterr:\n  max_worker_nodes: 2\n",
        {},
        ["clusterr", "unknown setting", "did you mean 'cluster'"],
    ),
    (
        "cluster:\n  max_workers: 2\n",
        {},
        ["cluster.max_workers", "did you mean 'max_worker_nodes'"],
    ),
    (
        "cluster:\n  max_worker_nodes: [2]\n",
        {},
        ["cluster.max_worker_nodes", "[2]", "valid integer"],
    ),
    (
        "cluster:\n  num_gpus_worker_node: 1\n  num_cpus_worker_node: null\n",
        {},
        ["needs num_cpus_worker_node"],
    ),
    (
        "cluster:\n  num_worker_nodes: 2\n  max_worker_nodes: 2\n",
        {},
        ["keep only 'max_worker_nodes'"],
    ),
    (
        "stage_params:\n  options_override:\n    override_num_cpus: -1\n",
        {},
        ["stage_params.options_override.override_num_cpus", "-1"],
    ),
    ("parallel_stages: 0\n", {}, ["parallel_stages", "0", "greater than or equal to 1"]),
    (
        "stage_params:\n  batch_inference: {rows: 0}\n",
        {},
        ["stage_params.batch_inference.rows", "0", "greater than or equal to 1"],
    ),
    (
        "stage_params:\n  batch_inference: {actors: 0}\n",
        {},
        ["stage_params.batch_inference.actors", "0", "greater than or equal to 1"],
    ),
    ("data:\n  route: disk\n", {}, ["data.route", "'disk'", "'arrow'"]),
    (
        "data:\n  to_ray_arrow_max_mb: -1\n",
        {},
        ["data.to_ray_arrow_max_mb", "-1", "greater than or equal to 0"],
    ),
    ("data:\n  handoff_root: handoff\n", {}, ["data.handoff_root", "'handoff'", "absolute"]),
    ("cluster:\n  spark_worker_gpus: -1\n", {}, ["cluster.spark_worker_gpus", "-1"]),
    (
        "cluster:\n  spark_worker_gpus: 0.5\n",
        {},
        ["cluster.spark_worker_gpus", "0.5", "fractional part"],
    ),
    (
        "",
        {"cluster.num_gpus_worker_node": "1.5"},
        ["cluster.num_gpus_worker_node", "'1.5'", "--num-gpus-worker-node", "integer"],
    ),
    (
        "cluster:\n  spark_master: local[2]\n  num_gpus_worker_node: 1\n",
        {},
        ["cluster.num_gpus_worker_node", "local[2]", "local mode", "local-cluster[W,C,MB]"],
    ),
    (
        "cluster:\n  spark_master: spark://h:7077\n  spark_worker_gpus: 1\n",
        {},
        ["cluster.spark_worker_gpus", "spark://h:7077", "their own configuration"],
    ),
    (
        "cluster:\n  gpu_discovery: /no/such/script.sh\n",
        {},
        ["cluster.gpu_discovery", "/no/such/script.sh", "no such file", "nvidia-smi, fake"],
    ),
    (
        "data:\n  handoff_root: s3://bucket/handoff\n",
        {},
        ["data.handoff_root", "'s3://bucket/handoff'", "as a path", "/Volumes/"],
    ),
    (
        "metrics:\n  sample_seconds: 0.5\n",
        {},
        ["metrics.sample_seconds", "0.5", "once a second", "use 0 or >= 1"],
    ),
    ("metrics:\n  sample_seconds: -1\n", {}, ["metrics.sample_seconds", "-1", "greater than"]),
    (
        "stage_params:\n  actor_pool: {slow_call_seconds: 0.2}\n",
        {},
        ["stage_params.actor_pool", "get_next_timeout_seconds (0.2)", "slow_call_seconds (0.2)"],
    ),
    ("namespace: no\n", {}, ["namespace", "False", "valid string"]),  # YAML 1.1: no is False
    ("- a list\n", {}, ["holds a list", "mapping"]),
    ("cluster: [unclosed\n", {}, ["not valid YAML", "line"]),
]


@pytest.mark.parametrize(("conf_text", "overrides", "words"), BAD_INPUT)
def test_bad_input_is_one_line_naming_setting_value_and_fix(tmp_path, conf_text, overrides, words):
    conf = write_conf(tmp_path, conf_text)
    with pytest.raises(BadInput) as caught:
        load_settings(conf=conf, overrides={"log_path": str(tmp_path / "runs"), **overrides})
    message = str(caught.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_unknown_target_missing_and_unreadable_conf_files(tmp_path):
    with pytest.raises(
        BadInput, match="target = 'qa' is unknown; use one of: local, local-gpu, dev, gpu, prod"
    ):
        load_settings("qa")
    with pytest.raises(BadInput, match="does not exist; pass --conf FILE"):
        load_settings(conf=tmp_path / "missing.yml")
    a_folder = tmp_path / "conf.yml"
    a_folder.mkdir()  # unreadable as a file, even for root
    with pytest.raises(BadInput, match="cannot be read"):
        load_settings(conf=a_folder)


def test_a_log_path_that_cannot_be_a_folder(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("")
    with pytest.raises(BadInput, match=r"log_path = '.*file/runs' \(--log-path\) cannot hold"):
        load_settings(conf=write_conf(tmp_path, ""), overrides={"log_path": str(a_file / "runs")})


def test_every_flag_names_a_real_setting():
    settings = load_settings("local", conf_dir=REPO_CONF)
    for key in FLAG_SETTINGS.values():
        node = settings
        for part in key.split("."):
            node = getattr(node, part)


@pytest.mark.parametrize("everything", ["", "all", " all "])
def test_an_empty_or_all_stage_list_means_every_stage(everything):
    settings = load_settings("local", overrides={"stages": everything}, conf_dir=REPO_CONF)
    assert settings.stages == list(STAGES)


@pytest.mark.parametrize(
    ("temp_root", "words"),
    [("relative/tmp", "absolute path"), ("/tmp/" + "x" * 20, "AF_UNIX's 107 bytes")],
)
def test_a_temp_root_ray_cannot_use_is_bad_input(temp_root, words):
    with pytest.raises(BadInput, match=r"cluster\.temp_root") as caught:
        load_settings("local", overrides={"cluster.temp_root": temp_root}, conf_dir=REPO_CONF)
    assert words in str(caught.value)


def test_a_handoff_root_that_cannot_be_a_folder_is_bad_input(tmp_path):
    (tmp_path / "a-file").write_text("")
    conf = write_conf(tmp_path, f"data:\n  handoff_root: {tmp_path / 'a-file' / 'handoff'}\n")
    with pytest.raises(BadInput, match=r"data.handoff_root = .* cannot hold handoffs: .* file"):
        load_settings(conf=conf, overrides={"log_path": str(tmp_path)})


@pytest.mark.parametrize(
    ("given", "read_as"),
    [
        ("dbfs:/raybricks/handoff", "/dbfs/raybricks/handoff"),
        ("file:///srv/shared/handoff", "/srv/shared/handoff"),
        ("/Volumes/main/raybricks/handoff", "/Volumes/main/raybricks/handoff"),
    ],
)
def test_a_handoff_root_is_read_as_the_path_both_sides_use(tmp_path, given, read_as):
    conf = write_conf(tmp_path, f"data:\n  handoff_root: {given}\n")
    settings = load_settings(conf=conf, overrides={"log_path": str(tmp_path)}, check_log_path=False)
    assert settings.data.handoff_root == read_as


def test_a_discovery_script_that_cannot_run_is_bad_input(tmp_path):
    script = tmp_path / "discover.sh"
    script.write_text("#!/bin/sh\necho '{}'\n")
    conf = write_conf(tmp_path, f"cluster:\n  gpu_discovery: {script}\n  spark_worker_gpus: 1\n")
    with pytest.raises(
        BadInput, match=f"cluster.gpu_discovery = .*not executable; chmod \\+x {script}"
    ):
        load_settings(conf=conf, overrides={"log_path": str(tmp_path)})
    script.chmod(0o755)
    settings = load_settings(conf=conf, overrides={"log_path": str(tmp_path)})
    assert settings.cluster.gpu_discovery == str(script)
