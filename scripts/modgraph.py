#!/usr/bin/env python3
"""Print the import graph of tollgate's `src/` modules and fail on a circle.

Every `crate::a::b` path in a module's file names an edge from that module to
the longest module prefix that exists (`a::b` if `src/a/b.rs` is a module,
else `a`).  A module's child modules (`src/a/x.rs` under `src/a.rs`) are part
of it only when they are `#[cfg(test)]` test files; every other file is a node
of its own.  `super::` paths resolve too.  Edges from a module to its own
ancestors or descendants are kept; an import circle is a strongly connected
component of more than one module.

  python3 scripts/modgraph.py            # circles only (exit 1 if any)
  python3 scripts/modgraph.py --edges    # every edge, then circles
  python3 scripts/modgraph.py --core     # also check the core/shell boundary
"""
import os
import re
import sys

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")


def module_files():
    mods = {}
    for root, _dirs, files in os.walk(SRC):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(root, f), SRC)[:-3]
            parts = rel.split(os.sep)
            if parts[-1] == "mod":
                parts = parts[:-1]
            if parts in (["lib"], ["main"]):
                continue
            mods["::".join(parts)] = os.path.join(root, f)
    return mods


TEST_DECLARED = set()


def is_test_file(name):
    """A module only tests compile: `tests`, `*_tests`, or one its parent
    declares under `#[cfg(test)]` (see `find_test_declared`)."""
    leaf = name.split("::")[-1]
    if leaf == "tests" or "::tests::" in name or name.endswith("_tests"):
        return True
    parts = name.split("::")
    return any("::".join(parts[: i + 1]) in TEST_DECLARED for i in range(len(parts)))


def find_test_declared(mods):
    """`#[cfg(test)] mod x;` in a parent's file: `parent::x` is test code."""
    pat = re.compile(r"#\[cfg\(test\)\]\s*(?:#\[[^\]]*\]\s*)*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;")
    for name, path in mods.items():
        text = strip_comments(open(path, encoding="utf-8").read())
        for m in pat.finditer(text):
            TEST_DECLARED.add(f"{name}::{m.group(1)}" if name else m.group(1))


def strip_comments(text):
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r"/\*.*?\*/", "", text, flags=re.S)


