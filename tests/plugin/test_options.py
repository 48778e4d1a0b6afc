"""Options: each a flag, an ini key and a fixture; precedence parametrization > command line >
environment > ini > default; target selection, pinning and availability."""

import json
import re

import pytest

# In-process pytester runs drop modules first imported inside them; numpy cannot be imported
# twice in one process, so what the plugin imports lazily is imported here, up front.
import kenning_hil.core.runtime  # noqa: F401
import kenning_hil.run.harness  # noqa: F401
import kenning_hil.run.pipeline  # noqa: F401
from kenning_hil.targets.catalog import SHIPPED_TARGETS_DIR, TargetCatalog
from tests.plugin.conftest import run, write_target

pytest_plugins = ["pytester"]

# the package's own target descriptions, searched after a project's
SHIPPED = str(SHIPPED_TARGETS_DIR)
SHIPPED_NAMES = TargetCatalog([SHIPPED_TARGETS_DIR]).names()

SHOW = """
import json, pytest

def test_show(samples, hil_timeout, baseline_dir, update_baseline, hil_report_dir,
              compile_cache_dir, target_dirs, models_path, suite, hil_lock_dir, pytestconfig):
    values = dict(samples=samples, timeout=hil_timeout, baseline=baseline_dir and str(baseline_dir),
                  update=update_baseline, report=str(hil_report_dir), cache=str(compile_cache_dir),
                  target_dirs=[str(p) for p in target_dirs], models=str(models_path),
                  suites=[str(s) for s in suite], locks=hil_lock_dir and str(hil_lock_dir))
    (pytestconfig.rootpath / "values.json").write_text(json.dumps(values))

@pytest.mark.parametrize("samples", [7], indirect=True)
@pytest.mark.parametrize("hil_timeout", [1.5], indirect=True)
def test_param_wins(samples, hil_timeout):
    assert (samples, hil_timeout) == (7, 1.5)
"""


def values(project) -> dict:
    return json.loads((project.path / "values.json").read_text())


def test_defaults(pytester, monkeypatch):
    monkeypatch.delenv("KENNING_HIL_MODELS", raising=False)
    monkeypatch.delenv("KENNING_HIL_LOCK_DIR", raising=False)
    pytester.makepyfile(test_show=SHOW)
    pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(passed=2)
    root = pytester.path
    assert values(pytester) == {
        "samples": None, "timeout": 60.0, "baseline": None, "update": False,
        "report": str(root / "results" / "hil"),
        "cache": str(root / ".pytest_cache" / "kenning-hil-compile"),
        "target_dirs": [str(root / "targets"), SHIPPED], "models": str(root / "models"),
        "suites": [], "locks": None,
    }


def test_ini_then_environment_then_command_line(pytester, monkeypatch):
    pytester.makepyfile(test_show=SHOW)
    pytester.makeini("""
        [pytest]
        hil_samples = 11
        hil_timeout = 9
        hil_baseline = base-ini
        hil_update_baseline = true
        hil_report = rep-ini
        hil_compile_cache = cache-ini
        hil_target_dir = boards-a boards-b
        hil_models_path = models-ini
        hil_lock_dir = locks-ini
    """)
    monkeypatch.delenv("KENNING_HIL_MODELS", raising=False)
    monkeypatch.delenv("KENNING_HIL_LOCK_DIR", raising=False)
    pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(passed=2)
    root = pytester.path
    assert values(pytester) == {
        "samples": 11, "timeout": 9.0, "baseline": str(root / "base-ini"), "update": True,
        "report": str(root / "rep-ini"), "cache": str(root / "cache-ini"),
        "target_dirs": [str(root / "boards-a"), str(root / "boards-b"), str(root / "targets"),
                        SHIPPED],
        "models": str(root / "models-ini"), "suites": [], "locks": str(root / "locks-ini"),
    }
    monkeypatch.setenv("KENNING_HIL_MODELS", "/env/models")
    pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(passed=2)
    assert values(pytester)["models"] == "/env/models"
    pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--samples=13", "--hil-timeout=2", "--baseline=b-cli",
        "--hil-report=r-cli", "--compile-cache=/abs/cache", "--target-dir=t-cli",
        "--models-path=m-cli", "--hil-lock-dir=l-cli",
    ).assert_outcomes(passed=2)
    got = values(pytester)
    assert (got["samples"], got["timeout"], got["models"]) == (13, 2.0, str(root / "m-cli"))
    assert got["baseline"] == str(root / "b-cli") and got["cache"] == "/abs/cache"
    assert got["target_dirs"] == [str(root / "t-cli"), str(root / "targets"), SHIPPED]
    assert got["report"] == str(root / "r-cli") and got["locks"] == str(root / "l-cli")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--target=nope"],
         f"--target: unknown target 'nope' (known: {', '.join(SHIPPED_NAMES)}; "),
        (["--samples=0"], "--samples / hil_samples: must be positive, got 0"),
        (["--update-baseline"], "--update-baseline needs --baseline DIR"),
        (["--suite=missing.yaml"], "--suite: no such file: "),
        (["--suite=."], "no suite files (YAML with a 'models:' key) in it"),
        (["--hil-suites-only"], "--hil-suites-only: no suite given"),
        (["--hil-report=/proc/no/such"],
         "--hil-report / hil_report: cannot write to /proc/no/such"),
    ],
)
def test_usage_errors(pytester, args, message):
    pytester.makepyfile("def test_x(target):\n    pass\n")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()


