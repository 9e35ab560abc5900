import json

import pytest

from judgefactory.data import sources


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


def test_missing_mirror_root_and_offline_hub(tmp_path, monkeypatch):
    with pytest.raises(sources.DataError, match="does not exist"):
        sources.mirror_root(tmp_path / "nope")
    monkeypatch.delenv(sources.MIRROR_ENV, raising=False)
    with pytest.raises(sources.DataError, match="no public hub copy is known"):
        sources.load_rows("judge-from-scratch/bbq-pairs")
