"""README's configuration table and .env.example come from the settings model; they must agree."""

from wikistreams.producer.docblocks import block_in
from wikistreams.producer.settings_doc import (
    ENV_BEGIN,
    ENV_END,
    TABLE_BEGIN,
    TABLE_END,
    env_block,
    markdown_table,
    rows,
)
from tests.standins import REPO_ROOT


def test_env_example_matches_the_model():
    text = (REPO_ROOT / ".env.example").read_text()
    assert (
        block_in(text, ENV_BEGIN, ENV_END) == env_block()
    ), "regenerate with: python -m wikistreams.producer.settings_doc env"


def test_readme_table_matches_the_model():
    text = (REPO_ROOT / "README.md").read_text()
    assert (
        block_in(text, TABLE_BEGIN, TABLE_END) == markdown_table()
    ), "regenerate with: python -m wikistreams.producer.settings_doc markdown"


def test_required_names_from_the_producer_issue_exist():
    names = {name for name, *_ in rows()}
    assert {
        "SSE_URL",
        "WIKIDATA_API_URL",
        "KAFKA_BOOTSTRAP_SERVERS",
        "KAFKA_TOPIC",
        "KAFKA_DLQ_TOPIC",
        "CACHE_BACKEND",
        "CACHE_DB_PATH",
        "REDIS_URL",
        "KAFKA_POSITION_TOPIC",
        "KAFKA_LEASE_TOPIC",
        "USER_AGENT_CONTACT",
    } <= names


def test_trends_blocks_match_the_trends_model():
    from wikistreams.producer.settings_doc import (
        TRENDS_ENV_BEGIN,
        TRENDS_ENV_END,
        TRENDS_TABLE_BEGIN,
        TRENDS_TABLE_END,
    )
    from wikistreams.trends.config import TrendsSettings

    env = (REPO_ROOT / ".env.example").read_text()
    readme = (REPO_ROOT / "README.md").read_text()
    assert block_in(env, TRENDS_ENV_BEGIN, TRENDS_ENV_END) == env_block(TrendsSettings)
    assert block_in(readme, TRENDS_TABLE_BEGIN, TRENDS_TABLE_END) == markdown_table(TrendsSettings)
    names = {name for name, *_ in rows(TrendsSettings)}
    assert "TRENDS_TOPIC" in names and "KAFKA_TOPIC" not in names  # shared names stay shared
