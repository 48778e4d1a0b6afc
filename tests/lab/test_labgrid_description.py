"""labgrid target descriptions: the keys, their checks and where the coordinator address
comes from (no lab needed)."""

from __future__ import annotations

import pytest
import yaml

from kenning_hil.core.errors import ConfigurationError
from kenning_hil.targets.description import parse_target
from kenning_hil.targets.kinds.labgrid import DEFAULT_COORDINATOR, LabgridKind

BASE = "kind: labgrid\nruntime: firmware-int8\n"


def kind(text: str) -> LabgridKind:
    return LabgridKind(parse_target(yaml.safe_load(BASE + text), "lab.yaml", "lab"))


def test_coordinator_from_the_file_else_lg_coordinator_else_labgrids_default(monkeypatch):
    monkeypatch.delenv("LG_COORDINATOR", raising=False)
    assert kind("place: a\n").coordinator == DEFAULT_COORDINATOR == "127.0.0.1:20408"
    monkeypatch.setenv("LG_COORDINATOR", "lab.example:20408")
    assert kind("place: a\n").coordinator == "lab.example:20408"
    assert kind("place: a\ncoordinator: other:1\n").coordinator == "other:1"


def test_reservation_filter_and_matching_by_name_or_tags():
    class Place:
        def __init__(self, name, **tags):
            self.name, self.tags = name, tags

    places = {"a": Place("a", board="m4"), "b": Place("b", board="m4", rack="2"),
              "c": Place("c", board="m55")}
    by_name = kind("place: b\n")
    assert by_name.filters() == {"name": "b"}
    assert [p.name for p in by_name.matching(places)] == ["b"]
    tagged = kind("place_tags: {board: m4}\n")
    assert tagged.filters() == {"board": "m4"}
    assert [p.name for p in tagged.matching(places)] == ["a", "b"]
    assert tagged.selector() == "places tagged board=m4"


@pytest.mark.parametrize("text, message", [
    ("{}", "a labgrid target needs exactly one of 'place' (a place name) and 'place_tags'"),
    ("place: a\nplace_tags: {board: m4}\n", "needs exactly one of 'place'"),
    ("place: a\ninstances: 2\n", "key 'instances' does not apply to a labgrid target"),
    ("place: a\nprotocol: {type: tcp}\n", "key 'protocol.type' must be 'uart' for a labgrid"),
    ("place: a\nflash: flash {firmware}\n", "key 'flash' uses {firmware} but key 'firmware'"),
    ("place_tags: {}\n", "key 'place_tags'"),
    ("place: a\nplase_tags: {}\n", "did you mean 'place_tags'?"),
])
def test_bad_descriptions_name_the_file_and_the_problem(text, message):
    data = yaml.safe_load(BASE + text) if text != "{}" else yaml.safe_load(BASE)
    with pytest.raises(ConfigurationError) as error:
        parse_target(data, "lab.yaml", "lab")
    assert str(error.value).startswith("lab.yaml: ") and message in str(error.value)