def test_an_unknown_target_names_where_it_was_given(pytester):
    pytester.makepyfile("def test_x(target):\n    pass\n")
    pytester.makeini("[pytest]\nhil_target = nope\n")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "hil_target (ini): unknown target 'nope' (known: " in result.stderr.str()
    assert "--target:" not in result.stderr.str()
    given = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--target=nah")
    assert "--target: unknown target 'nah' (known: " in given.stderr.str()  # the flag wins


def test_hil_settings_prints_the_resolved_settings_and_creates_nothing(pytester):
    """What `kenning-hil targets` and `report` read: pytest's rootdir, configuration file and
    hil_* keys, resolved, as one line of JSON; nothing is collected or created."""
    pytester.makeini("[pytest]\nhil_report = rep\nhil_target_dir = boards\n")
    pytester.makepyfile("def test_x():\n    raise AssertionError\n")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--hil-settings",
                                          "--samples=3", "--target=a,b")
    assert result.ret == 0, result.stderr.str()
    settings = json.loads(result.stdout.lines[-1])
    root = pytester.path
    assert (settings["rootdir"], settings["configfile"]) == (str(root), str(root / "tox.ini"))
    assert settings["report_dir"] == str(root / "rep")
    assert settings["target_dirs"][:2] == [str(root / "boards"), str(root / "targets")]
    assert (settings["samples"], settings["targets"]) == (3, ["a", "b"])
    assert settings["sources"]["hil_report"] == "ini hil_report"
    assert not (root / "rep").exists()
    assert "test_x" not in result.stdout.str()
    broken = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--hil-settings",
                                          "--samples=0")
    assert broken.ret == pytest.ExitCode.USAGE_ERROR
    assert "--samples / hil_samples: must be positive, got 0" in broken.stderr.str()


def test_help_names_what_each_flag_takes(pytester):
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--help")
    flags = dict(re.findall(r"^  (--[a-z-]+)=([A-Z]+)", result.stdout.str(), re.MULTILINE))
    assert {flag: flags.get(flag) for flag in (
        "--target", "--suite", "--samples", "--baseline", "--hil-report", "--compile-cache",
        "--target-dir", "--models-path", "--hil-lock-dir")} == {
        "--target": "NAME", "--suite": "PATH", "--samples": "N", "--baseline": "DIR",
        "--hil-report": "DIR", "--compile-cache": "DIR", "--target-dir": "DIR",
        "--models-path": "DIR", "--hil-lock-dir": "DIR"}
    assert "--update-baseline " in result.stdout.str()  # a switch: takes nothing


TARGETED = """
import pytest

def test_any(target):
    assert target.name

@pytest.mark.target("board-b")
def test_pinned(target):
    assert target.name == "board-b"

@pytest.mark.parametrize("target", ["board-a"], indirect=True)
def test_own_choice(target):
    assert target.name == "board-a"
"""


def test_target_selection_pinning_and_parametrization(pytester):
    for name in ("board-a", "board-b"):
        write_target(pytester, name, "kind: host\nruntime: onnxruntime\ninstances: 1\n")
    pytester.makepyfile(test_targets=TARGETED)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-v", "-rs",
                                          "--target=host-onnxruntime", "--target=board-a")
    result.assert_outcomes(passed=3, skipped=1)
    result.stdout.fnmatch_lines_random([
        "*test_any[[]host-onnxruntime[]] PASSED*",
        "*test_any[[]board-a[]] PASSED*",
        "*test_own_choice[[]board-a[]] PASSED*",
        "*pinned to target board-b, not selected (run with --target board-b)",
    ])
    both = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-v", "--target=board-a,board-b")
    both.assert_outcomes(passed=4)
    both.stdout.fnmatch_lines_random(["*test_pinned[[]board-b[]] PASSED*"])