def strip_test_mods(text):
    """Drop `#[cfg(test)] mod x { ... }` blocks: test code may import freely."""
    out, i = [], 0
    pat = re.compile(r"#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s+)?mod\s+\w+\s*\{")
    while True:
        m = pat.search(text, i)
        if not m:
            out.append(text[i:])
            break
        out.append(text[i : m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    return "".join(out)


def expand_use_groups(text):
    """`use crate::{a::X, b};` -> mentions of crate::a::X and crate::b."""
    paths = []
    for m in re.finditer(r"\buse\s+((?:crate|super|self)(?:::\w+)*)::\{", text):
        prefix, depth, j, start = m.group(1), 1, m.end(), m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        body = text[start : j - 1]
        for item in re.split(r",(?![^{]*\})", body):
            item = item.strip()
            if not item:
                continue
            head = re.match(r"[\w:]+", item)
            if head:
                paths.append(prefix + "::" + head.group(0))
    return paths


def resolve(path, here, mods):
    parts = path.split("::")
    if parts[0] == "crate":
        parts = parts[1:]
    else:
        base = here.split("::")
        while parts and parts[0] in ("super", "self"):
            if parts[0] == "super":
                base = base[:-1]
            parts = parts[1:]
        parts = base + parts
    for n in range(len(parts), 0, -1):
        cand = "::".join(parts[:n])
        if cand in mods:
            return cand
    return None


def owner(name, mods):
    """Test files count as their parent module."""
    while is_test_file(name) and "::" in name:
        name = name.rsplit("::", 1)[0]
    return name


def graph():
    mods = module_files()
    find_test_declared(mods)
    edges = {}
    for name, path in mods.items():
        if is_test_file(name):
            continue
        text = strip_test_mods(strip_comments(open(path, encoding="utf-8").read()))
        refs = re.findall(r"\b(?:crate|super)(?:::\w+)+", text) + expand_use_groups(text)
        for r in refs:
            target = resolve(r, name, mods)
            if target is None:
                continue
            target = owner(target, mods)
            if target != name:
                edges.setdefault(name, set()).add(target)
    return mods, edges


def sccs(nodes, edges):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
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
            out.append(sorted(comp))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return [c for c in out if len(c) > 1]


def ancestors_or_descendants(a, b):
    return a.startswith(b + "::") or b.startswith(a + "::")


# The cores: they decide and never do I/O. A core imports no shell module,
# and names no runtime, network, file system or clock (docs/architecture.md).
CORE = [
    "admission", "auth", "capability", "catchup", "cbc", "channel_list", "cors", "credentials",
    "entitlements", "error", "headers", "hls", "incarnation", "ipnet_set",
    "keyserver::uri", "path", "revocation", "rotation", "router", "segcache::range",
    "session", "sync::ppv", "sync::protocol", "sync::signature", "sync::usage",
    "units", "config::bind_ip", "secret",
]
# The one exception: secrets written `file:PATH` or `env:NAME` are read when
# the config is loaded (never per request), by `Secret::resolve`.
ALLOWED = {"secret": [r"\bstd::fs\b"]}
# Shell modules inside a core's folder.
SHELL_INSIDE_CORE = ["auth::backend::client"]
# What a core must not name.
FORBIDDEN = [
    r"\btokio::", r"\bhyper::", r"\bhyper_util::", r"\breqwest::", r"\bredis::",
    r"\btokio_rustls::", r"SystemTime::now", r"Instant::now", r"\bstd::fs\b",
    r"\bstd::net::Tcp", r"\bstd::thread::sleep", r"\bstd::process::",
    r"\bcrate::clock\b", r"\bunix_now\b",
]


def is_core(name):
    if any(name == s or name.startswith(s + "::") for s in SHELL_INSIDE_CORE):
        return False
    return any(name == c or name.startswith(c + "::") for c in CORE)


def core_violations(mods, edges):
    out = []
    for name, path in sorted(mods.items()):
        if is_test_file(name) or not is_core(name):
            continue
        for target in sorted(edges.get(name, ())):
            if not is_core(target):
                out.append(f"core {name} imports shell module {target}")
        text = strip_test_mods(strip_comments(open(path, encoding="utf-8").read()))
        for pat in FORBIDDEN:
            if pat in ALLOWED.get(name, []):
                continue
            m = re.search(pat, text)
            if m:
                out.append(f"core {name} names {m.group(0)} ({os.path.relpath(path)})")
    return out


def main():
    mods, edges = graph()
    if "--edges" in sys.argv:
        for a in sorted(edges):
            print(f"{a} -> {', '.join(sorted(edges[a]))}")
    # A module and its own submodules are one room: `foo.rs` declaring `mod bar`
    # and `foo/bar.rs` using `super::Thing` is not a circle between rooms.
    flat = {}
    for a, bs in edges.items():
        for b in bs:
            if not ancestors_or_descendants(a, b):
                flat.setdefault(a, set()).add(b)
    circles = sccs([m for m in mods if not is_test_file(m)], flat)
    for c in circles:
        print("import circle: " + " <-> ".join(c))
    bad = core_violations(mods, edges) if "--core" in sys.argv else []
    for v in bad:
        print(v)
    if circles or bad:
        sys.exit(1)
    if "--core" in sys.argv:
        cores = [m for m in mods if not is_test_file(m) and is_core(m)]
        print(f"{len(cores)} core modules import no shell module and do no I/O")
    print(f"no import circle among {len([m for m in mods if not is_test_file(m)])} modules")


if __name__ == "__main__":
    main()
