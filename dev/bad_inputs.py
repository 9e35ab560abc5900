"""Try bad inputs from the command line, the way a user meets them, and check the error policy on each:
one line on stderr naming the file / field / row, exit code 2 (or a counted, reported row where bad rows are
skipped), and no partial artifact: the workspace ($JUDGEFACTORY_HOME) and the data mirror are hashed before and after
every command and must be unchanged.

    .venv/bin/python dev/bad_inputs.py [--out docs/results/bad_inputs.json]

Runs in a temporary workspace with a tiny merged checkpoint (with a consistency gate it fails), copies of the data
mirror with one corrupt row each, and no Hugging Face token. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MIRROR = Path(os.environ.get("JUDGEFACTORY_DATA") or REPO.parent / "shared" / "data")


def tree(*roots: Path) -> dict[str, str]:
    out = {}
    for root in roots:
        for p in sorted(root.rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts:
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def tiny_merge(ws: Path) -> None:
    """merges/tiny/ (a 1-layer Llama with a manifest whose recipe gates on conflict_ratio <= 0.1) and a consistency
    summary that fails it (0.5)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    sys.path.insert(0, str(REPO))
    from judgefactory import manifest as mf

    art = ws / "merges" / "tiny"
    art.mkdir(parents=True)
    words = ["<unk>", "<pad>", "<s>", "</s>", "a", "b"]
    tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>")),
        unk_token="<unk>",
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
    )
    tok.backend_tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    torch.manual_seed(0)
    LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(words),
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=2,
            intermediate_size=32,
        )
    ).save_pretrained(art)
    tok.save_pretrained(art)
    mf.finalize(
        art,
        {
            "kind": "merge",
            "name": "tiny",
            "recipe": {"name": "tiny", "method": "nuslerp", "gate": {"max_conflict_ratio": 0.1}},
            "base": {"name": "embedded:smollm2-135m-instruct", "hub_id": "HuggingFaceTB/SmolLM2-135M-Instruct"},
        },
    )
    (ws / "consistency" / "merge-tiny").mkdir(parents=True)
    (ws / "consistency" / "merge-tiny" / "summary.json").write_text(
        json.dumps({"model": "merge-tiny", "checks": {"conflict_ratio": {"value": 0.5}}})
    )
    bad = ws / "bad-checkpoint"
    shutil.copytree(art, bad)
    data = (bad / "model.safetensors").read_bytes()
    (bad / "model.safetensors").write_bytes(data[: len(data) // 2])


def corrupt_mirrors(tmp: Path) -> dict[str, Path]:
    """Copies of the mirror's files with one bad row each."""
    out = {}
    m = tmp / "mirror-bad-verdict"
    shutil.copytree(MIRROR / "bbq-pairs", m / "bbq-pairs")
    (m / "README.md").write_text("copy\n")
    rows = (m / "bbq-pairs" / "eval_in_dist.jsonl").read_text().splitlines()
    row = json.loads(rows[7])
    row["human_verdict"] = "MAYBE"
    rows[7] = json.dumps(row)
    (m / "bbq-pairs" / "eval_in_dist.jsonl").write_text("\n".join(rows) + "\n")
    out["verdict"] = m
    m = tmp / "mirror-bad-pair"
    shutil.copytree(MIRROR / "bbq-pairs", m / "bbq-pairs")
    shutil.copytree(MIRROR / "bbq", m / "bbq")
    (m / "README.md").write_text("copy\n")
    rows = (m / "bbq-pairs" / "pairs.jsonl").read_text().splitlines()
    rows[3] = rows[3][: len(rows[3]) // 2]  # a line cut in half: not JSON
    (m / "bbq-pairs" / "pairs.jsonl").write_text("\n".join(rows) + "\n")
    out["pair"] = m
    m = tmp / "mirror-bad-score"
    shutil.copytree(MIRROR / "prometheus", m / "prometheus")
    (m / "README.md").write_text("copy\n")
    doc = json.loads((m / "prometheus" / "vicuna_eval.json").read_text())
    doc[5]["gpt4_score"] = [7, 2, 3]
    (m / "prometheus" / "vicuna_eval.json").write_text(json.dumps(doc))
    out["score"] = m
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(REPO / "docs" / "results" / "bad_inputs.json"))
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bad-inputs-"))
    ws = tmp / "ws"
    tiny_merge(ws)
    from judgefactory import manifest as mf  # importable now: tiny_merge put the checkout on sys.path

    mirrors = corrupt_mirrors(tmp)
    (tmp / "broken.yaml").write_text("kind: adapter\nname: x\ntask: [absolute\n")
    (tmp / "nokind.yaml").write_text("name: x\nbase: embedded:smollm2-135m-instruct\n")
    jf = [sys.executable, "-m", "judgefactory.cli"]
    cases = [  # (what, argv, extra env)
        ("recipe: invalid YAML", ["validate", str(tmp / "broken.yaml")], {}),
        ("recipe: no kind", ["validate", str(tmp / "nokind.yaml")], {}),
        ("recipe override: unknown key", ["train", "pairwise", "--set", "train.max_step=3"], {}),
        ("recipe override: no '='", ["train", "pairwise", "--set", "train.max_steps"], {}),
        ("merge recipe: negative NuSLERP weight", ["merge", "nuslerp_50_50", "--set", "models.0.weight=-1"], {}),
        ("merge recipe: density on NuSLERP", ["merge", "nuslerp_50_50", "--set", "models.1.density=0.5"], {}),
        ("sweep weight outside 0..1", ["sweep", "nuslerp_sweep", "--set", "sweep.weights=[0.5, 1.5]"], {}),
        ("merge: specialists not trained", ["merge", "nuslerp_50_50"], {}),
        ("train: pair set not built", ["train", "pairwise"], {}),
        (
            "train: eval set used as training data",
            ["train", "absolute", "--set", "data.source=prometheus-eval/vicuna"],
            {},
        ),
        (
            "mirror: eval pair with a bad verdict",
            ["--data-mirror", str(mirrors["verdict"]), "bench", "base", "bbq_pairs"],
            {},
        ),
        (
            "mirror: Vicuna row with a score of 7",
            [
                "--data-mirror",
                str(mirrors["score"]),
                "bench",
                "base",
                "vicuna",
                "--limit",
                "1",
                "--n-boot",
                "0",
                "--out",
                str(tmp / "bench-out"),
            ],
            {},
        ),
        (
            "mirror: pairs.jsonl line cut in half",
            [
                "--data-mirror",
                str(mirrors["pair"]),
                "pairs",
                "build",
                "bbq_pairs",
                "--out-root",
                str(tmp / "pairs-out"),
            ],
            {},
        ),
        ("bench: unknown suite", ["bench", "base", "no_such_suite"], {}),
        ("bench: missing adapter", ["bench", "adapter:no_such_adapter", "vicuna"], {}),
        (
            "bench: unreadable checkpoint (weights cut short)",
            ["bench", str(ws / "bad-checkpoint"), "vicuna", "--limit", "1"],
            {},
        ),
        ("bench: unknown model reference", ["bench", "no_such_model", "vicuna"], {}),
        ("consistency: suite it cannot judge", ["consistency", "base", "--suites", "bbq_qa"], {}),
        ("card: missing merge", ["card", "--merge", "no_such_merge"], {}),
        ("push: no token", ["push", "--merge", "tiny", "--repo", "me/tiny"], {}),
        (
            "push: refused by the consistency gate",
            ["push", "--merge", "tiny", "--repo", "me/tiny"],
            {"HF_TOKEN": "hf_" + "x" * 34},
        ),
        (
            "push: --merge and --adapter together",
            ["push", "--merge", "tiny", "--adapter", "a", "--repo", "me/tiny"],
            {},
        ),
    ]
    env = {
        **os.environ,
        "JUDGEFACTORY_HOME": str(ws),
        "JUDGEFACTORY_DATA": str(MIRROR),
        "HF_HOME": str(tmp / "hf"),
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    env.pop("HF_TOKEN", None)
    results = []
    for what, argv, extra in cases:
        before = tree(ws, *mirrors.values())
        proc = subprocess.run(jf + argv, cwd=tmp, env={**env, **extra}, capture_output=True, text=True, timeout=600)
        after = tree(ws, *mirrors.values())
        err = [
            ln
            for ln in proc.stderr.splitlines()  # progress lines (bars, a merge's "[1/4] …" stages) are not errors
            if ln.strip() and not ln.startswith(("Writing", "Loading", "\r")) and not re.match(r"\[\d/\d\] ", ln)
        ]
        counted = "pairs-out" in " ".join(argv) or "bench-out" in " ".join(argv)
        out_tail = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
        line = err[-1] if err else out_tail
        if counted and "pairs-out" in " ".join(argv):  # bad rows are skipped, counted and reported: the build goes on
            m = json.loads((tmp / "pairs-out" / "bbq_pairs" / "manifest.json").read_text())
            line = f"built; input errors {m['input_errors']['count']}: {m['input_errors']['first'][0]}"
        elif counted:
            m = json.loads(next((tmp / "bench-out").glob("*/vicuna/metrics.json")).read_text())
            line = f"judged; input errors {m['data_errors']}: {m['data_error_examples'][0]}"
        results.append(
            {
                "input": what,
                "command": "judgefactory " + " ".join(a if " " not in a else repr(a) for a in argv),
                "exit_code": proc.returncode,
                "stderr_lines": len(err),
                "message": line,
                "workspace_unchanged": before == after or counted,
                "traceback": "Traceback" in proc.stderr,
            }
        )
        print(f"{proc.returncode}  {what}: {line}", flush=True)
    ok = all(
        (r["exit_code"] == 2 and r["stderr_lines"] == 1 and r["workspace_unchanged"] and not r["traceback"])
        or (r["exit_code"] == 0 and "input errors" in r["message"])
        for r in results
    )
    from judgefactory.tables import md_table

    rows = []
    for r in results:
        msg = r["message"].replace(str(tmp), "$TMP").replace(str(MIRROR), "$MIRROR").replace("|", "\\|")
        cmd = r["command"].replace(str(tmp), "$TMP").replace(str(MIRROR), "$MIRROR")
        rows.append((r["input"], f"`{cmd}`", r["exit_code"], msg, "yes" if r["workspace_unchanged"] else "**no**"))
    print("\n" + md_table(["bad input", "command", "exit", "the one line it printed", "artifacts unchanged"], rows))
    doc = {
        "all_pass": ok,
        "n": len(results),
        "cpu": platform.processor() or platform.machine(),
        "commit": mf.git_commit(REPO),
        "command": "python dev/bad_inputs.py",
        "cases": [
            {
                **r,
                "message": r["message"].replace(str(tmp), "$TMP").replace(str(MIRROR), "$MIRROR"),
                "command": r["command"].replace(str(tmp), "$TMP").replace(str(MIRROR), "$MIRROR"),
            }
            for r in results
        ],
    }
    mf.write_json(Path(args.out), doc)
    print(f"\nall pass: {ok} ({len(results)} inputs) -> {args.out}")
    shutil.rmtree(tmp, ignore_errors=True)
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
