#!/usr/bin/env python3
"""The structural rules of docs/architecture.md that a machine can check.

1. No file-level import circles inside a crate. Every `crate::…`, `super::…` and `self::…` path a
   file names (in `use` trees and in code, test modules left out) is resolved to the file that
   *defines* the item, following `pub use` re-exports, so a `mod.rs` that re-exports is a table of
   contents, not a hub. The file graph must have no strongly connected component of two or more
   files. Paths that start with a child module's name (`pub use child::X;` in a `mod.rs`) are
   not followed: a parent declaring and re-exporting its children is not an import.
2. Layers: per crate, a table of top-level modules that must never import others (LAYERS below).
3. Function length: no `fn` body longer than MAX_FN_LINES lines (test modules left out).
4. Third-party I/O crates: each is named only by the files CRATE_HOMES gives it.

Usage: scripts/check-structure.py [--graph CRATE_DIR | --self-test]
(exit 1 and a list when a rule is broken; --self-test shows on made-up crates that it can fail)
"""

import os
import re
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
CRATES = ["proto", "sink/core", "sink", "agent"]
MAX_FN_LINES = 120

# crate dir -> {module: set of top-level modules it must never import}. A module's own
# submodules are always allowed. The agent's layers flow one way (docs/architecture.md):
#   config <- state, spool, batch <- collect, ship <- telemetry <- run
# (`error`, `status` and `main` sit beside `run`: they name the errors of collect and ship.)
LAYERS = {
    "agent": {
        "config": {"state", "collect", "ship", "run", "spool", "telemetry", "status"},
        "state": {"collect", "ship", "run", "spool", "telemetry", "status"},
        "spool": {"collect", "ship", "run", "telemetry", "status"},
        "batch": {"collect", "ship", "run", "spool", "telemetry", "status"},
        "collect": {"ship", "run", "spool", "status"},
        "ship": {"collect", "run", "status"},
        "telemetry": {"run", "status"},
    },
    "sink": {
        # The fronts call the adapters; the adapters never call a front, the alarms or the
        # health check.
        "backend": {"front", "alarm", "health"},
        "health": {"front"},
        "alarm": {"front"},
    },
    "sink/core": {
        # ingest and the alarm engine work through the ports; nothing low imports them.
        "ports": {"ingest", "alarm", "health"},
        "health": {"ingest", "alarm"},
        "names": {"ingest", "alarm", "ports", "key", "ndjson", "health"},
        "key": {"ingest", "alarm", "ports"},
        "ndjson": {"ingest", "alarm", "ports"},
        "timestamp": {"ingest", "alarm", "ports", "key", "ndjson"},
    },
}


# crate dir -> {external crate path prefix: files or folders (relative to src/) that may name it}
CRATE_HOMES = {
    "agent": {
        "sysinfo": ["collect/host.rs"],
        "notify": ["collect/logs/"],
        "inotify": ["collect/logs/"],
        "reqwest": ["ship/http.rs"],
        "aws_config": ["ship/"],
        "aws_sdk_kinesis": ["ship/"],
        "aws_sigv4": ["ship/"],
        "aws_credential_types": ["ship/"],
        "aws_smithy_async": ["ship/"],
    },
    "sink": {
        "rusqlite": ["backend/local/sqlite.rs"],
        "reqwest": ["alarm/notify.rs"],
        "axum": ["front/"],
        "tower": ["front/"],
        "lambda_runtime": ["bin/outpost-sink-lambda.rs"],
        "aws_lambda_events": ["front/lambda/"],
        "aws_config": ["backend/aws/", "main.rs", "bin/"],
        "aws_sdk_s3": ["backend/aws/"],
        "aws_sdk_dynamodb": ["backend/aws/", "alarm/cloudwatch_apply.rs", "main.rs"],
        "aws_sdk_cloudwatch": ["backend/aws/", "alarm/cloudwatch_apply.rs", "main.rs"],
    },
    "sink/core": {},
}


