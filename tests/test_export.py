"""The export station without llama.cpp: the tokenizer shape llama.cpp's converter reads, Ollama Modelfiles that
render a judge request exactly as the chat template does, and one-line errors. The GGUF conversion and llama-server
run in tests/test_export_slow.py (make test-slow, which builds llama.cpp)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

TEXTS = ["Feedback: good. [RESULT] 4", "<verdict>TIE</verdict> 12345", "héllo wörld ▁ 😀 中文 \t\n  x", "  two  spaces"]


def gguf_style_tokenizer(folder: Path):
    """A byte-level BPE tokenizer in the shape transformers' GGUF converter gives a ``gpt2`` GGUF vocabulary
    (SmolLM2's): ``byte_fallback`` on and a SentencePiece decoder chain in front of the ``ByteLevel`` decoder."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {c: i for i, c in enumerate(sorted(alphabet))}
    merges = [("Ġ", "t"), ("e", "r"), ("Ġt", "h"), ("Ġth", "e"), ("R", "E")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    for special in ("<|endoftext|>", "<|im_start|>", "<|im_end|>"):
        vocab[special] = len(vocab)
    tk = Tokenizer(models.BPE(vocab, merges, byte_fallback=True, unk_token="<|endoftext|>", fuse_unk=True))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tk.decoder = decoders.Sequence(
        [decoders.ByteFallback(), decoders.Fuse(), decoders.Replace("▁", " "), decoders.ByteLevel()]
    )
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tok.save_pretrained(folder)
    return tok


def test_byte_level_gives_llama_cpp_a_gpt2_vocabulary_and_changes_no_id(tmp_path: Path) -> None:
    from gguf.vocab import LlamaHfVocab
    from transformers import AutoTokenizer

    from judgefactory import bases

    before, after = tmp_path / "before", tmp_path / "after"
    tok = gguf_style_tokenizer(before)
    LlamaHfVocab(before)  # accepted: llama.cpp's converter would write a SentencePiece ("llama") vocabulary
    ids = [tok.encode(t) for t in TEXTS]
    bases.byte_level(tok)
    tok.save_pretrained(after)
    with pytest.raises(FileNotFoundError):  # refused: the converter falls through to the GPT-2 BPE path
        LlamaHfVocab(after)
    again = AutoTokenizer.from_pretrained(after)
    assert [again.encode(t) for t in TEXTS] == ids
    assert [again.decode(i) for i in ids] == TEXTS


def go_render(template: str, system: str | None, prompt: str) -> str:
    """The subset of Go's text/template the Modelfiles use: ``{{ if .X }}…{{ else }}…{{ end }}`` (not nested),
    ``{{ .System }}`` and ``{{ .Prompt }}``."""
    values = {"System": system or "", "Prompt": prompt}

    def branch(m: re.Match) -> str:
        return m.group(2) if values[m.group(1)] else (m.group(3) or "")

    out = re.sub(r"\{\{ if \.(\w+) \}\}(.*?)(?:\{\{ else \}\}(.*?))?\{\{ end \}\}", branch, template, flags=re.S)
    out = re.sub(r"\{\{ \.(\w+) \}\}", lambda m: values[m.group(1)], out)
    assert "{{" not in out, out
    return out


def chat_templates() -> dict[str, tuple[str, str]]:
    """{family: (Jinja chat template, bos the runner adds)}: SmolLM2's from its GGUF, Gemma's from bases."""
    from judgefactory import bases

    smollm = bases.gguf_field(bases._gguf_path(bases.EMBEDDED["smollm2-135m-instruct"]), "tokenizer.chat_template")
    assert smollm
    return {"smollm2": (smollm, ""), "gemma": (bases.GEMMA_CHAT_TEMPLATE, "<bos>")}


@pytest.mark.parametrize("family", ["smollm2", "gemma"])
@pytest.mark.parametrize("system", ["You are a fair judge.", None])
def test_ollama_template_renders_a_judge_request_like_the_chat_template(family: str, system: str | None) -> None:
    from jinja2 import Template

    from judgefactory import export

    jinja, bos = chat_templates()[family]
    prompt = "###Task: grade this.\nResponse: fine\n###Feedback: "
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    want = Template(jinja).render(messages=messages, add_generation_prompt=True, bos_token="<bos>")
    template, stop = export.ollama_template(jinja)
    # Gemma's template trims the user turn and Go templates cannot: a client sends the prompt stripped (the Modelfile
    # says so); ChatML keeps the judge prompt's trailing space in both
    sent = prompt.strip() if family == "gemma" else prompt
    assert bos + go_render(template, system, sent) == want
    text = export.modelfile("f16", jinja)
    assert "FROM ./judge-f16.gguf\n" in text and f'PARAMETER stop "{stop}"' in text
    assert "PARAMETER temperature 0" in text


def test_export_errors_are_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    from judgefactory.cli.main import main

    monkeypatch.setenv("LLAMA_CPP_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(SystemExit) as e:
        main(["export", "merge:nuslerp_50_50"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "make llama-cpp" in err and "LLAMA_CPP_DIR" in err
    fake = tmp_path / "llama.cpp"
    fake.mkdir()
    (fake / "convert_hf_to_gguf.py").write_text("raise SystemExit('never run')\n")
    monkeypatch.setenv("LLAMA_CPP_DIR", str(fake))
    with pytest.raises(SystemExit) as e:
        main(["export", "embedded:smollm2-135m-instruct"])
    assert e.value.code == 2
    assert "base model" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["export", "merge:never-built"])
    assert e.value.code == 2
    assert "never-built" in capsys.readouterr().err


FAKE_CONVERTER = '''
"""A stand-in for llama.cpp's convert_hf_to_gguf.py: a small GGUF with a gpt2 vocabulary; each call logged."""
import sys
from pathlib import Path

import gguf

args = sys.argv[1:]
out, outtype = args[args.index("--outfile") + 1], args[args.index("--outtype") + 1]
with open(Path(__file__).with_name("calls.log"), "a") as log:
    log.write(outtype + "\\n")
w = gguf.GGUFWriter(out, "llama")
w.add_string("tokenizer.ggml.model", "gpt2")
w.add_string("general.name", "judge-" + outtype)
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
'''


def _fake_llama_cpp(tmp_path: Path, monkeypatch) -> Path:
    fake = tmp_path / "llama.cpp"
    fake.mkdir()
    (fake / "convert_hf_to_gguf.py").write_text(FAKE_CONVERTER)
    monkeypatch.setenv("LLAMA_CPP_DIR", str(fake))
    return fake / "calls.log"


def test_an_export_of_one_outtype_keeps_the_others_of_the_same_build(tiny_llama: Path, tmp_path: Path, monkeypatch):
    """``serve`` exports the out-type it serves: after a full export that must leave every other file in place, and
    after the checkpoint changed it must not put a new file beside old ones."""
    from judgefactory import export
    from judgefactory import manifest as mf

    calls = _fake_llama_cpp(tmp_path, monkeypatch)
    out = tmp_path / "exports" / "judge"
    assert export.run(str(tiny_llama), out=out) == out
    assert calls.read_text().split() == ["f16", "q8_0"]
    everything = {"judge-f16.gguf", "judge-q8_0.gguf", "Modelfile", "Modelfile.q8_0", "manifest.json"}
    assert {p.name for p in out.iterdir()} == everything
    q8 = (out / "judge-q8_0.gguf").stat()

    export.run(str(tiny_llama), ("f16",), out=out)  # what `make serve` runs after `make export`
    assert {p.name for p in out.iterdir()} == everything and calls.read_text().split() == ["f16", "q8_0"]
    assert (out / "judge-q8_0.gguf").stat().st_mtime_ns == q8.st_mtime_ns and mf.is_fresh(out)
    export.run(str(tiny_llama), ("bf16",), out=out)  # a new out-type joins the others; nothing is converted again
    assert calls.read_text().split() == ["f16", "q8_0", "bf16"]
    assert set(mf.read(out)["gguf"]) == {"judge-f16.gguf", "judge-q8_0.gguf", "judge-bf16.gguf"}
    assert (out / "judge-q8_0.gguf").stat().st_mtime_ns == q8.st_mtime_ns and mf.is_fresh(out)

    # another build of the checkpoint: exporting only f16 would leave q8_0 and bf16 of the old one beside it
    (tiny_llama / "generation_config.json").write_text('{"max_new_tokens": 7}\n')
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    with pytest.raises(export.ExportError, match=r"bf16, q8_0 exported from another build .*--outtype f16") as err:
        export.run(str(tiny_llama), ("f16",), out=out)
    assert "\n" not in str(err.value)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before  # refused: nothing touched
    export.run(str(tiny_llama), ("f16", "bf16", "q8_0"), out=out)
    assert calls.read_text().split()[3:] == ["f16", "bf16", "q8_0"] and mf.is_fresh(out)


FAKE_SERVER = '''#!{python}
"""A stand-in for llama-server: /health answers 503 twice, then 200."""
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

port = int(sys.argv[sys.argv.index("--port") + 1])
seen = []


class H(BaseHTTPRequestHandler):
    def do_GET(self):
        seen.append(self.path)
        self.send_response(200 if len(seen) > 2 else 503)
        self.end_headers()

    def log_message(self, *a):
        pass


HTTPServer(("127.0.0.1", port), H).serve_forever()
'''


def test_serve_polls_health_until_the_server_answers_and_stops_it(tmp_path: Path, monkeypatch) -> None:
    import sys

    import httpx

    from judgefactory import export

    binary = tmp_path / "llama-server"
    binary.write_text(FAKE_SERVER.replace("{python}", sys.executable))
    binary.chmod(0o755)
    monkeypatch.setenv("LLAMA_SERVER", str(binary))
    polls = []
    real_get = httpx.get
    monkeypatch.setattr(httpx, "get", lambda url, **kw: (polls.append(url), real_get(url, **kw))[1])
    with export.serve(tmp_path / "judge-f16.gguf", parallel=1) as server:
        assert server["base_url"].endswith("/v1") and len(polls) >= 3 and polls[0].endswith("/health")
        pid = server["pid"]
    import os

    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
