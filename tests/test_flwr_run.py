"""`flwr run .`: the module-level apps find the fedsplit config in the run config, as Flower passes it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fedsplit import federated, flower_apps
from fedsplit.config import ConfigError, load_config
from fedsplit.flower_apps import resolve_config

ROOT = Path(__file__).resolve().parent.parent


def test_run_config_overrides_reach_the_config():
    cfg = resolve_config({"config": "", "set": "partition.clients=2;train.clients_per_round=2; train.rounds=1;"})
    assert (cfg.partition.clients, cfg.train.clients_per_round, cfg.train.rounds) == (2, 2, 1)
    overrides = ["partition.clients=2", "train.clients_per_round=2", "train.rounds=1"]
    assert cfg.to_dict() == load_config(None, overrides).to_dict()


def test_empty_run_config_is_the_defaults():
    assert resolve_config({"config": "", "set": ""}).to_dict() == load_config().to_dict()
    assert resolve_config({}).to_dict() == load_config().to_dict()


def test_yaml_path_is_found_in_the_app_from_any_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = resolve_config({"config": "configs/default.yaml", "set": "train.rounds=1"})
    assert cfg.to_dict() == load_config(ROOT / "configs/default.yaml", ["train.rounds=1"]).to_dict()


def test_a_bad_key_is_named():
    with pytest.raises(ConfigError, match="partition.clientz"):
        resolve_config({"config": "", "set": "partition.clientz=2"})
    with pytest.raises(ConfigError, match="train.rounds"):
        resolve_config({"config": "", "set": "train.rounds=zero"})


def test_pyproject_declares_the_apps_and_run_config():
    import tomllib

    flwr = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["flwr"]
    assert flwr["app"]["components"] == {"serverapp": "fedsplit.flower_apps:serverapp",
                                         "clientapp": "fedsplit.flower_apps:clientapp"}
    assert flwr["app"]["config"] == {"config": "", "set": ""}


def test_client_app_routes_every_message_type_of_fedsplit_run():
    def names(app):
        return set(app._registered_funcs)  # noqa: SLF001 - Flower keeps the routing table here

    assert names(flower_apps.clientapp) == names(federated.make_client_app(load_config()))


def test_a_wrong_number_of_supernodes_names_both_numbers(monkeypatch):
    class Grid:
        def __init__(self, n):
            self.n = n

        def get_node_ids(self):
            return list(range(self.n))

    with pytest.raises(RuntimeError, match="federation has 8 supernodes but partition.clients is 2"):
        federated._wait_for_nodes(Grid(8), 2, timeout=5)
    monkeypatch.setattr(federated, "_NODES_SETTLED_S", 0.2)
    with pytest.raises(RuntimeError, match="federation has 1 supernodes but partition.clients is 2"):
        federated._wait_for_nodes(Grid(1), 2, timeout=5)
    assert federated._wait_for_nodes(Grid(2), 2, timeout=5) == [0, 1]


TINY = ";".join(["data.identities=16", "data.eval_identities=6", "data.images_per_identity=6", "data.eval_pairs=40",
                 "partition.clients=2", "train.clients_per_round=2", "train.rounds=1", "train.batches_per_client=1",
                 "train.batch_size=6", "train.warmup_rounds=1", "train.warmup_local_steps=1", "protection.upsample=1",
                 "model.server_width=0.125", "model.client_width=0.25", "name=flwr-run-test"])


@pytest.mark.skipif(os.environ.get("FEDSPLIT_FLWR_RUN_TEST") != "1",
                    reason="starts a local SuperLink daemon; set FEDSPLIT_FLWR_RUN_TEST=1 to run")
def test_flwr_run_end_to_end(tmp_path):
    """`flwr run . --stream` with 2 supernodes writes runs/<name>/; the SuperLink is stopped afterwards."""
    flwr = shutil.which("flwr", path=str(Path(sys.executable).parent))
    assert flwr, "the flwr command is not installed beside this Python"
    app = tmp_path / "app"  # a copy: the first `flwr run` may rewrite a legacy pyproject in place
    shutil.copytree(ROOT, app, ignore=shutil.ignore_patterns(".venv", ".git", "runs", "*.egg-info", "__pycache__",
                                                             ".pytest_cache"))
    out = tmp_path / "runs"
    env = {**os.environ, "FLWR_HOME": str(tmp_path / "flwr-home"), "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
           "FLWR_TELEMETRY_ENABLED": "0"}
    cmd = [flwr, "run", ".", "--stream", "--run-config", f"set='{TINY};output={out}'",
           "--federation-config", "num-supernodes=2 client-resources-num-cpus=1"]
    try:
        proc = subprocess.run(cmd, cwd=app, env=env, capture_output=True, text=True, timeout=600)
    finally:
        _stop_local_superlink(tmp_path / "flwr-home")
    assert (out / "flwr-run-test" / "results.json").exists(), proc.stdout[-3000:] + proc.stderr[-3000:]


def _stop_local_superlink(home: Path) -> None:
    """Kill the flower-superexec and then the flower-superlink that use this FLWR_HOME (by pid)."""
    import signal
    import time

    for name in ("flower-superexec", "flower-superlink"):
        for pid_dir in Path("/proc").iterdir():
            if not pid_dir.name.isdigit():
                continue
            try:
                cmdline = (pid_dir / "cmdline").read_bytes().split(b"\0")
                env = (pid_dir / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(name.encode() in part for part in cmdline[:2]) and f"FLWR_HOME={home}".encode() in env:
                os.kill(int(pid_dir.name), signal.SIGTERM)
        time.sleep(1)