def strip_comments_and_strings(text):
    """Blank out comments, string and char literals (keeping line breaks)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            i = j
            continue
        if text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append("\n" * text.count("\n", i, j))
            i = j
            continue
        m = re.match(r'r(#*)"', text[i:i + 10]) if c == "r" and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")) else None
        if m:
            close = '"' + m.group(1)
            j = text.find(close, i + len(m.group(0)))
            j = n if j < 0 else j + len(close)
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j
            continue
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j + 1
            continue
        if c == "'":
            m = re.match(r"'(\\.[^']*|[^\\'])'", text[i:i + 12])
            if m:
                out.append("' '")
                i += len(m.group(0))
                continue
        out.append(c)
        i += 1
    return "".join(out)


def matching_brace(text, k):
    """The index of the `}` that closes the `{` at `k` (or the end of `text`)."""
    depth, e = 0, k
    while e < len(text):
        if text[e] == "{":
            depth += 1
        elif text[e] == "}":
            depth -= 1
            if depth == 0:
                break
        e += 1
    return e


def cut_test_modules(text):
    """Remove `#[cfg(test)]` items (modules and functions) with their bodies."""
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]", text):
        if m.start() < i:
            continue
        j = m.end()
        # the item ends at its matching close brace, or at `;` for `mod x;` / `use …;`
        k = j
        while k < len(text) and text[k] not in "{;":
            k += 1
        if k >= len(text):
            break
        if text[k] == ";":
            out.append(text[i:m.start()])
            out.append("\n" * text.count("\n", m.start(), k + 1))
            i = k + 1
            continue
        e = matching_brace(text, k)
        out.append(text[i:m.start()])
        out.append("\n" * text.count("\n", m.start(), e + 1))
        i = e + 1
    out.append(text[i:])
    return "".join(out)


class Crate:
    def __init__(self, rel):
        self.rel = rel
        self.src = os.path.join(ROOT, rel, "src")
        self.files = {}  # module path tuple -> file path
        self.text = {}  # file -> stripped text
        roots = [f for f in ("lib.rs", "main.rs") if os.path.exists(os.path.join(self.src, f))]
        self.root = roots[0]
        self._walk(os.path.join(self.src, self.root), ())
        # Binary roots beside a library (main.rs, bin/*.rs): glue over the library, checked for
        # function length and crate homes, not part of the library's file graph.
        self.binaries = {}
        extra = [os.path.join(self.src, "main.rs")] if self.root == "lib.rs" else []
        bin_dir = os.path.join(self.src, "bin")
        if os.path.isdir(bin_dir):
            extra += [os.path.join(bin_dir, f) for f in sorted(os.listdir(bin_dir)) if f.endswith(".rs")]
        for path in extra:
            if os.path.exists(path):
                raw = open(path, encoding="utf-8").read()
                self.binaries[path] = cut_test_modules(strip_comments_and_strings(raw))

    def _walk(self, path, modpath):
        self.files[modpath] = path
        raw = open(path, encoding="utf-8").read()
        text = cut_test_modules(strip_comments_and_strings(raw))
        self.text[path] = text
        here = os.path.dirname(path)
        stem = os.path.splitext(os.path.basename(path))[0]
        is_dir_owner = stem in ("mod", "lib", "main") and (path == os.path.join(self.src, self.root) or stem == "mod")
        base = here if is_dir_owner else os.path.join(here, stem)
        for m in re.finditer(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", text, re.M):
            name = m.group(1)
            for cand in (os.path.join(base, name + ".rs"), os.path.join(base, name, "mod.rs")):
                if os.path.exists(cand):
                    self._walk(cand, modpath + (name,))
                    break

    def module_of(self, path):
        for mp, p in self.files.items():
            if p == path:
                return mp
        raise KeyError(path)

    def reexports(self, modpath):
        """name -> absolute path tuple for `pub use` items of a module file."""
        text = self.text[self.files[modpath]]
        result = {}
        for m in re.finditer(r"\bpub(?:\([^)]*\))?\s+use\s+([^;]+);", text):
            for path, alias in expand_use(m.group(1)):
                absolute = absolutize(path, modpath)
                if absolute is None:
                    continue
                result[alias] = absolute
        return result

    def resolve(self, path, depth=0):
        """The file defining the item at absolute path (a tuple, without `crate`)."""
        if depth > 10:
            return None
        best = ()
        for i in range(len(path), -1, -1):
            if tuple(path[:i]) in self.files:
                best = tuple(path[:i])
                break
        rest = path[len(best):]
        if rest and rest[0] != "*":
            target = self.reexports(best).get(rest[0])
            if target is not None and tuple(target) != tuple(path):
                return self.resolve(tuple(target) + tuple(rest[1:]), depth + 1)
        return self.files[best]


def split_top(s):
    parts, depth, cur = [], 0, ""
    for c in s:
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        if c == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += c
    if cur.strip():
        parts.append(cur)
    return parts


def expand_use(tree, prefix=()):
    """[(path tuple, alias)] of a use tree."""
    tree = tree.strip()
    if not tree:
        return []
    if "{" in tree:
        head, _, body = tree.partition("{")
        body = body[: body.rfind("}")]
        head_parts = tuple(p.strip() for p in head.split("::") if p.strip())
        out = []
        for part in split_top(body):
            out.extend(expand_use(part, prefix + head_parts))
        return out
    alias = None
    m = re.match(r"^(.*?)\s+as\s+(\w+)$", tree, re.S)
    if m:
        tree, alias = m.group(1), m.group(2)
    parts = tuple(p.strip() for p in tree.split("::") if p.strip())
    if parts and parts[-1] == "self":
        parts = parts[:-1]
    if not parts:
        return []
    return [(prefix + parts, alias or parts[-1])]


def absolutize(path, modpath):
    path = list(path)
    if not path:
        return None
    if path[0] == "crate":
        return tuple(path[1:])
    if path[0] in ("self", "super"):
        base = list(modpath)
        while path and path[0] in ("self", "super"):
            if path[0] == "super":
                if not base:
                    return None
                base.pop()
            path.pop(0)
        return tuple(base + path)
    return None  # an external crate, std, or a name in scope


USE_RE = re.compile(r"\buse\s+([^;]+);")
INLINE_RE = re.compile(r"\b((?:crate|super|self)(?:\s*::\s*(?:super|\w+))+)")


def refs_of(crate, path):
    text = crate.text[path]
    modpath = crate.module_of(path)
    out = []
    for m in USE_RE.finditer(text):
        for p, _ in expand_use(m.group(1)):
            out.append(p)
    rest = USE_RE.sub("", text)
    for m in INLINE_RE.finditer(rest):
        out.append(tuple(re.sub(r"\s+", "", m.group(1)).split("::")))
    edges = set()
    for p in out:
        a = absolutize(p, modpath)
        if a is None:
            continue
        target = crate.resolve(a)
        if target and target != path:
            edges.add(target)
    return edges


def sccs(graph):
    index, low, stack, on, result, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
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
            result.append(comp)

    for v in list(graph):
        if v not in index:
            visit(v)
    return result


FN_RE = re.compile(r"^(\s*)(?:pub(?:\([^)]*\))?\s+)?(?:const\s+)?(?:async\s+)?(?:unsafe\s+)?fn\s+(\w+)", re.M)


def long_functions(path, text):
    found = []
    for m in FN_RE.finditer(text):
        start = m.start()
        k = m.end()
        depth_paren = 0
        while k < len(text):
            ch = text[k]
            if ch == "(":
                depth_paren += 1
            elif ch == ")":
                depth_paren -= 1
            elif ch == ";" and depth_paren == 0:
                k = -1  # a declaration without a body
                break
            elif ch == "{" and depth_paren == 0:
                break
            k += 1
        if k < 0 or k >= len(text):
            continue
        e = matching_brace(text, k)
        lines = text.count("\n", start, e) + 1
        if lines > MAX_FN_LINES:
            line_no = text.count("\n", 0, start) + 1
            found.append((path, line_no, m.group(2), lines))
    return found


def analyse(rel, layers, graph_of=None, homes=None):
    """The structural problems of the crate at `rel` (relative to ROOT, or absolute)."""
    problems = []
    crate = Crate(rel)
    graph = {p: refs_of(crate, p) for p in crate.text}
    short = lambda p: os.path.relpath(p, ROOT)  # noqa: E731
    if graph_of == rel:
        for p in sorted(graph):
            print(short(p), "->", ", ".join(sorted(short(t) for t in graph[p])))
    for comp in sccs(graph):
        if len(comp) > 1:
            problems.append("import circle in %s: %s" % (rel, ", ".join(sorted(short(p) for p in comp))))
    for module, banned in layers.items():
        for p, targets in graph.items():
            mp = crate.module_of(p)
            if not mp or mp[0] != module:
                continue
            for t in targets:
                tm = crate.module_of(t)
                if tm and tm[0] in banned:
                    problems.append("layer rule in %s: %s (%s) imports %s (%s)" % (rel, short(p), module, short(t), tm[0]))
    every_file = dict(crate.text, **crate.binaries)
    for name, homes in (CRATE_HOMES.get(rel, {}) if homes is None else homes).items():
        pattern = re.compile(r"(?<![\w:])" + name + r"::")
        for p, text in every_file.items():
            inside = os.path.relpath(p, crate.src)
            if pattern.search(text) and not any(inside == h or inside.startswith(h) for h in homes):
                problems.append("crate home in %s: %s names %s (only %s may)" % (rel, short(p), name, ", ".join(homes)))
    for p, text in every_file.items():
        for path, line, name, lines in long_functions(p, text):
            problems.append("long function: %s:%d fn %s is %d lines (max %d)" % (short(path), line, name, lines, MAX_FN_LINES))
    return problems


def self_test():
    """The checks can fail: a made-up crate with a circle, a layer breach and a long function,
    and one whose mod.rs re-exports what its children import (no circle)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        def crate(name, files):
            for path, text in files.items():
                full = os.path.join(tmp, name, "src", path)
                os.makedirs(os.path.dirname(full), exist_ok=True)
                with open(full, "w", encoding="utf-8") as f:
                    f.write(text)
            return os.path.join(tmp, name)

        long_body = "".join("    let _x%d = %d;\n" % (i, i) for i in range(MAX_FN_LINES + 5))
        bad = crate("bad", {
            "lib.rs": "mod low;\nmod high;\n",
            "low.rs": "use crate::high::{H};\npub struct L;\n// crate::not::code\n"
                      "fn db() { let _ = rusqlite::Connection::open_in_memory(); }\n",
            "high.rs": "pub struct H;\npub fn f() -> crate::low::L { crate::low::L }\n"
                       "fn long() {\n" + long_body + "}\n"
                       "#[cfg(test)]\nmod tests {\n    fn t() {\n" + long_body + "    }\n}\n",
        })
        found = analyse(bad, {"low": {"high"}}, homes={"rusqlite": ["high.rs"]})
        kinds = sorted(p.split(":")[0] for p in found)
        assert kinds == [
            "crate home in %s" % bad, "import circle in %s" % bad, "layer rule in %s" % bad, "long function",
        ], found
        good = crate("good", {
            "lib.rs": "pub mod ship;\n",
            "ship/mod.rs": "mod a;\nmod b;\npub use a::A;\npub use b::B;\npub const LIMIT: u32 = 1;\n",
            "ship/a.rs": "use crate::ship::B;\nuse super::LIMIT;\npub struct A;\n",
            "ship/b.rs": "pub struct B;\n",
        })
        found = analyse(good, {}, homes={})
        assert found == [], found


def main():
    if len(sys.argv) == 2 and sys.argv[1] == "--self-test":
        self_test()
        print("check-structure self-test: ok")
        return 0
    graph_of = sys.argv[2] if len(sys.argv) == 3 and sys.argv[1] == "--graph" else None
    problems = []
    for rel in CRATES:
        if os.path.isdir(os.path.join(ROOT, rel, "src")):
            problems.extend(analyse(rel, LAYERS.get(rel, {}), graph_of))
    for p in problems:
        print(p)
    if problems:
        print("%d structural problem(s) (docs/architecture.md)" % len(problems))
        return 1
    print("structure: no import circles, layers respected, no function over %d lines" % MAX_FN_LINES)
    return 0


if __name__ == "__main__":
    sys.exit(main())
