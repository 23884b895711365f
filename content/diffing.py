"""The difference between two versions of a template, field by field and line by line."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

import orjson

from content.channels import DEFAULT_LOCALE


@dataclass(frozen=True)
class FieldDiff:
    locale: str
    field: str
    status: str  # "changed", "added", "removed"
    lines: list[tuple[str, str]] = field(default_factory=list)  # (" " | "+" | "-" | "@", text)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()


def _lines(old: str, new: str, *, context: int = 3) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    diff = difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=context)
    for line in list(diff)[2:]:  # drop the ---/+++ header
        if line.startswith("@@"):
            out.append(("@", line))
        else:
            out.append((line[:1] or " ", line[1:]))
    return out


def content_diff(old: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]]) -> list[FieldDiff]:
    """Every field that differs between two contents, default locale first."""
    diffs: list[FieldDiff] = []
    locales = sorted(set(old) | set(new), key=lambda code: (code != DEFAULT_LOCALE, code))
    for locale in locales:
        before, after = old.get(locale), new.get(locale)
        if before is None or after is None:
            status = "added" if before is None else "removed"
            fields = after if before is None else before
            for name, value in fields.items():
                text = _text(value)
                if not text:
                    continue
                sign = "+" if before is None else "-"
                diffs.append(
                    FieldDiff(locale, name, status, [(sign, line) for line in text.splitlines()])
                )
            continue
        for name in list(dict.fromkeys([*before, *after])):
            old_text, new_text = _text(before.get(name)), _text(after.get(name))
            if old_text != new_text:
                diffs.append(FieldDiff(locale, name, "changed", _lines(old_text, new_text)))
    return diffs
