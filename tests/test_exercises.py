"""The exercise checks of aecourse/exercises/, against the chapter sources.

- every code exercise of a chapter source has a skeleton, a check cell and a registered
  check, and every registered check belongs to an exercise;
- the reference solution written in the source passes its check, the skeleton reads as
  "not answered", and at least one plausible wrong answer per code exercise fails with
  a message that names the mistake;
- `check` says what it did and falls back to the reference.
"""

from __future__ import annotations

import ast
import copy
import math
import re

import jupytext
import pytest
import torch
import torch.nn.functional as F

from aecourse import evaluate, exercises, losses, metrics
from aecourse.exercises import EXERCISES
from aecourse.models import DAE, DAEConfig, top_k_code
from aecourse.models.pca import pca_reconstruct
from student_sources import PARTS

LABELS = {label: source for source, parts in PARTS.items() for label in parts}
CODE_EXERCISES = sorted(
    label
    for source, parts in PARTS.items()
    for label, part in parts.items()
    if any(cell.cell_type == "code" for cell in part["solution"])
)


def _source(cell) -> str:
    return cell.source if isinstance(cell.source, str) else "".join(cell.source)


def _definitions(label: str, kind: str) -> dict:
    """Run the imports of the chapter source and the function definitions (and imports)
    of the exercise's `kind` cells ("solution" or "skeleton"); returns the namespace."""
    source = LABELS[label]
    namespace: dict = {}
    nb = jupytext.read(source)
    for cell in nb.cells:
        if cell.cell_type != "code" or "%pip" in _source(cell):
            continue
        tree = ast.parse(_source(cell))
        imports = [node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
        exec(compile(ast.Module(imports, []), str(source), "exec"), namespace)
    for cell in PARTS[source][label][kind]:
        if cell.cell_type != "code":
            continue
        tree = ast.parse(_source(cell))
        kept = [
            node
            for node in tree.body
            if isinstance(node, ast.FunctionDef | ast.Import | ast.ImportFrom)
        ]
        exec(compile(ast.Module(kept, []), str(source), "exec"), namespace)
    return namespace


def _answers(label: str, namespace: dict) -> list:
    names = [answer.name for answer in EXERCISES[label].answers]
    missing = [name for name in names if name not in namespace]
    assert not missing, f"{label}: the source defines no {missing}"
    return [namespace[name] for name in names]


# --- the exercises, their skeletons and their checks -------------------------------


def test_every_code_exercise_has_a_check_and_every_check_an_exercise() -> None:
    assert len(CODE_EXERCISES) >= 18
    assert set(CODE_EXERCISES) == set(EXERCISES), (
        f"code exercises without a check: {sorted(set(CODE_EXERCISES) - set(EXERCISES))}; "
        f"checks without an exercise: {sorted(set(EXERCISES) - set(CODE_EXERCISES))}"
    )


@pytest.mark.parametrize("label", CODE_EXERCISES)
def test_skeleton_and_check_cells_are_in_the_source(label: str) -> None:
    part = PARTS[LABELS[label]][label]
    assert part["skeleton"], f"{label} has no cell tagged skeleton"
    checks = "".join(_source(cell) for cell in part["check"])
    assert f'exercises.check(\n    "{label}"' in checks or f'exercises.check("{label}"' in checks
    for cell in part["skeleton"] + part["check"]:
        # the main edition runs them but does not show them
        assert "remove-cell" in cell.metadata.get("tags", []), (label, _source(cell)[:60])
    for cell in part["skeleton"]:
        assert "..." in _source(cell), f"{label}: a skeleton shows where to write with ..."


@pytest.mark.parametrize("label", CODE_EXERCISES)
def test_the_reference_solution_passes_its_check(label: str) -> None:
    answers = _answers(label, _definitions(label, "solution"))
    assert exercises.diagnose(label, *answers) == [None] * len(answers)


@pytest.mark.parametrize("label", CODE_EXERCISES)
def test_the_skeleton_is_not_answered(label: str) -> None:
    answers = _answers(label, _definitions(label, "skeleton"))
    for problem in exercises.diagnose(label, *answers):
        assert problem is not None and problem.startswith("not answered"), problem


# Plausible wrong answers, one or more per code exercise: (answer name, function, words
# the message must contain).
WRONG = {
    "ex-manifold-eigenimages": [
        ("build_up", lambda image, mean, directions, k: (
            (directions[:k] @ (image.flatten() - mean)) @ directions[:k]
        ).reshape(image.shape), "mean image mu is not added back"),
    ],
    "ex-manifold-noise": [
        ("explained_fraction", lambda images: (
            lambda v: v / v.sum()
        )(((images.flatten(1) - evaluate.fit_pca(images)[0]) @ evaluate.fit_pca(images)[1].T).var(0)),
         "not the cumulative fraction"),
    ],
    "ex-manifold-double-exposure": [
        ("double_exposure", lambda x, pairs: x + x[pairs], "divide by 2"),
        ("psnr_gain", lambda reconstruct, x, averages: metrics.psnr(reconstruct(x), x)
         - metrics.psnr(reconstruct(averages), averages), "wrong sign"),
    ],
    "ex-ae-linear-symmetry": [
        ("change_basis", lambda model, C: _mixed_without_bias(model, C), "bias"),
        ("change_basis", lambda model, C: _mixed_in_place(model, C), "copy"),
    ],
    "ex-ae-empty-box": [
        ("share_among_codes", lambda latents, codes: float(
            (torch.cdist(latents, codes).min(1).values
             <= torch.cdist(codes, codes).fill_diagonal_(math.inf).min(1).values.quantile(0.95)).sum()
        ), "a count, not a fraction"),
    ],
    "ex-ae-not-clothes": [
        ("nearest_code_distance", lambda model, images, codes: torch.cdist(
            model.encode(images), codes).mean(1).detach(), "not the nearest one"),
    ],
    "ex-ae-sae-budget": [
        ("reconstruct_with", lambda sae, h, s: sae.decode(sae.encode(h)).detach(), "keep only the s largest"),
        ("reconstruct_with", lambda sae, h, s: (
            top_k_code(sae.encode(h), s) @ sae.dictionary.T).detach(), "bias"),
    ],
    "ex-dae-clean": [
        ("gain_over_pca", lambda model, x, mean, directions: _gain_with_16(model, x, mean, directions),
         "latent_dim"),
    ],
    "ex-dae-keep-visible": [
        ("keep_visible", lambda x_masked, x_hat: torch.where(x_masked > 0, x_hat, x_masked),
         "the other way round"),
    ],
    "ex-dae-finetune": [
        ("dae_from_ae", lambda ae: DAE(DAEConfig(**ae.config.__dict__)), "load ae's weights"),
    ],
    "ex-vae-beta": [
        ("elbo_terms", lambda model, x, generator: _elbo_terms_from_probabilities(model, x, generator),
         "takes the logits"),
    ],
    "ex-vae-aggregate": [
        ("total_variance", lambda mu, logvar: mu.var(0) + logvar.mean(0), "exp(logvar)"),
    ],
    "ex-vae-temperature": [
        ("samples_at", lambda model, eps, t: model.decode_images(eps / t).detach(),
         "the temperature multiplies"),
        ("pixel_spread", lambda images: images.var(0).mean().item(), "a variance"),
    ],
    "ex-vae-free-bits": [
        ("free_bits_kl", lambda mu, logvar, floor: losses.gaussian_kl(mu, logvar).mean().clamp(min=floor),
         "the total KL"),
        ("free_bits_kl", lambda mu, logvar, floor: (-0.5 * (1 + logvar - mu**2 - logvar.exp()))
         .clamp(min=floor).sum(1).mean(), "average over the batch first"),
    ],
    "ex-vae-sigma-fit": [
        ("best_sigma", lambda model, x, generator: (x - model.reconstruct(x)).pow(2).mean().sqrt().item(),
         "decodes a sample"),
        ("best_sigma", lambda model, x, generator: (x - model(x, generator).x_hat).pow(2).mean().item(),
         "a variance"),
    ],
    "ex-vae-cvae-classes": [
        ("class_agreement", lambda model, classifier, eps: torch.stack([
            (classifier(model.decode_images(eps, y=torch.full((len(eps),), c))).argmax(1) == c).sum()
            for c in range(model.config.num_classes)]).double(), "a count"),
    ],
    "ex-vq-perplexity": [
        ("usage_and_perplexity", lambda indices, k: (
            metrics.codebook_usage(indices, k)[0], math.log2(metrics.codebook_usage(indices, k)[1])
        ), "entropy in bits"),
    ],
    "ex-vq-commitment": [
        ("grad_norms", lambda term, groups: {
            name: sum(float(g.pow(2).sum()) for g in torch.autograd.grad(
                term, list(ps), retain_graph=True, allow_unused=True) if g is not None)
            for name, ps in groups.items()
        }, "squared norm"),
        ("unstopped_commitment", lambda out, quantizer: F.mse_loss(out.z_e, out.z_q),
         "straight-through"),
    ],
    "ex-vq-temperature": [
        ("bits_per_code", lambda prior, codes: -prior.log_prob(codes).mean().item()
         / (codes.shape[1] * codes.shape[2]), "nats, not bits"),
    ],
    "ex-vq-bits": [
        ("mean_by_class", lambda values, labels, n: torch.zeros(n).index_add_(0, labels, values),
         "sums, not means"),
    ],
    "ex-vq-reinforce-loo": [
        ("reinforce_loo", lambda logits, k, losses: (losses - losses.mean())[:, None]
         * (F.one_hot(k, len(logits)).double() - logits.softmax(-1)), "includes the draw itself"),
    ],
    "ex-cmp-interpolate": [
        ("line", lambda z0, z1, n: torch.stack([(1 - t) * z1 + t * z0 for t in torch.linspace(0, 1, n)]),
         "from z1 to z0"),
        ("distance_to_data", lambda frames, data: torch.cdist(frames.flatten(1), data).min(1)
         .values.pow(2).mean().item(), "squared distances"),
    ],
    "ex-cmp-rate": [
        ("quantise_8bit", lambda z: z.min() + torch.round((z - z.min()) / ((z.max() - z.min()) / 255))
         * ((z.max() - z.min()) / 255), "one range for all dimensions"),
        ("kl_bits", lambda mu, logvar: losses.gaussian_kl(mu, logvar).mean().item(), "nats, not bits"),
    ],
    "ex-cmp-fd-size": [
        ("fd_by_size", lambda classifier, images, reference, sizes: [
            evaluate.sample_fid(classifier, images, reference) for _ in sizes
        ], "take the first n"),
    ],
}


def _mixed_without_bias(model, C):
    mixed = copy.deepcopy(model)
    with torch.no_grad():
        mixed.encoder[1].weight.copy_(C @ mixed.encoder[1].weight)
        mixed.decoder[0].weight.copy_(mixed.decoder[0].weight @ torch.linalg.inv(C))
    return mixed


def _mixed_in_place(model, C):
    with torch.no_grad():
        model.encoder[1].weight.copy_(C @ model.encoder[1].weight)
        model.encoder[1].bias.copy_(C @ model.encoder[1].bias)
        model.decoder[0].weight.copy_(model.decoder[0].weight @ torch.linalg.inv(C))
    return model


def _gain_with_16(model, x, mean, directions):
    linear = metrics.psnr(pca_reconstruct(x, mean, directions[:16]), x)
    return evaluate.reconstruction_psnr(model, x) - linear


def _elbo_terms_from_probabilities(model, x_binary, generator):
    with torch.no_grad():
        out = model(x_binary, generator)
    probs = torch.sigmoid(out.logits)
    recon = losses.bernoulli_nll(probs, x_binary).mean().item()
    return recon, losses.gaussian_kl(out.mu, out.logvar).mean().item()


def test_every_code_exercise_has_a_wrong_answer() -> None:
    assert set(WRONG) == set(CODE_EXERCISES)


@pytest.mark.parametrize(
    ("label", "name", "wrong", "words"),
    [(label, *case) for label, cases in WRONG.items() for case in cases],
    ids=lambda v: v if isinstance(v, str) and v.startswith("ex-") else "",
)
def test_a_plausible_wrong_answer_fails_with_a_message_that_names_it(label, name, wrong, words) -> None:
    names = [answer.name for answer in EXERCISES[label].answers]
    answers = list(exercises.reference(label))
    answers[names.index(name)] = wrong
    problems = exercises.diagnose(label, *answers)
    problem = problems[names.index(name)]
    assert problem is not None and not problem.startswith("not answered"), problem
    assert words in problem, problem
    # the other answers are the references: right
    assert all(p is None for i, p in enumerate(problems) if i != names.index(name))


def test_check_says_what_it_did_and_falls_back_to_the_reference(capsys) -> None:
    label = "ex-dae-keep-visible"
    (reference,) = exercises.reference(label)

    def skeleton(x_masked, x_hat):
        ...

    assert exercises.check(label, skeleton) is reference
    assert capsys.readouterr().out.startswith(f"… {label}: not answered yet")

    def swapped(x_masked, x_hat):
        return torch.where(x_masked > 0, x_hat, x_masked)

    assert exercises.check(label, swapped) is reference
    out = capsys.readouterr().out
    assert out.startswith(f"✗ {label}:") and "the other way round" in out
    assert "reference keep_visible" in out

    def right(x_masked, x_hat):
        return torch.where(x_masked > 0, x_masked, x_hat)

    assert exercises.check(label, right) is right
    assert capsys.readouterr().out.startswith(f"✓ {label}: keep_visible is right")


def test_check_reports_an_error_in_the_answer_and_a_wrong_shape() -> None:
    def raises(x_masked, x_hat):
        return x_masked.view(5, -1)

    (problem,) = exercises.diagnose("ex-dae-keep-visible", raises)
    assert problem.startswith("keep_visible(x_masked, x_hat) raised RuntimeError")
    (problem,) = exercises.diagnose("ex-dae-keep-visible", lambda x_masked, x_hat: x_hat.flatten(1))
    assert "has shape (4, 784), expected shape (4, 1, 28, 28)" in problem


def test_messages_do_not_print_the_expected_value() -> None:
    """A scalar answer that is off gets a direction, not the value it should have."""
    label = "ex-vq-temperature"
    (reference,) = exercises.reference(label)

    def off(prior, codes):
        return reference(prior, codes) + 0.37

    (problem,) = exercises.diagnose(label, off)
    assert "too high" in problem
    numbers = re.findall(r"\d+\.\d+", problem)
    assert len(numbers) == 1  # the student's own value only


def test_unknown_label_and_wrong_number_of_answers_are_clear_errors() -> None:
    with pytest.raises(KeyError, match="no exercise labelled 'ex-nope'"):
        exercises.check("ex-nope", print)
    with pytest.raises(TypeError, match="checks 2 answer"):
        exercises.check("ex-cmp-rate", print)
