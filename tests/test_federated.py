"""The federated run: what leaves a client, and that the reported bytes are the bytes of the messages."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict

from fedsplit.config import load_config
from fedsplit.data.splits import build_splits
from fedsplit.federated import run_federated
from fedsplit.frequency import dct_split
from fedsplit.traffic import message_size
from fedsplit.training import flip_faces, to_tensors

SMALL = ["data.identities=16", "data.eval_identities=6", "data.images_per_identity=6", "data.eval_pairs=40",
         "partition.clients=2", "train.clients_per_round=2", "train.rounds=2", "train.batches_per_client=2",
         "train.batch_size=6", "train.warmup_rounds=1", "train.warmup_local_steps=2", "protection.upsample=1",
         "model.server_width=0.125", "model.client_width=0.25", "simulation.round_timeout=120"]


def _arrays(msg):
    for name, record in msg.content.items():
        if isinstance(record, ArrayRecord):
            for key, array in record.items():
                yield name, key, torch.from_numpy(np.array(array.numpy()))


@pytest.fixture(scope="module", params=["hf_only", "duetface"])
def run(request, tmp_path_factory):
    cfg = load_config(None, [*SMALL, f"protection.strategy={request.param}", "name=t",
                             f"output={tmp_path_factory.mktemp(request.param)}"])
    return cfg, run_federated(cfg, log=lambda s: None, keep_messages=True)


def test_no_pixels_and_no_client_channel_reach_the_server(run):
    cfg, results = run
    splits = build_splits(cfg)
    images = np.concatenate([splits.images, flip_faces(splits.images, splits.landmarks)[0]])
    x, _ = to_tensors(images, np.zeros((len(images), 68, 2), np.float32))
    client_planes = dct_split(x, tuple(cfg.protection.client_channels), cfg.protection.upsample)[0]
    forbidden = client_planes.flatten(0, 1).flatten(1)  # every client plane of every face, and its mirror
    pixels = x.flatten(0, 1).flatten(1)
    received = [m for d, m in results["messages"] if d == "uplink"]
    assert received, "no message was recorded"
    payload_keys = set()
    for msg in received:
        for name, key, t in _arrays(msg):
            if name in ("payload", "eval", "eval_flipped"):
                payload_keys.add(key)
            assert t.dtype != torch.uint8, f"{name}/{key} is bytes, as an image would be"
            if t.ndim >= 2 and t.is_floating_point():
                planes = t.reshape(-1, t.shape[-2] * t.shape[-1]).float()
                for bad, what in ((forbidden, "a client-only channel"), (pixels, "raw pixels")):
                    if planes.shape[1] == bad.shape[1]:
                        nearest = torch.cdist(planes, bad).min()
                        assert nearest > 1e-2, f"{name}/{key} carries {what}"
    expected = {"server_channels", "labels"} | ({f"mask_{i}" for i in range(4)} if cfg.protection.strategy == "duetface" else set())
    assert payload_keys == expected


def test_reported_bytes_are_the_recorded_messages(run):
    _, results = run
    messages = results["messages"]
    up = sum(message_size(m) for d, m in messages if d == "uplink")
    down = sum(message_size(m) for d, m in messages if d == "downlink")
    b = results["bytes"]
    assert (b["uplink_total"], b["downlink_total"]) == (up, down)
    assert sum(c["uplink"] for c in b["per_client"].values()) == up
    assert sum(b["by_part"]["uplink"].values()) == up and sum(b["by_part"]["downlink"].values()) == down
    # split rounds are upload-only apart from the small requests
    split_down = [r["downlink"] for r in results["rounds"] if r["phase"] == "split"]
    split_up = [r["uplink"] for r in results["rounds"] if r["phase"] == "split"]
    assert all(d < 1000 for d in split_down) and all(u > 100 * d for u, d in zip(split_up, split_down))


def test_results_contract(run):
    _, results = run
    for key in ("accuracy", "accuracy_std", "tar_at_far", "bytes", "payload_bytes_per_image", "raw_image_bytes",
                "wall_seconds", "torch_threads", "config"):
        assert key in results
    assert {"uplink_total", "downlink_total", "per_client", "by_part"} <= set(results["bytes"])
    assert results["server_steps"] == 2 * 2 * 2


def test_accuracy_is_broken_down_per_client(run):
    cfg, results = run
    rows = results["client_accuracy"]
    assert [r["client"] for r in rows] == list(range(cfg.partition.clients))
    assert all(r["pairs"] > 0 and 0 <= r["accuracy"] <= 1 for r in rows)
    # every pair holds a face of some client, and pairs of two clients count for both
    assert sum(r["pairs"] for r in rows) >= results["verification"]["pairs"]


def test_client_accuracy_counts_each_pair_for_the_clients_it_holds():
    from fedsplit.federated import client_accuracy

    cfg = load_config(None, ["partition.clients=3", "train.clients_per_round=2", "protection.noise_sigma=[0, 5, 9]"])
    correct = np.array([True, False, True, True])
    same = np.array([True, True, False, False])
    pair_clients = np.array([[0, 0], [1, 1], [0, 1], [1, 1]])
    rows = client_accuracy(correct, same, pair_clients, cfg)
    assert [(r["pairs"], r["positives"], r["noise_sigma"]) for r in rows] == [(2, 1, 0), (3, 1, 5), (0, 0, 9)]
    assert rows[0]["accuracy"] == 1.0 and rows[1]["accuracy"] == pytest.approx(2 / 3) and rows[2]["accuracy"] is None


def test_run_folder_has_every_output(run):
    import cv2

    cfg, results = run
    folder = cfg.run_dir()
    lines = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    warmup = [("warmup", 1)] if cfg.protection.strategy == "duetface" else []  # only it uses the client model
    assert [(r["phase"], r["round"]) for r in lines] == warmup + [("split", 1), ("split", 2)]
    assert all(r["seconds"] > 0 for r in lines), [(r["phase"], r["seconds"]) for r in lines]  # warm-up's too
    assert json.loads((folder / "results.json").read_text())["accuracy"] == results["accuracy"]
    for png in ("rounds.png", "clients.png"):
        image = cv2.imread(str(folder / png))
        assert image is not None and image.shape[0] > 100, png
    assert "![bytes per client](clients.png)" in (folder / "report.md").read_text()
    assert (folder / "client_model.pt").exists() == (cfg.protection.strategy == "duetface")


def test_federation_changes_nothing_but_batch_composition(run, tmp_path):
    """Given the same client model, a centralized run with federated batches must retrace the federated run."""
    from fedsplit.central import train_central

    cfg, fed = run
    name = cfg.protection.strategy
    # duetface's client model is warmed up differently (FedAvg vs centrally): the central run takes the
    # federated run's frozen client model, so that only the server training is compared.
    given = [f"train.client_model={cfg.run_dir()}"] if name == "duetface" else []
    central = train_central(load_config(None, [*SMALL, f"protection.strategy={name}", "name=c", f"output={tmp_path}",
                                               "train.central_batches=by_client", *given]), log=lambda s: None)
    fed_losses = [r["loss"] for r in fed["rounds"] if r["phase"] == "split"]
    assert np.allclose([e["loss"] for e in central["epochs"]], fed_losses, rtol=1e-5, atol=0)
    assert central["accuracy"] == pytest.approx(fed["accuracy"], abs=1e-9)
    mixed = train_central(load_config(None, [*SMALL, f"protection.strategy={name}", "name=m", f"output={tmp_path}",
                                             *given]), log=lambda s: None)
    assert not np.allclose([e["loss"] for e in mixed["epochs"]], fed_losses, rtol=1e-3)  # the batches do matter


class _FlakyGrid:
    """Answers each node with an error the first time, then properly; counts requests."""

    def __init__(self, fail_first: set[int]):
        self.fail_first, self.sent = set(fail_first), []

    def send_and_receive(self, messages, timeout=None):
        from flwr.app import Error

        replies = []
        for m in messages:
            node = m.metadata.dst_node_id
            self.sent.append(node)
            if node in self.fail_first:
                self.fail_first.discard(node)
                replies.append(Message(Error(code=2, reason="actor died"), reply_to=m))
            else:
                replies.append(Message(RecordDict({"ok": MetricRecord({"node": node})}), reply_to=m))
        return replies


@pytest.fixture
def message_identity():
    from flwr.supercore.task_identity import TaskIdentity

    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 1


def test_setup_requests_are_retried_then_named(message_identity, monkeypatch):
    import fedsplit.federated as fed

    grid = _FlakyGrid({2})
    replies = fed.ask_all(grid, [1, 2, 3], RecordDict, "query.info", timeout=1, what="client info", attempts=2)
    assert [int(r.content["ok"]["node"]) for r in replies] == [1, 2, 3]
    assert grid.sent == [1, 2, 3, 2]  # only the failed node is asked again

    class _Dead(_FlakyGrid):
        def send_and_receive(self, messages, timeout=None):
            return []

    with pytest.raises(RuntimeError, match=r"client info: 0 of 2 clients answered \(timeout\)"):
        fed.ask_all(_Dead(set()), [1, 2], RecordDict, "query.info", timeout=1, what="client info", attempts=2)


def test_warm_up_failures_are_counted_and_a_warm_up_with_no_reply_is_named(message_identity):
    import fedsplit.federated as fed
    from flwr.app import ConfigRecord, Error
    from strategies.warmup import SeededFedAvg

    class _Broken:
        """Node 11 fails every round, node 12 never answers, node 10 answers with weights."""

        def send_and_receive(self, messages, timeout=None):
            out = []
            for m in messages:
                node = m.metadata.dst_node_id
                if node == 10:
                    rec = RecordDict({"arrays": ArrayRecord({"w": fed.Array(np.ones(2, np.float32))}),
                                      "metrics": MetricRecord({"num-examples": 4})})
                    out.append(Message(rec, reply_to=m))
                elif node == 11:
                    out.append(Message(Error(code=2, reason="CUDA out of memory\ntraceback..."), reply_to=m))
            return out

    start = ArrayRecord({"w": fed.Array(np.zeros(2, np.float32))})
    avg = SeededFedAvg({10: 0, 11: 1, 12: 2}, 3, seed=0, fraction_evaluate=0.0)
    result = avg.start(grid=_Broken(), initial_arrays=start, num_rounds=2, timeout=1, train_config=ConfigRecord())
    assert np.array_equal(result.arrays["w"].numpy(), np.ones(2))  # node 10's weights alone
    assert [(f["round"], f["node"], f["error"]) for f in avg.failures] == [
        (1, 11, "CUDA out of memory"), (1, None, "1 replies timed out"),
        (2, 11, "CUDA out of memory"), (2, None, "1 replies timed out")]

    class _Silent:
        def send_and_receive(self, messages, timeout=None):
            return []

    silent = SeededFedAvg({10: 0, 11: 1}, 2, seed=0, fraction_evaluate=0.0)
    result = silent.start(grid=_Silent(), initial_arrays=start, num_rounds=2, timeout=1, train_config=ConfigRecord())
    with pytest.raises(RuntimeError, match=r"warm-up: no client reply arrived in any of the 2 rounds "
                                           r"\(round 1: 2 replies timed out; round 2: 2 replies timed out\); "
                                           r"simulation\.round_timeout is 7 s"):
        fed.warmed_up(result.arrays, silent.failures, 2, 7.0)


def test_a_run_repeats_exactly(tmp_path):
    # Four clients, three sampled per round: the sample must not depend on Flower's random node ids.
    # Two held-out identities for four clients: two hold none, which must not break evaluation.
    # Three replies per round: their float sum depends on the order they are averaged in.
    sets = [*SMALL, "data.identities=18", "data.eval_identities=2", "partition.clients=4",
            "train.clients_per_round=3", "train.warmup_rounds=2", "train.rounds=3"]
    runs = [run_federated(load_config(None, [*sets, f"name=r{i}", f"output={tmp_path}"]), log=lambda s: None)
            for i in range(2)]
    assert [r["loss"] for r in runs[0]["rounds"]] == [r["loss"] for r in runs[1]["rounds"]]
    assert runs[0]["accuracy"] == runs[1]["accuracy"]

    def data_bytes_per_client(i: int) -> dict:
        # Flower's node ids are random per run and travel as varints, so control bytes differ by a few;
        # the array bytes each client sent and received must not.
        out: dict = {}
        for row in json.loads((tmp_path / f"r{i}" / "ledger.json").read_text()):
            key = (row["client"], row["direction"])
            out[key] = out.get(key, 0) + row["bytes"] - row["parts"].get("control", 0)
        return out

    assert data_bytes_per_client(0) == data_bytes_per_client(1)
