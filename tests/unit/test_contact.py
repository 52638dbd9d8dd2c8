"""The User-Agent contact rule: a real e-mail address or URL, never a placeholder (issue 12)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from wikistreams.producer.config import SettingsError, load_settings
from wikistreams.producer.contact import SETTING, ContactError, check_contact
from tests.standins import REPO_ROOT

# Where the project publishes example values: whatever they hold is a placeholder by definition.
PUBLISHED_IN = (".env.example", "README.md")
PUBLISHED_VALUE = re.compile(rf"{SETTING}=(\"[^\"]*\"|'[^']*'|\S+)")

ACCEPTED = [
    "ops@wikistreams.dev",
    "jane.doe+wiki@mail.kr",
    "https://github.com/someone/wikistreams",
    "http://wiki.example-free.org/contact",
    "  https://meta.wikimedia.org/wiki/User:Someone  ",
]
REFUSED = {
    "": "is empty",
    "   ": "is empty",
    "you@example.org": "reserved domain",  # .env.example
    "ops@example.com": "reserved domain",
    "ops@example.net": "reserved domain",
    "me@mail.example.co.kr": "reserved domain",
    "https://example.org/me": "reserved domain",
    "ci@wikistreams.invalid": "reserved domain",
    "me@host.test": "reserved domain",
    "me@localhost.localhost": "reserved domain",
    "CHANGE_ME": "placeholder",
    "change-me@corp.com": "placeholder",
    "Change Me": "placeholder",
    "<your e-mail or URL>": "placeholder",
    "your-email@corp.com": "placeholder",
    "x": "neither an e-mail address nor a URL",
    "jane": "neither an e-mail address nor a URL",
    "jane@localhost": "neither an e-mail address nor a URL",
    "ftp://files.corp.com": "neither an e-mail address nor a URL",
    "www.corp.com": "neither an e-mail address nor a URL",
}


@pytest.mark.parametrize("value", ACCEPTED)
def test_accepts_real_contacts(value):
    assert check_contact(value) == value.strip()


@pytest.mark.parametrize("value, reason", REFUSED.items())
def test_refuses_placeholders_and_non_contacts_in_one_line(value, reason):
    with pytest.raises(ContactError, match=reason) as caught:
        check_contact(value)
    message = str(caught.value)
    assert "\n" not in message and message.startswith("USER_AGENT_CONTACT")


def published_values() -> set[str]:
    """Every value the project's documents show for the setting."""
    values: set[str] = set()
    for name in PUBLISHED_IN:
        text = (REPO_ROOT / name).read_text(encoding="utf-8")
        values.update(m.group(1).strip("'\"") for m in PUBLISHED_VALUE.finditer(text))
    return values


def test_every_value_the_docs_publish_is_refused():
    """By the rules alone: the installed package (the image, a wheel) has no documents to read."""
    published = published_values()
    assert "you@example.org" in published  # .env.example, generated from the settings model
    assert any("your" in value for value in published)  # the README's make up commands
    for value in published:
        with pytest.raises(ContactError):
            check_contact(value)


def test_a_copied_env_example_refuses_to_start_the_producer(tmp_path, monkeypatch):
    """Only the secrets filled in: the producer still stops on the example contact."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("USER_AGENT_CONTACT", raising=False)
    (tmp_path / ".env").write_text((REPO_ROOT / ".env.example").read_text(encoding="utf-8"))
    with pytest.raises(SettingsError, match="USER_AGENT_CONTACT: .*reserved domain"):
        load_settings()


def test_runs_without_the_project_installed():
    """deploy/render-env.sh runs the file with a bare python3 on the VM."""
    script = REPO_ROOT / "src" / "wikistreams" / "producer" / "contact.py"
    env = {"PATH": "/usr/bin:/bin"}
    ok = subprocess.run([sys.executable, "-S", str(script), "ops@wikistreams.dev"], env=env)
    assert ok.returncode == 0
    bad = subprocess.run(
        [sys.executable, "-S", str(script), "you@example.org"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and "reserved domain" in bad.stderr
