"""The routed judge (judgefactory/route.py): ``route:<absolute>,<pairwise>`` sends each request to its own specialist;
its replies are each specialist's own, byte for byte."""

from __future__ import annotations

import pytest
from conftest import build_tiny_llama
from test_merge import make_adapter

from judgefactory import formats, leakage, models, route
from judgefactory.api import Judge
from judgefactory.bench.run import model_fingerprint
from judgefactory.engine import Engine

RUBRIC = formats.rubric("Is it correct?", ["no", "barely", "partly", "mostly", "yes"])


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("route")
    base = build_tiny_llama(root / "base", seed=0)
    for seed, name in ((3, "abs"), (4, "pw")):
        make_adapter(root / "adapters" / name, base, seed=seed, modules=["q_proj", "v_proj", "down_proj"])
    return root


@pytest.fixture()
def home(world, monkeypatch):
    monkeypatch.setenv("JUDGEFACTORY_HOME", str(world))
    return world


def _requests():
    absolute = [
        formats.absolute_messages(formats.absolute_prompt(f"question w{i}", f"answer w{i + 1} is good", RUBRIC))
        for i in range(3)
    ]
    relative = [formats.relative_messages(formats.relative_prompt("question w7", "a good", "a bad", RUBRIC))]
    bias = [
        formats.bias_messages(formats.bias_prompt("the w1 w2", f"which w{i}", ["w3", "w4", "w5"], "A chose", "B chose"))
        for i in range(3)
    ]
    # interleaved, so routing must put every reply back in input order
    return [bias[0], absolute[0], relative[0], bias[1], absolute[1], absolute[2], bias[2]]


def test_routed_replies_are_each_specialists_own(home):
    routed = Engine.from_ref("route:abs,pw", dtype="float32", batch_size=4)
    own = {"absolute": Engine.from_ref("adapter:abs", dtype="float32"), "pairwise": Engine.from_ref("adapter:pw")}
    assert routed.label == models.label("route:abs,pw") == "route-adapter-abs__adapter-pw"
    assert routed.info["backend"] == "route" and set(routed.info["parts"]) == {"absolute", "pairwise"}
    reqs = _requests()
    got = routed.judge(reqs, max_new_tokens=12)
    parts = [route.part_of(m) for m in reqs]
    assert parts == ["pairwise", "absolute", "absolute", "pairwise", "absolute", "absolute", "pairwise"]
    for part, engine in own.items():
        mine = [m for m, p in zip(reqs, parts, strict=True) if p == part]
        want = engine.judge(mine, max_new_tokens=12)
        assert [g.texts for g, p in zip(got, parts, strict=True) if p == part] == [w.texts for w in want]
    other = own["pairwise"].judge(reqs, max_new_tokens=12)  # the routing matters: the other adapter replies otherwise
    assert [g.texts for g in got] != [o.texts for o in other]
    # with an answer kind: the same values and answer probabilities as the specialist's own
    bias = [m for m, p in zip(reqs, parts, strict=True) if p == "pairwise"]
    want_v = own["pairwise"].judge(bias, max_new_tokens=12, answer="verdict")
    got_v = routed.judge(bias, max_new_tokens=12, answer="verdict")
    assert [g.to_json() for g in got_v] == [w.to_json() for w in want_v]


def test_judge_load_grades_with_the_absolute_part_and_compares_with_the_pairwise_part(home):
    routed = Judge.load("route:abs,pw", batch_size=4, grade_tokens=10, compare_tokens=10)
    absolute = Judge.load("adapter:abs", batch_size=4, grade_tokens=10, compare_tokens=10)
    pairwise = Judge.load("adapter:pw", batch_size=4, grade_tokens=10, compare_tokens=10)
    assert routed.grade("question w1", "answer w2", RUBRIC) == absolute.grade("question w1", "answer w2", RUBRIC)
    args = ("which w3", "A chose w4", "B chose w5")
    assert routed.compare(*args, both_orders=True) == pairwise.compare(*args, both_orders=True)


@pytest.mark.parametrize(
    "ref, error",
    [
        ("route:abs,nope", "adapter 'nope' not found"),
        ("route:abs", "a route names two models"),
        ("route:abs,pw,abs", "a route names two models"),
        ("route:abs,route:pw", "a route's parts are models, not routes"),
    ],
)
def test_a_bad_route_is_one_line(home, ref, error):
    with pytest.raises(Exception) as e:
        Engine.from_ref(ref)
    assert error in str(e.value) and "\n" not in str(e.value)


def test_a_request_of_no_judge_format_is_refused(home):
    routed = Engine.from_ref("route:abs,pw")
    with pytest.raises(route.RouteError, match="request 1: the routed judge answers"):
        routed.judge([_requests()[0], [{"role": "user", "content": "hi"}]], max_new_tokens=4)
    with pytest.raises(Exception, match="a route runs on the transformers backend"):
        Engine.from_ref("route:abs,pw", backend="vllm")


def test_a_route_resolves_only_through_its_parts(home):
    with pytest.raises(models.ModelRefError, match="routes between two models"):
        models.resolve("route:abs,pw")
    assert route.parts("route:abs, merge:m") == ("adapter:abs", "merge:m")
    fp = model_fingerprint("route:abs,pw")
    assert fp["kind"] == "route" and fp["manifest_sha256"]
    parts = [model_fingerprint(p)["manifest_sha256"] for p in ("adapter:abs", "adapter:pw")]
    assert fp["manifest_sha256"] not in parts
    trained = leakage.for_model("route:abs,pw")
    assert trained.known == (leakage.for_model("adapter:abs").known and leakage.for_model("adapter:pw").known)
