"""Build hook: a (non-editable) wheel carries the shipped heads, manifest and descriptors under
xapp/_shipped, copied from the source tree at build time, so that an installed xApp finds them from
any directory (xapp/config/shipped.py). Everything else is declared in setup.cfg."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SHIPPED = ("heads", "descriptors")


class BuildWithShippedFiles(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads them from the source tree
        target = Path(self.build_lib) / "xapp" / "_shipped"
        for name in SHIPPED:
            shutil.rmtree(target / name, ignore_errors=True)
            if not Path(name).is_dir():  # the Dockerfile installs first and keeps them at /opt/ric
                self.warn(f"{name}/ not found: the wheel will not carry it (xapp/config/shipped.py)")
                continue
            shutil.copytree(Path(name), target / name, ignore=shutil.ignore_patterns(".*"))


setup(cmdclass={"build_py": BuildWithShippedFiles})
