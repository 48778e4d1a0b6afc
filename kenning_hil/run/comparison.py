"""Differential runs: one compiled model and the same samples on several targets at once, each
target's outputs compared sample by sample with the first target's (the reference).

This is the library under ``hil.compare`` and suite cases with ``reference:``/``compare:``.
The model is compiled once (compile cache) before any board is taken; all targets are then
held together (`SessionManager.use_all`, global lock order) while each runs the same dataset
samples in turn; `judge/agreement.py` compares the outputs. Every target under test gets its
own results record, with a ``comparison`` block (keys in docs/plugin.md); the reference's run
is summarised inside each block rather than written as a result of its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kenning_hil.core.errors import ConfigurationError
from kenning_hil.judge.agreement import OutputTolerance, PairComparison, compare_outputs
from kenning_hil.run.request import RunRequest
from kenning_hil.run.results import CapturedOutputs, Result
from kenning_hil.targets.target import Target

ACCURACY = "accuracy"


@dataclass
class Comparison:
    """What `compare_on_targets` returns: each target's Result and, per target under test,
    how its outputs compare with the reference's."""

    reference: Result
    results: dict[str, Result]  # by target name, the reference included
    pairs: list[PairComparison]  # one per target under test, in the order given

    @property
    def passed(self) -> bool:
        return all(pair.passed for pair in self.pairs)

    def pair(self, target: str) -> PairComparison:
        for pair in self.pairs:
            if pair.target == target:
                return pair
        raise KeyError(f"no comparison with target '{target}' "
                       f"(compared: {', '.join(p.target for p in self.pairs)})")

    def failures(self) -> list[str]:
        """One message per target whose outputs are beyond its tolerance."""
        return [pair.failure() for pair in self.pairs if not pair.passed]

    def summary(self) -> str:
        return "\n".join(pair.summary() for pair in self.pairs)


def reference_summary(result: Result) -> dict:
    """What a comparison record keeps of the reference's own run."""
    return {
        "target": result.target,
        "samples": result.samples,
        "metrics": result.metrics,
        "latency": result.latency.to_dict() if result.latency else None,
        "session": (result.record or {}).get("session"),
    }


def compare_on_targets(
    harness,
    targets: Sequence[Target],
    request: RunRequest,
    test_id: str,
    tolerance: OutputTolerance,
    index: int = 0,
    per_target: Mapping[str, OutputTolerance] | None = None,
) -> Comparison:
    """Runs `request` on every target (the first is the reference) and compares each other
    target's outputs with the reference's under `tolerance` (or its `per_target` one).

    Results of the targets under test are written as ``<test>~<index + k>`` records with
    their ``comparison``; judging them (thresholds, baselines, the comparison) is the
    caller's. Raises ConfigurationError for fewer than two targets or one listed twice."""
    if len(targets) < 2:
        raise ConfigurationError(
            f"a comparison needs a reference and at least one target to compare with it; "
            f"got {', '.join(t.name for t in targets) or 'no target'}")
    per_target = dict(per_target or {})
    # compiled once, before any board is held (every run below is a cache hit)
    harness.compile(request, harness.run_blocks(request))  # an empty dataset: before boards
    captures = {target.name: CapturedOutputs() for target in targets}
    results: dict[str, Result] = {}
    under_test = list(targets[1:])
    indices = {target.name: index + k for k, target in enumerate(under_test)}
    with harness.sessions.use_all(targets, holder=test_id):
        for target in targets:
            # a target under test's record is written as soon as it has run (never lost to
            # a later failure), and written again below with its comparison
            results[target.name] = harness.run(
                target, request, test_id, indices.get(target.name, index),
                capture=captures[target.name], write=target.name in indices)
    reference = targets[0]
    expected = captures[reference.name]
    reference_arrays = expected.arrays()
    pairs = []
    for target in under_test:
        result = results[target.name]
        if captures[target.name].inputs_digest != expected.inputs_digest:
            # a dataset that shuffles or draws without a seed: comparing would mislead
            raise ConfigurationError(
                f"the dataset gave target '{target.name}' other inputs than the reference "
                f"'{reference.name}': a comparison needs a dataset whose samples are the same "
                f"on every run (seeded, not shuffled)")
        pair = compare_outputs(
            reference_arrays, captures[target.name].arrays(), expected.entries,
            per_target.get(target.name, tolerance), reference.name, target.name)
        pair.accuracy = {
            reference.name: results[reference.name].metrics.get(ACCURACY),
            target.name: result.metrics.get(ACCURACY),
        }
        pairs.append(pair)
        record = {**(result.record or result.summary()),
                  "comparison": {**pair.to_dict(),
                                 "reference_result": reference_summary(results[reference.name])}}
        result.record = record
        result.path = harness.write(test_id, indices[target.name], record)
    return Comparison(results[reference.name], results, pairs)
