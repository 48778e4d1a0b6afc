"""Errors a user can cause and fix. The CLI and the pytest plugin print these as one line,
without a traceback; anything else is a bug and keeps its traceback."""


class KenningHILError(Exception):
    """Base of every user-facing error (bad input, missing file, unreachable target)."""


class ConfigurationError(KenningHILError):
    """A scenario, suite, target description or class parameter is invalid."""


class ModelLoadError(KenningHILError):
    """A model file is missing, unreadable or not in the expected format."""


class InputSizeError(KenningHILError, ValueError):
    """Input data does not match the io specification (the seed raises ValueError here)."""


class ModelNotLoadedError(KenningHILError):
    """Inference was requested before a model was loaded."""


class MissingDependencyError(KenningHILError):
    """An optional framework is not installed; the message names the extra to install."""

    def __init__(self, module: str, extra: str, purpose: str = "", detail: str = ""):
        what = f" (needed for {purpose})" if purpose else ""
        why = f" [{detail}]" if detail else ""
        super().__init__(
            f"Python module '{module}' cannot be imported{what}{why}; "
            f"install it with: pip install 'kenning-hil[{extra}]'"
        )
        self.module = module
        self.extra = extra


def import_optional(module: str, extra: str, purpose: str = ""):
    """Imports an optional framework module, or raises MissingDependencyError naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # the framework itself or one of its libraries is missing
        raise MissingDependencyError(module, extra, purpose, detail=str(exc)) from exc


def os_reason(exc: BaseException) -> str:
    """An OSError as 'No such file or directory: /proc/nope' rather than '[Errno 2] ...' with
    a repr; any other error caught with one (a decode error of the file read) as
    `one_line`."""
    if not isinstance(exc, OSError):
        return one_line(exc)
    reason = exc.strerror or one_line(exc)
    return f"{reason}: {exc.filename}" if exc.filename else reason


def one_line(error: BaseException | str, limit: int | None = None, *,
             first_line: bool = False) -> str:
    """The error message on a single line, white space folded (how both faces print a user
    error, and how a framework's multi-line error becomes part of one); cut to `limit`
    characters with a trailing '…' when longer. `first_line`: only the message's first
    non-blank line (a framework error whose later lines are its own trace or dump)."""
    text = str(error).strip()
    if first_line:
        text = text.splitlines()[0] if text else ""
    text = " ".join(text.split())
    if not text and isinstance(error, BaseException):
        text = type(error).__name__
    if limit is not None and len(text) > limit:
        return text[:limit] + "…"
    return text
