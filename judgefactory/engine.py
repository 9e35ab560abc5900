"""The judging engine: one way to judge, used by the bench suites, the consistency checks and the trainers' quick checks.

``Engine.judge(messages_list, answer=...)`` returns one ``Judgement`` per conversation, in input order:
the raw texts (``n`` samples), their parsed values (None when unparseable; callers count those as errors)
and ``probs``, the distribution over the answer options read at the answer position.

Answer kinds (``ANSWERS``):

* ``score``    Prometheus absolute: ``… [RESULT] N``, options ``1``..``5``;
* ``relative`` Prometheus pairwise: ``… [RESULT] A|B``, options ``A``, ``B``;
* ``verdict``  BBQ bias judge: ``<verdict>A|B|TIE</verdict>``, options ``A``, ``B``, ``TIE``;
* ``choice``   a multiple-choice answer letter at the start of the reply, options ``A``, ``B``, ``C``.

Answer probabilities. In the first returned sequence (the greedy one when ``temperature`` is 0) the engine finds
the last answer marker (``[RESULT]``, ``<verdict>``; the reply's start for ``choice``), skips whitespace, and takes
the token that holds the answer's first character. Every backend keeps the top ``TOP_LOGPROBS`` (20) next-token
log-probabilities of each generated token (transformers: recorded by a logits processor during generation, from the
raw distribution before temperature / top-p; no extra forward pass); ``probs`` is that distribution restricted to the
options' first tokens and renormalised (``probs_mass`` keeps the unrenormalised total; options outside the top 20
get 0). Each option's first token
is ``tokenizer.encode(lead + option)[0]``, where ``lead`` is the part of the generated token before the answer
character. SmolLM2 (GPT-2 style BPE) splits ``[RESULT] 4`` into ``]``, ``' '``, ``4`` (lead ``''``: options
``1``..``5`` are single digit tokens), ``[RESULT] A`` into ``]``, ``' A'`` (lead ``' '``: options ``' A'``,
``' B'``), and ``<verdict>TIE`` into ``>``, ``TI``, ``E`` (the option ``TIE`` is read from its first token ``TI``).
No marker, or nothing after it: ``probs`` is None.

Backends: ``transformers`` (default; ``generate.generate_sequences``: bf16; on a CPU prompts in token order, each
pre-filled on top of the prefix it shares with the previous one and the batch decoded together (transformers'
SDPA attention); on a GPU left-padded, length-sorted batches),
``vllm`` (lazy import, GPU machines; ``SamplingParams(logprobs=20)``) and ``openai`` (any OpenAI-compatible
``/chat/completions`` endpoint; ``logprobs`` with ``top_logprobs: 20``); for these two an option's probability is the
sum over the returned top tokens whose text after ``lead`` starts that option only.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from . import formats
from .errors import JudgeFactoryError

AnswerKind = Literal["score", "verdict", "relative", "choice"]
Messages = list[dict[str, str]]
_CHOICE = re.compile(r"^\s*[\(\[]?\**([ABC])\**(?:[\)\].:,]|\s|$)")


class EngineError(JudgeFactoryError):
    """The engine cannot run as asked (missing backend package, unreachable endpoint, bad answer kind)."""


@dataclass(frozen=True)
class AnswerSpec:
    marker: re.Pattern | None
    """where the answer follows (its last match in the reply); None: the reply's start."""
    options: tuple[str, ...]
    parse: Callable[[str], Any]


def _parse_choice(text: str) -> str | None:
    m = _CHOICE.match(text or "")
    return m.group(1) if m else None


ANSWERS: dict[str, AnswerSpec] = {
    "score": AnswerSpec(re.compile(r"\[RESULT\]"), ("1", "2", "3", "4", "5"), formats.parse_absolute),
    "relative": AnswerSpec(re.compile(r"\[RESULT\]"), ("A", "B"), formats.parse_relative),
    "verdict": AnswerSpec(re.compile(r"<verdict>", re.IGNORECASE), ("A", "B", "TIE"), formats.parse_verdict),
    "choice": AnswerSpec(None, ("A", "B", "C"), _parse_choice),
}


