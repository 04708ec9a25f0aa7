"""Distribution strategies on CPU: MirroredStrategy over two logical CPU devices, and two
MultiWorkerMirroredStrategy workers on 127.0.0.1 driven by TF_CONFIG.

Each runs in its own process: logical devices and collective ops must be configured before
TensorFlow initialises, which would leak into every other test of this pytest process.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap

import pytest

from visionsuite.config import to_dict

RUN = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    logical_cpus = int(sys.argv[2])
    if logical_cpus > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * logical_cpus)
    from visionsuite.config import TrainConfig
    from visionsuite.training import train
    from visionsuite_toy import ToyTask

    result = train(ToyTask(), TrainConfig(**json.loads(sys.argv[1])))
    print("RESULT " + json.dumps({"strategy": result.strategy, "replicas": result.replicas,
                                   "run_dir": str(result.run_dir), "epochs": len(result.history),
                                   "loss": result.history[-1]["loss"],
                                   "accuracy": result.metrics["accuracy"]}))
""")


def _result(stdout: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, stdout[-2000:]
    return json.loads(lines[-1][len("RESULT "):])


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_mirrored_strategy_over_two_logical_cpus(tiny_config, toy_env, tmp_path):
    config = tiny_config(strategy="mirrored", epochs=2, steps_per_epoch=2, precision="mixed_float16")
    proc = subprocess.run([sys.executable, "-c", RUN, json.dumps(to_dict(config)), "2"],
                          env=toy_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = _result(proc.stdout)
    assert result["strategy"] == "mirrored" and result["replicas"] == 2
    assert result["epochs"] == 2 and result["loss"] == result["loss"]  # finite, not NaN
    run_dir = tmp_path / "runs" / "toy" / "run"
    assert (run_dir / "best.keras").is_file() and (run_dir / "checkpoint.npz").is_file()


@pytest.mark.slow
def test_two_workers_with_tf_config(tiny_config, toy_env, tmp_path):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    config = tiny_config(epochs=1, steps_per_epoch=2)  # strategy auto: TF_CONFIG -> multi_worker
    procs = []
    for index in range(2):
        env = dict(toy_env, TF_CONFIG=json.dumps({"cluster": cluster,
                                                  "task": {"type": "worker", "index": index}}))
        procs.append(subprocess.Popen(
            [sys.executable, "-c", RUN, json.dumps(to_dict(config)), "1"], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=400))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    results = [_result(out) for out, _ in outs]
    assert all(r["strategy"] == "multi_worker" and r["replicas"] == 2 for r in results)
    assert all(r["epochs"] == 1 for r in results)
    # Both workers hold the same synchronised model: same evaluation of the best model.
    assert results[0]["accuracy"] == results[1]["accuracy"]
    run_dir = tmp_path / "runs" / "toy" / "run"  # written by the chief (worker 0) only
    assert (run_dir / "best.keras").is_file() and (run_dir / "metrics.json").is_file()
    assert not [p for p in (tmp_path / "runs" / "toy").iterdir() if p.name != "run"]


def test_strategy_selection(monkeypatch):
    from visionsuite.errors import UsageError
    from visionsuite.training.strategy import auto_kind, make_strategy

    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.delenv("TPU_NAME", raising=False)
    assert auto_kind() == "default"  # this CPU machine
    info = make_strategy("auto")
    assert (info.kind, info.replicas, info.device, info.is_chief) == ("default", 1, "cpu", True)
    with pytest.raises(UsageError, match="needs TF_CONFIG"):
        make_strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", json.dumps(
        {"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", "index": 1}}))
    assert auto_kind() == "multi_worker"
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(UsageError, match="TF_CONFIG is not valid JSON"):
        auto_kind()
