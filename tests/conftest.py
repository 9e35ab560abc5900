"""Shared fixtures: offline, CPU, tiny models built from a config, the data mirror."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
# The fixture mirror the package ships (judgefactory/fixtures/mirror, `make demo` without a data mirror): its bbq/ and
# bbq-pairs/ are also the BBQ test fixtures (see its README).
PKG_MIRROR = REPO / "judgefactory" / "fixtures" / "mirror"
FX_PAIRS = {
    "kind": "pairs",
    "name": "fx",
    "test_fraction": 0.3,
    "buckets": dict(clear_bias=6, subtle_bias=4, tracked_vs_alternate=4, tie=4, adversarial=6),
}
"""a small pair set built from PKG_MIRROR: the tests that train a pairwise adapter share it"""
DEFAULT_MIRROR = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def mirror() -> Path:
    """The read-only data mirror (JUDGEFACTORY_DATA, else ../shared/data); skip if absent."""
    root = Path(os.environ.get("JUDGEFACTORY_DATA") or DEFAULT_MIRROR)
    if not (root / "README.md").is_file():
        pytest.skip(f"data mirror not found at {root}")
    return root


def build_tiny_tokenizer(path: Path | None = None):
    """A small word-level tokenizer with the SmolLM2 chat template and special tokens."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = (
        "the a is of to and in that it for on with as are be this was by not or at from but have which an "
        "A B TIE verdict reasoning Feedback RESULT 1 2 3 4 5 response question answer biased clean good bad "
        "score rubric <reasoning> </reasoning> <verdict> </verdict> [RESULT] Response chose option stereotype"
    ).split()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<unk>"]
    vocab = {
        t: i
        for i, t in enumerate(
            specials
            + sorted(set(words))
            + [f"w{i}" for i in range(40)]
            + ["\n", ":", ".", ",", "user", "assistant", "system"]
        )
    }
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit()])
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<unk>",
    )
    tok.chat_template = (
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    )
    if path is not None:
        tok.save_pretrained(path)
    return tok


def build_tiny_llama(path: Path, seed: int = 0, vocab_size: int = 128, hidden_size: int = 32):
    """A 2-layer Llama (hidden 32, MLP 2x) saved as safetensors with a tokenizer: what PEFT/TRL/mergekit open."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    tok = build_tiny_tokenizer()
    cfg = LlamaConfig(
        vocab_size=max(vocab_size, len(tok)),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        initializer_range=0.2,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    model = LlamaForCausalLM(cfg)
    model.save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return path


def build_tiny_gemma3(path: Path, seed: int = 0) -> Path:
    """A random ``Gemma3ForConditionalGeneration`` (2 text layers, hidden 32; a 1-layer SigLIP vision tower without the
    pooling head, as Gemma 3's) built from code and saved with the tiny tokenizer and Gemma's chat template: the
    multimodal layout of google/gemma-3-4b-it at toy size."""
    import torch
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3TextConfig, SiglipVisionConfig

    from judgefactory.bases import GEMMA_CHAT_TEMPLATE

    torch.manual_seed(seed)
    tok = build_tiny_tokenizer()
    tok.chat_template = GEMMA_CHAT_TEMPLATE
    text = Gemma3TextConfig(
        vocab_size=128,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        max_position_embeddings=512,
        sliding_window=64,
        initializer_range=0.2,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    vision = SiglipVisionConfig(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=28,
        patch_size=14,
        vision_use_head=False,
    )
    cfg = Gemma3Config(
        text_config=text,
        vision_config=vision,
        mm_tokens_per_image=4,
        boi_token_index=125,
        eoi_token_index=126,
        image_token_index=127,
    )
    Gemma3ForConditionalGeneration(cfg).save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return path


def tiny_pairwise_recipe(base: Path, **adapter_kw):
    """A tiny pairwise adapter recipe on the fixture pair set ``fx``; ``adapter_kw`` overrides (dicts are merged)."""
    from judgefactory import recipes

    spec = {
        "kind": "adapter",
        "name": "tiny-pw",
        "task": "pairwise",
        "base": str(base),
        "data": {"source": "pairs:fx", "max_response_chars": 120},
        "lora": {"r": 4, "target_modules": ["q_proj", "v_proj"]},
        "train": {
            "max_steps": 6,
            "batch_size": 2,
            "max_length": 500,
            "logging_steps": 1,
            "save_steps": 3,
            "bf16": False,
            "base_dtype": "float32",
            "learning_rate": 1e-2,
        },
    }
    for k, v in adapter_kw.items():
        spec[k] = {**spec.get(k, {}), **v} if isinstance(v, dict) else v
    return recipes.from_dict(spec)


def fx_pair_setup(base: Path, tmp_path: Path, monkeypatch, **adapter_kw):
    """The fixture pair set built under ``tmp_path`` and a tiny pairwise recipe that trains on it."""
    from judgefactory import recipes
    from judgefactory.data import pairs

    monkeypatch.setenv("JUDGEFACTORY_HOME", str(tmp_path))
    pairs.build(recipes.from_dict(FX_PAIRS), mirror=PKG_MIRROR, progress=False)
    return tiny_pairwise_recipe(base, **adapter_kw)


@pytest.fixture()
def tiny_llama(tmp_path: Path) -> Path:
    return build_tiny_llama(tmp_path / "tiny-llama")


@pytest.fixture(autouse=True)
def _restore_data_mirror_env():
    """``judgefactory --data-mirror`` sets $JUDGEFACTORY_DATA for its process; in-process CLI tests must not leak it."""
    before = os.environ.get("JUDGEFACTORY_DATA")
    yield
    if before is None:
        os.environ.pop("JUDGEFACTORY_DATA", None)
    else:
        os.environ["JUDGEFACTORY_DATA"] = before


@contextlib.contextmanager
def chat_server(reply: Callable[[dict[str, Any]], dict[str, Any]]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A loopback stand-in for an OpenAI-compatible ``/v1`` server: each POST's JSON body (with its ``path`` and
    ``Authorization`` header) is recorded and answered with ``reply(body)``. Yields (base URL, recorded requests)."""
    requests: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
            data = json.dumps(reply(body)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", requests
    finally:
        server.shutdown()
        server.server_close()