@dataclass
class Judgement:
    """One judged conversation: ``n`` raw replies, their parsed values, and the answer-option distribution."""

    texts: list[str]
    values: list[Any]
    probs: dict[str, float] | None = None
    probs_mass: float | None = None
    """total next-token probability on the options before renormalisation (how sure the model is of the format)."""

    @property
    def text(self) -> str:
        return self.texts[0]

    @property
    def value(self) -> Any:
        return self.values[0]

    def to_json(self) -> dict[str, Any]:
        return {"texts": self.texts, "values": self.values, "probs": self.probs, "probs_mass": self.probs_mass}


@dataclass
class Raw:
    """What a backend returns per conversation before parsing."""

    texts: list[str]
    probs: dict[str, float] | None = None
    probs_mass: float | None = None


# --------------------------------------------------------------------------- locating the answer
def answer_char(text: str, spec: AnswerSpec) -> int | None:
    """Index of the answer's first character in ``text`` (after the last marker and any whitespace), or None."""
    if spec.marker is None:
        pos = 0
    else:
        matches = list(spec.marker.finditer(text))
        if not matches:
            return None
        pos = matches[-1].end()
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos if pos < len(text) else None


def answer_token(decode: Callable[[list[int]], str], ids: Sequence[int], pos: int) -> tuple[int, str] | None:
    """(index k of the token holding character ``pos`` of ``decode(ids)``, the token's text before that character).

    Binary search over decoded prefixes (their length grows with the number of tokens)."""
    lo, hi = 0, len(ids)
    while lo < hi:
        mid = (lo + hi) // 2
        if len(decode(list(ids[: mid + 1]))) > pos:
            hi = mid
        else:
            lo = mid + 1
    if lo >= len(ids):
        return None
    before = decode(list(ids[:lo]))
    if len(before) > pos:
        return None
    return lo, decode(list(ids[: lo + 1]))[len(before) : pos]


def option_token_ids(tok: Any, lead: str, options: Sequence[str]) -> list[int] | None:
    """First token of ``lead + option`` per option; None when a first token does not start that option after ``lead``
    or two options share it."""
    out = []
    for o in options:
        ids = tok.encode(lead + o, add_special_tokens=False)
        if not ids:
            return None
        piece = tok.decode([ids[0]])
        if piece.startswith(lead):
            rest = piece[len(lead) :]
        else:  # decoders that insert the separating space themselves (word-level vocabularies)
            rest = piece.lstrip() if not lead.strip() else None
        if not rest or not o.startswith(rest):
            return None
        out.append(ids[0])
    return out if len(set(out)) == len(out) else None


def normalise(values: dict[str, float]) -> tuple[dict[str, float] | None, float]:
    """(renormalised distribution or None when all zero, total mass)."""
    mass = float(sum(values.values()))
    if mass <= 0 or not math.isfinite(mass):
        return None, mass
    return {k: float(v) / mass for k, v in values.items()}, mass


def probs_from_top(
    tokens: Sequence[str], tops: Sequence[dict[str, float]], spec: AnswerSpec
) -> tuple[dict[str, float] | None, float | None]:
    """Option distribution from per-position token strings and top log-probabilities (OpenAI / vLLM style)."""
    text = "".join(tokens)
    pos = answer_char(text, spec)
    if pos is None:
        return None, None
    start = 0
    for k, t in enumerate(tokens):  # noqa: B007 (k is read after the loop: the token holding the answer)
        if start + len(t) > pos:
            lead = t[: pos - start]
            break
        start += len(t)
    else:
        return None, None
    acc = {o: 0.0 for o in spec.options}
    for t, logprob in tops[k].items():
        if not t.startswith(lead):
            continue
        rest = t[len(lead) :]
        hits = [o for o in spec.options if rest and o.startswith(rest)]
        if len(hits) == 1:
            acc[hits[0]] += math.exp(logprob)
    probs, mass = normalise(acc)
    return probs, (mass if probs is not None else None)


