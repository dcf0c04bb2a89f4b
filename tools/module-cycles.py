#!/usr/bin/env python3
"""Lists import cycles between the modules of each crate (`crate::a::b` and `super::x` paths
in `use` lines and in code), one line per cycle; exits 1 when there is one.

Usage: tools/module-cycles.py [crates/<name> ...]   (default: every crate)

A module is a file (`src/a/b.rs` or `src/a/b/mod.rs` is `a::b`). A reference to `crate::a::b::C`
counts as an edge to the deepest module of that path that exists. Tests (`#[cfg(test)]` to the
end of the file) are left out.
"""
import os
import re
import sys


def modules(src):
    mods = {}
    for root, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(root, f)
            rel = os.path.relpath(path, src)[:-3].split(os.sep)
            if rel[-1] in ("mod", "lib", "main"):
                rel = rel[:-1]
            mods["::".join(rel)] = path
    return mods


def resolve(mods, parts):
    for n in range(len(parts), 0, -1):
        name = "::".join(parts[:n])
        if name in mods:
            return name
    return None


REF = re.compile(r"\b((?:crate|super)(?:::[A-Za-z_][A-Za-z0-9_]*)+|(?:crate|super)::\{[^}]*\})")


def edges(mods):
    out = {m: set() for m in mods}
    for m, path in mods.items():
        text = open(path, encoding="utf-8").read()
        text = text.split("#[cfg(test)]")[0]
        text = re.sub(r"//[^\n]*", "", text)
        here = m.split("::") if m else []
        for ref in REF.findall(text):
            groups = [ref]
            brace = re.match(r"((?:crate|super)(?:::\w+)*)::\{([^}]*)\}", ref)
            if brace:
                groups = [f"{brace.group(1)}::{x.strip().split(' ')[0]}" for x in brace.group(2).split(",") if x.strip()]
            for g in groups:
                parts = g.split("::")
                if parts[0] == "crate":
                    target = parts[1:]
                else:
                    base = list(here)
                    while parts and parts[0] == "super":
                        parts = parts[1:]
                        base = base[:-1] if base else base
                    target = base + parts
                t = resolve(mods, target)
                if t is not None and t != m and not m.startswith(t + "::") and t != "":
                    out[m].add(t)
    return out


def cycles(graph):
    index, low, stack, on, comps, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return comps


def main():
    crates = sys.argv[1:] or sorted(os.path.join("crates", c) for c in os.listdir("crates"))
    found = 0
    for c in crates:
        src = os.path.join(c, "src")
        if not os.path.isdir(src):
            continue
        for comp in cycles(edges(modules(src))):
            found += 1
            print(f"{os.path.basename(c)}: {' <-> '.join(comp)}")
    if found == 0:
        print("no cycles between modules")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
