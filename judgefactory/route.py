"""The routed judge: each specialist answers the requests of its own format, on one engine.

``route:<absolute>,<pairwise>`` (``route:absolute,pairwise``) names two models, usually the two specialist adapters
(a bare name is ``adapter:<name>``; any other model reference works as a part). It is not a merge: it is the figure
a merge aims at (both skills at their specialists' level, the "routed ceiling"), and a serving option for users who
can hold two models. Each part is loaded as its own reference would be (an adapter folded into its own copy of the
base), so the routed judge's replies are each specialist's replies, byte for byte.

Requests go by their system prompt: the Prometheus absolute and relative prompts (``formats.ABS_SYSTEM_PROMPT``,
``formats.REL_SYSTEM_PROMPT``) to the absolute part, the bias verdict prompt (``formats.BIAS_SYSTEM_PROMPT``) to the
pairwise part; any other request is refused (one line), never answered by a guess.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .errors import JudgeFactoryError

PREFIX = "route:"
PARTS = ("absolute", "pairwise")
"""the parts of a route, in the order the reference names them."""


def routes() -> dict[str, str]:
    """system prompt -> the part that answers it (``formats`` imported here: it pulls in prometheus-eval)."""
    from . import formats

    return {
        formats.ABS_SYSTEM_PROMPT: "absolute",
        formats.REL_SYSTEM_PROMPT: "absolute",
        formats.BIAS_SYSTEM_PROMPT: "pairwise",
    }


class RouteError(JudgeFactoryError):
    """A route reference or a request the routed judge cannot serve; one line."""


def is_route(ref: str) -> bool:
    return str(ref).startswith(PREFIX)


def parts(ref: str) -> tuple[str, str]:
    """``route:absolute,pairwise`` -> (``adapter:absolute``, ``adapter:pairwise``): the model references of the
    absolute and the pairwise part (a bare name is an adapter; a reference with ``:`` or ``/`` is kept as it is)."""
    names = [p.strip() for p in ref[len(PREFIX) :].split(",")]
    if len(names) != 2 or not all(names):
        raise RouteError(f"{ref!r}: a route names two models, route:<absolute adapter>,<pairwise adapter>")
    refs = [n if (":" in n or "/" in n) else f"adapter:{n}" for n in names]
    if any(is_route(r) for r in refs):
        raise RouteError(f"{ref!r}: a route's parts are models, not routes")
    return refs[0], refs[1]


def part_of(messages: Sequence[dict[str, str]]) -> str | None:
    """The part that answers a conversation (by its system prompt), or None."""
    system = next((m.get("content") for m in messages if m.get("role") == "system"), None)
    return routes().get(system) if system is not None else None


class RoutingBackend:
    """An engine backend over one backend per part: each request sent to its part, the replies put back in input
    order. ``backends``: part name -> a backend with the engine's ``run`` interface."""

    name = "route"

    def __init__(self, backends: dict[str, Any]):
        missing = [p for p in PARTS if p not in backends]
        if missing:
            raise RouteError(f"routing backend without a {missing[0]} part")
        self.backends = backends

    def run(
        self,
        messages_list: Sequence[Any],
        *,
        spec: Any,
        sampling: Any,
        batch_size: int,
        progress: str | None,
    ) -> list[Any]:
        groups: dict[str, list[int]] = {p: [] for p in PARTS}
        for i, messages in enumerate(messages_list):
            part = part_of(messages)
            if part is None:
                raise RouteError(
                    f"request {i}: the routed judge answers the Prometheus absolute / relative prompts and the bias "
                    "verdict prompt (by their system prompt); this one has none of them"
                )
            groups[part].append(i)
        out: list[Any] = [None] * len(messages_list)
        for part, idx in groups.items():
            if not idx:
                continue
            raws = self.backends[part].run(
                [messages_list[i] for i in idx],
                spec=spec,
                sampling=sampling,
                batch_size=batch_size,
                progress=progress,
            )
            for i, raw in zip(idx, raws, strict=True):
                out[i] = raw
        return out


__all__ = ["PREFIX", "PARTS", "routes", "RouteError", "RoutingBackend", "is_route", "parts", "part_of"]