# --------------------------------------------------------------------------- backends
TOP_LOGPROBS = 20
"""top next-token log-probabilities kept per generated token, by every backend (OpenAI's API maximum)."""


@dataclass(frozen=True)
class Sampling:
    """How every request of one ``Engine.judge`` call is decoded; each backend's ``run`` takes it as it is."""

    max_new_tokens: int
    temperature: float = 0.0
    n: int = 1
    top_p: float | None = None
    seed: int | None = None


class TransformersBackend:
    """A loaded (model, tokenizer); generation through ``generate.generate_sequences``, which records each step's top
    ``TOP_LOGPROBS`` next-token log-probabilities, so reading the answer distribution costs no extra forward pass."""

    name = "transformers"

    def __init__(self, model: Any, tok: Any, bf16: bool = True):
        self.model, self.tok, self.bf16 = model, tok, bf16

    def run(
        self,
        messages_list: Sequence[Messages],
        *,
        spec: AnswerSpec | None,
        sampling: Sampling,
        batch_size: int,
        progress: str | None,
    ) -> list[Raw]:
        from .generate import generate_sequences, render

        prompts = [render(self.tok, m) for m in messages_list]
        seqs = generate_sequences(
            self.model,
            self.tok,
            prompts,
            max_new_tokens=sampling.max_new_tokens,
            batch_size=batch_size,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            num_return_sequences=sampling.n,
            progress=progress,
            bf16=self.bf16,
            seed=sampling.seed,
            top_logprobs=TOP_LOGPROBS if spec is not None else 0,
        )
        out = [Raw([c.text for c in s]) for s in seqs]
        if spec is not None:
            for raw, s in zip(out, seqs, strict=False):
                raw.probs, raw.probs_mass = self.answer_probs(s[0], spec)
        return out

    def answer_probs(self, c: Any, spec: AnswerSpec) -> tuple[dict[str, float] | None, float | None]:
        """The options' distribution at the answer token of completion ``c``, from its recorded top log-probs."""
        decode = lambda ids: self.tok.decode(ids, skip_special_tokens=True)  # noqa: E731
        pos = answer_char(c.text, spec)
        found = answer_token(decode, c.ids, pos) if pos is not None else None
        opt = option_token_ids(self.tok, found[1], spec.options) if found else None
        if not (found and opt and c.top is not None and found[0] < len(c.top)):
            return None, None
        top = c.top[found[0]]
        return normalise({o: math.exp(top[t]) if t in top else 0.0 for o, t in zip(spec.options, opt, strict=False)})


class VLLMBackend:
    """vLLM offline inference (GPU machines). Constructed only when ``vllm`` imports."""

    name = "vllm"

    def __init__(self, path: str, dtype: str = "bfloat16", adapter: str | None = None, **llm_kwargs: Any):
        try:
            import vllm
        except ImportError:
            raise EngineError("backend 'vllm' needs the vllm package (a GPU machine: pip install vllm)") from None
        self._vllm = vllm
        self.llm = vllm.LLM(model=str(path), dtype=dtype, enable_lora=adapter is not None, **llm_kwargs)
        self.tok = self.llm.get_tokenizer()
        self.lora = None
        if adapter is not None:
            from vllm.lora.request import LoRARequest

            self.lora = LoRARequest("judge", 1, str(adapter))

    def run(
        self,
        messages_list: Sequence[Messages],
        *,
        spec: AnswerSpec | None,
        sampling: Sampling,
        batch_size: int,
        progress: str | None,
    ) -> list[Raw]:
        params = self._vllm.SamplingParams(
            n=sampling.n,
            temperature=sampling.temperature,
            top_p=sampling.top_p or 1.0,
            max_tokens=sampling.max_new_tokens,
            logprobs=TOP_LOGPROBS,
            seed=sampling.seed,
        )
        outs = self.llm.chat(list(messages_list), params, use_tqdm=progress is not None, lora_request=self.lora)
        raws = []
        for o in outs:
            raw = Raw([c.text for c in o.outputs])
            first = o.outputs[0]
            if spec is not None and first.logprobs:
                tokens = [self.tok.decode([t]) for t in first.token_ids]
                tops = [
                    {lp.decoded_token or self.tok.decode([tid]): lp.logprob for tid, lp in pos.items()}
                    for pos in first.logprobs
                ]
                raw.probs, raw.probs_mass = probs_from_top(tokens, tops, spec)
            raws.append(raw)
        return raws


