"""The benchmark harness runs end to end (tiny settings) and writes its JSON; no timing is asserted."""

import json
import subprocess

import pytest

# benchmarks time their steps: one worker runs them one after the other
pytestmark = pytest.mark.xdist_group("timing")


def bench(args: str, cwd, *extra: str) -> subprocess.CompletedProcess:
    """`tinyimagenet-bench <args>` as a user types it (`extra`: arguments that may hold spaces)."""
    return subprocess.run(["tinyimagenet-bench", *args.split(), *extra], capture_output=True, text=True, cwd=cwd)


def test_bench_runs_and_reports_both_comparisons(tiny_data, tmp_path):
    out = tmp_path / "bench.json"
    proc = bench(
        f"--data-path {tiny_data} --train-files data/train-* --blocks 1,1,1 --steps 1 --warmup 0 "
        f"--pipeline-images 64 --workers 1 --cache-dir {tmp_path / 'cache'} --out {out} --sizes 16 32",
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    # the train step at each progressive-resizing size: its FLOP rate against the matrix product, printed too
    by_size = result["train_step_by_size"]
    assert set(by_size) == {"16", "32"} and "train step at 16 px" in proc.stdout
    for r in by_size.values():
        assert r["over_matmul"] == r["tflops"] / result["matmul"]["tflops"] and r["images_per_s"] > 0
    assert result["matmul"]["train_step_over_matmul"] > 0 and "of the matrix product" in proc.stdout
    assert "input pipeline, fast" in proc.stdout and "train step, fp32 NCHW eager" in proc.stdout
    for key in ("reference_pil", "fast"):
        assert result["pipeline"][key]["images_per_s"] > 0 and result["pipeline"][key]["images"] >= 64
    fast, ref = result["pipeline"]["fast"]["images_per_s"], result["pipeline"]["reference_pil"]["images_per_s"]
    assert result["pipeline"]["speedup"] == fast / ref
    assert result["train_step"]["fp32_nchw_eager"]["images_per_s"] > 0
    assert result["settings"]["optimized"] in ("channels_last", "channels_last + bf16 autocast")
    assert result["settings"]["batch_size"] == 32  # the CPU default
    assert 1.0 < result["gflop_per_image_fwd_bwd"] < 20 and result["host_peak_rss_mb"] > 0
    assert result["machine"]["command"].startswith("python -m tinyimagenet_resnet.bench")
    assert list((tmp_path / "cache").glob("*.npy"))  # the fast pipeline decoded the cache once
    bad = bench(f"--data-path {tmp_path / 'x'}", tmp_path)
    assert bad.returncode == 2 and bad.stderr.startswith("error: --data-path=")


def test_sweep_throughput_benchmark_runs_each_setting_through_the_entry_point(tiny_data, tmp_path):
    out = tmp_path / "bench_sweep.json"
    proc = bench(
        f"sweep --data-path {tiny_data} --train-files data/train-* --val-files data/valid-* --parallel 1 2 "
        f"--trials 2 --steps 1 --out {out} --extra model.widths=[16,16,16] data.batch_size=16 "
        "data.train_subset=null",
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert [(r["parallel"], r["n_jobs"], r["trials"]) for r in result["rows"]] == [(1, 1, 2), (2, 2, 2)]
    assert all(r["trials_per_hour"] > 0 and "hydra/launcher=joblib" in r["command"] for r in result["rows"])
    assert result["rows"][0]["speedup_vs_first"] == 1.0
