#!/usr/bin/env python3
"""Generate (or check) agent/link/hot-text.ld: the linker script that puts the functions the agent
actually runs next to each other, so that its resident code is small.

Why (docs/performance.md, "Resident code"): the kernel maps code in whole windows around each
page it faults in (fault-around), so a function that runs keeps its neighbours resident too. In a
15 MB binary where the functions an `http` sink runs are spread among AWS SDK code that it never
runs, that cost the idle agent ~4 MiB of RSS. With the functions that run grouped into one output
section (`.text.outpost_hot`, placed before `.text`), they share pages with each other only.

    python3 bench/hot_text.py [--out agent/link/hot-text.ld] [--keep]
        Builds the agent (profile dist) and the sink (release), runs the agent under
        `valgrind --tool=callgrind` through a workload that exercises what a running agent does
        (start-up, catch-up of a few files, live appends with multiline records, rename and
        copytruncate rotation, a deleted file, a sink outage and its retries, SIGHUP reload, host
        sampling, idle rescans, SIGTERM), and writes the input sections of every function that ran
        and is in the binary: by exact name first, then with the hash wildcarded (below).
        callgrind sees every function executed, not a sample. Takes about 5 minutes.
    python3 bench/hot_text.py --check BINARY [--min-coverage 0.8]
        Counts the script's patterns that match a function of BINARY; exits 1 below the minimum
        (then regenerate: functions were renamed, or the symbol mangling changed).

Exact names keep the hot section as small as the code that ran (1.7 MiB) while they hold; the
legacy Rust mangling's hash (`17h<16 hex>E`) in them changes when a dependency, the version or
the compiler changes, so every name also comes with the hash replaced by a wildcard, which still
matches then, at the price of matching every instance of a generic function (2.6 MiB). Code
added or renamed since the profile run is not in the hot section until it is regenerated:
regenerate after changing what a running agent executes, and before measuring. The script
is a pure layout hint: a stale one costs RSS, never correctness (agent/build.rs passes it to the
linker for release-like profiles on Linux; OUTPOST_HOT_TEXT=0 turns it off).
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import e2e  # noqa: E402  (the bench's log generator and spool/checkpoint readers)

HASH = re.compile(r"17h[0-9a-f]{16}E$")
SECTION = ".text.outpost_hot"
DEADLINE = 600  # seconds for each wait: valgrind runs the agent ~50 times slower


def text_symbols(binary):
    """{name: size} of the function symbols of an ELF binary (nm)."""
    out = subprocess.run(["nm", "-S", binary], check=True, capture_output=True, text=True).stdout
    syms = {}
    for line in out.splitlines():
        p = line.split()
        if len(p) == 4 and p[2] in "tTwW":
            syms[p[3]] = int(p[1], 16)
    return syms


def pattern(name):
    return HASH.sub("17h*", name)


def executed_functions(callgrind_out):
    """Names of the functions callgrind counted cost for (run with --demangle=no)."""
    names, executed = {}, set()
    with open(callgrind_out) as f:
        for line in f:
            m = re.match(r"^(c?fn)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
            if not m:
                continue
            kind, ident, name = m.groups()
            if name:
                names[ident] = name
            if kind == "fn":
                executed.add(ident)
    return {names[i] for i in executed if i in names}


# --------------------------------------------------------------------------------------------
# The workload


def build():
    subprocess.run(["cargo", "build", "--profile", "dist", "--locked", "-p", "outpost-agent"],
                   cwd=REPO, check=True)
    subprocess.run(["cargo", "build", "--release", "--locked", "-p", "outpost-sink",
                    "--bin", "outpost-sink"],
                   cwd=REPO, check=True)
    meta = json.loads(subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"],
                                     cwd=REPO, check=True, capture_output=True,
                                     text=True).stdout)
    target = meta["target_directory"]
    return os.path.join(target, "dist", "outpost-agent"), os.path.join(target, "release",
                                                                       "outpost-sink")


def append(path, gen, records):
    with open(path, "a") as f:
        for _ in range(records):
            f.write(gen.record()[0])


def all_read(state, logs):
    for name in os.listdir(logs):
        st = os.stat(os.path.join(logs, name))
        if e2e.checkpoint_offset(state, st) != st.st_size:
            return False
    return True


def delivered(state):
    return e2e.spool_unacked(os.path.join(state, "spool")) == 0


def wait(what, pred, agent):
    deadline = time.time() + DEADLINE
    while not pred():
        if agent.poll() is not None:
            sys.exit("hot_text.py: the agent exited while waiting for %s" % what)
        if time.time() > deadline:
            sys.exit("hot_text.py: timed out waiting for %s" % what)
        time.sleep(0.5)


def profile(agent_bin, sink_bin, work):
    logs, state, sink_dir, textfile = (
        os.path.join(work, d) for d in ("logs", "state", "sink", "textfile"))
    for d in (logs, state, sink_dir, textfile):
        os.makedirs(d)
    # The opt-in custom inputs run too, so that their code is laid out for those who use them.
    with open(os.path.join(textfile, "app.prom"), "w") as f:
        f.write('# TYPE app_queue_depth gauge\napp_queue_depth{queue="mail"} 3\n')
    gen = e2e.LogGen(1, 1_700_000_000)
    for i in range(1, 11):
        append(os.path.join(logs, "app%d.log" % i), gen, 200)
    append(os.path.join(logs, "big.log"), gen, 20_000)  # full batches, not only timed ones
    sink = subprocess.Popen([sink_bin, "serve", "--listen", "127.0.0.1:0", "--data", sink_dir],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        first = sink.stdout.readline().strip()
        if not first.startswith("outpost-sink listening on "):
            sys.exit("hot_text.py: the sink did not start")
        url = first.removeprefix("outpost-sink listening on ")
        config = os.path.join(work, "agent.toml")
        with open(config, "w") as f:
            f.write("""[agent]
