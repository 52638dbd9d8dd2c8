import gc
import resource
import threading
import time
import unicodedata

import pytest
from structlog.testing import capture_logs

from wikistreams.producer.wikidata import (
    MAX_REDIRECTS,
    MAX_TERM_CHARS,
    WikidataClient,
    WikidataUnavailable,
    clean_term,
    entity_id_for,
    parse_entities,
)
from tests.conftest import USER_AGENT, wait_until
from tests.standins.wikidata_api import _gzip_bomb


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


# Garbage a second try may not meet again (a broken body, an error page) is retried; valid JSON
# of the wrong shape or a redirect loop would come back the same and ends the call at once.
RETRIED_GARBAGE = ["truncated", "bad_gzip", "html", "empty"]
FINAL_GARBAGE = ["null", "list", "entities_list", "error_string"]


@pytest.mark.parametrize("kind", RETRIED_GARBAGE + FINAL_GARBAGE + ["redirect_loop"])
def test_garbage_answers_end_as_unavailable(wikidata, kind):
    wikidata.behaviour.garbage = kind
    api = client(wikidata)
    with capture_logs() as logs, pytest.raises(WikidataUnavailable) as caught:
        api.fetch(["Q42", "Q6"])
    expected_requests = {"redirect_loop": MAX_REDIRECTS + 1}.get(
        kind, 3 if kind in RETRIED_GARBAGE else 1
    )
    assert len(wikidata.behaviour.requests) == expected_requests
    assert caught.value.retry_after is None
    errors = [e for e in logs if e["event"] == "wikidata_api_error"]
    assert errors and all({"error_class", "error", "status"} <= set(e) for e in errors)


def test_garbage_for_the_next_request_only_then_real_answers(wikidata):
    wikidata.behaviour.garbage, wikidata.behaviour.garbage_next = "truncated", 1
    result = client(wikidata, retry_after_cap=0.05).fetch(["Q42"])
    assert result.found["Q42"].label_en == "Douglas Adams"
    assert len(wikidata.behaviour.requests) == 2
    assert wikidata.behaviour.garbage is None


def test_a_label_that_is_a_number_is_skipped_not_fatal(wikidata):
    wikidata.behaviour.garbage = "label_number"  # Q42's first label (ko) becomes 42
    result = client(wikidata).fetch(["Q42"])
    assert result.found["Q42"].label_ko is None
    assert result.found["Q42"].label_en == "Douglas Adams"


def test_an_entity_that_is_a_string_counts_as_not_found_alone(wikidata):
    wikidata.behaviour.garbage = "entity_string"  # the first requested entity becomes a string
    result = client(wikidata).fetch(["Q42", "P31", "Q6"])
    assert sorted(result.not_found) == ["Q42", "Q6"]
    assert result.found["P31"].label_ko == "종류"


def test_terms_of_the_wrong_type_are_skipped():
    entities = {
        "Q1": {"labels": ["not", "a", "map"], "descriptions": "nor this"},
        "Q2": {
            "labels": {
                "ko": "a string, not a term",
                "en": {"language": ["en"], "value": "bad language"},
                "mul": {"language": "mul", "value": "Tokyo"},
            },
            "descriptions": {"en": {"language": "en", "value": None}},
        },
        "Q3": None,
        "Q4": 7,
    }
    result = parse_entities(entities, ["Q1", "Q2", "Q3", "Q4"])
    assert result.found["Q1"].label_en is None and result.found["Q1"].description_en is None
    assert (result.found["Q2"].label_ko, result.found["Q2"].label_en) == ("Tokyo", "Tokyo")
    assert result.found["Q2"].description_en is None
    assert result.not_found == ["Q3", "Q4"]


