"""Options: command line, ini keys, markers, and their resolution into HILSettings."""

from __future__ import annotations

from typing import Any

import pytest

from kenning_hil.config.options import OPTIONS
from kenning_hil.config.settings import HILSettings
from kenning_hil.pytest_plugin.reporting import HILReporter
from kenning_hil.pytest_plugin.state import OPTIONS_KEY, _catalog

MARKERS = {
    "hil": "test runs a model on a target (hardware in the loop)",
    "nightly": "long-running test meant for nightly jobs",
    "slow": "test takes more than a few seconds",
    "gpu": "test needs a GPU (skipped when nvidia-smi -L lists none or is not installed)",
    "sim": "test needs simulated boards (QEMU and the Arm toolchain)",
    "target(name, ...)": "pin a test to the named targets",
}

_INI_TYPES = {"list": "args", "pathlist": "args", "bool": "bool"}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kenning-hil", "hardware-in-the-loop tests (kenning-hil)")
    for option in OPTIONS:
        group.addoption(option.flag, **option.argparse_kwargs())
        parser.addini(option.ini, f"{option.help} (ini form of {option.flag})",
                      type=_INI_TYPES.get(option.kind, "string"), default=None)
    # run-mode flags of the pytest face, not settings: no ini key, no fixture
    group.addoption("--hil-suites-only", action="store_true", default=False,
                    help="collect suite tests only (what `kenning-hil suite` runs): the suite "
                    "files under the given paths, or with no paths the --suite / hil_suite "
                    "suites; other tests are not collected or are deselected")
    group.addoption("--hil-settings", action="store_true", default=False,
                    help="print the resolved kenning-hil settings (rootdir, configuration "
                    "file, every option) as one line of JSON and exit, without collecting "
                    "(what `kenning-hil targets` and `kenning-hil report` read)")


# ------------------------------------------------------------------------------ options


HILOptions = HILSettings  # the resolved settings of this pytest run


def _raw_values(config: pytest.Config, getter: Any, ini: bool) -> dict[str, Any]:
    values = {}
    for option in OPTIONS:
        value = getter(option.ini if ini else option.dest)
        values[option.dest] = None if value in ("", []) else value
    return values


def resolve_options(config: pytest.Config, prepare: bool = True) -> HILSettings:
    """Command line, then environment, then ini, then the default (kenning_hil.config.settings).
    With `prepare`, the controller also creates the report directory (a run is coming)."""
    from kenning_hil.core.errors import KenningHILError

    command_line = _raw_values(config, lambda dest: config.getoption(dest, None), ini=False)
    ini = _raw_values(config, config.getini, ini=True)
    try:
        settings = HILSettings.resolve(config.rootpath, command_line, ini,
                                       cwd=config.invocation_params.dir)
        if prepare and not hasattr(config, "workerinput"):
            settings.prepare_report_dir()
    except KenningHILError as exc:
        raise pytest.UsageError(str(exc)) from None
    return settings


PATH_KINDS = ("path", "pathlist")


def space_form_path_options(args: list[str]) -> list[tuple[str, str]]:
    """(flag, value) of every path option written as two arguments (``--target-dir DIR``)
    before a ``--``: the form in which pytest took the value for a test path."""
    flags = {option.flag for option in OPTIONS if option.kind in PATH_KINDS}
    found = []
    for index, arg in enumerate(args[:-1]):
        if arg == "--":
            break
        if arg in flags:
            found.append((arg, args[index + 1]))
    return found


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser,
                                  args: list[str]) -> None:
    """Refuses a run whose rootdir a path option moved (#23).

    pytest finds the rootdir and configuration file before installed plugins add their
    options, so in ``--target-dir /other/project`` it reads the value as a test path and may
    take that project's rootdir and ini: results, baselines and settings would then come from
    the wrong project without a word. pytest has no way for a plugin to take part in that
    decision (pytest issues #1435, #8846; its documented advice: the ``--flag=value`` form, or
    test paths given explicitly, ``.`` for the current directory), so the plugin repeats the
    decision without the values, now that it can tell them apart, and
    stops with the fix when the two differ. The ``=`` form is never affected."""
    suspects = [(flag, value) for flag, value in space_form_path_options(list(args))
                if value and not value.startswith("-")]
    if not suspects:
        return
    expected = _rootdir_without(early_config)
    if expected is None or expected == early_config.rootpath:
        return
    flag, value = suspects[0]
    raise pytest.UsageError(
        f"kenning-hil: '{flag} {value}' made pytest take {early_config.rootpath} as rootdir "
        f"(configuration file {early_config.inipath or 'none'}) instead of {expected}: pytest "
        f"reads a path after a space as a test path before plugins add their options; write "
        f"{flag}={value}, or name the test paths too (e.g. '.')"
    )


