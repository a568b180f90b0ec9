"""Optional modules (routes, services, subcommands) are skipped when absent, never when broken."""

from __future__ import annotations

from pathlib import Path

import pytest

from mergebot.modules import optional_import


def test_an_absent_module_or_package_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "plugpkg").mkdir()
    (tmp_path / "plugpkg" / "__init__.py").write_text("")
    (tmp_path / "plugpkg" / "present.py").write_text("VALUE = 7\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert optional_import("plugpkg.absent") is None
    assert optional_import("no_such_package_here.routes") is None
    present = optional_import("plugpkg.present")
    assert present is not None
    assert present.VALUE == 7


def test_a_module_whose_own_import_is_missing_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "plugpkg2").mkdir()
    (tmp_path / "plugpkg2" / "__init__.py").write_text("")
    (tmp_path / "plugpkg2" / "broken.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="no_such_dependency_xyz"):
        optional_import("plugpkg2.broken")