def test_a_pin_to_an_unknown_target_is_a_collection_error(pytester):
    """A typo in a pin used to skip the test quietly as "not selected"; known targets that
    are merely not selected still skip (test_target_selection_pinning_and_parametrization)."""
    write_target(pytester, "board-a", "kind: host\nruntime: onnxruntime\n")
    pytester.makepyfile(test_pins="""
        import pytest

        @pytest.mark.target("board-a", "host-onnxruntme")
        def test_typo(target):
            pass

        def test_fine(target):
            pass
    """)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-rs")
    assert result.ret == pytest.ExitCode.INTERRUPTED  # collection errors stop the run
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([
        "test_pins.py::test_typo: marker target('board-a', 'host-onnxruntme'): unknown target "
        f"'host-onnxruntme' (known targets: {', '.join(sorted(['board-a', *SHIPPED_NAMES]))})",
    ])
    assert "not selected" not in result.stdout.str()
    assert "kenning_hil/pytest_plugin/" not in result.stdout.str()  # the message alone


def test_unavailable_default_target_skips_but_an_asked_for_one_fails(pytester):
    write_target(pytester, "host-onnxruntime",
                 "kind: host\nruntime: onnxruntime\nrequires: [no_such_module_xyz]\n")
    pytester.makepyfile("def test_x(target):\n    pass\n")
    default = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-rs")
    default.assert_outcomes(skipped=1)
    default.stdout.fnmatch_lines(["*target 'host-onnxruntime' is not available here: Python "
                                  "module 'no_such_module_xyz' is not installed"])
    asked = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--target=host-onnxruntime")
    asked.assert_outcomes(errors=1)  # a fixture failing is an error at setup
    asked.stdout.fnmatch_lines(["*target 'host-onnxruntime' is not available here*"])


def test_an_unavailable_default_target_skips_a_suite_test_at_the_suite(hil_project):
    """The skip is reported at the suite file, not at the plugin's line that raised it."""
    write_target(hil_project, "host-onnxruntime",
                 "kind: host\nruntime: onnxruntime\nrequires: [nosuchmodule_xyz]\n")
    (hil_project.path / "suites").mkdir()
    (hil_project.path / "suites" / "d.yaml").write_text(
        "models:\n  digits: {model: models/digits/digits-mlp.onnx, dataset: digits}\n")
    result = run(hil_project, "suites/d.yaml", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED [[]1[]] suites/d.yaml:1: target 'host-onnxruntime' is "
                                 "not available here: Python module 'nosuchmodule_xyz' is not "
                                 "installed"])
    assert "kenning_hil/pytest_plugin/" not in result.stdout.str()


LOW_LEVEL = """
import pytest

@pytest.mark.parametrize("model", ["models/digits/digits-mlp.onnx"], indirect=True)
@pytest.mark.parametrize("dataset", ["digits"], indirect=True)
def test_low_level(runtime, dataset, model_wrapper, compiled_model, measurements, protocol):
    result = runtime.run_client(dataset, model_wrapper, compiled_model)
    measurements.update_measurements(result)
    measurements.add_measurement("custom_value", 42)
    assert result["accuracy"] > 0.9
    assert len(result["protocol_inference_step"]) == 25
    assert compiled_model.name == "digits-mlp.onnx"
"""


def test_low_level_fixtures(hil_project):
    hil_project.makepyfile(test_low=LOW_LEVEL)
    run(hil_project, "--samples=25").assert_outcomes(passed=1)
    (saved,) = (hil_project.path / "results" / "tests").glob("*-measurements.json")
    data = json.loads(saved.read_text())
    assert data["custom_value"] == [42] and data["total"] == 25


def test_a_projects_own_target_fixture_is_left_alone(pytester):
    pytester.makepyfile("""
        import pytest

        @pytest.fixture
        def target():
            return "the project's own"

        def test_own(target):
            assert target == "the project's own"
    """)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*::test_own PASSED*"])  # not parametrized by target


def test_tests_on_targets_are_marked_hil(pytester):
    pytester.makepyfile("""
        def test_board(target):
            pass

        def test_plain():
            pass
    """)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-m", "not hil", "-v")
    result.assert_outcomes(passed=1, deselected=1)
    result.stdout.fnmatch_lines(["*::test_plain PASSED*"])
