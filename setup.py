"""Package discovery: the repository's top-level folders are installed under one `posebridge`
namespace (posebridge.pipeline <- pipeline/, ...), so the generic names never clash with other
installed packages. pyproject.toml's [tool.setuptools.packages.find] cannot map folders to other
names, so every package under each mapped folder is found here: a new subpackage (a folder with
an __init__.py) cannot be left out of the wheel. Everything else is in pyproject.toml."""
from setuptools import find_packages, setup

ROOTS = ("pipeline", "stages", "cache")  # top-level folder -> posebridge.<folder>


def packages_and_dirs() -> tuple[list[str], dict[str, str]]:
    packages, package_dir = [], {}
    for root in ROOTS:
        package_dir[f"posebridge.{root}"] = root
        packages += [f"posebridge.{root}", *(f"posebridge.{root}.{sub}" for sub in find_packages(root))]
    return sorted(packages), package_dir


if __name__ == "__main__":
    PACKAGES, PACKAGE_DIR = packages_and_dirs()
    setup(packages=PACKAGES, package_dir=PACKAGE_DIR)