def test_retry_after_beyond_the_budget_ends_the_call_at_once(wikidata):
    b = wikidata.behaviour
    b.http_status, b.http_status_next, b.retry_after = 503, 10, "5"
    api = client(wikidata, max_retries=5, retry_after_cap=30, retry_budget_seconds=2)
    with pytest.raises(WikidataUnavailable, match="beyond the retry budget") as caught:
        api.fetch(["Q42"])
    assert len(b.requests) == 1, "no sleep inside the call, no second request"
    assert caught.value.retry_after == 5.0


def test_retry_after_reported_to_the_caller_is_capped(wikidata):
    b = wikidata.behaviour
    b.maxlag_next, b.retry_after = 10, "120"
    api = client(wikidata, max_retries=5, retry_after_cap=30, retry_budget_seconds=10)
    with pytest.raises(WikidataUnavailable) as caught:
        api.fetch(["Q42"])
    assert len(b.requests) == 1
    assert caught.value.retry_after == 30.0


def test_retries_stop_at_the_budget_not_at_the_count(wikidata):
    b = wikidata.behaviour
    b.http_status, b.http_status_next, b.retry_after = 503, 100, "0.3"
    api = client(wikidata, max_retries=50, retry_after_cap=1, retry_budget_seconds=1.0)
    with pytest.raises(WikidataUnavailable) as caught:
        api.fetch(["Q42"])
    # Waits of 0.3 s fit three times into 1 s: the fourth would end beyond the budget.
    assert len(b.requests) == 4
    assert caught.value.retry_after == 0.3


def test_outage_hanging_then_503_ends_within_the_budget(wikidata):
    b = wikidata.behaviour
    b.outage, b.outage_hang_seconds = True, 0.6
    api = WikidataClient(
        wikidata.url,
        USER_AGENT,
        timeout=0.25,
        max_retries=20,
        retry_after_cap=0.05,
        retry_budget_seconds=1.0,
    )
    started = time.monotonic()
    with pytest.raises(WikidataUnavailable, match="Timeout"):
        api.fetch(["Q42"])
    assert time.monotonic() - started < 1.5
    assert 2 <= len(b.requests) <= 5, "retried, but only as often as the budget allows"


def test_outage_503_after_the_hang_reports_retry_after(wikidata):
    b = wikidata.behaviour
    b.outage, b.outage_hang_seconds, b.retry_after = True, 0.1, "3"
    api = client(wikidata, retry_after_cap=30, retry_budget_seconds=2)
    with pytest.raises(WikidataUnavailable, match="HTTP 503") as caught:
        api.fetch(["Q42"])
    assert len(b.requests) == 1 and caught.value.retry_after == 3.0


def test_an_unreachable_api_is_unavailable_not_a_connection_error():
    api = WikidataClient(
        "http://127.0.0.1:9/w/api.php", USER_AGENT, max_retries=1, retry_after_cap=0.05
    )
    with pytest.raises(WikidataUnavailable, match="ConnectionError"):
        api.fetch(["Q42"])
    assert api.stats.errors == 2


def test_a_bad_url_is_unavailable_at_once():
    api = WikidataClient("not a url", USER_AGENT, max_retries=3)
    with pytest.raises(WikidataUnavailable, match="InvalidURL"):
        api.fetch(["Q42"])
    assert api.stats.calls == 1


# --- hostile answers: every one is bounded in bytes, seconds and characters -------------------


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def _fetch_in_thread(api: WikidataClient, ids: list[str], limit: float = 30.0):
    """Run `fetch` on a thread (as the enricher does) and return its outcome, or fail the test
    if it has not returned after `limit` s: a generous bound on a call budgeted at 2 s."""
    outcome: dict = {}

    def call() -> None:
        try:
            outcome["result"] = api.fetch(ids)
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            outcome["error"] = exc

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(limit)
    assert not thread.is_alive(), f"fetch still running after {limit} s"
    return outcome


