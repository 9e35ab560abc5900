"""Recipes: YAML parameters validated once into strict, frozen pydantic models.

Every recipe file has a ``kind`` (adapter | merge | pairs | bench) that picks its model.
``load(path, overrides)`` applies ``key=value`` overrides (dotted keys, YAML-typed values)
before validation, so a bad override fails exactly like a bad file: one line naming the
file, the field and what was expected.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from . import paths
from .bases import EMBEDDED
from .errors import JudgeFactoryError

RECIPES_DIR = paths.recipes_dir()

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class RecipeError(JudgeFactoryError, ValueError):
    """A recipe could not be read or validated; the message is one line naming file and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


def check_base(value: str) -> str:
    """A base is ``embedded:<known>``, a hub id ``org/name``, or an existing local folder."""
    if value.startswith("embedded:"):
        if value.split(":", 1)[1] not in EMBEDDED:
            raise ValueError(f"unknown embedded base {value!r}; known: {', '.join('embedded:' + b for b in EMBEDDED)}")
        return value
    if _HUB_ID.match(value) or Path(value).is_dir():
        return value
    raise ValueError(f"base {value!r} is neither embedded:<name>, a hub id org/name, nor an existing folder")


def _check_name(value: str) -> str:
    if not _NAME.match(value) or "+" in value or "@" in value:
        raise ValueError(f"name {value!r} must be letters, digits, '_', '-', '.' (no '+', '@', '/')")
    return value


