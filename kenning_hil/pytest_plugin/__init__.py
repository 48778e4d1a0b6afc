"""The pytest face: a thin adapter over the kenning_hil library (registered via `pytest11`).

Only this package imports pytest. Each module is one part of the plugin, registered with
pytest as a plugin of its own through `pytest_plugins`:

- `options`: command-line flags and ini keys (the table in `kenning_hil.config.options`),
  markers, resolution into `HILSettings`;
- `state`: per-process objects (catalog, harness) and the helpers the parts share;
- `parametrize`: one test per selected target, pins, the gpu and hil markers;
- `fixtures`: one fixture per option, the pipeline's objects, and `hil`;
- `collect`: suite YAML files as test items;
- `reporting`: properties, pytest-html extras, the terminal table, the session report;
- `infrastructure`: infrastructure errors as pytest errors (E), --hil-retries.

Running models, sessions, pools, caches, thresholds and baselines live in the library
(`kenning_hil.run`, `kenning_hil.targets`, `kenning_hil.judge`, `kenning_hil.report`).
"""

# dependencies first: pytest imports each of these itself (for assertion rewriting), so none
# may have been imported already as another's dependency
pytest_plugins = [
    "kenning_hil.pytest_plugin.state",
    "kenning_hil.pytest_plugin.parametrize",
    "kenning_hil.pytest_plugin.fixtures",
    "kenning_hil.pytest_plugin.collect",
    "kenning_hil.pytest_plugin.infrastructure",
    "kenning_hil.pytest_plugin.reporting",
    "kenning_hil.pytest_plugin.options",
]


def pytest_addhooks(pluginmanager) -> None:
    """labgrid (the `labgrid` extra, for labgrid targets) registers a pytest plugin of its own
    whose `target` fixture would shadow ours and whose -vv changes the log level; kenning-hil
    reaches labgrid through its client library instead, so that plugin is blocked (pluggy
    unregisters it if it came first)."""
    pluginmanager.set_blocked("labgrid")
