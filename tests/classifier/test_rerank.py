import pytest

from classifier import rerank


@pytest.fixture
def candidates(jd_version):
    nodes = {n.code: n for n in jd_version.nodes.filter(depth=2)}
    return [(nodes[c], s) for c, s in [("10.02", 0.84), ("20.02", 0.83), ("10.01", 0.82), ("25.01", 0.80),
                                       ("55.01", 0.79)]]


def test_parse_answer_accepts_only_schema_valid_json():
    codes = ["10.02", "20.02"]
    assert rerank.parse_answer('{"code": "20.02", "confidence": 0.7, "reason": "pipes"}', codes).code == "20.02"
    for bad, why in [('{"code": "20.02", "confidence": 0.7', "not JSON"),
                     ('{"code": "99.99", "confidence": 0.7, "reason": "x"}', "'99.99' is not one of the candidates"),
                     ('{"code": "10.02", "confidence": 7, "reason": "x"}', "not a number between 0 and 1"),
                     ('{"code": "10.02", "confidence": 0.5}', "reason is missing"),
                     ('["10.02"]', "not a JSON object")]:
        with pytest.raises(ValueError, match=why.replace("(", r"\(")):
            rerank.parse_answer(bad, codes)


def test_the_request_carries_candidates_and_a_json_schema(fake_llm, candidates):
    answer = rerank.choose(url=fake_llm.url + "/v1", api_key="", model=fake_llm.model, user="mia",
                           excerpt="plumber_report.docx Repairs by a contractor: fixed the leaking pipe",
                           candidates=candidates)
    choice = answer.choice
    assert answer.problems == [] and choice.code == "20.02" and 0 <= choice.confidence <= 1 and choice.reason
    body = fake_llm.requests[-1]["body"]
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["schema"]["properties"]["code"]["enum"] == ["10.02", "20.02", "10.01", "25.01", "55.01"]
    assert "20.02: Home / Repairs — repairs and renovation by contractors" in body["messages"][1]["content"]
    assert body["user"] == "mia"


@pytest.mark.parametrize("script", [["invalid"], ["wrong_code"], ["error"]])
def test_an_invalid_answer_is_retried_once(fake_llm, candidates, script):
    fake_llm.script[:] = script
    answer = rerank.choose(url=fake_llm.url + "/v1", api_key="", model=fake_llm.model, user="mia",
                           excerpt="grocery receipt milk bread", candidates=candidates)
    assert answer.choice is not None and len(answer.problems) == 1 and len(fake_llm.requests) == 2


def test_two_invalid_answers_give_up(fake_llm, candidates):
    fake_llm.script[:] = ["invalid", "wrong_code"]
    answer = rerank.choose(url=fake_llm.url + "/v1", api_key="", model=fake_llm.model, user="mia",
                           excerpt="grocery receipt", candidates=candidates)
    assert answer.choice is None and answer.refusal is None
    assert answer.problems[0].startswith("not JSON") and "'99.99' is not one of the candidates" in answer.problems[1]
    assert answer.fallback_reason().startswith("LLM answer invalid twice (not JSON")
