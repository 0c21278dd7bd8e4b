"""Config loading: every shipped config loads, and a wrong key or value is named before any work."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedsplit.cli import main
from fedsplit.config import Config, ConfigError, config_from_dict, load_config, same_config

from conftest import LFW_ROOT

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))


def test_defaults_match_the_contract_keys():
    cfg = load_config()
    d = cfg.to_dict()
    for section, keys in {
        "data": ["source", "root", "identities", "images_per_identity", "eval_pairs"],
        "partition": ["clients", "scheme", "alpha"],
        "protection": ["strategy", "client_channels", "upsample"],
        "model": ["server", "server_width", "client", "client_width", "embedding", "head"],
        "train": ["warmup_rounds", "rounds", "clients_per_round", "batches_per_client", "batch_size", "lr"],
        "simulation": ["client_cpus", "ray_address"],
    }.items():
        assert set(keys) <= set(d[section]), section
    assert {"name", "seed", "output"} <= set(d)
    assert cfg.protection.client_channels == [0, 1, 2, 3, 4, 5, 8, 9, 16, 24]


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_shipped_config_loads(path, monkeypatch):
    text = path.read_text()
    if "../shared/data" in text:
        # Configs for the shared real data name it relative to the repo root, where users run them.
        if not LFW_ROOT.is_dir():
            pytest.skip(f"no shared data at {LFW_ROOT}")
        monkeypatch.chdir(Path(__file__).parents[1])
    cfg = load_config(path)
    assert isinstance(cfg, Config)
    assert cfg.server_steps() == cfg.train.rounds * cfg.train.clients_per_round * cfg.train.batches_per_client


def test_default_yaml_is_the_builtin_default():
    # `fedsplit train` / `fedsplit run` without a config and with configs/default.yaml must agree.
    assert load_config(Path(__file__).parents[1] / "configs" / "default.yaml").to_dict() == load_config().to_dict()


@pytest.mark.parametrize("override, named", [
    ("trian.lr=0.1", "trian"),
    ("train.lrr=0.1", "train.lrr"),
    ("train.lr=-1", "train.lr"),
    ("train.lr=.nan", "train.lr"),
    ("protection.upsample=3", "protection.upsample"),
    ("protection.strategy=blur", "protection.strategy"),
    ("protection.client_channels=[0, 64]", "protection.client_channels"),
    ("protection.client_channels=[1, 1]", "protection.client_channels"),
    ("partition.scheme=random", "partition.scheme"),
    ("partition.clients=0", "partition.clients"),
    ("train.clients_per_round=9", "train.clients_per_round"),
    ("train.batch_size=1", "train.batch_size"),
    ("model.server=ir101", "model.server"),
    ("model.head=softmax", "model.head"),
    ("data.identities=ten", "data.identities"),
    ("data.eval_identities=500", "data.eval_identities"),
    ("data.eval_pairs=15", "data.eval_pairs"),
    ("data.source=folder", "data.root"),
    ("train.rounds=true", "train.rounds"),
    ("train.central_batches=per_client", "train.central_batches"),
    ("model.head_scale=0", "model.head_scale"),
    ("model.head_scale=.inf", "model.head_scale"),
    ("model.head_margin=1.2", "model.head_margin"),
    ("model.head_margin=-0.1", "model.head_margin"),
])
def test_bad_key_or_value_is_named(override, named):
    with pytest.raises(ConfigError, match=named.replace(".", r"\.").replace("[", r"\[")):
        load_config(None, [override])


def test_override_values_are_yaml_typed():
    cfg = load_config(None, ["train.lr=0.05", "protection.client_channels=[0, 1, 8]", "data.root=null"])
    assert cfg.train.lr == 0.05 and cfg.protection.client_channels == [0, 1, 8] and cfg.data.root is None


def test_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {lr: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_config(bad)
    bad.write_text("train:\n  rounds: 2\n  speed: 3\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*train\.speed"):
        load_config(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")


def test_train_command_stops_before_any_work(tmp_path, capsys):
    with pytest.raises(SystemExit, match=r"model\.server_width"):
        main(["train", "--set", f"output={tmp_path}", "--set", "model.server_width=0"])
    assert not any(tmp_path.iterdir()), "a bad config must not create any output"


def test_ray_init_arguments_come_from_the_config():
    from fedsplit.federated import ray_init_args

    assert ray_init_args(load_config(None, ["simulation.ray_num_cpus=2"])) == {"include_dashboard": False, "num_cpus": 2}
    assert ray_init_args(load_config(None, ["simulation.ray_address=auto"])) == {"address": "auto"}
    with pytest.raises(ConfigError, match=r"simulation\.ray_num_cpus"):
        load_config(None, ["simulation.ray_num_cpus=1", "simulation.client_cpus=2"])


def test_a_stored_config_from_before_the_head_keys_reads_as_the_heads_own():
    # Runs written before model.head_scale/head_margin existed trained with s=64 and the head's margin:
    # read back, they must not pass for runs of today's default (s=8, m=0.1), or scripts would reuse them.
    stored = load_config().to_dict()
    del stored["model"]["head_scale"], stored["model"]["head_margin"]
    assert not same_config(stored, load_config())
    assert same_config(stored, load_config(None, ["model.head_scale=null", "model.head_margin=null"]))
    assert config_from_dict(stored).model.head_scale is None