def _rootdir_without(config: pytest.Config):
    """The rootdir pytest would have chosen for the test paths alone (the option values now
    parsed as what they are), or None when pytest's setup function cannot be asked."""
    try:
        from _pytest.config.findpaths import determine_setup

        namespace = config.known_args_namespace
        return determine_setup(
            inifile=namespace.inifilename,
            override_ini=namespace.override_ini,
            args=list(namespace.file_or_dir),
            rootdir_cmd_arg=namespace.rootdir or None,
            invocation_dir=config.invocation_params.dir,
        )[0]
    except (ImportError, TypeError, AttributeError):  # another pytest: no check
        return None


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    """`--hil-settings`: the settings as pytest resolves them (its rootdir and configuration
    file, from wherever it runs), so the CLI needs no rootdir finder of its own. Like
    `--markers`, it answers before the session starts: nothing is collected or created."""
    if not config.getoption("hil_settings"):
        return None
    import dataclasses
    import json

    settings = resolve_options(config, prepare=False)
    described = {"rootdir": str(config.rootpath),
                 "configfile": str(config.inipath) if config.inipath else None}
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        if isinstance(value, list):
            value = [str(v) for v in value]
        elif value is not None and not isinstance(value, (bool, int, float, dict)):
            value = str(value)
        described[field.name] = value
    print(json.dumps(described))
    return 0


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    options = resolve_options(config)
    config.stash[OPTIONS_KEY] = options
    if not hasattr(config, "workerinput"):  # the controller (or a run without xdist)
        config.pluginmanager.register(HILReporter(config), "kenning-hil-reporter")
    _add_suites_to_args(config, options)


def _add_suites_to_args(config: pytest.Config, options: HILOptions) -> None:
    """Suites join the paths pytest collects. `--suite` always adds; with no path arguments
    it runs only the suites (not `testpaths`). The ini key `hil_suite` works like
    `testpaths`: its suites join the default collection only when no path arguments are
    given, so `pytest test_x.py::test_g` runs just that test. With `--hil-suites-only` and
    no path arguments, the suites are all that is collected. A directory stands for the
    suite files under it."""
    source = getattr(config, "args_source", None)
    no_paths = source is not None and source != pytest.Config.ArgsSource.ARGS
    suites_only = config.getoption("hil_suites_only")
    if not options.suites:
        if suites_only and no_paths:
            raise pytest.UsageError("--hil-suites-only: no suite given (name suite files or "
                                    "directories, or set hil_suite in the project's pytest "
                                    "configuration)")
        return
    from_command_line = options.sources.get("suite") == "command line"
    if not (from_command_line or no_paths):
        options.suites = []  # paths were given: the ini's suites are not part of this run
        return
    flag = _given_by(options, "suite")
    missing = [str(p) for p in options.suites if not p.exists()]
    if missing:
        raise pytest.UsageError(f"{flag}: no such file: {', '.join(missing)}")
    from kenning_hil.core.errors import KenningHILError
    from kenning_hil.suites.loader import suite_files

    try:
        options.suites = [file for path in options.suites for file in suite_files(path)]
    except KenningHILError as exc:  # a directory without suite files
        raise pytest.UsageError(f"{flag}: {exc}") from None
    args = [str(p) for p in options.suites]
    if (from_command_line or suites_only) and no_paths:
        config.args[:] = args  # only suites were asked for: not the testpaths too
    else:
        config.args.extend(a for a in args if a not in config.args)


def pytest_sessionstart(session: pytest.Session) -> None:
    # unknown target names are a usage error before anything runs
    options = session.config.stash[OPTIONS_KEY]
    if options.targets_given:
        from kenning_hil.core.errors import KenningHILError

        catalog = _catalog(session.config)
        for name in options.targets:
            try:
                catalog.get(name)
            except KenningHILError as exc:
                raise pytest.UsageError(f"{_given_by(options, 'target')}: {exc}") from None


def _given_by(options: HILOptions, dest: str) -> str:
    """Where a setting came from, as a message prefix: ``--target``, ``hil_target (ini)``
    or ``KENNING_HIL_X (environment)``, so a user knows which line to correct."""
    option = next(o for o in OPTIONS if o.dest == dest)
    source = options.sources.get(dest, "command line")
    if source.startswith("ini "):
        return f"{option.ini} (ini)"
    if source.startswith("environment "):
        return f"{source.removeprefix('environment ')} (environment)"
    return option.flag