id = "hot-text"
hostname = "hot-text"
state_dir = "%s"
[host]
interval = "2s"
[tail]
rescan_interval = "2s"
rotate_wait = "1s"
[[logs]]
paths = ["%s/*.log"]
service = "bench"
read_from = "beginning"
[logs.multiline]
start_pattern = '^[0-9{]'
[sink]
kind = "http"
url = "%s"
[telemetry]
interval = "2s"
[textfile]
dir = "%s"
interval = "2s"
[[exec]]
name = "echo"
command = ["/bin/echo", "app_up 1"]
interval = "2s"
""" % (state, logs, url, textfile))
        out = os.path.join(work, "callgrind.out")
        env = dict(os.environ, GLIBC_TUNABLES=unit_tunables())
        agent = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--demangle=no", "--callgrind-out-file=" + out,
             agent_bin, "run", "--config", config],
            stderr=open(os.path.join(work, "agent.log"), "w"), env=env)
        try:
            print("hot_text.py: catch-up", flush=True)
            wait("the catch-up", lambda: all_read(state, logs) and delivered(state), agent)
            print("hot_text.py: live appends, rotation, copytruncate, deletion", flush=True)
            for _ in range(20):
                append(os.path.join(logs, "app1.log"), gen, 50)
                time.sleep(0.1)
            os.rename(os.path.join(logs, "app2.log"), os.path.join(logs, "app2.log.1"))
            append(os.path.join(logs, "app2.log"), gen, 100)
            with open(os.path.join(logs, "app3.log"), "r+") as f:
                f.truncate(0)
            append(os.path.join(logs, "app3.log"), gen, 10)
            os.unlink(os.path.join(logs, "app4.log"))
            wait("the live lines", lambda: all_read(state, logs) and delivered(state), agent)
            print("hot_text.py: sink outage", flush=True)
            sink.send_signal(signal.SIGSTOP)
            append(os.path.join(logs, "app5.log"), gen, 100)
            wait("the spool to hold the outage's lines",
                 lambda: not delivered(state) and all_read(state, logs), agent)
            time.sleep(8)  # the HTTP timeout and a retry or two; not a synchronisation
            sink.send_signal(signal.SIGCONT)
            wait("the redelivery", lambda: delivered(state), agent)
            print("hot_text.py: reload", flush=True)
            agent.send_signal(signal.SIGHUP)
            append(os.path.join(logs, "app6.log"), gen, 100)
            wait("lines after the reload", lambda: all_read(state, logs) and delivered(state),
                 agent)
            print("hot_text.py: idle", flush=True)
            time.sleep(15)  # idle on purpose: host samples and rescans while nothing is written
        finally:
            agent.send_signal(signal.SIGTERM)
            if agent.wait(timeout=DEADLINE) != 0:
                sys.exit("hot_text.py: the agent exited with %s; see %s/agent.log"
                         % (agent.returncode, work))
    finally:
        sink.send_signal(signal.SIGCONT)
        sink.terminate()
        sink.wait()
    return out


def unit_tunables():
    with open(os.path.join(REPO, "systemd", "outpost-agent.service")) as f:
        for line in f:
            m = re.match(r"^Environment=GLIBC_TUNABLES=(\S+)", line)
            if m:
                return m.group(1)
    return ""


def section_patterns(name):
    # LLVM puts functions it deems cold (#[cold], or only reached from panics) into
    # `.text.unlikely.NAME`; the others are in `.text.NAME` (-ffunction-sections).
    return "*(.text.%s .text.unlikely.%s)" % (name, name)


def write_script(path, exact, patterns, summary):
    """exact: the names of the functions that ran; patterns: the same with hashes wildcarded."""
    extra = [p for p in patterns if p not in set(exact)]
    with open(path + ".tmp", "w") as f:
        f.write("/* Generated by bench/hot_text.py: do not edit; regenerate it (docs/performance.md,\n"
                "   \"Resident code\"). %s */\n" % summary)
        f.write("SECTIONS\n{\n  %s :\n  {\n" % SECTION)
        f.write("    /* The functions that ran, by name: exact while the dependencies and the\n"
                "       version are those of the profile run. */\n")
        for n in exact:
            f.write("    %s\n" % section_patterns(n))
        f.write("    /* The same with the hash wildcarded: every instance of a generic function that\n"
                "       ran, and a match still after a dependency update changed the hashes. */\n")
        for p in extra:
            f.write("    %s\n" % section_patterns(p))
        f.write("  }\n}\nINSERT BEFORE .text;\n")
    os.replace(path + ".tmp", path)


def read_names(path):
    names = []
    with open(path) as f:
        for line in f:
            m = re.match(r"^\s*\*\(\.text\.(\S+) \.text\.unlikely\.\S+\)\s*$", line)
            if m:
                names.append(m.group(1))
    return names


def check(binary, script, min_coverage):
    syms = text_symbols(binary)
    stripped = {pattern(n) for n in syms}
    names = read_names(script)
    if not names:
        sys.exit("hot_text.py: no patterns in %s" % script)
    exact = [n for n in names if "*" not in n]
    pats = sorted({pattern(n) for n in names})
    exact_found = sum(1 for n in exact if n in syms)
    found = sum(1 for p in pats if p in stripped)
    coverage = found / len(pats)
    print("hot_text.py: %s against %s: %d of %d names match exactly, %d of %d with the hash "
          "wildcarded (%.0f %%)" % (os.path.relpath(script, REPO), binary, exact_found,
                                    len(exact), found, len(pats), 100 * coverage))
    if coverage < min_coverage:
        sys.exit("hot_text.py: below %.0f %%: regenerate it with `python3 bench/hot_text.py`"
                 % (100 * min_coverage))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(REPO, "agent", "link", "hot-text.ld"))
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--check", metavar="BINARY")
    ap.add_argument("--min-coverage", type=float, default=0.8)
    a = ap.parse_args()
    if a.check:
        return check(a.check, a.out, a.min_coverage)
    agent_bin, sink_bin = build()
    work = tempfile.mkdtemp(prefix="outpost-hot-text.")
    out = profile(agent_bin, sink_bin, work)
    syms = text_symbols(agent_bin)
    ran = sorted(n for n in executed_functions(out) if n in syms)
    pats = sorted({pattern(n) for n in ran})
    hot = sum(syms[n] for n in ran)
    wanted = set(pats)
    matched = sum(size for n, size in syms.items() if pattern(n) in wanted)
    summary = ("%d functions ran (%.2f MiB); the patterns match %.2f MiB of the %.2f MiB of "
               "functions." % (len(ran), hot / 2**20, matched / 2**20,
                               sum(syms.values()) / 2**20))
    write_script(a.out, ran, pats, summary)
    print("hot_text.py: wrote %s: %s" % (os.path.relpath(a.out, REPO), summary))
    if a.keep:
        print("kept: " + work)
    else:
        subprocess.run(["rm", "-rf", work], check=True)


if __name__ == "__main__":
    main()
