"""A minimal IDF editor: objects as field lists, enough to adapt a prototype model."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass
class IdfObject:
    fields: list[str]  # fields[0] is the class name

    @property
    def kind(self) -> str:
        return self.fields[0]

    @property
    def name(self) -> str:
        return self.fields[1] if len(self.fields) > 1 else ""

    def text(self) -> str:
        return "  " + ",\n    ".join(self.fields) + ";\n"


def parse(text: str) -> list[IdfObject]:
    """Split an IDF into objects; comments are dropped."""
    body = "\n".join(line.split("!", 1)[0] for line in text.splitlines())
    objects = []
    for chunk in body.split(";"):
        fields = [f.strip() for f in chunk.split(",")]
        if fields and fields[0]:
            objects.append(IdfObject(fields))
    return objects


def dump(objects: list[IdfObject]) -> str:
    return "\n".join(o.text() for o in objects)


def drop(objects: list[IdfObject], pattern: str) -> list[IdfObject]:
    """Remove every object whose class matches the regular expression (case-insensitive)."""
    rx = re.compile(pattern, re.I)
    return [o for o in objects if not rx.fullmatch(o.kind)]


def find(objects: list[IdfObject], kind: str) -> list[IdfObject]:
    return [o for o in objects if o.kind.lower() == kind.lower()]
