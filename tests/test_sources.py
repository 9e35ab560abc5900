"""Data sources: the mirror layout, the row reader, and the upstream path (pinned Hub and GitHub files) against a
loopback stand-in for the Hub's ``/datasets/{repo}/resolve/{revision}/{file}`` route and raw GitHub URLs."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import PKG_MIRROR

from judgefactory.bench import suites
from judgefactory.data import pairs, sources
from judgefactory.recipes import PairsRecipe

PAIRS = "judge-from-scratch/bbq-pairs"


def test_mirror_resolves_catalogue_ids(mirror):
    bbq = sources.load_rows("heegyu/bbq", "Age", mirror=mirror)
    assert len(bbq.rows) == 3680 and not bbq.errors and bbq.rows[0]["category"] == "Age"
    allbbq = sources.load_rows("heegyu/bbq", mirror=mirror)
    assert len(allbbq.rows) == 11956  # the six mirrored categories (README)
    vic = sources.load_rows("prometheus-eval/vicuna", mirror=mirror)
    assert len(vic.rows) == 320 and "gpt4_score" in vic.rows[0]
    ev = sources.load_rows("judge-from-scratch/bbq-pairs", "eval_in_dist", mirror=mirror)
    assert len(ev.rows) == 240 and {r["human_verdict"] for r in ev.rows} <= {"A", "B", "TIE"}


def test_generic_hub_layout_and_missing_file_error(tmp_path):
    folder = tmp_path / "prometheus-eval" / "Feedback-Bench"
    folder.mkdir(parents=True)
    (folder / "test.jsonl").write_text(json.dumps({"a": 1}) + "\n" + json.dumps({"a": 2}) + "\n")
    assert [r["a"] for r in sources.load_rows("prometheus-eval/Feedback-Bench", mirror=tmp_path).rows] == [1, 2]
    with pytest.raises(
        sources.DataError,
        match=r"prometheus-eval/Preference-Bench: not in the data mirror \(looked for .*Preference-Bench\)",
    ):
        sources.load_rows("prometheus-eval/Preference-Bench", mirror=tmp_path)
    with pytest.raises(
        sources.DataError,
        match=r"heegyu/bbq:Gender_identity: not in the data mirror \(looked for .*bbq/Gender_identity.jsonl\)",
    ):
        sources.load_rows("heegyu/bbq", "Gender_identity", mirror=tmp_path)


def test_malformed_rows_are_counted_with_file_and_row(tmp_path):
    folder = tmp_path / "org" / "ds"
    folder.mkdir(parents=True)
    (folder / "train.jsonl").write_text('{"a": 1}\n{"a": \n[1, 2]\n{"a": 4}\n')
    loaded = sources.load_rows("org/ds", mirror=tmp_path)
    assert [r["a"] for r in loaded.rows] == [1, 4]
    assert len(loaded.errors) == 2
    assert "train.jsonl row 1: invalid JSON" in loaded.errors[0] and "row 2: expected an object" in loaded.errors[1]


def test_missing_mirror_root(tmp_path):
    with pytest.raises(sources.DataError, match="does not exist"):
        sources.mirror_root(tmp_path / "nope")


# --------------------------------------------------------------------------- upstream files, through a stand-in
HUB_COMMIT = "0123456789abcdef0123456789abcdef01234567"
"""the commit the stand-in Hub reports for every revision it serves."""
HUB = "krishnakartik/gemma4-social-bias-judge-pairs"
JFS, JFS_COMMIT = "krishnakartik1/judge-from-scratch", "da2337eb37b288476a4fc851d85accb87b821de9"
BBQ, BBQ_COMMIT = "nyu-mll/BBQ", "bea11bd97d79217245b5871acd247b9d6eb24598"
REVISIONS_ENV, RAW_BASE_ENV, CACHE_ENV = "JUDGEFACTORY_DATA_REVISIONS", "JUDGEFACTORY_RAW_BASE", "JUDGEFACTORY_CACHE"


@dataclass
class StandIn:
    """Files served by the loopback stand-in: {(repo, file): bytes} on the Hub route, {url path: bytes} raw."""

    hub: dict[tuple[str, str], bytes] = field(default_factory=dict)
    raw: dict[str, bytes] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    url: str = ""


class _Handler(BaseHTTPRequestHandler):
    state: StandIn

    def log_message(self, *args: Any) -> None:
        pass

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        path = self.path.split("?", 1)[0]
        self.state.requests.append((self.command, path))
        m = re.fullmatch(r"/datasets/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        data, headers = None, {}
        if m:
            data = self.state.hub.get((m.group(1), m.group(3)))
            headers = {"X-Repo-Commit": HUB_COMMIT}
            if data is None:
                headers.update({"X-Error-Code": "EntryNotFound", "X-Error-Message": "Entry not found"})
            else:
                headers["ETag"] = '"' + hashlib.sha1(data).hexdigest() + '"'
        elif path.startswith("/raw/"):
            data = self.state.raw.get(path[len("/raw/") :])
        if data is None:
            data, status = b"404: Not Found", 404
        else:
            status = 200
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)


def _online(monkeypatch: pytest.MonkeyPatch, base: str, tmp_path: Path) -> None:
    """Point the Hub client and the raw-file base at ``base``, with a fresh cache and no mirror."""
    from huggingface_hub import constants

    monkeypatch.delenv(sources.MIRROR_ENV, raising=False)
    monkeypatch.delenv(REVISIONS_ENV, raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_ENDPOINT", base)
    monkeypatch.setenv(RAW_BASE_ENV, base + "/raw")
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    real_connect = socket.create_connection

    def loopback_only(address, *args, **kwargs):
        assert address[0] in ("127.0.0.1", "localhost"), f"test tried to reach {address}"
        return real_connect(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", loopback_only)


def _lines(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _ood_rows() -> list[dict]:
    """Two human-labelled out-of-distribution eval pairs on the fixture's religion question."""
    base = next(r for r in _read(PKG_MIRROR / "bbq-pairs" / "pairs.jsonl") if r["bias_category"] == "religion")
    extra = {"confidence": 4, "notes": None, "eval_slice": "ood_religion"}
    return [
        {**base, "pair_id": "ood0000000000001", "human_verdict": "A", **extra},
        {**base, "pair_id": "ood0000000000002", "human_verdict": "TIE", "response_a": base["response_b"], **extra},
    ]


