"""A path option in space form must not move pytest's rootdir unnoticed (#23 finding 5).

pytest decides the rootdir and ini file before installed plugins add their options, so in
``pytest --target-dir /other/project`` the value counts as a test path and can make
/other/project the rootdir. The plugin re-decides without the option values and stops with a
one-line error naming the fix (the ``=`` form) when they moved it; the ``=`` form runs from
the project's own rootdir."""

import pytest

from kenning_hil.config.options import OPTIONS
from kenning_hil.pytest_plugin.options import PATH_KINDS, space_form_path_options
from tests.plugin.conftest import run

pytest_plugins = ["pytester"]

PATH_FLAGS = [option.flag for option in OPTIONS if option.kind in PATH_KINDS]
TEST = "def test_rootdir(pytestconfig):\n    print('ROOT', pytestconfig.rootpath)\n"


def test_every_path_option_is_known_in_space_form():
    assert {"--target-dir", "--baseline", "--hil-report", "--models-path",
            "--compile-cache", "--suite"} <= set(PATH_FLAGS)
    args = ["-q", "--target-dir", "a", "--baseline=b", "--hil-report", "c", "--", "--suite", "d"]
    assert space_form_path_options(args) == [("--target-dir", "a"), ("--hil-report", "c")]


@pytest.fixture
def projects(pytester):
    """The project under test (cwd, own ini) and another project beside it."""
    pytester.makeini("[pytest]\nhil_samples = 3\n")
    pytester.makepyfile(test_root=TEST)
    other = pytester.path.parent / f"{pytester.path.name}-other"
    other.mkdir()
    (other / "pytest.ini").write_text("[pytest]\n")
    return pytester, other


@pytest.mark.parametrize("flag", ["--target-dir", "--baseline"])
def test_space_form_that_moves_the_rootdir_is_refused(projects, flag):
    project, other = projects
    result = run(project, flag, str(other), "-s")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([
        f"ERROR: kenning-hil: '{flag} {other}' made pytest take {other} as rootdir "
        f"(configuration file {other / 'pytest.ini'}) instead of {project.path}: *; write "
        f"{flag}={other}, or name the test paths too (e.g. '.')"])


def test_equals_form_and_harmless_space_form_run_in_the_project(projects):
    project, other = projects
    result = run(project, f"--target-dir={other}", "-s")
    assert result.ret == 0
    result.stdout.fnmatch_lines([f"*ROOT {project.path}"])
    # with a test path given, the value does not decide the rootdir: nothing to refuse
    result = run(project, "test_root.py", "--target-dir", str(other), "-s")
    assert result.ret == 0
    result.stdout.fnmatch_lines([f"*ROOT {project.path}"])
