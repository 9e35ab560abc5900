"""Training fingerprints: a judge is never scored on prompts it trained on.

Every adapter's training run writes ``trained_on.json`` beside its weights (listed in the manifest's file hashes): the
sha256 of each normalised training *instruction* and of each full *prompt* it trained on, and for pairwise rows the
BBQ *template* ids. A merge copies the union of its parents' fingerprints into its own folder when it is built (so it
stays bound to exactly the parents it was made from, and a merge folder pushed or copied alone still carries them); a
base model has none.

Fingerprint kinds, each the sha256 of ``normalise``\\ d text:

* ``instructions``: the instruction section of a Prometheus absolute or relative prompt (the raw one and the one as
  clipped for training), and a BBQ item's context + question;
* ``prompts``: every full user message (as trained, and the raw Prometheus prompt it was rendered from);
* ``templates``: ``bbq-template:<template id>`` of each BBQ item trained on.

``screen`` is what every scoring station calls (bench suites, consistency runs, retention tables): the items sharing a
fingerprint of a kind with the model are left out, a warning line says how many and why, ``excluded_trained_on`` =
``{n, reason, fingerprints_sha256}`` goes into the results JSON, and a suite with no item left is refused
(``LeakageError``). ``card_check`` is the model card's guard: a figure enters the card only when it was screened with
the artifact's current fingerprints.

An adapter or merge trained before fingerprints were recorded has none to compare: ``screen`` then refuses a suite
whose data source the model trained on (which items overlap cannot be told) and warns for the others.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import formats
from . import manifest as mf
from .errors import JudgeFactoryError

if TYPE_CHECKING:
    from .bench.suites import Item, SuiteData
    from .recipes import AdapterRecipe

log = logging.getLogger(__name__)

TRAINED_ON = "trained_on.json"
KINDS = ("instructions", "prompts", "templates")
_RELATIVE_INSTRUCTION = re.compile(r"###Instruction:\n(.*?)\n\n###Response A:", re.S)
_BIAS_PARTS = re.compile(r"(?:###Context:\n(.*?)\n\n)?###Question:\n(.*?)\n\n###(?:Answer choices|Response A):", re.S)


class LeakageError(JudgeFactoryError):
    """Every item of a suite is one the model trained on: the suite is refused (one line naming suite and model)."""


# --------------------------------------------------------------------------- fingerprints
def normalise(text: str) -> str:
    """Text as compared: NFKC, case-folded, whitespace runs as one space, ends stripped (and a stray trailing ``",``
    that prometheus-eval's eval files carry)."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return re.sub(r"\s+", " ", text).strip().rstrip('",').strip()


def digest(text: str) -> str:
    return hashlib.sha256(normalise(text).encode()).hexdigest()


def template_digest(template_id: str) -> str:
    return digest(f"bbq-template:{template_id}")


def bbq_digest(context: str, question: str) -> str:
    return digest(f"{context}\n{question}")


def instruction_of(prompt: str) -> str | None:
    """The instruction section of a Prometheus absolute or relative prompt, else None."""
    found = formats.sections(prompt).get("instruction")
    if found:
        return found
    m = _RELATIVE_INSTRUCTION.search(prompt)
    return m.group(1).strip() if m else None


def _empty() -> dict[str, set[str]]:
    return {k: set() for k in KINDS}


def prompt_fingerprints(prompt: str, into: dict[str, set[str]] | None = None) -> dict[str, set[str]]:
    """The fingerprints one user message carries: itself, its Prometheus instruction, its BBQ context + question."""
    out = into if into is not None else _empty()
    out["prompts"].add(digest(prompt))
    instruction = instruction_of(prompt)
    if instruction:
        out["instructions"].add(digest(instruction))
    m = _BIAS_PARTS.search(prompt)
    if m:
        out["instructions"].add(bbq_digest(m.group(1) or "", m.group(2)))
    return out


def _user_texts(messages: Sequence[Mapping[str, Any]]) -> list[str]:
    return [str(m["content"]) for m in messages if m.get("role") == "user"]


def item_fingerprints(item: Item, raw: Item | None = None) -> dict[str, set[str]]:
    """A bench item's fingerprints: those of each request as judged, of the same item unclipped (``raw``), and its
    BBQ item's context + question and template."""
    out = _empty()
    for it in (item, raw) if raw is not None else (item,):
        for msgs in it.requests.values():
            for text in _user_texts(msgs):
                prompt_fingerprints(text, out)
    bbq = item.meta.get("bbq") or getattr(item.meta.get("pair"), "item", None)
    if bbq is not None:
        out["instructions"].add(bbq_digest(bbq.context, bbq.question))
        out["templates"].add(template_digest(bbq.template_id))
    return out


@dataclass(frozen=True)
class TrainedOn:
    """What a model trained on: fingerprints by kind (``known``), or, where none were recorded, only the data sources
    its manifests name (``known`` False)."""

    what: str
    fingerprints: Mapping[str, frozenset[str]] = field(default_factory=dict)
    known: bool = True
    sources: frozenset[str] = frozenset()

    @property
    def empty(self) -> bool:
        return self.known and not any(self.fingerprints.values())

    @property
    def sha256(self) -> str | None:
        """The digest of the fingerprint set (what a screened result records; None when unknown)."""
        if not self.known:
            return None
        return mf.sha256_json({k: sorted(self.fingerprints.get(k, ())) for k in KINDS})

    def overlaps(self, fps: Mapping[str, set[str]]) -> bool:
        return any(fps.get(k, set()) & self.fingerprints.get(k, frozenset()) for k in KINDS)


NONE = TrainedOn("a model with no recorded training")


def union(parts: Iterable[TrainedOn], what: str) -> TrainedOn:
    parts = list(parts)
    fps = {k: frozenset().union(*(p.fingerprints.get(k, frozenset()) for p in parts)) for k in KINDS}
    return TrainedOn(
        what, fps, known=all(p.known for p in parts), sources=frozenset().union(*(p.sources for p in parts))
    )


# --------------------------------------------------------------------------- recording (train, merge)
def _infos(info: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    """A data provenance entry and the entries of its parts (a joint recipe)."""
    yield info
    for part in info.get("parts") or []:
        yield from _infos(part)


def _part_recipes(recipe: AdapterRecipe, info: Mapping[str, Any]) -> Iterable[tuple[AdapterRecipe, Mapping[str, Any]]]:
    if not info.get("parts"):
        yield recipe, info
        return
    from . import recipes

    for part in info["parts"]:
        got = recipes.load(recipes.find("adapters", part["recipe"]))
        if isinstance(got, recipes.AdapterRecipe):
            yield from _part_recipes(got, part)


def record(recipe: AdapterRecipe, rows: Sequence[Mapping[str, Any]], info: Mapping[str, Any], mirror: Any) -> dict:
    """The fingerprints of the rows an adapter trains on (``trained_on.json``'s content). Rows of a Prometheus source
    also record their raw (unclipped) instruction and prompt; rows of a pair set their BBQ template."""
    from .data.prometheus import load_absolute, shorten

    out = _empty()
    trained: set[str] = set()
    for r in rows:
        for text in _user_texts(r["prompt"]):
            prompt_fingerprints(text, out)
            trained.add(digest(text))
    clipped_instructions = set(out["instructions"])
    for part, part_info in _part_recipes(recipe, info):
        source = str(part_info.get("source", ""))
        if source.startswith("pairs:") and part_info.get("file") and Path(part_info["file"]).is_file():
            every = part.preference is not None  # the preference stage trains on every row of the pair set
            for line in Path(part_info["file"]).read_text().splitlines():
                p = json.loads(line)
                if every:
                    prompt_fingerprints(formats.pair_prompt(p, part.data.max_response_chars), out)
                seen = bbq_digest(p.get("context") or "", p["question"]) in clipped_instructions
                if p.get("template_id") and (every or seen):
                    out["templates"].add(template_digest(str(p["template_id"])))
        elif part.task == "absolute" and source.startswith(("file:", "hub:")):  # a user's rows, unclipped
            from .data import user

            got = user.recipe_splits(part)
            items = user.absolute_items(got.rows, got.index["train"], source)
        elif part.task == "absolute":
            try:
                items, _ = load_absolute(source, part_info.get("file"), mirror=mirror)
            except JudgeFactoryError:  # a source only its own loader reads: its rendered prompts are recorded above
                items = []
            chars = part.data.max_response_chars
            for it in items:
                rendered = shorten(it.prompt, chars) if chars else it.prompt
                instruction = instruction_of(rendered)
                if digest(rendered) in trained or (instruction and digest(instruction) in clipped_instructions):
                    prompt_fingerprints(it.prompt, out)
    return {
        "what": f"adapter {recipe.name}",
        "sources": sorted({str(i["source"]) for i in _infos(info) if i.get("source") and not i.get("parts")}),
        "rows": len(rows),
        **{k: sorted(v) for k, v in out.items()},
    }


def write(folder: Path, doc: Mapping[str, Any]) -> None:
    """``trained_on.json`` into an artifact folder (before its manifest is finalised, so the file is hashed)."""
    mf.write_json(Path(folder) / TRAINED_ON, dict(doc))


def merged(parent_folders: Sequence[Path], what: str) -> dict:
    """The union of the parents' fingerprints (a merge's ``trained_on.json``), with ``known`` False when a parent has
    none recorded."""
    got = union((for_folder(Path(p)) for p in parent_folders), what)
    return {
        "what": what,
        "known": got.known,
        "sources": sorted(got.sources),
        **{k: sorted(got.fingerprints.get(k, ())) for k in KINDS},
    }


# --------------------------------------------------------------------------- reading (the model's side)
def _read(folder: Path) -> TrainedOn | None:
    try:
        doc = json.loads((folder / TRAINED_ON).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return TrainedOn(
        str(doc.get("what") or folder.name),
        {k: frozenset(doc.get(k) or ()) for k in KINDS},
        known=bool(doc.get("known", True)),
        sources=frozenset(doc.get("sources") or ()),
    )


def _manifest_sources(m: Mapping[str, Any]) -> frozenset[str]:
    out = set()
    for d in m.get("data") or []:
        for i in _infos(d):
            if i.get("source") and not i.get("parts"):
                out.add(str(i["source"]))
    return frozenset(out)


def for_folder(folder: Path) -> TrainedOn:
    """An artifact folder's training fingerprints: its ``trained_on.json``; for a merge built before it had one, its
    parents' (read through their folders); for an adapter without one, unknown (its manifest's data sources)."""
    folder = Path(folder)
    own = _read(folder)
    if own is not None:
        return own
    m = mf.read(folder) or {}
    if m.get("kind") == "adapter" or (folder / "adapter_config.json").is_file():
        return TrainedOn(f"adapter {folder.name}", known=False, sources=_manifest_sources(m))
    if m.get("kind") == "merge":
        parts = []
        for p in m.get("parents") or []:
            loc = Path(str(p.get("location") or ""))
            if p.get("location") and loc.is_dir():
                parts.append(for_folder(loc))
            elif p.get("kind", "adapter") == "adapter":
                sources = _manifest_sources(p.get("manifest") or {})
                parts.append(TrainedOn(str(p.get("name")), known=False, sources=sources))
        return union(parts, f"merge {folder.name}")
    return TrainedOn(f"checkpoint {folder.name}")


def for_model(ref: str) -> TrainedOn:
    """A model reference's training fingerprints (``models.resolve``); a base model, a hub id or anything that is not
    a judgefactory artifact has none."""
    from . import models

    if models.is_route(ref):  # the routed judge trained on what either part trained on
        return union((for_model(p) for p in models.parts(ref)), f"route {ref}")
    try:
        kind, loc = models.resolve(ref)
    except models.ModelRefError:
        return NONE
    return NONE if kind == "base" else for_folder(Path(loc))


# --------------------------------------------------------------------------- screening (every scoring station)
def screen(
    trained: TrainedOn,
    suite: str,
    model: str,
    items: Sequence[Item],
    *,
    source: str = "",
    raw: Sequence[Item] | None = None,
) -> tuple[list[Item], dict[str, Any]]:
    """(the items the model did not train on, ``excluded_trained_on``). ``raw``: the same items loaded unclipped (in
    the same order), so a clipped instruction still matches the one trained on. Warns when items are left out; raises
    ``LeakageError`` when none is left."""
    items = list(items)
    doc: dict[str, Any] = {"n": 0, "reason": None, "fingerprints_sha256": trained.sha256}
    if not trained.known:
        trained_sources = {s.split(":", 1)[0] for s in trained.sources}
        if source and source.split(":", 1)[0] in trained_sources:
            raise LeakageError(
                f"suite {suite} refused for {model}: it trained on {source.split(':', 1)[0]} and records no training "
                f"fingerprints to tell which items (retrain it)"
            )
        doc["reason"] = f"{trained.what} records no training fingerprints; it did not train on {source or suite}"
        log.warning("%s: %s", suite, doc["reason"])
        return items, doc
    if trained.empty:
        doc["reason"] = f"{model} trained on none of these items"
        return items, doc
    pairs = list(zip(items, raw, strict=True)) if raw is not None and len(raw) == len(items) else None
    kept = [
        it
        for i, it in enumerate(items)
        if not trained.overlaps(item_fingerprints(it, pairs[i][1] if pairs and pairs[i][1].id == it.id else None))
    ]
    n = len(items) - len(kept)
    doc["n"] = n
    doc["reason"] = (
        f"{n} of {len(items)} items share an instruction or prompt with {trained.what}'s training data"
        if n
        else f"none of the {len(items)} items shares an instruction or prompt with {trained.what}'s training data"
    )
    if items and not kept:
        raise LeakageError(
            f"suite {suite} refused for {model}: all {len(items)} items were trained on by {trained.what}"
        )
    if n:
        log.warning("%s: %s excluded: %s", suite, n, doc["reason"])
    return kept, doc


def screen_suite(
    trained: TrainedOn,
    data: SuiteData,
    model: str,
    *,
    mirror: Any,
    limit: int | None,
    seed: int,
    max_response_chars: int | None,
) -> dict[str, Any]:
    """``screen`` a loaded suite in place (``data.items`` keeps the rest); returns ``excluded_trained_on``. A suite
    loaded with clipped responses is loaded once more unclipped (same limit and seed: the same items, in order) for
    the fingerprints."""
    raw = None
    if max_response_chars and trained.known and not trained.empty:
        from .bench import suites

        raw = suites.load(data.name, mirror=mirror, limit=limit, seed=seed).items
    data.items, doc = screen(trained, data.name, model, data.items, source=data.source, raw=raw)
    return doc


def card_check(trained: TrainedOn, result: Mapping[str, Any]) -> str | None:
    """Why a bench result (its ``metrics.json``) must stay off an artifact's card, or None when it may show: screened
    with the artifact's current fingerprints, or (fingerprints unknown) of a source the artifact did not train on."""
    if not trained.known:
        source = str(result.get("source") or "").split(":", 1)[0]
        if source and source in {s.split(":", 1)[0] for s in trained.sources}:
            return f"trained on {source}; no training fingerprints recorded to exclude its items"
        return None
    if trained.empty:
        return None
    screened = result.get("excluded_trained_on") or {}
    if screened.get("fingerprints_sha256") != trained.sha256:
        return "not screened against this model's training fingerprints (rerun the bench)"
    return None


__all__ = [
    "TRAINED_ON",
    "LeakageError",
    "TrainedOn",
    "normalise",
    "digest",
    "instruction_of",
    "item_fingerprints",
    "record",
    "write",
    "merged",
    "for_folder",
    "for_model",
    "screen",
    "screen_suite",
    "card_check",
]
