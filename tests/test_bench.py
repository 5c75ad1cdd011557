"""Tests of aecourse.bench: it runs end to end on tiny workloads and prints a ratio (no timings asserted)."""

from __future__ import annotations

import dataclasses
import re

import pytest
import torch

from aecourse import bench
from aecourse.models import PriorConfig
from aecourse.recipes import RECIPES


def test_bench_prints_fit_and_plain_throughput_and_their_ratio(capsys):
    figures = bench.main(["--models", "ae-linear", "--batches", "2", "--device", "cpu"])
    out = capsys.readouterr().out
    assert "device: cpu" in out
    row = next(line for line in out.splitlines() if line.startswith("ae-linear"))
    name, batch, fit_ips, plain_ips, ratio = row.split()
    assert int(batch) == RECIPES["ae-linear"].batch_size
    assert float(fit_ips) > 0 and float(plain_ips) > 0
    assert float(ratio) == pytest.approx(float(fit_ips) / float(plain_ips), abs=0.02)
    assert set(figures) == {"ae-linear"} and all(v > 0 for v in figures["ae-linear"])


def test_the_prior_is_benchmarked_on_random_code_grids():
    tiny = PriorConfig(codebook_size=8, channels=4, num_layers=1)
    recipe = dataclasses.replace(RECIPES["prior"], config=tiny, batch_size=16)
    (indices,) = bench.training_data(recipe, 32)
    assert indices.shape == (32, 7, 7) and indices.dtype == torch.int64
    assert 0 <= indices.min() and indices.max() < 8
    assert bench.fit_throughput(recipe, (indices,), torch.device("cpu")) > 0
    assert bench.plain_throughput(recipe, (indices,), torch.device("cpu")) > 0


@pytest.mark.parametrize("name", ["sae", "sae-l1", "sae-aux"])
def test_a_sparse_autoencoder_is_benchmarked_on_random_features(name):
    recipe = RECIPES[name]
    (h,) = bench.training_data(recipe, 64)
    assert h.shape == (64, recipe.config.input_dim) and h.is_floating_point()
    assert bench.fit_throughput(recipe, (h,), torch.device("cpu")) > 0
    assert bench.plain_throughput(recipe, (h,), torch.device("cpu")) > 0


def test_unknown_recipe_is_refused(capsys):
    with pytest.raises(SystemExit):
        bench.main(["--models", "nope", "--batches", "1"])
    assert re.search(r"nope", capsys.readouterr().err)


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--batches", "0"], "--batches: expected a positive integer"),
     (["--models", ""], r"unknown recipes \[''\]")],
)
def test_bad_arguments_are_errors(capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        bench.main([*args, "--device", "cpu"])
    assert exit_info.value.code == 2 and re.search(message, capsys.readouterr().err)
