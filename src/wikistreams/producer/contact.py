"""Is a User-Agent contact real? The rule the producer and the deployment's env renderer share.

Wikimedia's User-Agent policy asks every client for a way to reach its operator: an e-mail
address or a URL. A placeholder left in place (the value copied from ``.env.example`` or the
README) sends Wikimedia a contact that reaches nobody, so it is refused before the first request,
with one line that says why. The rules below are all there is: no document is read at run time
(installed, there is none), and a unit test proves that they refuse every value the project's
documents show.

Standard library only, so ``deploy/render-env.sh`` runs it on a VM without the project installed:

    python3 src/wikistreams/producer/contact.py 'ops@example.net'   # exit 1, reason on stderr
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from urllib.parse import urlsplit

SETTING = "USER_AGENT_CONTACT"
# Domains that can never reach anyone: RFC 2606 / RFC 6761 reserved names.
RESERVED_TLDS = frozenset({"example", "invalid", "test", "localhost", "local"})
RESERVED_SECOND_LEVEL = "example"  # example.com, example.org, example.net, example.co.kr, ...
PLACEHOLDER = re.compile(r"change[\W_]*me|your[\W_]*(e[\W_]*mail|own|address)", re.I)
# A pragmatic e-mail shape (RFC 5322 allows more, the policy needs a reachable address).
EMAIL = re.compile(r"^[A-Za-z0-9._%+\-]+@(?P<domain>[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)+)$")
HOSTNAME = re.compile(r"^[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)+$")


class ContactError(ValueError):
    """The contact is missing, a placeholder or not an e-mail address or URL."""


def _domain(value: str) -> str | None:
    """The domain of an e-mail address or of an http(s) URL; None when it is neither."""
    email = EMAIL.match(value)
    if email:
        return email.group("domain").lower()
    parts = urlsplit(value)
    if parts.scheme in ("http", "https") and parts.hostname and HOSTNAME.match(parts.hostname):
        return parts.hostname.lower()
    return None


def check_contact(value: str) -> str:
    """Return the contact stripped, or raise ContactError with a one-line reason."""
    value = value.strip()
    wanted = "set your own e-mail address or URL (Wikimedia's User-Agent policy)"
    if not value:
        raise ContactError(f"{SETTING} is empty: {wanted}")
    if PLACEHOLDER.search(value):
        raise ContactError(f"{SETTING}={value!r} is the placeholder the docs show: {wanted}")
    domain = _domain(value)
    if domain is None:
        raise ContactError(f"{SETTING}={value!r} is neither an e-mail address nor a URL: {wanted}")
    labels = domain.split(".")
    if labels[-1] in RESERVED_TLDS or RESERVED_SECOND_LEVEL in labels[:-1]:
        raise ContactError(
            f"{SETTING}={value!r} uses {domain}, a reserved domain that reaches nobody: {wanted}"
        )
    return value


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(f"usage: {Path(__file__).name} CONTACT", file=sys.stderr)
        return 2
    try:
        check_contact(args[0])
    except ContactError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
