import pytest

from wikistreams.producer.config import SettingsError, load_settings
from tests.standins import TEST_CONTACT


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no .env from the developer's checkout
    for name in ("USER_AGENT_CONTACT", "REPLAY_SPEED", "CACHE_BACKEND", "SSE_URL"):
        monkeypatch.delenv(name, raising=False)


def test_missing_contact_names_the_setting():
    with pytest.raises(SettingsError, match="USER_AGENT_CONTACT: is required"):
        load_settings()


@pytest.mark.parametrize(
    "name, value",
    [("REPLAY_SPEED", "warp"), ("CACHE_BACKEND", "memcached"), ("ENRICH_BATCH_MAX_IDS", "500")],
)
def test_bad_values_name_the_setting(monkeypatch, name, value):
    monkeypatch.setenv("USER_AGENT_CONTACT", "ops@wikistreams.dev")
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=name):
        load_settings()


def test_env_beats_dotenv_beats_default(monkeypatch, tmp_path):
    (tmp_path / ".env").write_text(
        "USER_AGENT_CONTACT=dotenv@wikistreams.dev\nKAFKA_TOPIC=from-dotenv\n"
    )
    s = load_settings()
    assert s.user_agent_contact == "dotenv@wikistreams.dev" and s.kafka_topic == "from-dotenv"
    monkeypatch.setenv("KAFKA_TOPIC", "from-env")
    assert load_settings().kafka_topic == "from-env"
    assert load_settings().kafka_linger_ms == 50


def test_user_agent_follows_policy(monkeypatch):
    monkeypatch.setenv("USER_AGENT_CONTACT", "ops@wikistreams.dev")
    ua = load_settings().user_agent
    assert (
        ua.startswith("WikiStreams/") and "(ops@wikistreams.dev)" in ua and "python-requests/" in ua
    )


def test_secrets_are_masked(monkeypatch):
    monkeypatch.setenv("USER_AGENT_CONTACT", "ops@wikistreams.dev")
    monkeypatch.setenv("REDIS_URL", "redis://user:s3cret@cache:6379/0")
    assert "s3cret" not in str(load_settings().masked())


def test_the_event_age_bound_must_cover_the_backfill():
    with pytest.raises(SettingsError, match="EVENT_MAX_AGE_HOURS .* must exceed BACKFILL_HOURS"):
        load_settings(user_agent_contact=TEST_CONTACT, backfill_hours=48, event_max_age_hours=24)
    assert load_settings(user_agent_contact=TEST_CONTACT, backfill_hours=48, event_max_age_hours=0)
    default = load_settings(user_agent_contact=TEST_CONTACT, backfill_hours=168)
    assert default.event_max_age_hours > default.backfill_hours
