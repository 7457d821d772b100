"""The trainer: determinism, resume after a kill, reuse of finished runs, NaN handling, statistics, CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from densify.cli import cli
from densify.data import load_data
from densify.errors import DensifyError, TrainError
from densify.train import TrainConfig, batch_indices, mean_t_ci, summarise, t95, train_recipes, train_run
from densify.train.models import MODELS, build_model

FAST = TrainConfig(steps=24, batch=32, checkpoint_every=8, log_every=4)


@pytest.fixture(scope="module")
def tiny():
    return load_data("fashion-mini", train_size=160, heldout_size=80, seed=0)


def test_same_seed_same_result_with_any_number_of_workers(tiny):
    a = train_run(tiny, "affine-light", 3, FAST)
    b = train_run(tiny, "affine-light", 3, TrainConfig(**{**FAST.__dict__, "workers": 2}))
    assert a.loss_curve == b.loss_curve and a.heldout_accuracy == b.heldout_accuracy
    c = train_run(tiny, "affine-light", 4, FAST)
    assert c.loss_curve != a.loss_curve


def test_batches_are_seeded_epoch_permutations():
    epoch = np.concatenate([batch_indices(100, 10, 7, s) for s in range(10)])
    assert sorted(epoch.tolist()) == list(range(100))
    assert np.array_equal(batch_indices(100, 10, 7, 13), batch_indices(100, 10, 7, 13))
    assert not np.array_equal(batch_indices(100, 10, 7, 3), batch_indices(100, 10, 7, 13))


def test_a_killed_run_resumes_to_the_same_result(tiny, tmp_path: Path):
    checkpoint = tmp_path / "run.pt"
    config = TrainConfig(steps=400, batch=32, checkpoint_every=20, log_every=20)
    code = (
        "from densify.data import load_data\nfrom densify.train import TrainConfig, train_run\n"
        "data = load_data('fashion-mini', train_size=160, heldout_size=80, seed=0)\n"
        f"train_run(data, 'flip', 1, TrainConfig(**{config.__dict__!r}), checkpoint={str(checkpoint)!r})\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"})
    deadline = time.time() + 120
    while not checkpoint.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert checkpoint.exists(), "the run finished or failed before its first checkpoint"
    resumed = train_run(tiny, "flip", 1, config, checkpoint=checkpoint)
    straight = train_run(tiny, "flip", 1, config)
    assert resumed.loss_curve == straight.loss_curve
    assert resumed.heldout_accuracy == straight.heldout_accuracy
    assert not checkpoint.exists()  # removed once the run finished


def test_checkpoint_of_another_run_is_refused(tiny, tmp_path: Path):
    path = tmp_path / "c.pt"
    import torch

    torch.save({"identity": {"recipe": "other"}}, path)
    with pytest.raises(TrainError, match="checkpoint of a different run"):
        train_run(tiny, "flip", 0, FAST, checkpoint=path)


def test_finished_runs_are_not_retrained(tiny, tmp_path: Path, monkeypatch):
    first = train_recipes(tiny, ["none", "flip"], seeds=[0, 1], config=FAST, out=tmp_path)
    assert len(list((tmp_path / "runs").glob("*.json"))) == 4

    def fail(*args, **kwargs):
        raise AssertionError("retrained a finished run")

    monkeypatch.setattr("densify.train.train_run", fail)
    again = train_recipes(tiny, ["none", "flip"], seeds=[0, 1], config=FAST, out=tmp_path)
    assert [s.accuracy for s in again] == [s.accuracy for s in first]
    assert again[0].gain == (0.0, 0.0, 0.0) and again[1].gain is not None


def test_nan_loss_stops_with_a_clear_error(tiny):
    with pytest.raises(TrainError, match=r"training loss became (nan|inf).*at step \d+ \(lr 1e\+20\)"):
        train_run(tiny, "none", 0, TrainConfig(steps=200, batch=32, lr=1e20))


def test_t_quantiles_and_intervals():
    scipy_stats = pytest.importorskip("scipy.stats")
    for df in (1, 2, 3, 5, 9, 14, 25, 200):
        assert t95(df) == pytest.approx(scipy_stats.t.ppf(0.975, df), rel=0.01)
    mean, low, high = mean_t_ci([0.80, 0.82, 0.81])
    assert mean == pytest.approx(0.81) and high - mean == pytest.approx(t95(2) * 0.01 / 3**0.5)
    assert mean - low == pytest.approx(high - mean)


def test_summary_pairs_gains_by_seed():
    from densify.train import RunResult

    def run(recipe, seed, acc, loss):
        return RunResult(recipe, seed, 10, acc, [], loss, loss)

    runs = [
        run("none", 0, 0.80, 0.2),
        run("none", 1, 0.70, 0.2),
        run("flip", 0, 0.82, 0.3),
        run("flip", 1, 0.73, 0.3),
    ]
    none, flip = summarise(runs)
    assert none.gain == (0.0, 0.0, 0.0) and none.loss_ratio == 1.0
    assert flip.gain[0] == pytest.approx(0.025) and flip.loss_ratio == pytest.approx(1.5)
    assert flip.gain[2] - flip.gain[0] == pytest.approx(t95(1) * np.std([0.02, 0.03], ddof=1) / 2**0.5)


@pytest.mark.parametrize("name", ["small-cnn", "resnet18-small", "torchvision:mobilenet_v3_small"])
@pytest.mark.parametrize("channels", [1, 3])
def test_models(name, channels):
    import torch

    assert "torchvision:NAME" in MODELS
    model = build_model(name, channels, 7).eval()
    with torch.inference_mode():
        assert model(torch.rand(2, channels, 32, 32)).shape == (2, 7)


def test_unknown_model():
    with pytest.raises(TrainError, match="unknown model 'vgg99'"):
        build_model("vgg99", 1, 10)


def test_train_command(tmp_path: Path):
    args = [
        "train",
        "--train-size",
        "160",
        "--heldout-size",
        "80",
        "--recipe",
        "none",
        "--recipe",
        "flip",
        "--seeds",
        "2",
        "--steps",
        "16",
        "--batch",
        "32",
        "--out",
        str(tmp_path),
    ]
    result = CliRunner().invoke(cli, args, env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    # the heading is one line of its own, not a table title wrapped at the table's width
    assert "fashion-mini: 160 train, 80 held-out; small-cnn, 16 steps x 32; 2 seeds\n" in result.output
    report = json.loads((tmp_path / "train.json").read_text())
    assert [r["recipe"] for r in report["recipes"]] == ["none", "flip"]
    assert len(report["recipes"][1]["runs"]) == 2 and report["recipes"][1]["gain_over_none"] is not None
    bad = CliRunner().invoke(cli, [*args[:-2], "--out", str(tmp_path / "x"), "--model", "vgg99"])
    assert bad.exit_code == 2 and "unknown model 'vgg99'" in bad.output
    assert "No gains" not in result.output
    alone = CliRunner().invoke(
        cli, [*args[:5], "--recipe", "flip", *args[9:-2], "--out", str(tmp_path / "y")]
    )
    assert alone.exit_code == 0, alone.output  # without none, the empty gain column is explained
    assert "No gains: 'none' was not trained" in alone.output and "--recipes none,flip" in alone.output


def test_torchrun_with_two_cpu_processes_matches_one_process(tmp_path: Path):
    args = [
        "train",
        "--train-size",
        "320",
        "--heldout-size",
        "200",
        "--recipe",
        "flip",
        "--seeds",
        "1",
        "--steps",
        "40",
        "--batch",
        "64",
    ]
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "DENSIFY_TORCH_THREADS": "1"}
    ddp = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "densify",
            *args,
            "--out",
            str(tmp_path / "ddp"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert ddp.returncode == 0, ddp.stderr[-2000:]
    assert ddp.stdout.count("wrote") == 1  # rank 0 reports
    single = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "one")])
    assert single.exit_code == 0, single.output
    a = json.loads((tmp_path / "ddp" / "train.json").read_text())["recipes"][0]["runs"][0]
    b = json.loads((tmp_path / "one" / "train.json").read_text())["recipes"][0]["runs"][0]
    assert (
        abs(a["heldout_accuracy"] - b["heldout_accuracy"]) < 0.06
    )  # same data order and views; BN sees half-batches
    assert a["loss_curve"][0] == pytest.approx(b["loss_curve"][0], rel=0.1)


def test_equivalent_size_and_multiplier_closed_forms():
    from densify.train._scaling import effective_multiplier, equivalent_size

    sizes = [100, 1000, 10000]
    assert equivalent_size(sizes, [0.5, 0.7, 0.8], 0.6) == pytest.approx((10**2.5, ""))
    assert equivalent_size(sizes, [0.5, 0.7, 0.8], 0.9) == (10000.0, ">=")
    assert equivalent_size(sizes, [0.5, 0.7, 0.8], 0.4) == (100.0, "<=")
    assert equivalent_size(sizes, [0.5, 0.75, 0.7], 0.74)[0] == pytest.approx(
        10 ** (2 + 0.24 / 0.25)
    )  # running max
    base = {n: {0: a, 1: a} for n, a in zip(sizes, [0.5, 0.7, 0.8], strict=True)}
    recipe = {100: {0: 0.7, 1: 0.7}}
    m = effective_multiplier(sizes, base, recipe, 100)
    assert m.value == pytest.approx(10.0) and m.bound == "" and m.low == pytest.approx(10.0)


def test_scaling_option(tmp_path: Path):
    args = [
        "train",
        "--train-size",
        "320",
        "--heldout-size",
        "80",
        "--recipe",
        "flip",
        "--seeds",
        "2",
        "--steps",
        "12",
        "--batch",
        "32",
        "--out",
        str(tmp_path),
        "--scaling",
        "64,160",
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "scaling.json").read_text())
    assert report["sizes"] == [64, 160] and len(report["multiplier"]["flip"]) == 2
    assert "effective data multiplier" in result.output


def test_fine_tune_proxy_starts_every_recipe_from_the_shared_weights(tiny, tmp_path: Path, monkeypatch):
    from densify.train import evaluate, finetune_config, finetune_recipes
    from densify.train.models import build_model

    config = TrainConfig(steps=24, batch=32, log_every=4)
    assert finetune_config(config).steps == 4 and finetune_config(config).lr == pytest.approx(config.lr / 3)
    result = finetune_recipes(tiny, ["flip", "vflip"], seeds=(0, 1), config=config, out=tmp_path)
    assert [s.recipe for s in result.summaries] == ["none", "flip", "vflip"]
    assert result.summaries[0].gain == (0.0, 0.0, 0.0) and all(s.gain is not None for s in result.summaries)
    # cost: 24 base steps + 3 recipes x 2 seeds x 4 steps, against 3 recipes x 3 seeds x 24 steps
    assert result.steps() == 24 + 3 * 2 * 4
    assert result.cost_ratio(24, 3) == pytest.approx(48 / 216)
    # the base weights are the clean run's own: loaded into a fresh model they score what train_run reports
    weights = tmp_path / "base-24-seed0.pt"
    base = train_run(tiny, "none", 0, config)
    net = build_model("small-cnn", tiny.train.channels, len(tiny.classes))
    net.load_state_dict(torch.load(weights, weights_only=True))
    assert (
        evaluate(net, tiny.heldout.images, tiny.heldout.labels, len(tiny.classes))[0] == base.heldout_accuracy
    )
    # a fine-tune of one step at a negligible learning rate stays at the base model's accuracy
    nudge = train_run(tiny, "none", 0, TrainConfig(steps=1, batch=32, lr=1e-12), init=weights)
    assert nudge.heldout_accuracy == pytest.approx(base.heldout_accuracy, abs=1.5 / len(tiny.heldout))
    # everything is reused the second time: nothing is trained
    calls = []
    monkeypatch.setattr("densify.train.models.build_model", lambda *a: calls.append(a))
    again = finetune_recipes(tiny, ["flip", "vflip"], seeds=(0, 1), config=config, out=tmp_path)
    assert not calls and [s.gain for s in again.summaries] == [s.gain for s in result.summaries]
    assert again.base_seconds == result.base_seconds


def test_unreadable_initial_weights_name_the_file(tiny, tmp_path: Path):
    with pytest.raises(TrainError, match=r"missing\.pt: cannot read the initial weights"):
        train_run(tiny, "none", 0, FAST, init=tmp_path / "missing.pt")


def test_parallel_jobs_train_the_same_runs_as_one_at_a_time(tiny, tmp_path: Path):
    """Runs in forked single-threaded workers (the default on a CPU) give exactly the runs of one job, in the
    same order, report every step and leave each finished run on disk (so a resumed comparison reuses it)."""
    seen: dict = {}

    def progress(recipe, seed, step, total):
        seen[(recipe, seed)] = max(seen.get((recipe, seed), 0), step)

    one = train_recipes(tiny, ["none", "flip", "affine-light"], seeds=[0, 1], config=FAST, jobs=1)
    two = train_recipes(
        tiny,
        ["none", "flip", "affine-light"],
        seeds=[0, 1],
        config=FAST,
        jobs=2,
        out=tmp_path,
        progress=progress,
    )
    assert [s.recipe for s in two] == ["none", "flip", "affine-light"]
    assert [[(r.seed, r.loss_curve, r.heldout_accuracy) for r in s.runs] for s in two] == [
        [(r.seed, r.loss_curve, r.heldout_accuracy) for r in s.runs] for s in one
    ]
    assert seen == {(r, s): FAST.steps for r in ("none", "flip", "affine-light") for s in (0, 1)}
    assert len(list((tmp_path / "runs").glob("*.json"))) == 6 and not list(tmp_path.glob("checkpoints/*.pt"))


def _chatty_run(task):
    """A worker that sends more step reports than a pipe holds (80 of 1 KB) before it trains, or, when nobody
    listens, checks that it was given nowhere to send them."""
    from densify.train import _jobs

    channel = _jobs._shared["queue"]
    if channel is not None and getattr(_jobs, "_expect_silence", False):
        raise AssertionError("a worker was given a queue that nobody empties")
    for step in range(80 if channel is not None else 0):
        channel.put(("x" * 1024, task.seed, step, 80))
    return _jobs._original_run(task)


def _train_in_thread(call) -> tuple[bool, list]:
    """Run ``call`` in a daemon thread; (finished within 120 s, [its result or exception])."""
    import threading

    out: list = []

    def target():
        try:
            out.append(call())
        except BaseException as exc:  # handed to the test
            out.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(120)
    return not thread.is_alive(), out


def test_parallel_workers_exit_however_much_they_report(tiny, monkeypatch):
    """Workers whose step reports overflow the pipe still exit (the parent keeps emptying it until they have
    gone), and with no progress callback they send nothing at all (they once filled the pipe and hung at exit)."""
    from densify.train import _jobs

    monkeypatch.setattr(_jobs, "_original_run", _jobs._run, raising=False)
    monkeypatch.setattr(_jobs, "_run", _chatty_run)
    seen = []
    finished, out = _train_in_thread(
        lambda: train_recipes(
            tiny, ["none", "flip"], seeds=[0, 1], config=FAST, jobs=2, progress=lambda *m: seen.append(m[0])
        )
    )
    assert finished and not isinstance(out[0], BaseException), out
    assert seen.count("x" * 1024) == 4 * 80 and {"none", "flip"} <= set(seen)
    monkeypatch.setattr(_jobs, "_expect_silence", True, raising=False)
    finished, out = _train_in_thread(
        lambda: train_recipes(tiny, ["none", "flip"], seeds=[0, 1], config=FAST, jobs=2)
    )
    assert finished and not isinstance(out[0], BaseException), out
    assert [s.recipe for s in out[0]] == ["none", "flip"]


def test_a_failing_parallel_run_stops_the_comparison_with_its_error(tiny):
    with pytest.raises(TrainError, match=r"training loss became (nan|inf).*\(lr 1e\+20\)"):
        train_recipes(
            tiny, ["none", "flip"], seeds=[0, 1], config=TrainConfig(steps=200, batch=32, lr=1e20), jobs=2
        )


def test_jobs_are_checked_and_need_one_thread_per_run(tiny, monkeypatch):
    from densify.train._jobs import default_jobs

    for bad in (0, -1, "two", 1.5):
        with pytest.raises(TrainError, match=f"jobs must be a positive integer, got {bad!r}"):
            train_recipes(tiny, ["none"], seeds=[0], config=FAST, jobs=bad)
    monkeypatch.setenv("DENSIFY_TORCH_THREADS", "2")
    assert default_jobs() == 1  # runs that asked for several threads train one at a time
    with pytest.raises(TrainError, match="DENSIFY_TORCH_THREADS=2; unset it or use 1 job"):
        train_recipes(tiny, ["none"], seeds=[0], config=FAST, jobs=2)
    monkeypatch.delenv("DENSIFY_TORCH_THREADS")
    monkeypatch.setenv("DENSIFY_TRAIN_JOBS", "3")
    assert default_jobs() == 3
    monkeypatch.setenv("DENSIFY_TRAIN_JOBS", "many")
    with pytest.raises(TrainError, match="DENSIFY_TRAIN_JOBS must be a positive integer, got 'many'"):
        default_jobs()


def test_the_memory_format_is_channels_last_unless_asked_and_a_bad_one_is_named(tiny, monkeypatch):
    from densify._torch import memory_format, to_tensor

    x = to_tensor(tiny.train.images[:4], torch.device("cpu"), memory_format())
    assert memory_format() == torch.channels_last and x.is_contiguous(memory_format=torch.channels_last)
    y = to_tensor(tiny.train.images[:4], torch.device("cpu"))  # the encoders' layout: NCHW
    assert y.is_contiguous() and torch.equal(x, y)
    monkeypatch.setenv("DENSIFY_MEMORY_FORMAT", "contiguous")
    assert memory_format() == torch.contiguous_format
    monkeypatch.setenv("DENSIFY_MEMORY_FORMAT", "nhwc")
    with pytest.raises(
        DensifyError, match="DENSIFY_MEMORY_FORMAT must be one of channels_last, contiguous, got 'nhwc'"
    ):
        memory_format()


def test_runs_with_dataloader_workers_train_one_at_a_time(tiny):
    """A forked pool worker cannot start DataLoader workers: such runs go one at a time, with the same result."""
    config = TrainConfig(**{**FAST.__dict__, "workers": 1})
    a = train_recipes(tiny, ["none", "flip"], seeds=[0], config=config, jobs=2)
    b = train_recipes(tiny, ["none", "flip"], seeds=[0], config=FAST, jobs=1)
    assert [s.runs[0].loss_curve for s in a] == [s.runs[0].loss_curve for s in b]


def test_a_bad_jobs_setting_is_refused_before_any_work(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("DENSIFY_TRAIN_JOBS", "abc")
    out = tmp_path / "report"
    result = CliRunner().invoke(cli, ["evaluate", "--out", str(out), "--train-size", "100"])
    assert (
        result.exit_code == 2 and "DENSIFY_TRAIN_JOBS must be a positive integer, got 'abc'" in result.output
    )
    assert not out.exists()
    monkeypatch.delenv("DENSIFY_TRAIN_JOBS")
    bad = CliRunner().invoke(cli, ["train", "--jobs", "0", "--out", str(tmp_path / "t")])
    assert bad.exit_code == 2 and "--jobs" in bad.output


def test_a_parallel_worker_that_dies_is_reported_not_waited_for(tiny):
    import multiprocessing
    import threading

    def kill_a_worker() -> None:
        deadline = time.time() + 60
        while time.time() < deadline:
            workers = multiprocessing.active_children()
            if workers:
                time.sleep(0.5)
                os.kill(workers[0].pid, signal.SIGKILL)
                return
            time.sleep(0.05)

    threading.Thread(target=kill_a_worker, daemon=True).start()
    with pytest.raises(TrainError, match=r"a training worker process died \(killed, or out of memory\?\)"):
        train_recipes(tiny, ["none", "flip"], seeds=[0, 1], config=TrainConfig(steps=400, batch=32), jobs=2)
