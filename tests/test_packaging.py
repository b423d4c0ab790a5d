"""The wheel cannot miss a subpackage or a data folder: setup.py finds every package under the
mapped folders, and pyproject's package-data globs cover the data files that live in them.
(.ci/wheel_check.sh builds the real wheel and checks its file list the same way.)"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROOTS = ("pipeline", "stages", "cache")


def _expected_packages() -> set[str]:
    return {"posebridge." + ".".join(init.parent.relative_to(ROOT).parts)
            for top in ROOTS for init in (ROOT / top).rglob("__init__.py")}


def _configured() -> dict:
    """What setuptools itself makes of setup.py + pyproject.toml (no build)."""
    code = ("import json, setuptools; from distutils.core import run_setup; "
            "d = run_setup('setup.py', stop_after='config'); "
            "print(json.dumps({'packages': d.packages, 'package_dir': d.package_dir, 'package_data': d.package_data}))")
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, check=True)
    import json

    return json.loads(out.stdout.strip().splitlines()[-1])


def test_every_folder_with_an_init_is_a_configured_package():
    config = _configured()
    expected = _expected_packages()
    assert "posebridge.stages.train.encoders" in expected
    assert expected <= set(config["packages"]), expected - set(config["packages"])
    assert config["package_dir"] == {f"posebridge.{top}": top for top in ROOTS}


def test_data_files_under_the_packages_are_covered_by_package_data(tmp_path):
    """Every non-Python file under a mapped folder matches a package-data glob of its package (the
    nearest folder with an __init__.py above it), e.g. stages/splits/data/** or cache/layouts/*.json."""
    from fnmatch import fnmatch

    config = _configured()
    globs = config["package_data"]
    missed = []
    for top in ROOTS:
        for path in (ROOT / top).rglob("*"):
            if not path.is_file() or path.suffix in (".py", ".pyc") or "__pycache__" in path.parts:
                continue
            package = path.parent
            while not (package / "__init__.py").exists():
                package = package.parent
            name = "posebridge." + ".".join(package.relative_to(ROOT).parts)
            rel = path.relative_to(package).as_posix()
            patterns = [*globs.get(name, []), *globs.get("", []), *globs.get("*", [])]
            # setuptools' '**' also matches no folder at all: '**/*.json' covers 'x.json'
            if not any(fnmatch(rel, p) or fnmatch(rel, p.replace("**/", "")) for p in patterns):
                missed.append(f"{top}/{path.relative_to(ROOT / top)}")
    assert not missed, f"not shipped in the wheel: {missed[:10]}"
