"""Plugins by name: built-ins, entry points of installed packages, import paths."""

from __future__ import annotations

import sys

import pytest

from merkl.catalog import registry
from merkl.catalog.registry import find_plugins, get_plugin, plugin_paths
from merkl.catalog.sinks.file import FileSink
from merkl.errors import CatalogError, PluginNotFoundError
from tests.catalog.plugins import CountingSource


@pytest.fixture
def installed_plugin_package(tmp_path, monkeypatch):
    """A distribution on sys.path that declares a source under `merkl.catalog.sources`."""
    dist = tmp_path / "site" / "merkl_counting-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: merkl-counting\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[merkl.catalog.sources]\ncounting = tests.catalog.plugins:CountingSource\n"
        "merlin = tests.catalog.plugins:CountingSource\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    registry._entry_point_paths.cache_clear()
    yield
    registry._entry_point_paths.cache_clear()


def test_builtin_names():
    assert get_plugin("sink", "file") is FileSink
    assert set(plugin_paths("sink")) >= {"console", "file", "http", "compass"}


def test_entry_point_plugins_are_found_and_cannot_shadow_builtins(installed_plugin_package):
    assert get_plugin("source", "counting") is CountingSource
    assert get_plugin("source", "merlin").__module__ == "merkl.catalog.sources.merlin"
    assert "counting" in plugin_paths("source")


def test_unknown_names_list_the_known_ones():
    with pytest.raises(PluginNotFoundError) as caught:
        get_plugin("processor", "script")
    assert str(caught.value) == (
        "no catalog processor named 'script'; known processors: enrich, labels (other packages "
        "add processors under the entry point group 'merkl.catalog.processors')"
    )
    assert isinstance(caught.value, KeyError)
    with pytest.raises(PluginNotFoundError, match="no catalog plugin named 'x'; known: compass"):
        find_plugins("x")


def test_import_paths():
    assert get_plugin("source", "tests.catalog.plugins:CountingSource") is CountingSource
    with pytest.raises(PluginNotFoundError, match="has no 'Nope'"):
        get_plugin("source", "tests.catalog.plugins:Nope")
    with pytest.raises(CatalogError, match="is not a merkl catalog sink class"):
        get_plugin("sink", "tests.catalog.plugins:CountingSource")
    with pytest.raises(CatalogError, match=r"cannot be loaded .*pip install 'merkl\[catalog\]'"):
        get_plugin("sink", "no_such_package.sinks:Sink")


def test_importing_merkl_loads_no_catalog_dependency():
    import subprocess

    code = (
        "import sys, merkl, merkl.cli; "
        "heavy = {'pydantic', 'httpx', 'yaml', 'google', 'merkl.catalog'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("kind", "name"),
    [(kind, name) for kind in registry.PLUGIN_KINDS for name in registry.BUILTIN_PLUGINS[kind]],
)
def test_every_builtin_sample_config_is_valid(kind, name):
    import yaml

    from merkl.catalog.template import expand_env

    cls = get_plugin(kind, name)
    assert cls.name == name
    assert cls.info.description
    sample = yaml.safe_load(cls.info.sample_config) or {}
    cls.Config.model_validate(expand_env(sample, {}, lambda _path: None, name))
