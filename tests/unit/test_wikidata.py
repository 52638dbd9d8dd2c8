import pytest

from producer.wikidata import WikidataClient, WikidataUnavailable, entity_id_for, parse_entities
from tests.conftest import USER_AGENT


def client(server, **kw) -> WikidataClient:
    kw.setdefault("max_retries", 2)
    kw.setdefault("retry_after_cap", 0.2)
    return WikidataClient(server.url, USER_AGENT, timeout=2.0, **kw)


@pytest.mark.parametrize(
    "wiki, ns, title, expected",
    [
        ("wikidatawiki", 0, "Q42", "Q42"),
        ("wikidatawiki", 120, "Property:P31", "P31"),
        ("wikidatawiki", 146, "Lexeme:L1", "L1"),
        ("wikidatawiki", 1, "Talk:Q42", None),
        ("wikidatawiki", 0, "Q0", None),
        ("wikidatawiki", 121, "Property talk:P4916", None),
        ("enwiki", 0, "Q42", None),
    ],
)
def test_entity_titles(wiki, ns, title, expected):
    assert entity_id_for(wiki, ns, title) == expected


def test_labels_redirects_and_missing_from_recorded_api_data(wikidata):
    result = client(wikidata).fetch(["Q42", "P31", "Q32063953", "Q6", "Q4115189"])
    assert result.found["Q42"].label_ko == "더글러스 애덤스"
    assert result.found["Q42"].label_en == "Douglas Adams"
    assert result.found["P31"].label_ko == "종류"
    assert result.found["P31"].description_ko
    # A redirect answers with the target's labels (Q1040, Karlsruhe).
    assert result.found["Q32063953"].label_en == "Karlsruhe"
    assert result.found["Q4115189"].label_ko is None  # English fallback is not Korean
    assert result.found["Q4115189"].label_en
    assert result.not_found == ["Q6"]
    (request,) = wikidata.behaviour.requests
    assert request["ids"] == "Q42|P31|Q32063953|Q6|Q4115189"
    assert request["languages"] == "ko|en|mul"
    assert request["maxlag"] == "5"
    assert request["user_agent"] == USER_AGENT


def test_mul_label_counts_for_both_languages():
    entities = {"Q1": {"id": "Q1", "labels": {"mul": {"language": "mul", "value": "Tokyo"}}}}
    labels = parse_entities(entities, ["Q1"]).found["Q1"]
    assert (labels.label_ko, labels.label_en, labels.description_en) == ("Tokyo", "Tokyo", None)


def test_formatversion_2_missing(wikidata):
    assert parse_entities({"Q9": {"id": "Q9", "missing": True}}, ["Q9"]).not_found == ["Q9"]


def test_maxlag_is_retried_after_retry_after(wikidata):
    wikidata.behaviour.maxlag_next = 2
    wikidata.behaviour.retry_after = "0.1"
    api = client(wikidata)
    result = api.fetch(["Q42"])
    assert result.found["Q42"].label_en == "Douglas Adams"
    assert len(wikidata.behaviour.requests) == 3
    assert api.stats.errors == 2


@pytest.mark.parametrize("mode", ["ratelimited", "http429", "http503"])
def test_rate_limits_and_outages_give_up_after_retries(wikidata, mode):
    b = wikidata.behaviour
    if mode == "ratelimited":
        b.ratelimited_next = 10
    else:
        b.http_status, b.http_status_next = int(mode[4:]), 10
    b.retry_after = "0"
    with pytest.raises(WikidataUnavailable):
        client(wikidata).fetch(["Q42"])
    assert len(b.requests) == 3  # first try + 2 retries


def test_timeout_is_retryable_then_unavailable(wikidata):
    wikidata.behaviour.delay_seconds = 0.5
    api = WikidataClient(wikidata.url, USER_AGENT, timeout=0.1, max_retries=1, retry_after_cap=0.1)
    with pytest.raises(WikidataUnavailable, match="Timeout"):
        api.fetch(["Q42"])


def test_more_than_50_ids_is_a_bug():
    with pytest.raises(ValueError):
        WikidataClient("http://127.0.0.1:9", USER_AGENT).fetch([f"Q{i}" for i in range(1, 52)])