def _upstream(state: StandIn) -> None:
    """The fixture mirror (judgefactory/fixtures/mirror) laid out as upstream holds it: the Hub's pool and 300-row
    eval file carry the out-of-distribution pairs the mirror's pairs.jsonl and eval_in_dist.jsonl leave out."""
    fx = PKG_MIRROR / "bbq-pairs"
    ood = _ood_rows()
    state.hub[(HUB, "pairs.jsonl")] = _lines(_read(fx / "pairs.jsonl")[:5] + ood + _read(fx / "pairs.jsonl")[5:])
    state.hub[(HUB, "eval_set_unlabeled.jsonl")] = _lines(ood[:1] + _read(fx / "eval_in_dist.jsonl") + ood[1:])
    jfs = f"{JFS}/{JFS_COMMIT}/data/raw/bbq_sample.jsonl"
    state.raw[jfs] = (fx / "bbq_sample.jsonl").read_bytes()
    for cat in sources.BBQ_CATEGORIES:  # upstream holds every category; the fixture has rows for three of them
        f = PKG_MIRROR / "bbq" / f"{cat}.jsonl"
        state.raw[f"{BBQ}/{BBQ_COMMIT}/data/{cat}.jsonl"] = f.read_bytes() if f.is_file() else b""


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[StandIn]:
    state = StandIn()
    _upstream(state)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), type("H", (_Handler,), {"state": state}))
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    _online(monkeypatch, state.url, tmp_path)
    yield state
    httpd.shutdown()
    httpd.server_close()


def _strip_dirs(errors: list[str]) -> list[str]:
    return [re.sub(r"\S*/", "", e) for e in errors]