# --------------------------------------------------------------------------- adapters
class LoraSpec(_Strict):
    r: int = Field(16, gt=0)
    alpha: int = Field(32, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    top_layers: int | None = Field(None, gt=0)
    """LoRA on the top N decoder layers only (PEFT ``layers_to_transform``): the backward pass stops below them, so a
    CPU step is cheaper (docs/DECISIONS.md D15). None: every layer. Specialists to be merged must agree on it."""


class TrainSpec(_Strict):
    max_steps: int = Field(100, gt=0)
    """the work: optimizer steps, the same on any machine (with data, batch and seed they decide the adapter)."""
    max_minutes: float | None = Field(None, gt=0)
    """a safety net, never the plan: training stops (and checkpoints) at the first step past it, and the adapter is
    marked incomplete (manifest, quick check, reports) and resumed, not reused, by the next run."""
    learning_rate: float = Field(2e-4, gt=0)
    batch_size: int = Field(8, gt=0)
    grad_accum: int = Field(1, gt=0)
    max_length: int = Field(512, gt=16)
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "cosine"
    logging_steps: int = Field(5, gt=0)
    save_steps: int = Field(25, gt=0)
    seed: int = 0
    bf16: bool = True
    base_dtype: Literal["bfloat16", "float32"] = "bfloat16"
    """dtype of the frozen base weights while training (LoRA weights stay float32). CPU recipes say float32 and
    bf16: false, so AVX2 and bf16-native machines train the same adapter (docs/DECISIONS.md D21)."""
    score_loss_weight: float = Field(0.0, ge=0)
    """absolute only: add ``weight * (E[s] - s)^2`` at the ``[RESULT]`` digit, E[s] the expected score under the
    model's distribution over the digits 1-5 (regression-aware fine-tuning, RAFT: Lukasik et al. 2025). With
    ``data.score_target: each`` (one row per GPT-4 judgement) it regresses E[s] onto the judgements' mean."""
    gradient_checkpointing: bool = False
    """trade compute for memory: off on CPU (24 GiB is plenty, and it costs ~30% time); on for large GPU bases."""
    quantization: Literal["none", "4bit"] = "none"


class AdapterData(_Strict):
    source: str
    """hub id of the training data (absolute), or ``pairs:<pair-set name>`` (pairwise), or a user's own rows for
    either task: ``file:PATH`` (JSONL, JSON or CSV; a relative path is read from the working directory) or
    ``hub:ORG/NAME[@REVISION][#SPLIT]`` (schemas: ``data.user``)."""
    columns: dict[str, str] = {}
    """user sources: the factory's field -> the file's column (``{instruction: prompt}``)."""
    criterion: str | None = None
    """user pairwise sources: the criterion sentence the judge decides by (the prompt's task line, e.g. "Which
    response answers the question more helpfully?"); None: the BBQ bias question."""
    test_fraction: float = Field(0.0, ge=0, lt=1)
    """user sources: this share of the groups is held out as the test split the quick check scores
    (``quick_eval.source: split:test``); ``dev_fraction`` of the groups is the dev split of the learning curve."""
    file: str | None = None
    """one file of a multi-file source (e.g. ``mt_bench_eval.json``)."""
    max_rows: int | None = Field(None, gt=0)
    score_target: Literal["median", "round_mean", "each"] = "median"
    """absolute only: how several reference scores become one training target."""
    max_feedback_sentences: int | None = Field(None, gt=0)
    """absolute only: keep the first N sentences of the reference feedback (short targets for CPU budgets)."""
    max_response_chars: int = Field(1200, gt=0)
    """truncate long judged responses so prompts fit a CPU budget."""
    holdout: list[str] = []
    """sources (hub id[:file]) that must stay unseen: training refuses to start if they overlap."""
    relative_pairs: int = Field(0, ge=0)
    """absolute only: also train the Prometheus relative format (``[RESULT] A|B``) on up to N pairs of responses to
    the same instruction whose target scores differ, each pair in both A/B orders (docs/DECISIONS.md D14)."""
    dev_fraction: float = Field(0.0, ge=0, lt=1)
    """absolute and user sources: this share of the source's instructions (all responses of each; for a user source,
    of its groups) is held out of training as the dev split the learning curve is scored on. Pairwise adapters on a
    pair set use its template-disjoint test split."""


class QuickEval(_Strict):
    source: str
    """an eval set (hub id; ``file`` picks one of its files), or ``split:test``: the held-out test split of the
    recipe's own user source (``data.test_fraction``)."""
    file: str | None = None
    limit: int = Field(40, gt=0)
    max_new_tokens: int = Field(96, gt=0)
    batch_size: int = Field(8, gt=0)
    n_boot: int = Field(1000, ge=0)
    """cluster-bootstrap replicates for the confidence intervals of the check's headline figures (0: none)."""


class DevSpec(_Strict):
    """The learning curve: at each of ``steps`` the adapter so far judges the dev split (never an eval set)."""

    steps: list[Annotated[int, Field(ge=0)]] = Field(min_length=1)
    """optimizer steps to score the dev split at; 0 = the untrained base (the curve's first point)."""
    limit: int | None = Field(None, gt=0)
    max_new_tokens: int = Field(64, gt=0)
    batch_size: int = Field(32, gt=0)
    max_response_chars: int | None = Field(None, gt=0)
    """clip judged responses for the dev judging (default: the training data's ``max_response_chars``)."""


class PreferenceSpec(_Strict):
    """A preference stage after SFT (TRL's DPO, Rafailov et al. 2023): the SFT adapter keeps training on (chosen,
    rejected) completions of the pair set's training prompts, with the SFT adapter as the frozen reference."""

    method: Literal["dpo"] = "dpo"
    steps: int = Field(50, gt=0)
    learning_rate: float = Field(5e-5, gt=0)
    beta: float = Field(0.1, gt=0)
    batch_size: int = Field(2, gt=0)
    nll_weight: float = Field(0.0, ge=0)
    """Weight of an NLL term on the chosen answers added to the DPO loss (RPO, Pang et al. 2024, "Iterative Reasoning
    Preference Optimization"; TRL ``loss_type=["sigmoid", "sft"]``): it holds the chosen answers' likelihood up where
    plain DPO lets it fall with the rejected one. 0: plain DPO."""
    rejected: list[Literal["swapped_reading", "wrong_verdict"]] = ["swapped_reading", "wrong_verdict"]
    """swapped_reading: the judgement written for the other A/B order (each response read in the other slot: the
    position-bias error); wrong_verdict: the right reasoning with a verdict that does not follow from it."""


class AdapterRecipe(_Strict):
    kind: Literal["adapter"]
    name: str
    task: Literal["absolute", "pairwise", "joint"]
    """joint: one LoRA on the union of the specialists' training rows (``data.source: joint:<absolute>,<pairwise>``,
    two adapter recipe names), the joint-training baseline a merge is compared with."""
    base: str
    backend: Literal["trl", "unsloth"] = "trl"
    data: AdapterData
    lora: LoraSpec = LoraSpec()
    train: TrainSpec = TrainSpec()
    dev: DevSpec | None = None
    preference: PreferenceSpec | None = None
    quick_eval: QuickEval | None = None

    _name = field_validator("name")(_check_name)
    _base = field_validator("base")(check_base)

    @model_validator(mode="after")
    def _backend_fits(self) -> AdapterRecipe:
        user = self.data.source.startswith(("file:", "hub:"))
        if self.task == "pairwise" and not (self.data.source.startswith("pairs:") or user):
            raise ValueError(
                "data.source of a pairwise adapter must be 'pairs:<pair-set recipe name>' or a user source "
                "('file:PATH' or 'hub:ORG/NAME')"
            )
        if not user and (self.data.columns or self.data.criterion or self.data.test_fraction):
            raise ValueError("data.columns, data.criterion and data.test_fraction are for user sources (file:, hub:)")
        if self.data.criterion and self.task != "pairwise":
            raise ValueError("data.criterion is the pairwise judge's criterion (an absolute judge has its rubric)")
        if self.quick_eval is not None and self.quick_eval.source == "split:test" and not self.data.test_fraction:
            raise ValueError("quick_eval.source 'split:test' needs a test split: set data.test_fraction (e.g. 0.2)")
        if self.task == "pairwise" and self.dev is not None and user and not self.data.dev_fraction:
            raise ValueError("dev: a learning curve on a user source needs a dev split: set data.dev_fraction")
        if (self.task == "joint") != self.data.source.startswith("joint:"):
            raise ValueError(
                "a joint adapter (and only it) takes data.source 'joint:<absolute recipe>,<pairwise recipe>'"
            )
        if self.task == "joint" and len(self.data.source.split(":", 1)[1].split(",")) != 2:
            raise ValueError("data.source of a joint adapter names two adapter recipes: 'joint:<absolute>,<pairwise>'")
        if self.task == "pairwise" and self.data.relative_pairs:
            raise ValueError(
                "data.relative_pairs is for absolute adapters (Prometheus relative rows), not pairwise ones"
            )
        if self.task == "pairwise" and ((self.data.dev_fraction and not user) or self.train.score_loss_weight):
            raise ValueError(
                "data.dev_fraction and train.score_loss_weight are for absolute adapters (a pairwise adapter's "
                "dev split is its pair set's test split)"
            )
        if self.task == "absolute" and self.dev is not None and not self.data.dev_fraction:
            raise ValueError("dev: a learning curve needs a dev split: set data.dev_fraction (e.g. 0.2)")
        if self.dev is not None and max(self.dev.steps) > self.train.max_steps:
            raise ValueError(f"dev.steps {max(self.dev.steps)} lies past train.max_steps {self.train.max_steps}")
        if self.task == "joint" and (self.dev is not None or self.quick_eval is not None):
            raise ValueError(
                "a joint adapter is measured by the merge search and the retention table, not by dev/quick_eval"
            )
        if self.preference is not None and user:
            raise ValueError("preference: the DPO stage reads a built pair set (data.source 'pairs:<name>')")
        if self.preference is not None and self.task != "pairwise":
            raise ValueError(
                "preference: the DPO stage builds its rejected judgements from a pair set (pairwise adapters)"
            )
        return self


# --------------------------------------------------------------------------- pair sets
class BucketTargets(_Strict):
    clear_bias: int = Field(200, ge=0)
    subtle_bias: int = Field(150, ge=0)
    tracked_vs_alternate: int = Field(60, ge=0)
    tie: int = Field(150, ge=0)
    adversarial: int = Field(60, ge=0)


class PairsRecipe(_Strict):
    kind: Literal["pairs"]
    name: str
    bbq_source: str = "heegyu/bbq"
    pairs_source: str = "judge-from-scratch/bbq-pairs"
    eval_file: str = "eval_in_dist"
    use_real_pairs: bool = True
    use_synthetic: bool = True
    generated_responses: str | None = None
    """optional JSONL of responses generated by a local base (``judgefactory pairs generate``)."""
    buckets: BucketTargets = BucketTargets()
    biased_vs_wrong: Literal["biased", "tie"] = "tie"
    """label of a stereotype-aligned answer vs the other wrong answer (tracked_vs_alternate bucket)."""
    test_fraction: float = Field(0.15, gt=0, lt=1)
    exclude_categories: list[str] = ["religion"]
    seed: int = 0
    llm_labeler: str | None = None
    """optional OpenAI-compatible base URL (e.g. http://localhost:11434/v1) for a second-opinion labeler."""
    llm_labeler_model: str = "llama3.1"

    _name = field_validator("name")(_check_name)


# --------------------------------------------------------------------------- merges
class MergeModel(_Strict):
    adapter: str | None = None
    model: str | None = None
    """a fully fine-tuned checkpoint (hub id or folder) instead of an adapter."""
    weight: float = 0.5
    density: float | None = Field(None, gt=0, le=1)

    @model_validator(mode="after")
    def _one_source(self) -> MergeModel:
        if (self.adapter is None) == (self.model is None):
            raise ValueError("give exactly one of 'adapter' (an adapter name) or 'model' (a checkpoint)")
        return self


class Gate(_Strict):
    min_position_consistency: float | None = Field(None, ge=0, le=1)
    max_conflict_ratio: float | None = Field(None, ge=0, le=1)
    max_ntr_3: float | None = Field(None, ge=0, le=1)
    keep_of_specialists: float | None = Field(None, gt=0, le=1)
    """the merge must keep at least this share of each specialist's own measured figures: its skill's headline on
    the eval set (pairwise: BBQ pair kappa; absolute: Vicuna expected-score Pearson, bench/) and its position
    consistency (consistency/). Thresholds that follow the specialists, not fixed numbers anything passes."""


class Sweep(_Strict):
    weights: list[Annotated[float, Field(ge=0, le=1)]] = Field(min_length=1)
    """weight of the FIRST model at each point (0..1); the second gets 1 - w."""


MERGE_METHODS: dict[str, dict[str, Any]] = {
    # method -> what mergekit 0.1.5 defines for it: its parameters, whether weights must be >= 0 (an interpolation or
    # average of the models) or may be any real number (a sum of task vectors, where a negative weight subtracts one),
    # and whether it reads a per-model density (TIES / DARE sparsification).
    # A new method is one entry here (recipes, the search and merge.py read this table; merge.py passes the method
    # name to mergekit as is, except for the factory's own methods, ``factory: True``, which it runs itself).
    "nuslerp": {"parameters": {"nuslerp_flatten", "nuslerp_row_wise"}, "signed_weights": False, "density": False},
    "linear": {"parameters": {"normalize"}, "signed_weights": False, "density": False},
    "task_arithmetic": {
        "parameters": {"normalize", "rescale", "lambda", "int8_mask"},
        "signed_weights": True,
        "density": False,
    },
    "ties": {"parameters": {"normalize", "rescale", "lambda", "int8_mask"}, "signed_weights": True, "density": True},
    "breadcrumbs": {
        "parameters": {"normalize", "rescale", "lambda", "int8_mask", "gamma"},
        "signed_weights": True,
        "density": True,
    },
    "dare_linear": {
        "parameters": {"normalize", "rescale", "lambda", "int8_mask"},
        "signed_weights": True,
        "density": True,
    },
    "dare_ties": {
        "parameters": {"normalize", "rescale", "lambda", "int8_mask"},
        "signed_weights": True,
        "density": True,
    },
    "breadcrumbs_ties": {
        "parameters": {"normalize", "rescale", "lambda", "int8_mask", "gamma"},
        "signed_weights": True,
        "density": True,
    },
    # DELLA (Deep et al. 2024): magnitude-ranked drop probabilities around ``density``, spread by ``epsilon``
    "della": {
        "parameters": {"normalize", "rescale", "lambda", "int8_mask", "epsilon"},
        "signed_weights": True,
        "density": True,
    },
    "della_linear": {
        "parameters": {"normalize", "rescale", "lambda", "int8_mask", "epsilon"},
        "signed_weights": True,
        "density": True,
    },
    # spherical interpolation of any number of models (mergekit's multislerp; two models: SLERP)
    "multislerp": {"parameters": {"normalize_weights", "eps"}, "signed_weights": False, "density": False},
    # RegMean (Jin et al. 2023): the factory's own method (judgefactory/regmean.py, not mergekit): each LoRA target
    # layer solved from the Gram matrices of its inputs on each specialist's training prompts, every other tensor by
    # ``fallback``. ``defaults`` apply where the recipe leaves a parameter out.
    "regmean": {
        "parameters": {"alpha", "n_prompts", "fallback"},
        "signed_weights": False,
        "density": False,
        "factory": True,
        "defaults": {"alpha": 0.9, "n_prompts": 256, "fallback": "linear"},
        "fallbacks": ("linear", "task_arithmetic"),
    },
}


def _check_method(v: str) -> str:
    if v not in MERGE_METHODS:
        raise ValueError(f"unknown merge method {v!r}; known: {', '.join(MERGE_METHODS)}")
    return v


def _check_regmean(recipe: MergeRecipe) -> None:
    """RegMean's parameters: ``alpha`` in [0, 1] (the share of each Gram matrix's off-diagonal kept), ``n_prompts`` a
    positive whole number, ``fallback`` one of the methods it computes for the tensors outside the LoRA targets; every
    model an adapter (its training prompts come from its recipe)."""
    p, spec = recipe.parameters, MERGE_METHODS["regmean"]
    alpha = p.get("alpha", spec["defaults"]["alpha"])
    if isinstance(alpha, bool | str) or not 0 <= alpha <= 1:
        raise ValueError(f"parameters.alpha={alpha!r}: regmean's alpha is a number in [0, 1]")
    n = p.get("n_prompts", spec["defaults"]["n_prompts"])
    if isinstance(n, bool | str) or not float(n).is_integer() or n < 1:
        raise ValueError(f"parameters.n_prompts={n!r}: regmean's n_prompts is a whole number >= 1")
    fallback = p.get("fallback", spec["defaults"]["fallback"])
    if fallback not in spec["fallbacks"]:
        raise ValueError(f"parameters.fallback={fallback!r}: one of {', '.join(spec['fallbacks'])}")
    for i, m in enumerate(recipe.models):
        if m.adapter is None:
            raise ValueError(
                f"models.{i}: regmean reads each model's training prompts from its adapter recipe: give 'adapter'"
            )


class MergeRecipe(_Strict):
    kind: Literal["merge"]
    name: str
    method: str
    base: str
    models: list[MergeModel] = Field(min_length=2)
    parameters: dict[str, float | bool | str] = {}
    """the method's parameters: numbers and true/false (a word only where the method names one: regmean's fallback)."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    use_base: bool = False
    """nuslerp only: interpolate task vectors around the base (base + nuslerp(t, A-base, B-base))."""
    sweep: Sweep | None = None
    gate: Gate | None = None

    _name = field_validator("name")(_check_name)
    _base = field_validator("base")(check_base)
    _method = field_validator("method")(_check_method)

    @model_validator(mode="after")
    def _method_fits(self) -> MergeRecipe:
        spec = MERGE_METHODS[self.method]
        if self.method == "nuslerp" and len(self.models) != 2:
            raise ValueError("nuslerp merges exactly two models")
        if self.sweep is not None and len(self.models) != 2:
            raise ValueError("a sweep varies the weights of exactly two models")
        unknown = sorted(set(self.parameters) - spec["parameters"])
        if unknown:
            raise ValueError(
                f"parameters.{unknown[0]} is not a {self.method} parameter (known: {', '.join(sorted(spec['parameters']))})"
            )
        if self.method == "regmean":
            _check_regmean(self)
        else:
            for key, value in self.parameters.items():
                if isinstance(value, str):
                    raise ValueError(
                        f"parameters.{key}={value!r}: {self.method}'s parameters are numbers or true/false"
                    )
        weights = [m.weight for m in self.models]
        for i, w in enumerate(weights):
            if not math.isfinite(w):
                raise ValueError(f"models.{i}.weight must be a finite number, got {w}")
            if w < 0 and not spec["signed_weights"]:
                raise ValueError(
                    f"models.{i}.weight={w}: {self.method} interpolates between the models, its weights must be >= 0"
                )
            if self.models[i].density is not None and not spec["density"]:
                raise ValueError(
                    f"models.{i}.density: {self.method} does not sparsify (density is for ties and dare_linear)"
                )
        if spec["signed_weights"] and not any(weights):
            raise ValueError(f"{self.method} with every weight 0 is the base model itself")
        if not spec["signed_weights"] and sum(weights) <= 0:
            raise ValueError(f"the weights of a {self.method} merge must sum to more than 0, got {sum(weights)}")
        return self


# --------------------------------------------------------------------------- bench suites
def _check_suite(value: str) -> str:
    """A suite of ``bench.suites.SUITES`` (imported when a bench recipe is validated: the suites pull in the metrics)."""
    from .bench.suites import SUITES

    if value not in SUITES:
        raise ValueError(f"unknown suite; suites are {', '.join(SUITES)}")
    return value


class SuiteSpec(_Strict):
    name: str
    """a suite of ``bench.suites.SUITES``."""
    limit: int | None = Field(None, gt=0)
    samples: int = Field(1, gt=0)
    temperature: float = Field(0.0, ge=0)
    max_new_tokens: int = Field(128, gt=0)

    _name = field_validator("name")(_check_suite)


class BenchRecipe(_Strict):
    kind: Literal["bench"]
    name: str
    suites: list[SuiteSpec] = Field(min_length=1)
    batch_size: int = Field(16, gt=0)
    seed: int = 0

    _name = field_validator("name")(_check_name)


# --------------------------------------------------------------------------- merge searches
class SearchCandidates(_Strict):
    """One family of candidates: ``method`` at each weight of the absolute specialist (the pairwise one gets
    ``1 - w`` for interpolations; task arithmetic / TIES / DARE take ``w`` and ``pairwise_weight`` as separate scales)."""

    method: str
    weights: list[Annotated[float, Field(ge=0, le=2)]] = Field(min_length=1)
    pairwise_weight: float | None = Field(None, ge=0, le=2)
    """task arithmetic / TIES / DARE: the pairwise task vector's scale (None: 1 - w, as for interpolations)."""
    densities: list[Annotated[float, Field(gt=0, le=1)]] = [1.0]
    """TIES / DARE: the share of each task vector kept (one candidate per density)."""
    parameters: dict[str, float | bool] = {}
    use_base: bool = True
    """nuslerp: interpolate the task vectors around the base (D10)."""

    _method = field_validator("method")(_check_method)


class SearchDev(_Strict):
    pairwise_limit: int | None = Field(None, gt=0)
    absolute_limit: int | None = Field(None, gt=0)
    batch_size: int = Field(32, gt=0)


class SearchRecipe(_Strict):
    """A merge search: every candidate merged through mergekit and scored on BOTH specialists' dev splits (never an
    eval set); the candidate with the best worst-case retention becomes a merge recipe."""

    kind: Literal["search"]
    name: str
    base: str
    absolute: str
    """the absolute specialist's adapter name (its recipe's dev split is the absolute dev)."""
    pairwise: str
    """the pairwise specialist's adapter name (its pair set's test split is the pairwise dev)."""
    joint: str | None = None
    """a joint-training baseline adapter (``task: joint``) scored on the same dev splits, for the table and plot."""
    candidates: list[SearchCandidates] = Field(min_length=1)
    dev: SearchDev = SearchDev()
    dtype: Literal["float32"] = "float32"

    _name = field_validator("name")(_check_name)
    _base = field_validator("base")(check_base)


Recipe = Annotated[AdapterRecipe | PairsRecipe | MergeRecipe | BenchRecipe | SearchRecipe, Field(discriminator="kind")]
_ADAPTER = TypeAdapter(Recipe)
_KINDS = ("adapter", "merge", "pairs", "bench", "search")


# --------------------------------------------------------------------------- loading
def parse_overrides(pairs: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``["train.max_steps=10", "lora.target_modules=[q_proj]"]`` -> nested dict, values typed by YAML."""
    out: dict[str, Any] = {}
    for item in pairs:
        if "=" not in item:
            raise RecipeError(f"override {item!r}: expected key=value")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw) if raw != "" else None
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def _merge(base: Any, upd: dict[str, Any]) -> Any:
    """``upd`` applied to ``base``; a numeric key indexes a list (``models.0.weight=0.3``)."""
    if isinstance(base, list):
        merged_list = list(base)
        for k, v in upd.items():
            if not (str(k).isdigit() and int(k) < len(merged_list)):
                raise RecipeError(f"override key {k!r}: the list has items 0..{len(merged_list) - 1}")
            i = int(k)
            merged_list[i] = (
                _merge(merged_list[i], v) if isinstance(v, dict) and isinstance(merged_list[i], (dict, list)) else v
            )
        return merged_list
    merged = dict(base)
    for k, v in upd.items():
        merged[k] = _merge(merged[k], v) if isinstance(v, dict) and isinstance(merged.get(k), (dict, list)) else v
    return merged


def _format_error(source: str, err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        path = e["loc"][1:] if e["loc"] and e["loc"][0] in _KINDS else e["loc"]  # drop the union tag
        loc = ".".join(str(p) for p in path)
        msg = e["msg"].removeprefix("Value error, ")
        got = e.get("input")
        got_s = "" if e["type"] in ("missing",) or isinstance(got, dict) else f" (got {got!r})"
        parts.append(f"field '{loc}': {msg}{got_s}" if loc else msg)  # a cross-field check names its fields itself
    return f"{source}: " + "; ".join(parts)


def from_dict(
    data: dict[str, Any], source: str = "<recipe>"
) -> AdapterRecipe | PairsRecipe | MergeRecipe | BenchRecipe | SearchRecipe:
    """Validate an already-parsed recipe mapping."""
    if not isinstance(data, dict):
        raise RecipeError(f"{source}: expected a YAML mapping at the top level, got {type(data).__name__}")
    models: dict[str, type[BaseModel]] = {
        "adapter": AdapterRecipe,
        "merge": MergeRecipe,
        "pairs": PairsRecipe,
        "bench": BenchRecipe,
        "search": SearchRecipe,
    }
    if data.get("kind") not in models:
        got = "is missing" if "kind" not in data else f"is {data['kind']!r}"
        known = set().union(*(m.model_fields for m in models.values()))
        strays = [f"; field '{k}': not a field of any recipe kind" for k in data if k not in known]
        raise RecipeError(f"{source}: field 'kind' {got}: one of {', '.join(models)}" + "".join(strays))
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as err:
        raise RecipeError(_format_error(source, err)) from None


def _read_yaml(path: Path) -> Any:
    if not path.is_file():
        raise RecipeError(f"{path}: recipe file not found")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise RecipeError(f"{path}:{where} invalid YAML: {getattr(err, 'problem', err)}") from None


EXTENDS = "extends"
"""a recipe's parent: ``extends: <recipe name>`` (in the same kind folder, shipped or experiment) or a path relative
to the recipe's file. The variant states only what differs: its mapping is laid over the parent's (mappings merge key
by key, anything else is replaced) before validation, so the validated recipe, and with it every artifact's freshness,
is the same as a full copy's."""


def parent_path(path: Path, data: dict[str, Any]) -> Path | None:
    """The file a recipe's ``extends`` names (None without one)."""
    ref = data.get(EXTENDS)
    if ref is None:
        return None
    if not isinstance(ref, str) or not ref.strip():
        raise RecipeError(f"{path}: field '{EXTENDS}': a recipe name or a relative path, got {ref!r}")
    if ref.endswith((".yaml", ".yml")):
        return (path.parent / ref).resolve()
    return find(path.parent.name, ref)


def resolved(path: Path, _seen: tuple[Path, ...] = ()) -> Any:
    """A recipe file's mapping with its ``extends`` chain laid over (the parent's first)."""
    data = _read_yaml(path)
    if not isinstance(data, dict) or EXTENDS not in data:
        return data
    parent = parent_path(path, data)
    assert parent is not None
    if not parent.is_file():
        raise RecipeError(f"{path}: field '{EXTENDS}': {parent}: recipe file not found")
    if parent.resolve() in (*_seen, path.resolve()):
        raise RecipeError(f"{path}: field '{EXTENDS}': a cycle ({' -> '.join(str(p) for p in (*_seen, path, parent))})")
    base = resolved(parent, (*_seen, path.resolve()))
    if not isinstance(base, dict):
        raise RecipeError(f"{path}: field '{EXTENDS}': {parent} is not a recipe mapping")
    own = {k: v for k, v in data.items() if k != EXTENDS}
    if own.get("name") in (None, base.get("name")):
        raise RecipeError(f"{path}: a variant names itself: field 'name' must differ from its parent's ({parent})")
    return _merge(base, own)


def load(
    path: str | Path, overrides: list[str] | tuple[str, ...] = ()
) -> AdapterRecipe | PairsRecipe | MergeRecipe | BenchRecipe | SearchRecipe:
    """Read (its ``extends`` parent laid under it), override and validate one recipe file."""
    path = Path(path)
    data = resolved(path)
    if isinstance(data, dict):
        data = _merge(data, parse_overrides(overrides))
    return from_dict(data, str(path))


EXPERIMENTS = "experiments"
"""the subfolder of recipes/ holding experiments (rejected or superseded recipes kept so a decision reproduces):
``recipes/experiments/<kind_dir>/<name>.yaml``. Found by name like any recipe, validated by the tests, listed apart by
``judgefactory validate``, never the default of a Make target."""


def _dirs(kind_dir: str) -> tuple[Path, Path]:
    return RECIPES_DIR / kind_dir, RECIPES_DIR / EXPERIMENTS / kind_dir


def find(kind_dir: str, name: str) -> Path:
    """``find("adapters", "pairwise")`` -> recipes/adapters/pairwise.yaml (else recipes/experiments/adapters/…), or the
    path itself if it is one."""
    p = Path(name)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        return p
    for folder in _dirs(kind_dir):
        cand = folder / f"{name}.yaml"
        if cand.is_file():
            return cand
    known = sorted(x.stem for folder in _dirs(kind_dir) for x in folder.glob("*.yaml"))
    raise RecipeError(
        f"no {kind_dir} recipe named {name!r} in {RECIPES_DIR / kind_dir} or {RECIPES_DIR / EXPERIMENTS / kind_dir}"
        f" (known: {', '.join(known)})"
    )


def shipped() -> list[Path]:
    """Every recipe file the repo ships for use (``recipes/<kind_dir>/*.yaml``; experiments apart: ``experiments()``)."""
    return sorted(RECIPES_DIR.glob("*/*.yaml"))


def experiments() -> list[Path]:
    """Every experiment recipe the repo keeps (``recipes/experiments/<kind_dir>/*.yaml``)."""
    return sorted((RECIPES_DIR / EXPERIMENTS).glob("*/*.yaml"))


def chosen_recipe_path(search_name: str) -> Path:
    """Where a merge search writes its chosen merge recipe: ``<search>-chosen.yaml`` in the merges folder beside the
    search's own (an experiment search's choice is an experiment too)."""
    searches, experiment_searches = _dirs("searches")
    in_experiments = (experiment_searches / f"{search_name}.yaml").is_file() and not (
        searches / f"{search_name}.yaml"
    ).is_file()
    return _dirs("merges")[1 if in_experiments else 0] / f"{search_name}-chosen.yaml"


def dump(recipe: BaseModel) -> str:
    """The exact validated recipe as YAML (stored beside every artifact)."""
    return yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False)


def training_rule() -> str:
    """``biased_vs_wrong`` of the shipped pair-set recipe (``recipes/pairs/bbq_pairs.yaml``): the rule that labels the
    pairwise specialist's training pairs, hence the baseline a trained judge is compared with."""
    recipe = load(find("pairs", "bbq_pairs"))
    assert isinstance(recipe, PairsRecipe), recipe.kind
    return recipe.biased_vs_wrong
