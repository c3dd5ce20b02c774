"""constraints.txt pins every package the project installs: a fresh machine gets what CI tested."""

from __future__ import annotations

import importlib.metadata as md
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def pinned() -> dict[str, str]:
    """``name -> version`` of every ``name==version`` line of constraints.txt."""
    pins: dict[str, str] = {}
    for raw in (ROOT / "constraints.txt").read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version.strip()
    return pins


def installed_closure(root: str, extras: set[str]) -> set[str]:
    """Every distribution ``root[extras]`` pulls in on this interpreter (markers evaluated)."""
    seen: set[str] = set()
    todo: list[tuple[str, set[str]]] = [(root, extras)]
    while todo:
        name, wanted = todo.pop()
        for text in md.requires(name) or []:
            req = Requirement(text)
            envs = [{"extra": e} for e in wanted] or [{"extra": ""}]
            if req.marker is not None and not any(req.marker.evaluate(env) for env in envs):
                continue
            dep = canonicalize_name(req.name)
            if dep not in seen:
                seen.add(dep)
                todo.append((dep, set(req.extras)))
    return seen


class TestConstraints:
    def test_every_installed_dependency_is_pinned_at_its_installed_version(self) -> None:
        """clever-relay[dev]'s whole dependency tree is in constraints.txt, at the version here."""
        pins = pinned()
        closure = installed_closure("clever-relay", {"dev"})
        unpinned = sorted(closure - set(pins))
        differing = sorted(d for d in closure & set(pins) if md.version(d) != pins[d])
        assert (unpinned, differing) == ([], [])
