"""Operator-configured blocked patterns: compiled once, refused when they could backtrack without end.

Python's ``re`` is a backtracking engine with no timeout, so a pattern like ``(a+)+$`` takes exponential
time on ``"aaaa…!"``: any user could then stall the event loop with one request. Two defences:

* At construction a pattern is refused (``ValueError`` naming its index, never its text) when a variable
  quantifier or an alternation sits inside a variable quantifier (``(a+)+``, ``(\\w+\\s?)*``,
  ``(a|aa)*``), the shapes behind exponential backtracking; the possessive form is accepted
  (``(?:cat|dog)++``, Python 3.11+), as it never backtracks into earlier iterations. It is refused too
  when one attempt could take more than ``MAX_STEPS`` steps, an open-ended quantifier counting as
  ``WINDOW`` steps times the backtracking paths that reach it: ``[a-z]+@[a-z]+`` or
  ``password\\s*[:=]\\s*\\S+`` pass (each quantifier has one way to end), ``.*x.*y`` (cubic) does not.
  Prefer simple patterns: a literal first, classes, quantifiers separated by what they cannot match.
* Each search is bounded: a text longer than ``WINDOW`` is searched in windows of that size overlapping
  by ``OVERLAP``, so an accepted pattern costs O(len × MAX_STEPS) at worst, not O(len²) or worse
  (measured: ``\\s*x`` on 20 kB of spaces, about 25 ms). A match longer than ``OVERLAP`` that straddles
  a window edge can be missed, and ``$`` or a lookahead can also match at a window's end (which blocks
  more, never less).

``google-re2`` would remove the problem at the root (linear time, no backtracking) at the price of a
native dependency and a narrower syntax (no lookarounds or backreferences); this module is the
dependency-free middle ground.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Sequence
from typing import Any

WINDOW = 512
OVERLAP = 128
# Most steps one attempt may take (see the module docstring).
MAX_STEPS = 8 * WINDOW

# ``re._parser`` is private but stable across 3.11–3.13 and typeshed has no stub for it; the public
# ``sre_parse`` alias warns on import. Typed as Any on purpose.
_parser: Any = importlib.import_module("re._parser")
_REPEATS = (_parser.MAX_REPEAT, _parser.MIN_REPEAT, _parser.POSSESSIVE_REPEAT)
_CATEGORIES = {
    getattr(_parser, f"CATEGORY_{name}"): re.compile(escape)
    for name, escape in {
        "DIGIT": r"\d",
        "NOT_DIGIT": r"\D",
        "SPACE": r"\s",
        "NOT_SPACE": r"\S",
        "WORD": r"\w",
        "NOT_WORD": r"\W",
    }.items()
}
# Characters tried to decide whether two one-character matchers overlap (with every literal and range
# end of both): ASCII plus a few non-ASCII letters, digits and spaces.
_PROBES = [chr(code) for code in range(128)] + list("éß中٣Ⅻ\u00a0\u2028")

Matcher = Callable[[str], bool]


class _Unsafe(Exception):
    pass


def _either(one: Matcher, other: Matcher) -> Matcher:
    return lambda char: one(char) or other(char)


def _in_class(items: Any, char: str) -> bool:
    negate, hit = False, False
    for op, arg in items:
        if op is _parser.NEGATE:
            negate = True
        elif op is _parser.LITERAL:
            hit = hit or ord(char) == arg
        elif op is _parser.RANGE:
            hit = hit or arg[0] <= ord(char) <= arg[1]
        elif op is _parser.CATEGORY and arg in _CATEGORIES:
            hit = hit or _CATEGORIES[arg].match(char) is not None
        else:
            return True  # unknown: assume it matches (overlap multiplies, the safe side)
    return hit != negate


class _Analysis:
    def __init__(self, ignorecase: bool) -> None:
        self._ignorecase = ignorecase

    def matcher(self, op: Any, arg: Any) -> tuple[Matcher, list[str]] | None:
        """A one-character matcher and the characters it names, or None if ``op`` is not one."""
        if op is _parser.LITERAL or op is _parser.NOT_LITERAL:
            equal = op is _parser.LITERAL
            test: Matcher = lambda char: (ord(char) == arg) == equal  # noqa: E731
            named = [chr(arg)]
        elif op is _parser.ANY:
            test, named = (lambda char: char != "\n"), []
        elif op is _parser.IN:
            test = lambda char: _in_class(arg, char)  # noqa: E731
            named = [chr(a) for o, a in arg if o is _parser.LITERAL]
            named += [chr(end) for o, a in arg if o is _parser.RANGE for end in a]
        else:
            return None
        if self._ignorecase:
            plain = test
            test = lambda char: any(  # noqa: E731
                plain(case) for case in (char, char.lower(), char.upper()) if len(case) == 1
            )
        return test, named

    def first(self, items: Any, index: int) -> tuple[Matcher, list[str]] | None:
        """The matcher every match of ``items[index:]`` starts with, if one is known."""
        for position, (op, arg) in enumerate(items[index:], start=index):
            if op is _parser.AT:
                continue  # zero-width: look past it
            if op in _REPEATS and len(arg[2]) == 1:
                atom = self.matcher(*arg[2][0])
                if atom is None or arg[0] >= 1:
                    return atom
                after = self.first(items, position + 1)  # optional: it or what follows
                if after is None:
                    return None
                return _either(atom[0], after[0]), atom[1] + after[1]
            if op is _parser.SUBPATTERN and len(arg[-1]):
                return self.first(arg[-1], 0)
            return self.matcher(op, arg)
        return None

    def disjoint(self, one: tuple[Matcher, list[str]], other: tuple[Matcher, list[str]]) -> bool:
        probes = _PROBES + one[1] + other[1]
        return not any(one[0](char) and other[0](char) for char in probes)

    def cost(self, items: Any, inside_repeat: bool = False, top: bool = False) -> tuple[int, int]:
        """Upper bounds on (steps, backtracking paths) of one attempt of the parsed ``items``; raises
        ``_Unsafe`` for the shapes whose paths grow exponentially. Steps are counted for quantifiers
        only (a literal fails or passes in one), each times the paths that reach it."""
        steps, paths = 0, 1
        for index, (op, arg) in enumerate(items):
            if op in _REPEATS:
                if top and all(o is _parser.AT for o, _ in items[index + 1 :]):
                    # Nothing after it can fail: reached once, it ends the attempt.
                    step, _ = self._repeat_cost(op, arg, items, index, inside_repeat)
                    return _cap(steps + step), paths
                step, factor = self._repeat_cost(op, arg, items, index, inside_repeat)
            elif op is _parser.BRANCH:
                if inside_repeat:
                    raise _Unsafe("an alternation inside a quantifier")
                costs = [self.cost(branch) for branch in arg[1]]
                step, factor = sum(c[0] for c in costs), sum(c[1] for c in costs)
            elif op in (_parser.SUBPATTERN, _parser.ATOMIC_GROUP, _parser.ASSERT, _parser.ASSERT_NOT):
                step, factor = self.cost(arg if op is _parser.ATOMIC_GROUP else arg[-1], inside_repeat)
            elif op is _parser.GROUPREF_EXISTS:
                costs = [self.cost(branch, inside_repeat) for branch in arg[1:] if branch is not None]
                step, factor = sum(c[0] for c in costs), sum(c[1] for c in costs)
            else:
                step, factor = 0, 1
            steps, paths = _cap(steps + paths * step), _cap(paths * factor)
        return steps, paths

    def _repeat_cost(self, op: Any, arg: Any, items: Any, index: int, inside: bool) -> tuple[int, int]:
        low, high, body = arg
        variable = low != high
        if op is _parser.POSSESSIVE_REPEAT:
            step, _ = self.cost(body)  # iterations are atomic: no path multiplies across them
            return _cap(min(high, WINDOW) * max(step, 1)), 1
        if variable and inside:
            raise _Unsafe("a quantifier inside another quantifier")
        step, factor = self.cost(body, inside or variable)
        if not variable:
            return _cap(low * step), _cap(factor ** min(low, 64))
        span = min(high, WINDOW)
        atom = self.matcher(*body[0]) if len(body) == 1 else None
        after = self.first(items, index + 1)
        if atom is not None and after is not None and self.disjoint(atom, after):
            return span, 1  # only one length lets the successor match
        return _cap(span * max(step, 1)), _cap((span - low + 1) * factor)


def _cap(value: int) -> int:
    return min(value, MAX_STEPS + 1)


def compile_blocked_patterns(patterns: Sequence[str]) -> tuple[re.Pattern[str], ...]:
    """Compile ``patterns``; ``ValueError`` names the index of the first one that is invalid or unsafe
    (never its text: config errors may be shown to whoever sent an override)."""
    compiled = []
    for index, source in enumerate(patterns):
        try:
            pattern = re.compile(source)
        except re.error as exc:
            raise ValueError(
                f"blocked_patterns[{index}] is not a valid regular expression: {exc.msg}"
            ) from None
        try:
            parsed = _parser.parse(source)
            steps, _ = _Analysis(bool(parsed.state.flags & re.IGNORECASE)).cost(parsed, top=True)
        except _Unsafe as exc:
            raise ValueError(
                f"blocked_patterns[{index}] has {exc}, which can backtrack for minutes on hostile input;"
                " simplify it or make the outer quantifier possessive, e.g. (?:…)++"
            ) from None
        if steps > MAX_STEPS:
            raise ValueError(
                f"blocked_patterns[{index}] has too many open-ended quantifiers to match in bounded time;"
                " keep one *, + or {n,} and bound the others, e.g. \\s{0,5} instead of \\s*"
            )
        compiled.append(pattern)
    return tuple(compiled)


def first_blocked(patterns: Sequence[re.Pattern[str]], text: str) -> int | None:
    """The index of the first pattern that matches ``text`` (searched in bounded windows), or None."""
    for index, pattern in enumerate(patterns):
        if _search_windowed(pattern, text):
            return index
    return None


def _search_windowed(pattern: re.Pattern[str], text: str) -> bool:
    if len(text) <= WINDOW:
        return pattern.search(text) is not None
    start = 0
    while start < len(text):
        if pattern.search(text, start, start + WINDOW) is not None:
            return True
        start += WINDOW - OVERLAP
    return False