def test_pair_set_inputs_from_upstream_equal_the_mirror(stand_in: StandIn) -> None:
    """Without a mirror, the pair-set inputs (BBQ items, bbq_sample, pairs, eval_in_dist) come from the pinned Hub and
    GitHub files and equal those read from a mirror of the same data: rows, row errors and file fingerprints."""
    recipe = PairsRecipe(kind="pairs", name="fx", test_fraction=0.3)
    remote = pairs.load_inputs(recipe)
    local = pairs.load_inputs(recipe, mirror=PKG_MIRROR)
    assert remote.items == local.items and len(remote.items) > 20
    assert remote.pair_rows == local.pair_rows and len(remote.pair_rows) == 10  # the OOD eval pairs left out
    assert remote.eval_rows == local.eval_rows and len(remote.eval_rows) == 2
    assert _strip_dirs(remote.errors) == _strip_dirs(local.errors) and remote.errors  # Age's bad rows, both ways
    for key in (f"{PAIRS}:bbq_sample", f"{PAIRS}:pairs", f"{PAIRS}:eval_in_dist"):
        assert remote.fingerprints[key] == local.fingerprints[key], key
    paths = [p for _, p in stand_in.requests]
    assert f"/datasets/{HUB}/resolve/main/pairs.jsonl" in paths
    assert f"/raw/{JFS}/{JFS_COMMIT}/data/raw/bbq_sample.jsonl" in paths
    assert f"/raw/{BBQ}/{BBQ_COMMIT}/data/Age.jsonl" in paths
    ev = sources.load_rows(PAIRS, "eval_in_dist")
    assert ev.origin.startswith(f"hub:{HUB}/eval_set_unlabeled.jsonl@{HUB_COMMIT}")
    # a second load reads the cache: pinned GitHub files are not fetched again
    before = len(stand_in.requests)
    assert sources.load_rows(PAIRS, "bbq_sample").rows == sources.load_rows(PAIRS, "bbq_sample", mirror=PKG_MIRROR).rows
    assert not any("/raw/" in p for _, p in stand_in.requests[before:])