class OpenAIBackend:
    """Any OpenAI-compatible server (vLLM, llama.cpp's ``llama-server``, a hosted API) through the ``openai`` SDK: one
    chat completion per conversation, in parallel threads, with the top log-probabilities of each generated token."""

    name = "openai"

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout: float = 300.0, workers: int = 8):
        import os

        from openai import OpenAI

        self.base_url, self.model, self.workers = base_url.rstrip("/"), model, workers
        # a local server takes any key; the SDK insists on one (the key is never logged or written anywhere)
        key = api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self.client = OpenAI(base_url=self.base_url, api_key=key, timeout=timeout, max_retries=2)

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /chat/completions`` with ``body``; the response as a plain dict. Failures: one EngineError line."""
        import openai

        try:
            return self.client.chat.completions.create(**body).model_dump()
        except openai.APIError as err:
            raise EngineError(f"{self.base_url}/chat/completions: {type(err).__name__}: {err}") from None

    def _one(self, messages: Messages, spec: AnswerSpec | None, sampling: Sampling) -> Raw:
        n = sampling.n
        choices: list[dict[str, Any]] = []
        while len(choices) < n:  # servers that ignore n return one choice per request
            body = {
                "model": self.model,
                "messages": messages,
                "max_tokens": sampling.max_new_tokens,
                "temperature": sampling.temperature,
                "n": n - len(choices),
                "logprobs": True,
                "top_logprobs": TOP_LOGPROBS,
            }
            if sampling.top_p is not None:
                body["top_p"] = sampling.top_p
            if sampling.seed is not None:
                body["seed"] = sampling.seed
            got = self._post(body).get("choices") or []
            if not got:
                raise EngineError(f"{self.base_url}: response without choices")
            choices += got
        raw = Raw([(c.get("message") or {}).get("content") or "" for c in choices[:n]])
        content = ((choices[0].get("logprobs") or {}).get("content")) or []
        if spec is not None and content:
            tokens = [t.get("token", "") for t in content]
            tops = [
                {x["token"]: x["logprob"] for x in (t.get("top_logprobs") or [])}
                or {t.get("token", ""): t.get("logprob", 0.0)}
                for t in content
            ]
            raw.probs, raw.probs_mass = probs_from_top(tokens, tops, spec)
        return raw

    def run(
        self,
        messages_list: Sequence[Messages],
        *,
        spec: AnswerSpec | None,
        sampling: Sampling,
        batch_size: int,
        progress: str | None,
    ) -> list[Raw]:
        with ThreadPoolExecutor(max_workers=max(1, min(self.workers, batch_size))) as pool:
            return list(pool.map(lambda m: self._one(m, spec, sampling), messages_list))


# --------------------------------------------------------------------------- the engine
@dataclass
class Engine:
    """A backend plus batching defaults. ``judge`` is the one entry point."""

    backend: Any
    batch_size: int = 16
    label: str = "model"
    ref: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_model(cls, model: Any, tok: Any, batch_size: int = 16, bf16: bool = True, label: str = "model") -> Engine:
        """An engine over an already loaded transformers (or PEFT) model."""
        return cls(
            TransformersBackend(model, tok, bf16=bf16),
            batch_size=batch_size,
            label=label,
            info={"backend": "transformers"},
        )

    @classmethod
    def from_ref(
        cls,
        ref: str,
        backend: str = "transformers",
        dtype: str = "auto",
        batch_size: int = 16,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
    ) -> Engine:
        """An engine for a model reference (``models.resolve``; ``route:<absolute>,<pairwise>``: one engine per part,
        ``route.py``); for ``openai`` the ref is the server's model name."""
        if backend == "openai":
            if not base_url:
                raise EngineError("backend 'openai' needs base_url (e.g. http://localhost:8000/v1)")
            from .models import served_label

            label = served_label(ref)
            return cls(
                OpenAIBackend(base_url, ref, api_key),
                batch_size,
                label,
                ref,
                {"backend": "openai", "base_url": base_url},
            )
        from . import models

        if models.is_route(ref):  # one engine per part, each request to its own (route.py)
            from .route import RoutingBackend

            label = models.label(ref)  # every part resolves before any loads
            if backend != "transformers":
                raise EngineError(f"{ref}: a route runs on the transformers backend (one model per part in process)")
            absolute, pairwise = models.parts(ref)
            engines = {
                "absolute": cls.from_ref(absolute, backend, dtype),
                "pairwise": cls.from_ref(pairwise, backend, dtype),
            }
            info = {"backend": "route", "parts": {k: {"ref": e.ref, **e.info} for k, e in engines.items()}}
            return cls(RoutingBackend({k: e.backend for k, e in engines.items()}), batch_size, label, ref, info)
        if backend == "vllm":
            kind, loc = models.resolve(ref)
            if kind == "adapter":
                from . import bases

                vb = VLLMBackend(
                    str(bases.prepare(models.base_of_adapter(Path(loc)))),
                    "bfloat16" if dtype == "auto" else dtype,
                    adapter=str(loc),
                )
            else:
                vb = VLLMBackend(str(bases_path(kind, loc)), "bfloat16" if dtype == "auto" else dtype)
            return cls(vb, batch_size, models.label(ref), ref, {"backend": "vllm", "dtype": dtype})
        if backend != "transformers":
            raise EngineError(f"unknown backend {backend!r}: transformers, vllm or openai")
        import torch

        from .precision import judge_dtype

        cuda = torch.cuda.is_available()
        if dtype == "auto":  # the precision policy: float32 on CPUs, bf16 on GPUs that run it (precision.judge_dtype)
            dtype = judge_dtype()
        model, tok = models.load(ref, dtype)
        if cuda:
            model.to("cuda")
        return cls(
            TransformersBackend(model, tok, bf16=dtype == "bfloat16"),
            batch_size,
            models.label(ref),
            ref,
            {"backend": "transformers", "dtype": dtype, "device": "cuda" if cuda else "cpu"},
        )

    def judge(
        self,
        messages_list: Sequence[Messages],
        *,
        max_new_tokens: int,
        temperature: float = 0.0,
        n: int = 1,
        answer: AnswerKind | None = None,
        top_p: float | None = None,
        seed: int | None = 0,
        progress: str | None = None,
    ) -> list[Judgement]:
        """Judge each conversation; results in input order. ``answer`` picks the parser and the probability read-out
        (None: raw texts only, values None)."""
        if n < 1:
            raise EngineError("n must be >= 1")
        spec = ANSWERS.get(answer) if answer is not None else None
        if answer is not None and spec is None:
            raise EngineError(f"unknown answer kind {answer!r}: {', '.join(ANSWERS)}")
        if not messages_list:
            return []
        sampling = Sampling(max_new_tokens, temperature, n, top_p, seed)
        raws = self.backend.run(
            messages_list, spec=spec, sampling=sampling, batch_size=self.batch_size, progress=progress
        )
        return [
            Judgement(r.texts, [spec.parse(t) if spec else None for t in r.texts], r.probs, r.probs_mass) for r in raws
        ]


def bases_path(kind: str, loc: Any) -> Any:
    """The folder (or hub id) vLLM loads for a resolved non-adapter reference."""
    if kind == "base":
        from . import bases

        return bases.prepare(str(loc))
    return loc
