"""mergekit's further methods in the recipe table (``recipes.MERGE_METHODS``), each checked through mergekit on the
tiny world of ``test_merge`` against its formula at the settings where it has a closed form."""

from __future__ import annotations

import pytest
import torch
from test_merge import check_all, kw, recipe, world  # noqa: F401 - world is a fixture

from judgefactory import merge, recipes


def _ties(w: dict, keys: list[str], a: dict, b: dict, wa: float, wb: float):
    """TIES without pruning (density 1): per element, the sign of the weighted sum is elected and only task-vector
    entries of that sign are summed (mergekit's sign consensus, normalize off)."""

    def f(k: str) -> torch.Tensor:
        base = w[k].double()
        ta, tb = wa * (a[k].double() - base), wb * (b[k].double() - base)
        sign = torch.sign(ta + tb)
        keep_a, keep_b = (torch.sign(ta) == sign), (torch.sign(tb) == sign)
        return base + ta * keep_a + tb * keep_b

    return f


@pytest.mark.parametrize("method", ["dare_ties", "breadcrumbs_ties"])
def test_sign_consensus_methods_without_pruning_are_ties(world, method):  # noqa: F811
    extra = {"parameters": {"gamma": 0.0}} if method == "breadcrumbs_ties" else {}
    r = recipe(
        method,
        world["base"],
        [{"adapter": "alpha", "weight": 0.7, "density": 1.0}, {"adapter": "beta", "weight": 0.4, "density": 1.0}],
        **extra,
    )
    out = merge.run(r, **kw(world, method))
    check_all(out, _ties(world["W"], list(world["W"]), world["A"], world["B"], 0.7, 0.4), list(world["W"]), atol=2e-5)


def test_della_linear_without_dropping_is_task_arithmetic(world):  # noqa: F811
    r = recipe(
        "della_linear",
        world["base"],
        [{"adapter": "alpha", "weight": 0.6, "density": 1.0}, {"adapter": "beta", "weight": 0.8, "density": 1.0}],
        parameters={"epsilon": 0.0},
    )
    out = merge.run(r, **kw(world, "della_linear"))
    W, A, B = world["W"], world["A"], world["B"]
    check_all(
        out, lambda k: W[k].double() + 0.6 * (A[k] - W[k]).double() + 0.8 * (B[k] - W[k]).double(), list(W), atol=2e-5
    )


def test_della_and_multislerp_run_and_move_the_weights(world):  # noqa: F811
    W, A = world["W"], world["A"]
    key = "model.layers.0.self_attn.q_proj.weight"
    for method, models, params in (
        (
            "della",
            [{"adapter": "alpha", "weight": 1.0, "density": 0.7}, {"adapter": "beta", "weight": 1.0, "density": 0.7}],
            {},
        ),
        ("multislerp", [{"adapter": "alpha", "weight": 0.5}, {"adapter": "beta", "weight": 0.5}], {}),
    ):
        out = merge.run(recipe(method, world["base"], models, parameters=params), **kw(world, method))
        from test_merge import merged_tensors

        got = merged_tensors(out)
        assert not torch.equal(got[key], W[key]) and not torch.equal(got[key], A[key])
        assert torch.isfinite(got[key]).all()


def test_every_method_in_the_table_is_one_mergekit_knows():
    from mergekit.merge_methods import registry

    for name, spec in recipes.MERGE_METHODS.items():
        if not spec.get("factory"):  # the factory's own methods (regmean) run outside mergekit
            registry.get(name)  # raises for a name mergekit does not define