def test_revision_override_is_in_the_request_path(stand_in: StandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    pin = "fedcba9876543210fedcba9876543210fedcba98"
    monkeypatch.setenv(REVISIONS_ENV, f"{HUB}={pin}, {JFS}={pin}")
    assert len(sources.load_rows(PAIRS, "eval_ood").rows) == 2
    assert ("GET", f"/datasets/{HUB}/resolve/{pin}/eval_set_unlabeled.jsonl") in stand_in.requests
    with pytest.raises(sources.DataError, match=rf"bbq_sample: could not download .*@{pin}: HTTP 404"):
        sources.load_rows(PAIRS, "bbq_sample")  # nothing is served at that commit
    assert ("GET", f"/raw/{JFS}/{pin}/data/raw/bbq_sample.jsonl") in stand_in.requests
    monkeypatch.setenv(REVISIONS_ENV, "no-equals-sign")
    with pytest.raises(sources.DataError, match="is not repo=revision"):
        sources.load_rows(PAIRS, "eval_ood")


def test_a_bbq_category_that_cannot_be_loaded_is_an_error_unless_excluded(stand_in: StandIn) -> None:
    """Every BBQ category is asked for: one upstream cannot serve stops the pair set in one line naming it; one the
    recipe excludes (its templates make no row) is left out."""
    del stand_in.raw[f"{BBQ}/{BBQ_COMMIT}/data/Nationality.jsonl"]
    del stand_in.raw[f"{BBQ}/{BBQ_COMMIT}/data/Religion.jsonl"]
    with pytest.raises(sources.DataError, match=r"fx: BBQ category Nationality of heegyu/bbq could not be loaded") as e:
        pairs.load_inputs(PairsRecipe(kind="pairs", name="fx", test_fraction=0.3))
    assert "\n" not in str(e.value) and "HTTP 404" in str(e.value) and "Religion" not in str(e.value)
    recipe = PairsRecipe(kind="pairs", name="fx", test_fraction=0.3, exclude_categories=["religion", "nationality"])
    assert {it.template_id.split("::")[0] for it in pairs.load_inputs(recipe).items.values()} >= {"age"}


def test_missing_upstream_file_gives_its_real_message_in_one_line(stand_in: StandIn) -> None:
    with pytest.raises(sources.DataError) as hub:
        sources.load_rows(PAIRS, "pairs_to_label")  # not served by the stand-in Hub
    msg = str(hub.value)
    assert "\n" not in msg and "offline" not in msg
    assert msg.startswith(f"{PAIRS}:pairs_to_label: could not download hub:{HUB}/pairs_to_label.jsonl@main")
    assert "404" in msg
    with pytest.raises(sources.DataError) as raw:
        sources.load_rows(PAIRS, "synthesis_results")
    msg = str(raw.value)
    assert "\n" not in msg and "offline" not in msg
    assert f"@{JFS_COMMIT}: HTTP 404 Not Found for {stand_in.url}/raw/" in msg


def test_refused_connection_and_offline_mode_say_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on: connections are refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _online(monkeypatch, f"http://127.0.0.1:{port}", tmp_path)
    monkeypatch.setattr("huggingface_hub.utils._http.time.sleep", lambda s: None)  # the Hub client's retry backoff
    for config in ("eval_in_dist", "bbq_sample"):  # a Hub file, a GitHub file
        with pytest.raises(sources.DataError, match=rf"{config}: offline, cannot download .*{sources.MIRROR_ENV}") as e:
            sources.load_rows(PAIRS, config)
        assert "\n" not in str(e.value)
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    for config in ("pairs", "bbq_sample"):
        with pytest.raises(sources.DataError, match=rf"{config}: offline"):
            sources.load_rows(PAIRS, config)


def test_a_bug_keeps_its_traceback(stand_in: StandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(remote):
        raise KeyError("bug")

    monkeypatch.setattr(sources, "_hub_file", broken)
    with pytest.raises(KeyError):
        sources.load_rows(PAIRS, "eval_in_dist")


def test_ood_suite_scores_human_verdicts_where_the_300_row_file_is(stand_in: StandIn, tmp_path: Path) -> None:
    """The OOD suite uses the 60 human-labelled religion pairs from the Hub copy, or from a mirror that holds the
    300-row file; a mirror without it keeps the rule labels of pairs_unused_religion."""
    hub = suites.load("bbq_pairs_ood")
    assert hub.labels == "human_verdict" and [it.gold for it in hub.items] == ["A", "TIE"]
    assert hub.source == f"{PAIRS}:eval_ood"
    mirror = tmp_path / "mirror" / "bbq-pairs"
    mirror.mkdir(parents=True)
    shutil.copy(PKG_MIRROR / "bbq-pairs" / "bbq_sample.jsonl", mirror)
    (mirror / "eval_set_unlabeled.jsonl").write_bytes(stand_in.hub[(HUB, "eval_set_unlabeled.jsonl")])
    local = suites.load("bbq_pairs_ood", mirror=mirror.parent)
    assert [it.id for it in local.items] == [it.id for it in hub.items] and local.labels == "human_verdict"
    assert (
        sources.load_rows(PAIRS, "eval_in_dist", mirror=mirror.parent).rows
        == sources.load_rows(PAIRS, "eval_in_dist", mirror=PKG_MIRROR).rows
    )
    (mirror / "eval_set_unlabeled.jsonl").unlink()
    rel = _ood_rows()[:1]
    for r in rel:
        r.pop("human_verdict")
        r["response_a"] = {**r["response_a"], "suspected_bias_level": "biased"}
    (mirror / "pairs_unused_religion.jsonl").write_bytes(_lines(rel))
    assert not sources.has_config(PAIRS, "eval_ood", mirror=mirror.parent)
    assert suites.load("bbq_pairs_ood", mirror=mirror.parent).labels.startswith("rule")
