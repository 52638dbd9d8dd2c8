"""Import and export the dashboard bundle through Superset's own commands, in an app context.

Runs only under a Python with Superset installed (the Superset venv or image): no server,
password or browser session is needed, only the metadata database the config points at.
Superset is imported inside the functions so that importing this module (the CLI's help, mypy)
never builds an app.

Import uses ``ImportAssetsCommand``: Superset's command for assets kept under source control. It
imports databases, datasets, charts and dashboards in one transaction and overwrites each by
UUID, and it points every chart (and its saved query context, which ``/api/v1/chart/<id>/data``
and reports execute) at this instance's dataset id. The per-type commands behind
``superset import-dashboards`` would overwrite only the dashboard and leave an edited chart as
it was.
"""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

from wikistreams.superset.applied import AppliedPassword
from wikistreams.superset.assets import (
    BUNDLE_ROOT,
    BundleError,
    assets_contents,
    bundle_dashboard_uuid,
    normalise,
)


class SetupError(Exception):
    """Superset's metadata database is not in a state this tool can continue from."""


def ensure_admin(username: str, email: str, password: str, applied: AppliedPassword) -> str:
    """Create the admin with the Admin role, or give it the environment's password when that
    changed since the last init: "created", "updated" or "unchanged".

    A password changed in the UI stays as long as SUPERSET_ADMIN_PASSWORD stays what init applied
    last (``applied``). The password comes from the caller (the environment), never from a
    command line, which every user of the machine can read.
    """
    from superset.app import create_app

    with create_app().app_context():
        from superset.extensions import security_manager as sm

        user = sm.find_user(username=username)
        if user is not None:
            if applied.matches(username, password):
                return "unchanged"
            sm.reset_password(user.id, password)
            applied.record(username, password)
            return "updated"
        if sm.find_user(email=email) is not None:
            raise SetupError(f"another user already has the e-mail {email}")
        role = sm.find_role(sm.auth_role_admin) or sm.add_role(sm.auth_role_admin)
        user = sm.add_user(
            username=username,
            first_name="Wiki",
            last_name="Streams",
            email=email,
            role=role,
            password=password,
        )
        if not user:
            raise SetupError(f"creating admin {username!r} failed (see the log above)")
        applied.record(username, password)
        return "created"


@contextmanager
def _as_user(username: str) -> Iterator[Any]:
    """An app context acting as ``username``: the importers create and overwrite only what the
    current user may write, and record them as owner."""
    from superset.app import create_app

    with create_app().app_context():
        from superset.extensions import security_manager
        from superset.utils.core import override_user

        user = security_manager.find_user(username=username)
        if user is None:
            raise SetupError(f"user {username!r} does not exist: run init_superset.sh first")
        with override_user(user):
            yield user


def import_bundle(bundle_dir: Path, username: str) -> dict[str, Any]:
    """Overwrite-import DIR into Superset; return the counts afterwards and the import time.

    The Druid connection carries no password (the broker's SQL endpoint is unauthenticated on
    the project's network), so the command needs no ``passwords`` and no SSH tunnel secrets.
    """
    contents = assets_contents(bundle_dir)
    with _as_user(username):
        from superset.extensions import db
        from superset.commands.importers.v1.assets import ImportAssetsCommand
        from superset.connectors.sqla.models import SqlaTable
        from superset.models.dashboard import Dashboard
        from superset.models.slice import Slice

        started = time.monotonic()
        ImportAssetsCommand(contents).run()
        return {
            "import_seconds": round(time.monotonic() - started, 3),
            "dashboards": db.session.query(Dashboard).count(),
            "charts": db.session.query(Slice).count(),
            "datasets": db.session.query(SqlaTable).count(),
        }


def export_bundle(bundle_dir: Path, username: str, zip_out: Path | None = None) -> list[str]:
    """Export the dashboard whose UUID DIR holds (with its charts, dataset, database) into DIR.

    Superset's ``ExportDashboardsCommand`` for this one dashboard, never others on the instance;
    the export is normalised so git shows only what a person changed.
    """
    uuid = UUID(bundle_dashboard_uuid(bundle_dir))
    buffer = io.BytesIO()
    with _as_user(username):
        from superset.extensions import db
        from superset.commands.dashboard.export import ExportDashboardsCommand
        from superset.models.dashboard import Dashboard

        dashboard = db.session.query(Dashboard).filter_by(uuid=uuid).one_or_none()
        if dashboard is None:
            raise BundleError(f"dashboard {uuid} is not in this Superset: import it first")
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
            for file_name, content in ExportDashboardsCommand([dashboard.id]).run():
                zf.writestr(f"{BUNDLE_ROOT}_export/{file_name}", content())
    if zip_out:
        zip_out.write_bytes(buffer.getvalue())
    return normalise(buffer.getvalue(), bundle_dir)
