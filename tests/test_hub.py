"""Model cards and pushes, end to end against a loopback stand-in Hub (no network).

The stand-in implements just the routes ``HfApi.create_repo`` + ``HfApi.create_commit`` use
(repo creation, README validation, preupload, LFS batch/upload/verify, NDJSON commit), records every
request, and commits atomically: a commit is stored only when the whole NDJSON payload is valid.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from judgefactory import card, hub
from judgefactory import manifest as mf

TOKEN = "hf_" + "Zq7" * 11 + "x"  # hub-token shaped, 37 chars
REPO = "judge-org/tiny-judge"
MODEL = "tiny-judge"
LFS_SUFFIXES = (".safetensors",)
# huggingface_hub's LFS PUT passes a file object as `data=`, which httpx flags as deprecated
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


# --------------------------------------------------------------------------- the stand-in Hub


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class StandInHub:
    """State of the loopback Hub: recorded requests, repos, LFS objects and committed commits."""

    requests: list[Recorded] = field(default_factory=list)
    repos: dict[str, dict[str, Any]] = field(default_factory=dict)
    lfs: dict[str, bytes] = field(default_factory=dict)
    commits: list[dict[str, Any]] = field(default_factory=list)
    fail_commit: bool = False
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def api_requests(self, fragment: str) -> list[Recorded]:
        return [r for r in self.requests if fragment in r.path]


class _Handler(BaseHTTPRequestHandler):
    hub: StandInHub  # set on a subclass per server

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    # -- plumbing
    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while (size := int(self.rfile.readline().strip() or b"0", 16)) > 0:
                out += self.rfile.read(size)
                self.rfile.readline()
            self.rfile.readline()
            return out
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _handle(self) -> None:
        body = self._body()
        path = self.path.split("?", 1)[0]
        with self.hub.lock:
            self.hub.requests.append(Recorded(self.command, self.path, dict(self.headers.items()), body))
        for method, pattern, handler in ROUTES:
            m = re.fullmatch(pattern, path)
            if m and method == self.command:
                return handler(self, body, *m.groups())
        self._json(404, {"error": f"stand-in hub: no route for {self.command} {path}"})

    # -- routes
    def create_repo(self, body: bytes) -> None:
        payload = json.loads(body)
        repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
        if repo_id in self.hub.repos:
            return self._json(409, {"error": "You already created this model repo", "url": f"{self.hub.url}/{repo_id}"})
        self.hub.repos[repo_id] = {"private": payload.get("visibility") == "private", "files": {}}
        self._json(200, {"url": f"{self.hub.url}/{repo_id}", "name": repo_id, "id": "0" * 24})

    def validate_yaml(self, body: bytes) -> None:
        content = json.loads(body)["content"]
        m = re.match(r"^---\n(.*?)\n---\n", content, flags=re.S)
        try:
            meta = yaml.safe_load(m.group(1)) if m else None
            assert isinstance(meta, dict), "README.md has no YAML metadata block"
        except (yaml.YAMLError, AssertionError) as exc:
            return self._json(400, {"errors": [{"message": str(exc)}]})
        self._json(200, {"errors": [], "warnings": []})

    def _repo_or_404(self, repo_id: str) -> bool:
        if repo_id in self.hub.repos:
            return True
        self._json(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
        return False

    def repo_info(self, body: bytes, repo_id: str) -> None:
        if not self._repo_or_404(repo_id):
            return
        repo = self.hub.repos[repo_id]
        self._json(
            200, {"id": repo_id, "modelId": repo_id, "private": repo["private"], "sha": "0" * 40, "siblings": []}
        )

    def preupload(self, body: bytes, repo_id: str, revision: str) -> None:
        if not self._repo_or_404(repo_id):
            return
        files = json.loads(body)["files"]
        modes = [
            {
                "path": f["path"],
                "uploadMode": "lfs" if f["path"].endswith(LFS_SUFFIXES) else "regular",
                "shouldIgnore": False,
                "oid": None,
            }
            for f in files
        ]
        self._json(200, {"files": modes, "commitOid": "0" * 40})

    def lfs_batch(self, body: bytes, repo_id: str) -> None:
        if not self._repo_or_404(repo_id):
            return
        objects = []
        for obj in json.loads(body)["objects"]:
            entry = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in self.hub.lfs:
                entry["actions"] = {
                    "upload": {"href": f"{self.hub.url}/lfs-upload/{obj['oid']}"},
                    "verify": {"href": f"{self.hub.url}/lfs-verify"},
                }
            objects.append(entry)
        self._json(200, {"transfer": "basic", "objects": objects})

    def lfs_upload(self, body: bytes, oid: str) -> None:
        if hashlib.sha256(body).hexdigest() != oid:
            return self._json(400, {"error": "sha256 mismatch"})
        self.hub.lfs[oid] = body
        self._json(200, {})

    def lfs_verify(self, body: bytes) -> None:
        obj = json.loads(body)
        ok = obj["oid"] in self.hub.lfs and len(self.hub.lfs[obj["oid"]]) == obj["size"]
        self._json(200 if ok else 404, {} if ok else {"error": "object not found"})

    def commit(self, body: bytes, repo_id: str, revision: str) -> None:
        if not self._repo_or_404(repo_id):
            return
        if self.hub.fail_commit:  # echo the credentials like a careless server would
            return self._json(
                500, {"error": f"internal error while committing for {self.headers.get('authorization')}"}
            )
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        if not lines or lines[0]["key"] != "header":
            return self._json(400, {"error": "missing commit header"})
        files: dict[str, Any] = {}
        for item in lines[1:]:
            value = item["value"]
            if item["key"] == "file":
                files[value["path"]] = base64.b64decode(value["content"])
            elif item["key"] == "lfsFile":
                blob = self.hub.lfs.get(value["oid"])
                if blob is None or len(blob) != value["size"]:
                    return self._json(422, {"error": f"LFS object {value['oid']} was never uploaded"})
                files[value["path"]] = {"lfs": value["oid"], "size": value["size"]}
            else:
                return self._json(400, {"error": f"unsupported operation {item['key']}"})
        oid = hashlib.sha1(body).hexdigest()
        with self.hub.lock:  # all or nothing
            self.hub.commits.append(
                {"repo_id": repo_id, "revision": revision, "header": lines[0]["value"], "files": files, "oid": oid}
            )
            self.hub.repos[repo_id]["files"].update(files)
        self._json(
            200,
            {
                "commitUrl": f"{self.hub.url}/{repo_id}/commit/{oid}",
                "commitOid": oid,
                "success": True,
                "pullRequestUrl": None,
            },
        )


_REPO = r"([^/]+/[^/]+)"
ROUTES = [
    ("POST", r"/api/repos/create", _Handler.create_repo),
    ("POST", r"/api/validate-yaml", _Handler.validate_yaml),
    ("POST", rf"/api/models/{_REPO}/preupload/([^/]+)", _Handler.preupload),
    ("POST", rf"/{_REPO}\.git/info/lfs/objects/batch", _Handler.lfs_batch),
    ("PUT", r"/lfs-upload/([0-9a-f]{64})", _Handler.lfs_upload),
    ("POST", r"/lfs-verify", _Handler.lfs_verify),
    ("POST", rf"/api/models/{_REPO}/commit/([^/]+)", _Handler.commit),
    ("GET", rf"/api/models/{_REPO}", _Handler.repo_info),
]


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch):
    """A fresh stand-in Hub on 127.0.0.1 (port 0); outbound connections elsewhere are refused."""
    from huggingface_hub import constants

    state = StandInHub()
    handler = type("Handler", (_Handler,), {"hub": state})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)  # plain LFS so the stand-in sees the bytes

    real_connect = socket.create_connection

    def loopback_only(address, *args, **kwargs):
        assert address[0] in ("127.0.0.1", "localhost"), f"test tried to reach {address}"
        return real_connect(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", loopback_only)
    yield state
    httpd.shutdown()
    httpd.server_close()


# --------------------------------------------------------------------------- a tiny merged judge on disk


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _adapter_manifest(name: str, task: str, source: str, file: str, rows: int) -> dict[str, Any]:
    return {
        "kind": "adapter",
        "name": name,
        "created": "2025-01-01T00:00:00+00:00",
        "recipe": {
            "name": name,
            "task": task,
            "base": "embedded:smollm2-135m-instruct",
            "lora": {"r": 16, "alpha": 32, "target_modules": ["q_proj", "v_proj"]},
            "train": {"max_steps": 40, "batch_size": 8, "lr": 0.0002},
            "data": {"source": source, "holdout": "template-disjoint"},
        },
        "recipe_sha256": hashlib.sha256(name.encode()).hexdigest(),
        "base": {
            "name": "embedded:smollm2-135m-instruct",
            "hub_id": "HuggingFaceTB/SmolLM2-135M-Instruct",
            "license": "apache-2.0",
        },
        "data": [{"source": source, "file": file, "sha256": hashlib.sha256(file.encode()).hexdigest(), "rows": rows}],
        "parents": [],
        "files": {"adapter_model.safetensors": "ab" * 32},
        "versions": {"torch": "2.13.0", "peft": "0.21.2"},
    }


def _build_model(folder: Path) -> None:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = [
        "<unk>",
        "<pad>",
        "<|im_start|>",
        "<|im_end|>",
        "user",
        "assistant",
        "Feedback:",
        "[RESULT]",
        "1",
        "5",
        "A",
        "B",
        "TIE",
    ]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<|im_start|>", eos_token="<|im_end|>"
    )
    fast.chat_template = (
        "{% for m in messages %}<|im_start|> {{ m['role'] }} {{ m['content'] }} <|im_end|> {% endfor %}"
    )
    config = LlamaConfig(
        vocab_size=len(words),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        intermediate_size=32,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder, safe_serialization=True)
    fast.save_pretrained(folder)


@pytest.fixture(scope="module")
def factory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """root/ with merges/tiny-judge (model, tokenizer, yaml, manifest), bench/ and consistency/ results."""
    root = tmp_path_factory.mktemp("factory")
    art = root / "merges" / MODEL
    art.mkdir(parents=True)
    _build_model(art)
    merge_yaml = {
        "merge_method": "nuslerp",
        "dtype": "float32",
        "models": [
            {"model": "/base+/adapters/abs-smol", "parameters": {"weight": 0.5}},
            {"model": "/base+/adapters/pair-smol", "parameters": {"weight": 0.5}},
        ],
    }
    (art / card.MERGE_YAML).write_text(yaml.safe_dump(merge_yaml, sort_keys=False))
    parents = [
        _adapter_manifest("abs-smol", "absolute", "prometheus-eval/Feedback-Collection", "vicuna_eval.json", 320),
        _adapter_manifest("pair-smol", "pairwise", "judge-from-scratch/bbq-pairs", "pairs.jsonl", 535),
    ]
    manifest = {
        "kind": "merge",
        "name": MODEL,
        "created": "2025-01-02T00:00:00+00:00",
        "recipe": {
            "name": MODEL,
            "method": "nuslerp",
            "models": [{"adapter": "abs-smol", "weight": 0.5}, {"adapter": "pair-smol", "weight": 0.5}],
        },
        "recipe_sha256": "c0ffee" * 10 + "abcd",
        "base": {
            "name": "embedded:smollm2-135m-instruct",
            "hub_id": "HuggingFaceTB/SmolLM2-135M-Instruct",
            "license": "apache-2.0",
        },
        "data": [],
        "parents": [{"name": p["name"], "kind": "adapter", "manifest": p} for p in parents],
        "files": {p.name: _sha(p) for p in sorted(art.iterdir())},
        "versions": {
            "torch": "2.13.0",
            "transformers": "5.17.0",
            "peft": "0.21.2",
            "trl": "1.16.0",
            "mergekit": "0.1.5",
            "judgefactory": "0.1.0",
        },
    }
    (art / hub.MANIFEST).write_text(json.dumps(manifest, indent=2))

    bench = root / "bench" / MODEL
    metrics = {
        "vicuna": {
            "n": 320,
            "metrics": {
                "pearson": {"value": 0.4123, "ci": [0.31, 0.5]},
                "spearman": {"value": 0.398, "ci": [0.29, 0.49]},
                "parse_rate": {"value": 0.97, "ci": None},
                "exact_match": {"value": 0.3, "ci": None},
            },
        },
        "bbq_pairs": {
            "n": 12,
            "limit": 12,
            "metrics": {
                "kappa": {"value": 0.21, "ci": [0.1, 0.32]},
                "position_bias_rate": {"value": 0.18, "ci": [0.13, 0.23]},
                "kappa/clear_bias_vs_clean": {"value": 0.5, "ci": None},
                "rule_baseline_kappa": {"value": 0.696, "ci": [0.5, 0.8]},
                "rule_baseline_accuracy": {"value": 0.8, "ci": [0.7, 0.9]},
                "rule_baseline_kappa/clear_bias_vs_clean": {"value": 0.9, "ci": None},
                "rule_alt_baseline_kappa": {"value": 0.65, "ci": None},
            },
            "baselines": {
                "rule_baseline": "BBQ metadata rule, biased_vs_wrong=tie: the rule that labels the training pairs",
                "rule_alt_baseline": "BBQ metadata rule, biased_vs_wrong=biased",
            },
        },
    }
    for suite, body in metrics.items():
        (bench / suite).mkdir(parents=True)
        (bench / suite / "metrics.json").write_text(json.dumps({"model": MODEL, "suite": suite, **body}))
    (root / "consistency" / MODEL).mkdir(parents=True)
    (root / "consistency" / MODEL / "summary.json").write_text(
        json.dumps(
            {
                "model": MODEL,
                "checks": {
                    "conflict_ratio": {"value": 0.149, "n": 200},
                    "position_consistency": {"value": 0.8, "ci": [0.74, 0.85]},
                },
            }
        )
    )
    tie_results(root, MODEL, art)
    card.write_card(art, root / "bench", root / "consistency", MODEL, repo_id=REPO)
    return root


def tie_results(root: Path, label: str, art: Path) -> None:
    """Mark bench/<label>/* and consistency/<label> as measured on the artifact's current build (as the stations
    write them: the build in metrics.json and each folder's manifest, which names every file's sha256)."""
    build = _sha(art / hub.MANIFEST)
    for folder in sorted((root / "bench" / label).iterdir()):
        doc = json.loads((folder / "metrics.json").read_text())
        doc["model_manifest_sha256"] = build
        doc.setdefault("items_sha256", f"items-of-{folder.name}")
        mf.write_json(folder / "metrics.json", doc)
        mf.finalize(folder, {"kind": "bench", "model": {"manifest_sha256": build, "label": label}})
    folder = root / "consistency" / label
    mf.finalize(folder, {"kind": "consistency", "model": {"manifest_sha256": build, "label": label}})


def _front_matter(text: str) -> dict[str, Any]:
    m = re.match(r"^---\n(.*?)\n---\n", text, flags=re.S)
    assert m, "README has no YAML front matter"
    return yaml.safe_load(m.group(1))


def _copy_artifact(factory: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(factory / "merges" / MODEL, tmp_path / MODEL))


# --------------------------------------------------------------------------- cards


def test_card_metadata_and_body(factory: Path) -> None:
    text = (factory / "merges" / MODEL / "README.md").read_text()
    meta = _front_matter(text)
    assert meta["base_model"] == ["HuggingFaceTB/SmolLM2-135M-Instruct"]
    assert meta["base_model_relation"] == "merge"
    assert meta["library_name"] == "transformers"
    assert meta["license"] == "apache-2.0"
    assert {"judge", "llm-as-a-judge", "prometheus", "bias", "bbq", "mergekit", "nuslerp"} <= set(meta["tags"])
    assert set(meta["datasets"]) == {"prometheus-eval/Feedback-Collection", "judge-from-scratch/bbq-pairs"}
    got = {
        (res["dataset"]["type"], m["type"]): m["value"]
        for entry in meta["model-index"]
        for res in entry["results"]
        for m in res["metrics"]
    }
    # only the model's own headline figures: no baseline (rule_*), no per-bucket or secondary metric
    assert got == {
        ("vicuna_eval", "pearson"): 0.4123,
        ("vicuna_eval", "spearman"): 0.398,
        ("vicuna_eval", "parse_rate"): 0.97,
        ("bbq_pairs", "kappa"): 0.21,
        ("bbq_pairs", "position_bias_rate"): 0.18,
    }
    assert not any(
        "rule" in m["type"] for entry in meta["model-index"] for res in entry["results"] for m in res["metrics"]
    )
    datasets = {res["dataset"]["type"]: res["dataset"] for res in meta["model-index"][0]["results"]}
    build = _sha(factory / "merges" / MODEL / hub.MANIFEST)  # every figure names the build it was measured on
    assert datasets["bbq_pairs"]["split"] == "eval_in_dist" and datasets["bbq_pairs"]["args"] == {
        "items": 12,
        "subset": "seeded stratified subset, limit 12",
        "build": build,
    }
    assert datasets["vicuna_eval"]["args"] == {"items": 320, "subset": "all items", "build": build}
    # the baselines appear in the body, labelled as comparisons
    comparisons = text.split("#### Comparisons (baselines on the same items, not this model's results)")[1].split(
        "## "
    )[0]
    assert (
        "| bbq_pairs | BBQ metadata rule, biased_vs_wrong=tie: the rule that labels the training pairs | rule_baseline_kappa | 0.696 |"
        in comparisons
    )
    assert "rule_alt_baseline_kappa | 0.65" in comparisons
    own = text.split("## Results")[1].split("#### Comparisons")[0]
    assert "rule_" not in own and "| kappa | 0.21 | [0.1, 0.32] |" in own
    assert meta["model-index"][0]["name"] == MODEL
    for needle in (
        "[RESULT]",
        "<verdict>",
        "merge_method: nuslerp",
        "| `abs-smol` | absolute | 0.5 |",
        "[0.31, 0.5]",
        "conflict_ratio",
        "religion",
        "English only",
        "mergekit | 0.1.5",
        "vicuna_eval.json",
        f'model_id = "{REPO}"',
        "/v1/chat/completions",
        "task: pairwise",
    ):
        assert needle in text, needle
    assert "Not benchmarked yet" not in text


def test_card_request_examples_use_the_trained_formats(factory: Path) -> None:
    """The OpenAI-compatible request bodies are valid JSON and carry the exact training prompts."""
    from judgefactory import formats

    text = (factory / "merges" / MODEL / "README.md").read_text()
    bodies = [json.loads(b) for b in re.findall(r"<<'JSON'\n(.*?)\nJSON\n", text, flags=re.S)]
    assert len(bodies) == 2 and all(b["model"] == MODEL for b in bodies)
    absolute, bias = (b["messages"] for b in bodies)
    assert absolute[0]["content"] == formats.ABS_SYSTEM_PROMPT and "###Feedback:" in absolute[1]["content"]
    assert bias == formats.bias_messages(formats.bias_prompt(**card.BIAS_EXAMPLE))


def test_card_without_results_and_for_an_adapter(factory: Path, tmp_path: Path) -> None:
    art = tmp_path / "abs-smol"
    art.mkdir()
    (art / "manifest.json").write_text(
        json.dumps(_adapter_manifest("abs-smol", "absolute", "prometheus-eval/Feedback-Collection", "f.json", 10))
    )
    out = card.write_card(
        art, tmp_path / "no-bench", tmp_path / "no-consistency", "abs-smol", out=tmp_path / "card" / "README.md"
    )
    text = out.read_text()
    meta = _front_matter(text)
    assert meta["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct" and meta["library_name"] == "peft"
    assert "model-index" not in meta and "bias" not in meta["tags"]
    assert "Not benchmarked yet." in text and "Consistency not measured yet." in text
    assert "<verdict>" not in text and not (art / "README.md").exists()


def test_card_leads_with_what_the_merge_keeps_of_its_specialists(factory: Path, tmp_path: Path) -> None:
    """With ``bench/retention/retention.json`` rows for this model, the card says right after its overview what the merge
    keeps of each specialist, in words and a table; the retention figures never enter the model-index."""
    bench = tmp_path / "bench"
    shutil.copytree(factory / "bench", bench)
    row = {"skill": "pairwise", "metric": "kappa", "n": 240}
    rows = [
        {
            **row,
            "model": MODEL,
            "suite": "bbq_pairs",
            "merged": 0.46,
            "specialist": 0.632,
            "retention": 0.728,
            "ci": [0.63, 0.84],
        },
        {
            **row,
            "model": MODEL,
            "suite": "bbq_pairs_ood",
            "merged": 0.7,
            "specialist": 0.72,
            "retention": 0.972,
            "ci": [0.85, 1.1],
        },
        {
            "model": MODEL,
            "skill": "absolute",
            "suite": "vicuna",
            "metric": "pearson_expected",
            "n": 320,
            "merged": 0.3,
            "specialist": 0.28,
            "retention": 1.07,
            "ci": [0.95, 2.0],
        },
        {
            **row,
            "model": "other-merge",
            "suite": "bbq_pairs",
            "merged": 0.1,
            "specialist": 0.632,
            "retention": 0.158,
            "ci": None,
        },
    ]
    art = _copy_artifact(factory, tmp_path)
    digest = hashlib.sha256((art / "manifest.json").read_bytes()).hexdigest()
    stale = {**rows[0], "model_manifest_sha256": "0" * 64, "suite": "hhh", "retention": 0.5}  # a rebuilt merge's row
    rows = [{**r, "model_manifest_sha256": digest} for r in rows] + [stale]
    (bench / "retention").mkdir()
    (bench / "retention" / "retention.json").write_text(
        json.dumps({"specialists": {"pairwise": "adapter-pw", "absolute": "adapter-abs"}, "rows": rows})
    )
    text = card.write_card(art, bench, factory / "consistency", MODEL, out=tmp_path / "card.md").read_text()
    assert "HHH" not in text.split("## What the merge keeps of its specialists")[1].split("##")[0]
    section = text.index("## What the merge keeps of its specialists")
    assert section < text.index("## What this judge does")
    assert "Keeps 73% [63%, 84%] of the pairwise specialist's kappa on the 240 human-labelled" in text
    assert "**loses** part of it (the whole CI is below 90%)" in text
    assert "Keeps 97% [85%, 110%]" in text and "keeps it on the point estimate; the CI reaches below 90%" in text
    assert "Keeps 107% [95%, 200%]" in text and "keeps it (the whole CI is at or above 90%)" in text
    assert "other-merge" not in text and "adapter-pw" in text
    index = json.dumps(_front_matter(text).get("model-index"))
    assert "0.728" not in index and "retention" not in index


def test_card_usage_snippet_runs(factory: Path) -> None:
    """The card's transformers snippet runs as written against the (tiny) pushed folder."""
    art = factory / "merges" / MODEL
    code = re.search(r"```python\n(.*?)```", (art / "README.md").read_text(), flags=re.S).group(1)
    code = code.replace(f'model_id = "{REPO}"', f'model_id = "{art}"').replace(
        "max_new_tokens: int = 256", "max_new_tokens: int = 4"
    )
    exec(compile(code, "model_card_snippet", "exec"), {})


# --------------------------------------------------------------------------- pushes


def test_push_one_private_commit(factory: Path, server: StandInHub) -> None:
    art = factory / "merges" / MODEL
    seen_at_gate: list[int] = []
    result = hub.push(
        art, REPO, token=TOKEN, endpoint=server.url, gate=lambda: seen_at_gate.append(len(server.requests))
    )

    assert seen_at_gate == [0]
    creates = server.api_requests("/api/repos/create")
    assert len(creates) == 1 and json.loads(creates[0].body) == {
        "name": "tiny-judge",
        "organization": "judge-org",
        "visibility": "private",
    }
    assert server.repos[REPO]["private"] is True
    assert len(server.api_requests("/api/validate-yaml")) == 1
    assert len(server.api_requests("/commit/")) == 1 and len(server.commits) == 1

    commit = server.commits[0]
    expected = {
        "model.safetensors",
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.jinja",
        "README.md",
        "manifest.json",
        "mergekit_config.yaml",
    }
    assert set(commit["files"]) == expected
    weights = (art / "model.safetensors").read_bytes()
    assert commit["files"]["model.safetensors"] == {"lfs": hashlib.sha256(weights).hexdigest(), "size": len(weights)}
    assert server.lfs[hashlib.sha256(weights).hexdigest()] == weights
    for name in expected - {"model.safetensors"}:
        assert commit["files"][name] == (art / name).read_bytes(), name
    assert result["oid"] == commit["oid"] and result["commit_url"].endswith(commit["oid"])
    assert sorted(f["path"] for f in result["files"]) == sorted(expected)

    readme = commit["files"]["README.md"].decode()
    meta = _front_matter(readme)
    vicuna = json.loads((factory / "bench" / MODEL / "vicuna" / "metrics.json").read_text())["metrics"]
    results = {
        r["dataset"]["type"]: {m["type"]: m["value"] for m in r["metrics"]} for r in meta["model-index"][0]["results"]
    }
    assert results["vicuna_eval"] == {k: v["value"] for k, v in vicuna.items() if k != "exact_match"}

    api_calls = [r for r in server.requests if r.path.startswith("/api/") or ".git/" in r.path]
    assert all(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in api_calls)
    assert not any(TOKEN.encode() in r.body for r in server.requests)
    assert TOKEN not in readme


def test_push_again_reuses_existing_repo(factory: Path, server: StandInHub) -> None:
    art = factory / "merges" / MODEL
    hub.push(art, REPO, token=TOKEN, endpoint=server.url)
    hub.push(art, REPO, token=TOKEN, endpoint=server.url)
    assert len(server.commits) == 2 and len(server.repos) == 1
    assert len(server.api_requests("/lfs-upload/")) == 1  # second push finds the LFS object already stored


def test_no_token_fails_before_any_request(
    factory: Path, server: StandInHub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from huggingface_hub import constants

    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    with pytest.raises(hub.HubError, match="no Hugging Face token") as err:
        hub.push(factory / "merges" / MODEL, REPO, endpoint=server.url)
    assert "\n" not in str(err.value)
    assert server.requests == []


def test_token_from_environment(factory: Path, server: StandInHub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    hub.push(factory / "merges" / MODEL, REPO, endpoint=server.url)
    assert server.requests[0].headers.get("authorization") == f"Bearer {TOKEN}"


def test_dry_run_touches_nothing(factory: Path, server: StandInHub, capsys: pytest.CaptureFixture[str]) -> None:
    art = factory / "merges" / MODEL
    result = hub.push(art, REPO, token=TOKEN, dry_run=True, endpoint=server.url)
    assert server.requests == []
    sizes = {f["path"]: f["size"] for f in result["files"]}
    assert sizes["model.safetensors"] == (art / "model.safetensors").stat().st_size and "README.md" in sizes
    out = capsys.readouterr().out
    assert "model.safetensors" in out and "dry run" in out and TOKEN not in out


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: (d / "pytorch_model.bin").write_bytes(b"\x80\x04pickle"), "pickle-format file.*pytorch_model.bin"),
        (lambda d: (d / "notes.txt").write_text(f"token={TOKEN}\n"), "notes.txt: it contains the access token"),
        (lambda d: (d / "run.sh").write_text("echo hi\n"), "unsupported type run.sh"),
        (lambda d: (d / "config.json").write_text("{}"), "config.json no longer matches"),
        (lambda d: (d / "README.md").unlink(), "no README.md"),
    ],
)
def test_local_refusals_make_no_request(
    factory: Path, server: StandInHub, tmp_path: Path, change, message: str
) -> None:
    art = _copy_artifact(factory, tmp_path)
    change(art)
    with pytest.raises(hub.HubError, match=message) as err:
        hub.push(art, REPO, token=TOKEN, endpoint=server.url)
    assert TOKEN not in str(err.value)
    assert server.requests == []


def test_gate_failure_stops_the_push(factory: Path, server: StandInHub) -> None:
    def gate() -> None:
        raise RuntimeError("consistency gate: conflict ratio too high")

    with pytest.raises(RuntimeError, match="consistency gate"):
        hub.push(factory / "merges" / MODEL, REPO, token=TOKEN, endpoint=server.url, gate=gate)
    assert server.requests == []


def test_failed_commit_raises_and_leaves_no_commit(factory: Path, server: StandInHub) -> None:
    server.fail_commit = True
    with pytest.raises(hub.HubError, match="500") as err:
        hub.push(factory / "merges" / MODEL, REPO, token=TOKEN, endpoint=server.url)
    assert TOKEN not in str(err.value) and "hf_***" in str(err.value)
    assert err.value.__cause__ is None and err.value.__suppress_context__
    assert len(server.api_requests("/commit/")) == 1
    assert server.commits == [] and server.repos[REPO]["files"] == {}


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_card_gate_and_push_find_each_other_from_any_directory_and_a_refused_push_changes_nothing(
    factory: Path, tmp_path: Path
) -> None:
    """Through the CLI, run from an unrelated working directory with the workspace at $JUDGEFACTORY_HOME: the card
    reads bench/ and consistency/ of the workspace; a push the consistency gate refuses exits 2 with one line and leaves
    the artifact folder byte for byte as it was (no card written); a push without a token does the same."""
    import os
    import subprocess
    import sys

    ws = Path(shutil.copytree(factory, tmp_path / "ws"))
    for root in ("bench", "consistency"):  # results live under the model's label, as `make bench` writes them
        (ws / root / MODEL).rename(ws / root / f"merge-{MODEL}")
    art = ws / "merges" / MODEL
    (art / "README.md").unlink()
    m = json.loads((art / hub.MANIFEST).read_text())
    m["recipe"]["gate"] = {"max_conflict_ratio": 0.1}  # the workspace's summary says 0.149
    (art / hub.MANIFEST).write_text(json.dumps(m))
    tie_results(ws, f"merge-{MODEL}", art)  # the results of this build (the gate is part of it)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "JUDGEFACTORY_HOME": str(ws), "HF_TOKEN": TOKEN}

    def cli(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "judgefactory.cli", *argv], cwd=elsewhere, env=env, capture_output=True, text=True
        )

    before = _tree(art)
    refused = cli("push", "--merge", MODEL, "--repo", REPO, "--endpoint", "http://127.0.0.1:9")
    assert refused.returncode == 2, refused.stderr
    assert (
        refused.stderr.strip().splitlines() == [refused.stderr.strip()]
        and "consistency gate failed: conflict_ratio 0.149 > max 0.10" in refused.stderr
    )
    assert _tree(art) == before
    env.pop("HF_TOKEN")
    env["HF_HOME"] = str(tmp_path / "hf")  # no saved login either
    no_token = cli("push", "--merge", MODEL, "--repo", REPO)
    assert no_token.returncode == 2 and "no Hugging Face token" in no_token.stderr and _tree(art) == before
    card = cli("card", "--merge", MODEL)
    assert card.returncode == 0, card.stderr
    text = (art / "README.md").read_text()
    assert "| kappa | 0.21 | [0.1, 0.32] |" in text and "conflict_ratio" in text  # found the workspace's results


def test_card_carries_no_local_paths(factory: Path, tmp_path: Path) -> None:
    """The mergekit YAML of a real merge names this machine's cache folders; the card shows the base's hub id and
    the adapters' names instead."""
    art = Path(shutil.copytree(factory / "merges" / MODEL, tmp_path / MODEL))
    cache = "/home/someone/.cache/judgefactory/merge"
    cfg = {
        "merge_method": "nuslerp",
        "base_model": f"{cache}/bases/abc",
        "models": [
            {"model": f"{cache}/bases/abc+{cache}/lora/111", "parameters": {"weight": 0.5}},
            {"model": f"{cache}/bases/abc+{cache}/lora/222", "parameters": {"weight": 0.5}},
        ],
    }
    (art / card.MERGE_YAML).write_text(yaml.safe_dump(cfg, sort_keys=False))
    m = json.loads((art / hub.MANIFEST).read_text())
    m["mergekit_config"] = cfg
    m["files"][card.MERGE_YAML] = _sha(art / card.MERGE_YAML)
    (art / hub.MANIFEST).write_text(json.dumps(m))
    text = card.write_card(art, factory / "bench", factory / "consistency", MODEL, out=tmp_path / "card.md").read_text()
    assert "/home/someone" not in text and "/.cache/" not in text
    assert (
        "- model: HuggingFaceTB/SmolLM2-135M-Instruct+abs-smol" in text
        and "base_model: HuggingFaceTB/SmolLM2-135M-Instruct" in text
    )


def test_card_and_push_carry_the_artifacts_own_gguf_export(
    factory: Path, server: StandInHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An export built from exactly this artifact's files is listed in the card and uploaded under gguf/ in the same
    commit; once the artifact changes, the export is stale and neither the card nor the push mentions it."""
    from judgefactory import export
    from judgefactory import manifest as mf
    from judgefactory.card import build_card

    root = tmp_path / "ws"
    art = Path(shutil.copytree(factory / "merges" / MODEL, root / "merges" / MODEL))
    monkeypatch.setenv("JUDGEFACTORY_HOME", str(root))
    out = root / "exports" / MODEL
    out.mkdir(parents=True)
    (out / "judge-f16.gguf").write_bytes(b"GGUF" + b"\0" * 60)
    (out / "Modelfile").write_text("FROM ./judge-f16.gguf\n")
    built = mf.read(art)["files"]
    mf.finalize(
        out,
        {"kind": "export", "ref_files_sha256": mf.sha256_json(built), "gguf": {"judge-f16.gguf": {"outtype": "f16"}}},
    )

    got = export.for_artifact(art, MODEL)
    assert got and [f["name"] for f in got["files"]] == ["judge-f16.gguf"] and got["modelfiles"] == ["Modelfile"]
    card = str(build_card(art, factory / "bench", factory / "consistency", MODEL, repo_id=REPO))
    assert "gguf/judge-f16.gguf" in card and "llama-server -m judge/gguf/judge-f16.gguf" in card
    extra = [(f"gguf/{n}", out / n) for n in ("judge-f16.gguf", "Modelfile")]
    result = hub.push(art, REPO, token=TOKEN, endpoint=server.url, card=card, extra=extra)
    paths = {f["path"] for f in result["files"]}
    assert {"gguf/judge-f16.gguf", "gguf/Modelfile", "model.safetensors"} <= paths
    assert server.commits[-1]["files"]["gguf/Modelfile"] == b"FROM ./judge-f16.gguf\n"

    (art / "config.json").write_text((art / "config.json").read_text() + " ")  # the artifact changed
    mf.finalize(art, mf.read(art))
    assert export.for_artifact(art, MODEL) is None
    assert "gguf/" not in str(build_card(art, factory / "bench", factory / "consistency", MODEL, repo_id=REPO))


def test_a_private_push_never_lands_in_an_existing_public_repo(factory: Path, server: StandInHub) -> None:
    """The repo already exists and is public: a (default, private) push refuses with one line before any commit and
    leaves the repo as it was; the same push into a private repo goes ahead."""
    server.repos[REPO] = {"private": False, "files": {}}
    art = factory / "merges" / MODEL
    with pytest.raises(hub.HubError) as err:
        hub.push(art, REPO, token=TOKEN, endpoint=server.url)
    message = str(err.value)
    assert message.splitlines() == [message]
    assert (
        f"refusing to push to {REPO}: the repo exists and is public on the Hub, the push asked for private" in message
    )
    assert server.commits == [] and not server.api_requests("/commit/") and not server.api_requests("/preupload/")
    assert server.repos[REPO]["private"] is False
    server.repos[REPO]["private"] = True
    hub.push(art, REPO, token=TOKEN, endpoint=server.url)
    assert len(server.commits) == 1


def test_a_card_after_a_rebuild_shows_no_figure_of_the_old_build(factory: Path, tmp_path: Path) -> None:
    """The merge is rebuilt (its manifest changes): the bench and consistency results of the old build stay off the
    card and out of the model-index, and the card says which were left out and on which build they were measured; once
    measured on the new build, each figure shows with its build and item count."""
    ws = Path(shutil.copytree(factory, tmp_path / "ws", ignore=shutil.ignore_patterns("README.md")))
    art = ws / "merges" / MODEL
    old = _sha(art / hub.MANIFEST)
    m = json.loads((art / hub.MANIFEST).read_text())
    m["created"] = "2025-02-03T00:00:00+00:00"  # rebuilt
    (art / hub.MANIFEST).write_text(json.dumps(m))
    new = _sha(art / hub.MANIFEST)
    text = card.write_card(art, ws / "bench", ws / "consistency", MODEL, out=tmp_path / "card.md").read_text()
    assert "model-index" not in _front_matter(text)
    results = text.split("## Results")[1].split("## Known limitations")[0]
    for suite in ("bbq_pairs", "vicuna"):
        assert (
            f"`{suite}` is left out of this card: measured on build `{old[:12]}…`, not this artifact's build "
            f"`{new[:12]}…`" in results
        )
    assert "0.21" not in results and "0.4123" not in results and "0.149" not in results
    assert f"consistency figures are left out of this card: measured on build `{old[:12]}…`" in results

    tie_results(ws, MODEL, art)  # measured again on the new build
    text = card.write_card(art, ws / "bench", ws / "consistency", MODEL, out=tmp_path / "card.md").read_text()
    assert f"| kappa | 0.21 | [0.1, 0.32] | `{new[:12]}…` |" in text
    assert f"Measured on build `{new[:12]}…`" in text and "left out" not in text
