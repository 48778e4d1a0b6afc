"""Runner: one block of a KenningFlow (data provider, model runner, output collector).

A runner has named inputs and outputs. Its *local* names are fixed by its class
(`input_names`, `output_names`); a flow file binds them to *global* names, the variables the
flow passes between runners. The constructor receives, as in the seed:

- ``inputs_sources``: local input name -> (index of the producing runner, its global name);
- ``inputs_specs``: local input name -> the spec of what the producer delivers there;
- ``outputs``: local output name -> global name.

A spec (`get_io_specification`) describes a value as a list of tensors, each
``{"shape": [...], "dtype": "..."}`` (-1 or None in a shape: any size); a spec of None
means "any value" and is not checked. The flow checks connected specs before it runs.

Each flow step calls `run` with the inputs by local name and stores the outputs it returns
by their global names. `prepare` runs once before the first step (open a source, compile a
model, boot a board), `cleanup` once after the last, also after an error or Ctrl-C.
"""

from __future__ import annotations

import argparse
from typing import Any

from kenning_hil.core.args import ArgumentsHandler

TensorSpec = dict[str, Any]
"""{"shape": [...], "dtype": "float32"}; one entry of a value's spec."""


class Runner(ArgumentsHandler):
    """An operation block of a KenningFlow (seed: `kenning.core.runner.Runner`)."""

    input_names: tuple[str, ...] = ()
    """Local input names this class reads."""
    required_inputs: tuple[str, ...] = ()
    """Local inputs the flow must connect (the others are optional)."""
    output_names: tuple[str, ...] = ()
    """Local output names this class produces."""
    context_keys: tuple[str, ...] = ()
    """Keyword arguments the constructor takes from the flow's context rather than from the
    flow file (e.g. the harness a model runner reaches targets through)."""

    def __init__(
        self,
        inputs_sources: dict[str, tuple[int, str]] | None = None,
        inputs_specs: dict[str, Any] | None = None,
        outputs: dict[str, str] | None = None,
    ):
        self.inputs_sources = dict(inputs_sources or {})
        self.inputs_specs = dict(inputs_specs or {})
        self.outputs = dict(outputs or {})

    @classmethod
    def from_argparse(
        cls,
        args: argparse.Namespace,
        inputs_sources: dict[str, tuple[int, str]],
        inputs_specs: dict[str, Any],
        outputs: dict[str, str],
        **context: Any,
    ):
        """Constructor wrapper that takes the parameters from argparse args."""
        return super().from_argparse(
            args, inputs_sources=inputs_sources, inputs_specs=inputs_specs, outputs=outputs,
            **context,
        )

    @classmethod
    def from_json(
        cls,
        json_dict: dict | None,
        inputs_sources: dict[str, tuple[int, str]] | None = None,
        inputs_specs: dict[str, Any] | None = None,
        outputs: dict[str, str] | None = None,
        **context: Any,
    ):
        """Constructor wrapper that validates `json_dict` against the class's JSON schema."""
        return super().from_json(
            json_dict, inputs_sources=inputs_sources or {}, inputs_specs=inputs_specs or {},
            outputs=outputs or {}, **context,
        )

    # --- what the flow calls ----------------------------------------------------------------

    def get_io_specification(self) -> dict[str, dict[str, list[TensorSpec] | None]]:
        """{"input": {local name: spec}, "output": {local name: spec}}; a name left out (or
        a spec of None) accepts or delivers any value."""
        return {"input": {}, "output": {}}

    def prepare(self) -> None:
        """Runs once before the first step: open sources, compile, connect."""

    def run(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """One step: inputs by local name -> outputs by local name."""
        return {}

    def measurements(self) -> dict[str, Any]:
        """What this runner measured, merged into the flow's measurements at its end
        (kenning-hil addition: a flow is saved like any other run)."""
        return {}

    def cleanup(self) -> None:
        """Frees what the runner holds; called once after the last step, also after an
        error or Ctrl-C, and must not fail because `prepare` did not finish."""
