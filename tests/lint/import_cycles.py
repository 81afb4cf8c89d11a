#!/usr/bin/env python3
"""No import circles between the crate's files (STYLE.md: "no import circles").

Builds the graph of which file uses which — `use crate::…`, `use super::…`, `use self::…` and
`crate::a::b::` and `super::a::` paths in code, test modules left out — and fails, naming the files and edges,
when a set of files reaches itself. A file's imports of its own submodules and of the modules
that contain it (`super::` to a `mod.rs`) are not edges: a parent declares its children.

Usage: import_cycles.py [SRC_DIR]   (default: src/ next to this repository's Cargo.toml)
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from pathlib import Path

USE = re.compile(r"\buse\s+((?:crate|super|self)(?:::\w+)*)(?:::\{([^;]*)\})?")
PATH = re.compile(r"\bcrate((?:::\w+)+)")
SUPER_PATH = re.compile(r"(?<![\w:])((?:super::)+\w+(?:::\w+)*)")
TESTS = re.compile(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{")


def modules(src: Path) -> dict[tuple[str, ...], Path]:
    """Module path → file, e.g. ('smtp', 'proto') → src/smtp/proto.rs."""
    found = {}
    for path in src.rglob("*.rs"):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] in ("mod", "lib", "main"):
            parts = parts[:-1]
        found[tuple(parts)] = path
    return found


def resolve(parts: list[str], known: dict) -> tuple[str, ...] | None:
    """The longest prefix of `parts` that is a module file."""
    for length in range(len(parts), -1, -1):
        if tuple(parts[:length]) in known:
            return tuple(parts[:length])
    return None


def targets(module: tuple[str, ...], text: str, known: dict) -> set:
    out = set()
    for match in USE.finditer(text):
        base = match.group(1).split("::")
        names = [n.strip().split("::")[0] for n in (match.group(2) or "").split(",")]
        names = [n for n in names if n and n != "self"] or [None]
        for name in names:
            parts = base + ([name] if name else [])
            if parts[0] == "crate":
                full = parts[1:]
            else:
                # `self` is this module; each `super` is one level up from it.
                here = list(module)
                if parts[0] == "self":
                    parts = parts[1:]
                while parts and parts[0] == "super":
                    here, parts = here[:-1], parts[1:]
                full = here + parts
            out.add(resolve(full, known))
    for match in PATH.finditer(text):
        out.add(resolve(match.group(1).strip(":").split("::"), known))
    for match in SUPER_PATH.finditer(text):
        here, parts = list(module), match.group(1).split("::")
        while parts and parts[0] == "super":
            here, parts = here[:-1], parts[1:]
        out.add(resolve(here + parts, known))
    # Not edges: nothing found, itself, the modules that contain it.
    return {t for t in out if t is not None and t != module and module[: len(t)] != t}


def graph(src: Path) -> dict:
    known = modules(src)
    edges = defaultdict(set)
    for module, path in known.items():
        text = TESTS.split(path.read_text())[0]
        edges[module] |= targets(module, text, known)
    return edges


def cycles(edges: dict) -> list[list]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in list(edges):
        if v not in index:
            visit(v)
    return found


def main() -> int:
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "src"
    edges = graph(src)
    found = cycles(edges)
    name = lambda m: "::".join(m) or "crate"
    for component in found:
        members = set(component)
        print("import circle: " + ", ".join(name(m) for m in component))
        for a in component:
            for b in sorted(edges[a] & members):
                print(f"    {name(a)} uses {name(b)}")
    if found:
        return 1
    print(f"no import circles among {len(edges)} modules")
    return 0


if __name__ == "__main__":
    sys.exit(main())
