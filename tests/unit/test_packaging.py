"""The installed package is what the images carry: `pip wheel .` packs only regular packages,
so a folder of modules without `__init__.py` would work in an editable install and be missing
from every image."""

from __future__ import annotations

from pathlib import Path

from setuptools import find_packages

SRC = Path(__file__).resolve().parents[2] / "src"


def test_every_folder_of_modules_is_a_package_the_wheel_includes():
    folders = {
        ".".join(path.parent.relative_to(SRC).parts)
        for path in SRC.rglob("*.py")
        if "egg-info" not in str(path)
    }
    assert folders <= set(find_packages(str(SRC))), folders - set(find_packages(str(SRC)))


def test_each_part_is_importable_by_its_name():
    import importlib

    for part in ("producer", "druid", "superset", "grafana", "native", "resources"):
        assert importlib.import_module(f"wikistreams.{part}").__doc__, part
