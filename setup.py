"""Build hook: puts the firmware sources and the target descriptions into the wheel.

Everything else is declared in pyproject.toml. The repository keeps `firmware/` and
`targets/` at the top (developers build and edit them there); an installed package needs
both, so `build_py` copies them in as package data:

- firmware/ (without build/) -> kenning_hil/sim/firmware_sources/, built on first use into
  the user cache (kenning_hil/sim/firmware_build.py);
- targets/*.yaml -> kenning_hil/targets/shipped/, searched after a project's own targets;
- renode/ -> kenning_hil/targets/renode/ (the .repl/.resc the renode-* targets name).

Editable installs skip the copy: the package then finds both in the checkout.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
FIRMWARE_PACKAGE_DIR = ("kenning_hil", "sim", "firmware_sources")
TARGETS_PACKAGE_DIR = ("kenning_hil", "targets", "shipped")
# build outputs and editor/OS litter are not sources
FIRMWARE_IGNORE = shutil.ignore_patterns("build", "*.o", "*.d", "*.so", "*.elf", "*.map", ".*")


class BuildPyWithPackageData(build_py):
    def run(self):
        editable = getattr(self, "editable_mode", False)
        build_lib = Path(self.build_lib)
        if not editable:
            # `pip install .` builds in ./build: a previous build's copy would keep modules
            # and firmware files deleted since
            shutil.rmtree(build_lib / "kenning_hil", ignore_errors=True)
        super().run()
        if editable:
            return
        firmware = build_lib.joinpath(*FIRMWARE_PACKAGE_DIR)
        shutil.copytree(HERE / "firmware", firmware, ignore=FIRMWARE_IGNORE)
        targets = build_lib.joinpath(*TARGETS_PACKAGE_DIR)
        targets.mkdir(parents=True)
        for description in sorted((HERE / "targets").glob("*.yaml")):
            shutil.copy2(description, targets / description.name)
        # the Renode platforms, where the shipped renode-* descriptions name them (../renode)
        shutil.copytree(HERE / "renode", targets.parent / "renode")


setup(cmdclass={"build_py": BuildPyWithPackageData})