def test_a_gzip_bomb_is_refused_after_max_answer_bytes_not_inflated(wikidata):
    b = wikidata.behaviour
    b.garbage = "gzip_bomb"  # 0.5 MB on the wire, 500 MB inflated
    _gzip_bomb(b.bomb_bytes)  # built before measuring: the stand-in shares this process
    gc.collect()
    peak_before = _peak_rss_bytes()
    api = client(wikidata)
    with capture_logs() as logs, pytest.raises(WikidataUnavailable, match="too large"):
        api.fetch(["Q42"])
    grown = _peak_rss_bytes() - peak_before
    assert grown < 100_000_000, f"peak RSS grew by {grown / 1e6:.0f} MB reading a gzip bomb"
    assert len(b.requests) == 1, "a bomb would come back as big: no retry"
    assert [e["error_class"] for e in logs if e["event"] == "wikidata_api_error"] == [
        "AnswerTooLarge"
    ]


def test_a_body_that_drips_in_ends_at_the_attempt_deadline(wikidata):
    b = wikidata.behaviour
    b.garbage, b.drip_seconds = "slow_drip", 0.5  # a ~300-byte answer would take minutes
    api = WikidataClient(
        wikidata.url,
        USER_AGENT,
        timeout=1.0,
        max_retries=5,
        retry_after_cap=0.05,
        retry_budget_seconds=2.0,
    )
    outcome = _fetch_in_thread(api, ["Q42"])
    assert isinstance(outcome.get("error"), WikidataUnavailable)
    assert "Timeout" in str(outcome["error"])
    assert 1 <= len(b.requests) <= 3, "retried only while the budget lasts"


def test_close_ends_an_answer_being_read(wikidata):
    b = wikidata.behaviour
    b.garbage, b.drip_seconds = "slow_drip", 0.5
    # Only `close` can end this call before the drip does (minutes from now).
    api = WikidataClient(
        wikidata.url, USER_AGENT, timeout=600, max_retries=0, retry_budget_seconds=600
    )
    result: dict = {}

    def call() -> None:
        try:
            api.fetch(["Q42"])
        except WikidataUnavailable as exc:
            result["error"] = exc

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    wait_until(lambda: b.requests, seconds=10)
    api.close()
    worker.join(30)
    assert not worker.is_alive(), "close() did not end the read"
    assert "closed" in str(result["error"])


def test_a_huge_label_is_cut_to_wikidatas_limit(wikidata):
    wikidata.behaviour.garbage = "huge_label"
    wikidata.behaviour.huge_label_chars = 100_000  # Q42's first label
    labels = client(wikidata).fetch(["Q42"]).found["Q42"]
    assert labels.label_ko == "x" * MAX_TERM_CHARS
    assert labels.label_en == "Douglas Adams"


def test_an_answer_with_a_two_million_character_label_is_refused_whole(wikidata):
    wikidata.behaviour.garbage = "huge_label"  # 2,000,001 characters: over MAX_ANSWER_BYTES
    with pytest.raises(WikidataUnavailable, match="too large"):
        client(wikidata).fetch(["Q42", "P31"])
    assert len(wikidata.behaviour.requests) == 1


def test_control_characters_never_leave_the_client(wikidata):
    wikidata.behaviour.garbage = "control_chars"
    labels = client(wikidata).fetch(["Q42"]).found["Q42"]
    # Each run of control characters is one space (the escape's printable tail stays, inert).
    assert labels.label_ko == "[31m 더글러스 애덤스 [31m"
    assert labels.label_en == "[31m Douglas Adams [31m"
    for value in (labels.label_ko, labels.label_en, labels.description_en):
        assert value and not any(unicodedata.category(c) == "Cc" for c in value)


@pytest.mark.parametrize(
    "raw, clean",
    [
        ("Douglas Adams", "Douglas Adams"),
        ("  a\x00b\r\n\tc\x7f\x9f ", "a b c"),
        ("\x00\x01", None),
        ("x" * 300, "x" * MAX_TERM_CHARS),
        ("é" * 251, "é" * 250),
    ],
)
def test_clean_term(raw, clean):
    assert clean_term(raw) == clean
