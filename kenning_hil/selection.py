"""Selection expressions as pytest's ``-k`` and ``-m`` read them, for ``kenning-hil suite``.

An expression combines names with ``and``, ``or``, ``not`` and parentheses. For ``-k`` a
name matches when it is a case-insensitive substring of the test id; for ``-m`` when the
test carries that mark. The expression is parsed here (recursive descent), never evaluated
as Python.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from kenning_hil.core.errors import ConfigurationError

# what pytest's -k lexer accepts in a name: word characters and : + - . [ ] \ /
_TOKEN = re.compile(r"\s*(\(|\)|[\w:+\-.\[\]\\/]+)")
_KEYWORDS = {"and", "or", "not"}


def tokenize(expression: str, flag: str) -> list[str]:
    tokens, position = [], 0
    text = expression.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise ConfigurationError(
                f"{flag} {expression!r}: unexpected character {text[position:].lstrip()[:1]!r}"
            )
        tokens.append(match.group(1))
        position = match.end()
        while position < len(text) and text[position].isspace():
            position += 1
    return tokens


class Expression:
    """A parsed selection expression; `matches(predicate)` says whether a test is selected,
    `predicate(name)` telling whether one name matches it."""

    def __init__(self, expression: str, flag: str = "-k"):
        self.text = expression
        self.flag = flag
        self._tokens = tokenize(expression, flag)
        self._position = 0
        if not self._tokens:
            self._tree: tuple = ("true",)
            return
        self._tree = self._or()
        if self._position != len(self._tokens):
            self._fail(f"unexpected {self._tokens[self._position]!r}")

    def _fail(self, what: str) -> None:
        raise ConfigurationError(f"{self.flag} {self.text!r}: {what}")

    def _peek(self) -> str | None:
        return self._tokens[self._position] if self._position < len(self._tokens) else None

    def _take(self) -> str:
        token = self._peek()
        if token is None:
            self._fail("ends too early")
        self._position += 1
        return token

    def _or(self) -> tuple:
        node = self._and()
        while self._peek() == "or":
            self._take()
            node = ("or", node, self._and())
        return node

    def _and(self) -> tuple:
        node = self._not()
        while self._peek() == "and":
            self._take()
            node = ("and", node, self._not())
        return node

    def _not(self) -> tuple:
        if self._peek() == "not":
            self._take()
            return ("not", self._not())
        token = self._take()
        if token == "(":
            node = self._or()
            if self._take() != ")":
                self._fail("missing ')'")
            return node
        if token == ")" or token in _KEYWORDS:
            self._fail(f"unexpected {token!r}")
        return ("name", token)

    def matches(self, predicate: Callable[[str], bool]) -> bool:
        def evaluate(node: tuple) -> bool:
            kind = node[0]
            if kind == "true":
                return True
            if kind == "name":
                return predicate(node[1])
            if kind == "not":
                return not evaluate(node[1])
            if kind == "and":
                return evaluate(node[1]) and evaluate(node[2])
            return evaluate(node[1]) or evaluate(node[2])

        return evaluate(self._tree)


def keyword_selects(expression: str, test_id: str) -> bool:
    """pytest's -k on a test id: names are case-insensitive substrings of it."""
    lowered = test_id.lower()
    return Expression(expression, "-k").matches(lambda name: name.lower() in lowered)


def marks_select(expression: str, marks: set[str]) -> bool:
    """pytest's -m: names are marks the test carries."""
    return Expression(expression, "-m").matches(lambda name: name in marks)
