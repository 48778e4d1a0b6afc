"""ONNXConversion: checks, model by model, whether a framework can export its models to ONNX
and import ONNX models back, and renders the results as a support matrix.

A subclass per framework adds its models in `prepare()` and implements `onnx_export` and
`onnx_import`. Either may return None (success), or a SupportStatus to report e.g. that a
model is UNSUPPORTED by design; NotImplementedError means NOT_IMPLEMENTED and any other
exception ERROR with its message. `check_conversions` never lets an exception through, so one
broken model does not hide the results of the others.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from kenning_hil.core.errors import ConfigurationError, one_line


class SupportStatus(enum.Enum):
    """Outcome of one conversion direction for one model."""

    SUPPORTED = "supported"
    UNSUPPORTED = "unsupported"
    ERROR = "error"
    NOT_IMPLEMENTED = "not implemented"
    UNVERIFIED = "unverified"


@dataclass
class ModelEntry:
    """A model to convert: its name (shared across frameworks), a no-argument callable making
    it in the framework, and extra parameters for the export/import methods."""

    name: str
    modelgenerator: Callable[[], Any]
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass
class Support:
    """Result of checking one model of one framework."""

    framework: str
    version: str
    model: str
    exported: SupportStatus
    imported: SupportStatus
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        return {
            "framework": self.framework,
            "version": self.version,
            "model": self.model,
            "exported": self.exported.value,
            "imported": self.imported.value,
            "detail": self.detail,
        }


class ONNXConversion:
    """Builds the ONNX conversion support matrix of one framework for its model entries."""

    def __init__(self, framework: str, version: str):
        self.framework = framework
        self.version = version
        self.modelslist: list[ModelEntry] = []
        self.prepare()

    def add_entry(self, name: str, modelgenerator: Callable[[], Any], **kwargs: Any) -> None:
        """Adds a model to check; `kwargs` become the entry's parameters."""
        if any(entry.name == name for entry in self.modelslist):
            raise ConfigurationError(
                f"{type(self).__name__}: model '{name}' is already registered for {self.framework}"
            )
        self.modelslist.append(ModelEntry(name, modelgenerator, dict(kwargs)))

    def prepare(self) -> None:
        """Adds the model entries (with `add_entry`); called by the constructor."""

    def onnx_export(self, modelentry: ModelEntry, exportpath: Path) -> SupportStatus | None:
        """Makes the entry's model and saves it as ONNX at `exportpath`."""
        raise NotImplementedError

    def onnx_import(self, modelentry: ModelEntry, importpath: Path) -> SupportStatus | None:
        """Loads the ONNX model at `importpath` into the framework (and checks it runs)."""
        raise NotImplementedError

    def check_conversions(self, modelsdir: Path) -> list[Support]:
        """Exports every entry to ``modelsdir/<framework>/<name>.onnx``, checks the file with
        ``onnx.checker`` when onnx is installed, then imports it back."""
        outdir = Path(modelsdir) / self.framework
        outdir.mkdir(parents=True, exist_ok=True)
        return [
            self._check_entry(entry, outdir / f"{entry.name}.onnx") for entry in self.modelslist
        ]

    def _check_entry(self, entry: ModelEntry, onnxpath: Path) -> Support:
        exported, export_detail = _attempt(self.onnx_export, entry, onnxpath)
        if exported is SupportStatus.SUPPORTED:
            exported, export_detail = _check_exported_file(onnxpath)
        if exported is SupportStatus.SUPPORTED:
            imported, import_detail = _attempt(self.onnx_import, entry, onnxpath)
        else:
            # Nothing valid to import: the import direction cannot be judged for this model.
            imported, import_detail = SupportStatus.UNVERIFIED, ""
        details = [
            f"{direction}: {text}"
            for direction, text in (("export", export_detail), ("import", import_detail))
            if text
        ]
        return Support(
            self.framework, self.version, entry.name, exported, imported, "; ".join(details)
        )


def _attempt(
    method: Callable[[ModelEntry, Path], SupportStatus | None], entry: ModelEntry, path: Path
) -> tuple[SupportStatus, str]:
    try:
        result = method(entry, path)
    except NotImplementedError as exc:
        return SupportStatus.NOT_IMPLEMENTED, str(exc)
    except Exception as exc:  # any failure of the framework is a result, not a crash
        return SupportStatus.ERROR, f"{type(exc).__name__}: {one_line(str(exc))}"
    if result is None:
        return SupportStatus.SUPPORTED, ""
    if not isinstance(result, SupportStatus):
        return SupportStatus.ERROR, f"returned {result!r} instead of a SupportStatus or None"
    return result, ""


def _check_exported_file(path: Path) -> tuple[SupportStatus, str]:
    if not path.is_file():
        return SupportStatus.ERROR, f"no ONNX file was written to {path}"
    try:
        import onnx
    except ImportError:  # the checker is an extra verification, not a requirement
        return SupportStatus.SUPPORTED, ""
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:
        return SupportStatus.ERROR, f"onnx.checker: {one_line(exc)}"
    return SupportStatus.SUPPORTED, ""



def render_support_matrix(
    supports: Sequence[Support], fmt: Literal["markdown", "rst"] = "markdown"
) -> str:
    """A table with one row per model and an export and an import column per framework
    (version); cells hold the status, "n/a" where a framework lacks the model. Details of
    results other than "supported" follow the table as a list."""
    if fmt not in ("markdown", "rst"):
        raise ConfigurationError(f"support matrix format must be 'markdown' or 'rst', got {fmt!r}")
    frameworks = list(dict.fromkeys(f"{s.framework} {s.version}".strip() for s in supports))
    models = list(dict.fromkeys(s.model for s in supports))
    cells = {(s.model, f"{s.framework} {s.version}".strip()): s for s in supports}

    header = ["Model"] + [f"{fw} {direction}" for fw in frameworks for direction in
                          ("export", "import")]
    rows = []
    for model in models:
        row = [model]
        for fw in frameworks:
            support = cells.get((model, fw))
            if support is None:
                row += ["n/a", "n/a"]
            else:
                row += [support.exported.value, support.imported.value]
        rows.append(row)

    table = _markdown_table(header, rows) if fmt == "markdown" else _rst_grid_table(header, rows)
    notes = [
        f"{s.model} ({s.framework} {s.version}".strip() + f"): {s.detail}"
        for s in supports
        if s.detail
        and (s.exported is not SupportStatus.SUPPORTED or s.imported is not SupportStatus.SUPPORTED)
    ]
    if not notes:
        return table
    bullet = "-" if fmt == "markdown" else "*"
    return table + "\n" + "\n".join(f"{bullet} {_escape(note, fmt)}" for note in notes) + "\n"


def _escape(text: str, fmt: str) -> str:
    if fmt == "markdown":
        return text.replace("|", "\\|")
    return text.replace("\\", "\\\\").replace("*", "\\*").replace("`", "\\`")


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = [
        "| " + " | ".join(_escape(c, "markdown") for c in header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    lines += ["| " + " | ".join(_escape(c, "markdown") for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _rst_grid_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def border(char: str) -> str:
        return "+" + "+".join(char * (w + 2) for w in widths) + "+"

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"

    lines = [border("-"), line(header), border("=")]
    for row in rows:
        lines += [line(row), border("-")]
    return "\n".join(lines) + "\n"
