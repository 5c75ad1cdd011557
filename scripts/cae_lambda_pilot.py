"""The pilot that picks the contractive autoencoder's lambda, on held-out training images.

Trains the cae recipe's network (`recipes.MLP_AE`) for a few epochs on the first 55,000
training images with each candidate lambda, scores the reconstructions of the last 5,000
(never seen in training, and not the test set) and prints the PSNR and the encoder's
mean ||J_e(x)||_F^2 per lambda. It picks the largest lambda that costs under 1 dB of
validation PSNR against lambda = 0: `recipes.CAE_LAMBDA`.

    python scripts/cae_lambda_pilot.py [--epochs 1] [--lambdas 0.001,0.01,0.1,1] [--device cpu]
"""

from __future__ import annotations

import argparse
from functools import partial

from aecourse import evaluate, losses, metrics, recipes, set_seed
from aecourse.cli import positive
from aecourse.data import load
from aecourse.models import AE
from aecourse.train import TrainConfig, fit

VALIDATION = 5_000  # the last training images, held out
MAX_COST_DB = 1.0  # validation PSNR a lambda may cost against lambda = 0


def lambdas(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values or not all(v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive numbers separated by commas, got {text!r}")
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lambdas", type=lambdas, default=[0.001, 0.01, 0.1, 1.0])
    parser.add_argument("--epochs", type=positive(int), default=1, help="epochs per lambda")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    train = load("fashion-mnist", "train")
    fit_data = (train.x[:-VALIDATION], train.y[:-VALIDATION])
    held_out = train.x[-VALIDATION:].to(args.device)
    scores = {}
    for lam in [0.0, *args.lambdas]:
        set_seed(0)
        model = AE(recipes.MLP_AE)
        loss = losses.ae_loss if lam == 0 else partial(losses.cae_loss, lam=lam)
        fit(model, loss, fit_data, TrainConfig(epochs=args.epochs, seed=0), device=args.device, progress=False)
        model.eval()
        psnr = metrics.psnr(evaluate.reconstruct(model, held_out), held_out)
        jacobian = losses.jacobian(model.encode, held_out[:200]).flatten(1).square().sum(1).mean().item()
        scores[lam] = psnr
        print(f"lambda {lam:<6g} validation PSNR {psnr:6.2f} dB, mean ||J_e||_F^2 {jacobian:8.2f}", flush=True)
    chosen = max(lam for lam, psnr in scores.items() if psnr > scores[0.0] - MAX_COST_DB)
    print(f"largest lambda costing under {MAX_COST_DB} dB: {chosen:g} (recipes.CAE_LAMBDA = {recipes.CAE_LAMBDA:g})")


if __name__ == "__main__":
    main()
