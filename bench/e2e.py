#!/usr/bin/env python3
"""Helpers for bench/e2e.sh (Python 3 standard library only).

  gen FILE --size BYTES           deterministic mixed log (nginx, JSON, Java with stack traces)
  refs FILE [--level N]           time `cat FILE` and `zstd -T1 -c -N FILE`
  catchup ...                     poll the agent until it read FILE into the spool, then until
                                  the spool is drained
  live ...                        write N lines/s to FILE while measuring the agent
  idle ...                        measure the agent over a quiet window
  meta KEY=VALUE...                write the run's metadata (meta.json)
  report ...                      assemble the results JSON and print the summary table

Measurements come from /proc: utime+stime (/proc/PID/stat, in clock ticks, CLK_TCK passed in
by the shell from `getconf CLK_TCK`), VmHWM and VmRSS (/proc/PID/status). Waits are polls with
a deadline, never fixed sleeps.
"""

import argparse
import json
import os
import random
import re
import signal
import resource
import struct
import subprocess
import sys
import time

MIB = 1024 * 1024
POLL = 0.05  # seconds between two looks at the agent's state files

# --------------------------------------------------------------------------------------------
# The log generator


class LogGen:
    """Records of a busy web service, as one file would mix them.

    By record: 45 % nginx combined access lines, 45 % JSON application lines, 8 % Spring Boot
    text lines, 2 % Spring Boot ERROR lines followed by a Java stack trace (20 to 60 lines,
    with a "Caused by" section). Every record starts with a digit or `{`; continuation lines
    of a trace start with a tab, `java.`, `Caused by:` or similar, so the multiline pattern
    `^[0-9{]` joins them.
    """

    def __init__(self, seed, start_s, step_ms=20):
        r = random.Random(seed)
        self.r = r
        self.t_ms = int(start_s * 1000)
        self.step_ms = step_ms
        self._sec = None
        self.ips = [
            "%d.%d.%d.%d" % (r.choice([10, 172, 192, 81, 89, 185, 203]), r.randrange(256),
                             r.randrange(256), r.randrange(1, 255))
            for _ in range(600)
        ]
        self.uas = [
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
            "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
            "curl/8.5.0",
            "Go-http-client/1.1",
            "kube-probe/1.31",
            "python-requests/2.32.3",
        ]
        self.paths = [
            "/api/v1/orders/%d", "/api/v1/carts/%d", "/api/v1/products/%d", "/api/v1/users/%d/profile",
            "/static/js/app.%x.js", "/static/css/main.%x.css", "/healthz?probe=%d", "/search?q=item%d&page=2",
        ]
        self.referers = ["-", "https://shop.example.com/", "https://shop.example.com/cart",
                         "https://www.google.com/"]
        self.statuses = [200] * 40 + [201, 204, 301, 302, 304, 304, 400, 401, 403, 404, 404, 429, 500, 502, 503]
        self.methods = ["GET"] * 8 + ["POST", "PUT"]
        self.msgs = [
            ("info", "order placed"), ("info", "payment authorized"), ("info", "cart updated"),
            ("debug", "cache hit"), ("debug", "cache miss"), ("warn", "slow upstream response"),
            ("info", "user signed in"), ("error", "inventory reservation failed"),
        ]
        self.services = ["checkout", "payments", "cart", "inventory"]
        self.java_lines = [
            "Fetched %d items for cart %d",
            "Completed initialization of context %d in %d ms",
            "HikariPool-1 - Connection is not available, request timed out after %dms (total=%d)",
            "Scheduled job refreshPrices finished: %d prices in %d ms",
        ]
        self.loggers = ["c.e.shop.web.OrderController", "c.e.shop.service.CartService",
                        "o.s.web.servlet.DispatcherServlet", "com.zaxxer.hikari.pool.HikariPool",
                        "c.e.shop.jobs.PriceRefreshJob"]
        frames = [
            "com.example.shop.service.OrderService.place(OrderService.java:%d)",
            "com.example.shop.web.OrderController.create(OrderController.java:%d)",
            "java.base/jdk.internal.reflect.DirectMethodHandleAccessor.invoke(DirectMethodHandleAccessor.java:103)",
            "java.base/java.lang.reflect.Method.invoke(Method.java:580)",
            "org.springframework.web.method.support.InvocableHandlerMethod.doInvoke(InvocableHandlerMethod.java:255)",
            "org.springframework.web.method.support.InvocableHandlerMethod.invokeForRequest(InvocableHandlerMethod.java:188)",
            "org.springframework.web.servlet.mvc.method.annotation.ServletInvocableHandlerMethod.invokeAndHandle(ServletInvocableHandlerMethod.java:118)",
            "org.springframework.web.servlet.mvc.method.annotation.RequestMappingHandlerAdapter.invokeHandlerMethod(RequestMappingHandlerAdapter.java:986)",
            "org.springframework.web.servlet.mvc.method.annotation.RequestMappingHandlerAdapter.handleInternal(RequestMappingHandlerAdapter.java:891)",
            "org.springframework.web.servlet.DispatcherServlet.doDispatch(DispatcherServlet.java:1089)",
            "org.springframework.web.servlet.DispatcherServlet.doService(DispatcherServlet.java:979)",
            "org.springframework.web.servlet.FrameworkServlet.processRequest(FrameworkServlet.java:1014)",
            "org.springframework.web.servlet.FrameworkServlet.doPost(FrameworkServlet.java:914)",
            "jakarta.servlet.http.HttpServlet.service(HttpServlet.java:590)",
            "org.apache.catalina.core.ApplicationFilterChain.internalDoFilter(ApplicationFilterChain.java:195)",
            "org.apache.catalina.core.ApplicationFilterChain.doFilter(ApplicationFilterChain.java:140)",
            "org.springframework.web.filter.RequestContextFilter.doFilterInternal(RequestContextFilter.java:100)",
            "org.springframework.web.filter.OncePerRequestFilter.doFilter(OncePerRequestFilter.java:116)",
            "org.apache.catalina.core.StandardWrapperValve.invoke(StandardWrapperValve.java:167)",
            "org.apache.catalina.core.StandardContextValve.invoke(StandardContextValve.java:90)",
            "org.apache.catalina.authenticator.AuthenticatorBase.invoke(AuthenticatorBase.java:483)",
            "org.apache.catalina.core.StandardHostValve.invoke(StandardHostValve.java:115)",
            "org.apache.catalina.valves.ErrorReportValve.invoke(ErrorReportValve.java:93)",
            "org.apache.catalina.core.StandardEngineValve.invoke(StandardEngineValve.java:74)",
            "org.apache.catalina.connector.CoyoteAdapter.service(CoyoteAdapter.java:344)",
            "org.apache.coyote.http11.Http11Processor.service(Http11Processor.java:391)",
            "org.apache.coyote.AbstractProcessorLight.process(AbstractProcessorLight.java:63)",
            "org.apache.coyote.AbstractProtocol$ConnectionHandler.process(AbstractProtocol.java:896)",
            "org.apache.tomcat.util.net.NioEndpoint$SocketProcessor.doRun(NioEndpoint.java:1736)",
            "org.apache.tomcat.util.net.SocketProcessorBase.run(SocketProcessorBase.java:52)",
            "org.apache.tomcat.util.threads.ThreadPoolExecutor.runWorker(ThreadPoolExecutor.java:1191)",
            "org.apache.tomcat.util.threads.ThreadPoolExecutor$Worker.run(ThreadPoolExecutor.java:659)",
            "org.apache.tomcat.util.threads.TaskThread$WrappingRunnable.run(TaskThread.java:63)",
            "java.base/java.lang.Thread.run(Thread.java:1583)",
        ]
        self.frames = ["\tat " + f for f in frames]
        self.causes = [
            ("java.lang.IllegalStateException: Reservation %d rejected by inventory",
             "org.springframework.dao.DataAccessResourceFailureException: Unable to acquire JDBC Connection"),
            ("jakarta.servlet.ServletException: Request processing failed: java.lang.NullPointerException",
             "java.lang.NullPointerException: Cannot invoke \"com.example.shop.model.Cart.items()\" because \"cart\" is null"),
            ("org.springframework.web.client.ResourceAccessException: I/O error on POST request for \"http://payments:8080/authorize\": Read timed out",
             "java.net.SocketTimeoutException: Read timed out"),
        ]

    def _clock(self):
        self.t_ms += self.r.randrange(self.step_ms * 2 + 1)
        s, ms = divmod(self.t_ms, 1000)
        if s != self._sec:
            self._sec = s
            g = time.gmtime(s)
            self._nginx = time.strftime("%d/%b/%Y:%H:%M:%S +0000", g)
            self._iso = time.strftime("%Y-%m-%dT%H:%M:%S", g)
            self._java = time.strftime("%Y-%m-%d %H:%M:%S", g)
        return ms

    def record(self):
        """One record: its text (ending with a newline) and its number of lines."""
        r = self.r
        ms = self._clock()
        k = r.random()
        if k < 0.45:
            path = r.choice(self.paths) % r.randrange(1, 2_000_000)
            return ('%s - - [%s] "%s %s HTTP/1.1" %d %d "%s" "%s" %.3f\n' % (
                r.choice(self.ips), self._nginx, r.choice(self.methods), path,
                r.choice(self.statuses), r.randrange(120, 48_000), r.choice(self.referers),
                r.choice(self.uas), r.random() * r.choice([0.05, 0.2, 1.5]))), 1
        if k < 0.90:
            level, msg = r.choice(self.msgs)
            return ('{"ts":"%s.%03dZ","level":"%s","service":"%s","msg":"%s","order_id":"ord_%08x",'
                    '"user_id":%d,"trace_id":"%032x","span_id":"%016x","latency_ms":%.1f,'
                    '"region":"eu-west-1","pod":"%s-7d9f%d"}\n' % (
                        self._iso, ms, level, r.choice(self.services), msg, r.getrandbits(32),
                        r.randrange(1, 5_000_000), r.getrandbits(128), r.getrandbits(64),
                        r.random() * 250, r.choice(self.services), r.randrange(10))), 1
        head = "%s.%03d %5s 4242 --- [nio-8080-exec-%d] %-40s : " % (
            self._java, ms, "ERROR" if k >= 0.98 else "INFO", r.randrange(1, 201),
            r.choice(self.loggers))
        if k < 0.98:
            return head + (r.choice(self.java_lines) % (r.randrange(1, 900), r.randrange(1, 90_000))) + "\n", 1
        top, cause = r.choice(self.causes)
        if "%d" in top:
            top = top % r.randrange(100_000)
        depth = r.randrange(12, len(self.frames))
        lines = [head + "Request processing failed", top]
        lines += [f % r.randrange(40, 400) if "%d" in f else f for f in self.frames[-depth:]]
        lines.append("Caused by: " + cause)
        lines += [f % r.randrange(40, 400) if "%d" in f else f for f in self.frames[:r.randrange(2, 8)]]
        lines.append("\t... %d more" % (depth - 2))
        return "\n".join(lines) + "\n", len(lines)


def cmd_gen(a):
    """Write a log of at least --size bytes, whole records only; print what was written."""
    t0 = time.monotonic()
    gen = LogGen(a.seed, a.start)
    size = lines = records = 0
    with open(a.file, "w", buffering=MIB) as f:
        while size < a.size:
            chunk = []
            n = 0
            for _ in range(20_000):
                text, k = gen.record()
                chunk.append(text)
                lines += k
                records += 1
            s = "".join(chunk)
            f.write(s)
            size += len(s)  # ASCII only: characters are bytes
    # The last chunk overshoots; cut it back to the first record boundary at or past --size.
    actual = os.path.getsize(a.file)
    assert actual == size
    if size > a.size:
        with open(a.file, "r+b") as f:
            f.seek(a.size)
            tail = f.read()
        # Record boundaries: a newline followed by a record start (digit or '{'), or the end.
        m = re.search(rb"\n(?=[0-9{])", tail)
        cut = a.size + m.end() if m else size
        dropped = tail[cut - a.size:]
        lines -= dropped.count(b"\n")
        records -= len(re.findall(rb"(?:^|\n)[0-9{]", dropped))
        with open(a.file, "r+b") as f:
            f.truncate(cut)
        size = cut
    json.dump({"bytes": size, "lines": lines, "records": records, "seed": a.seed,
               "seconds": round(time.monotonic() - t0, 2)}, sys.stdout)
    print()


# --------------------------------------------------------------------------------------------
# /proc


def proc_cpu_ticks(pid):
    """utime + stime of a process (all its threads, live and exited), in clock ticks."""
    with open("/proc/%d/stat" % pid) as f:
        s = f.read()
    rest = s[s.rindex(")") + 2:].split()
    return int(rest[11]) + int(rest[12])  # fields 14 and 15 of proc(5)


def proc_mem_kib(pid):
    """VmHWM and VmRSS of a process, in KiB."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(("VmHWM:", "VmRSS:")):
                out[line[:5]] = int(line.split()[1])
    return out["VmHWM"], out["VmRSS"]


def proc_rss_split_kib(pid):
    """RssAnon and RssFile of a process, in KiB: heap and stacks against mapped files (the
    binary's and the libraries' pages)."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(("RssAnon:", "RssFile:")):
                out[line.split(":")[0]] = int(line.split()[1])
    return out.get("RssAnon", 0), out.get("RssFile", 0)


def thread_switches(pid):
    """{thread id: (name, voluntary context switches)} of a process's live threads: roughly
    how often each thread went to sleep and was woken again."""
    out = {}
    base = "/proc/%d/task" % pid
    for tid in os.listdir(base):
        try:
            with open("%s/%s/comm" % (base, tid)) as f:
                name = f.read().strip()
            with open("%s/%s/status" % (base, tid)) as f:
                n = next(int(l.split()[1]) for l in f if l.startswith("voluntary_ctxt_switches"))
        except (OSError, StopIteration):
            continue
        out[tid] = (name, n)
    return out


def all_process_ticks():
    """{pid: (comm, utime+stime+cutime+cstime)} of every process visible now: a build's
    short-lived compiler processes are counted in their parent once they exit."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                s = f.read()
        except OSError:
            continue
        comm = s[s.index("(") + 1:s.rindex(")")]
        rest = s[s.rindex(")") + 2:].split()
        out[int(d)] = (comm, sum(int(x) for x in rest[11:15]))
    return out


class Window:
    """CPU of the agent (and the sink) and of the whole machine between start() and stop()."""

    def __init__(self, pid, clk_tck, sink_pid=None):
        self.pid, self.clk, self.sink_pid = pid, clk_tck, sink_pid

    def start(self):
        self.t0 = time.time()
        self.cpu0 = proc_cpu_ticks(self.pid)
        self.sink0 = proc_cpu_ticks(self.sink_pid) if self.sink_pid else 0
        self.procs0 = all_process_ticks()
        self.sw0 = thread_switches(self.pid)
        self.self0 = sum(os.times()[:4])
        return self

    def stop(self):
        t1 = time.time()
        cpu1 = proc_cpu_ticks(self.pid)
        sink1 = proc_cpu_ticks(self.sink_pid) if self.sink_pid else 0
        procs1 = all_process_ticks()
        sw1 = thread_switches(self.pid)
        self_cpu = sum(os.times()[:4]) - self.self0
        wall = t1 - self.t0
        ticks = cpu1 - self.cpu0
        # Other processes that used CPU in the window (a build, a test run): the top five.
        mine = {self.pid, self.sink_pid, os.getpid()}
        others = []
        for pid, (comm, t) in procs1.items():
            if pid in mine:
                continue
            d = t - self.procs0.get(pid, (comm, 0))[1]
            if d > 0:
                others.append((d, "%s[%d]" % (comm, pid)))
        others.sort(reverse=True)
        hwm, rss = proc_mem_kib(self.pid)
        anon, file_kib = proc_rss_split_kib(self.pid)
        # Threads that exited or started during the window are left out of the wake-ups; the
        # others are summed by name (tokio's workers share one).
        # Without a start reading (a window from the process's start), every thread counts.
        sw = {}
        for tid, (name, n) in sw1.items():
            if self.sw0 is None:
                sw[name] = sw.get(name, 0) + n
            elif tid in self.sw0:
                sw[name] = sw.get(name, 0) + n - self.sw0[tid][1]
        return {
            "wall_s": round(wall, 3),
            "agent_cpu_ticks": ticks,
            "agent_cpu_s": round(ticks / self.clk, 3),
            "agent_cpu_pct_of_one_core": round(100.0 * ticks / self.clk / wall, 4),
            "sink_cpu_s": round((sink1 - self.sink0) / self.clk, 3) if self.sink_pid else None,
            "harness_cpu_s": round(self_cpu, 3),
            "other_processes_cpu_s": [[c, round(d / self.clk, 2)] for d, c in others[:5]],
            "agent_wakeups_per_s": round(sum(sw.values()) / wall, 1),
            "agent_wakeups_by_thread": dict(sorted(sw.items(), key=lambda kv: -kv[1])),
            "agent_vmhwm_kib": hwm,
            "agent_vmrss_kib": rss,
            "agent_rss_anon_kib": anon,
            "agent_rss_file_kib": file_kib,
        }


# --------------------------------------------------------------------------------------------
# The agent's state files


def checkpoint_offset(state_dir, st):
    """The agent's checkpoint offset for the file with st's device and inode, or None."""
    try:
        with open(os.path.join(state_dir, "checkpoints.json")) as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return None  # not written yet (or replaced under us: look again)
    for e in doc.get("files", []):
        if e.get("dev") == st.st_dev and e.get("ino") == st.st_ino:
            return e.get("offset")
    return None


def spool_unacked(spool_dir):
    """Entries in the spool not yet acknowledged by the sink (docs/spool.md), or None if the
    spool is changing under us (look again)."""
    try:
        acked = 0
        try:
            with open(os.path.join(spool_dir, "acked"), "rb") as f:
                b = f.read(24)
            if len(b) == 24 and b[:8] == b"OPSPACK\0":
                acked = struct.unpack_from("<Q", b, 12)[0]
        except FileNotFoundError:
            pass
        segs = sorted(n for n in os.listdir(spool_dir) if n.endswith(".seg"))
        if not segs:
            return 0
        last = None
        with open(os.path.join(spool_dir, segs[-1]), "rb") as f:
            h = f.read(24)
            if len(h) < 24:
                return None
            last = struct.unpack_from("<Q", h, 12)[0] - 1
            while True:
                eh = f.read(16)
                if len(eh) < 16:
                    break
                length, _crc, eid = struct.unpack("<IIQ", eh)
                f.seek(length, 1)
                last = eid
        return max(0, last - acked)
    except FileNotFoundError:
        return None


def poll_until(what, pred, deadline):
    """Call pred() every POLL seconds until it returns a true value; fail at the deadline."""
    while True:
        v = pred()
        if v:
            return v
        if time.time() > deadline:
            sys.exit("e2e.py: timed out waiting for %s" % what)
        time.sleep(POLL)


def is_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ")[1][0] not in "ZX"
    except OSError:
        return False


def check_alive(pid):
    if not is_alive(pid):
        sys.exit("e2e.py: the agent (pid %d) exited; see its log" % pid)


# --------------------------------------------------------------------------------------------
# Phases


def timed(cmd, stdin_path):
    """Run cmd with stdin from a file and stdout to /dev/null: wall and CPU seconds."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    with open(stdin_path, "rb") as i, open(os.devnull, "wb") as o:
        subprocess.run(cmd, stdin=i, stdout=o, check=True)
    wall = time.monotonic() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return wall, cpu


def cmd_refs(a):
    size = os.path.getsize(a.file)
    out = {}
    for name, cmd in (("cat", ["cat"]), ("zstd", ["zstd", "-T1", "-c", "-%d" % a.level])):
        wall, cpu = timed(cmd, a.file)
        out[name] = {"command": " ".join(cmd) + " <FILE >/dev/null", "wall_s": round(wall, 3),
                     "cpu_s": round(cpu, 3), "mb_per_s": round(size / 1e6 / wall, 1)}
    json.dump(out, sys.stdout)
    print()


def cmd_catchup(a):
    st = os.stat(a.file)
    size = st.st_size
    deadline = a.t0 + a.timeout
    spool = os.path.join(a.state, "spool")
    w = Window(a.pid, a.clk_tck, a.sink_pid)
    # The window starts at the agent's exec (t0), and its CPU count at 0 ticks.
    w.t0, w.cpu0, w.self0 = a.t0, 0, sum(os.times()[:4])
    w.sink0 = proc_cpu_ticks(a.sink_pid)
    w.procs0 = all_process_ticks()
    w.sw0 = None  # counted from the agent's start
    progress = []  # (seconds since t0, offset), about once a second

    def caught_up():
        check_alive(a.pid)
        off = checkpoint_offset(a.state, st)
        now = time.time()
        if off is not None and (not progress or now - a.t0 - progress[-1][0] >= 1.0):
            progress.append((round(now - a.t0, 2), off))
        return off is not None and off >= size

    poll_until("the checkpoint to reach the end of the file", caught_up, deadline)
    read = w.stop()
    read["seconds"] = read.pop("wall_s")
    read["mb_per_s"] = round(size / 1e6 / read["seconds"], 2)
    read["lines_per_s"] = round(a.lines / read["seconds"])
    read["records_per_s"] = round(a.records / read["seconds"])
    read["agent_cpu_s_per_gb"] = round(read["agent_cpu_s"] / (size / 1e9), 2)
    # The last partial batch waits for batch.max_age (and an open multiline record for its
    # flush_timeout): the rate up to the first sample of the final offset excludes that wait.
    last_off = max(o for _, o in progress) if progress else 0
    t_last = min((t for t, o in progress if o == last_off), default=None)
    if t_last and last_off < size:
        read["rate_before_last_batch_mb_per_s"] = round(last_off / 1e6 / t_last, 2)
    poll_until("the spool to be drained",
               lambda: check_alive(a.pid) or spool_unacked(spool) == 0, deadline)
    delivered = w.stop()
    out = {"bytes": size, "lines": a.lines, "records": a.records, "read_into_spool": read,
           "delivered": {"seconds": delivered["wall_s"],
                         "mb_per_s": round(size / 1e6 / delivered["wall_s"], 2),
                         "agent_cpu_s": delivered["agent_cpu_s"],
                         "sink_cpu_s": delivered["sink_cpu_s"],
                         "agent_vmhwm_kib": delivered["agent_vmhwm_kib"]},
           "checkpoint_progress": progress}
    json.dump(out, sys.stdout)
    print()


def _write_live(a, gen, fd, w, per_burst, interval, t_start, window_at, end_at, outage_from,
                outage_to, timeline, spool_dir):
    """cmd_live's writer loop; returns its counters."""
    pending = []  # lines of the current record not written yet
    records_started = written = nbytes = late = k = rss_max = win_lines0 = 0
    in_window = frozen = False
    win_t0 = None
    next_rss = window_at
    while True:
        due = t_start + k * interval
        now = time.monotonic()
        if due >= end_at:
            break
        if now < due:
            time.sleep(due - now)  # pacing the writer, not synchronisation
        elif now - due > interval:
            late += 1
        if not in_window and time.monotonic() >= window_at:
            w.start()
            win_t0 = time.monotonic()
            win_lines0 = written
            in_window = True
        out = []
        while len(out) < per_burst:
            if not pending:
                text, _ = gen.record()
                pending = text.splitlines(keepends=True)
                pending.reverse()
                records_started += 1
            out.append(pending.pop())
        data = "".join(out).encode()
        os.write(fd, data)
        written += len(out)
        nbytes += len(data)
        now = time.monotonic()
        if outage_from is not None and not frozen and outage_from <= now < outage_to:
            os.kill(a.sink_pid, signal.SIGSTOP)
            frozen = True
        elif frozen and now >= outage_to:
            os.kill(a.sink_pid, signal.SIGCONT)
            frozen = False
        if in_window and now >= next_rss:
            check_alive(a.pid)
            rss = proc_mem_kib(a.pid)[1]
            rss_max = max(rss_max, rss)
            if outage_from is not None:
                state = "before" if now < outage_from else ("outage" if frozen else "after")
                timeline.append((round(now - window_at, 1), rss, spool_bytes(spool_dir), state))
            next_rss += 1.0
        k += 1
    if frozen:
        os.kill(a.sink_pid, signal.SIGCONT)
    return written, nbytes, late, k, rss_max, records_started, win_lines0, win_t0


def cmd_live(a):
    """Append --rate lines/s to FILE in bursts every --burst-ms, for --warmup then --seconds;
    measure the agent over the --seconds window; then wait until it delivered everything."""
    gen = LogGen(a.seed, time.time())
    per_burst = a.rate * a.burst_ms // 1000
    interval = a.burst_ms / 1000.0
    fd = os.open(a.file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    w = Window(a.pid, a.clk_tck, a.sink_pid)
    t_start = time.monotonic()
    window_at = t_start + a.warmup
    end_at = window_at + a.seconds
    # --outage-seconds: the sink is frozen (SIGSTOP) --outage-at seconds into the window, and
    # resumed (SIGCONT) after --outage-seconds; RSS and spool bytes are sampled every second.
    outage_from = window_at + a.outage_at if a.outage_seconds > 0 else None
    outage_to = outage_from + a.outage_seconds if outage_from is not None else None
    timeline = []  # (seconds into the window, VmRSS KiB, spool bytes, state)
    spool_dir = os.path.join(a.state, "spool")
    try:
        written, nbytes, late, _, rss_max, records_started, win_lines0, win_t0 = _write_live(
            a, gen, fd, w, per_burst, interval, t_start, window_at, end_at, outage_from,
            outage_to, timeline, spool_dir)
    finally:
        if outage_from is not None:
            os.kill(a.sink_pid, signal.SIGCONT)  # whatever happened, never leave it frozen
    os.close(fd)
    win = w.stop()
    win_wall = time.monotonic() - win_t0
    t_end = time.time()
    win["writer_lines"] = written - win_lines0
    win["writer_lines_per_s"] = round((written - win_lines0) / win_wall, 1)
    win["writer_late_bursts"] = late
    win["agent_vmrss_max_sampled_kib"] = max(rss_max, win["agent_vmrss_kib"])
    st = os.stat(a.file)
    deadline = t_end + a.timeout
    poll_until("the agent to read and deliver the live file",
               lambda: check_alive(a.pid) or (checkpoint_offset(a.state, st) == st.st_size
                                              and spool_unacked(os.path.join(a.state, "spool")) == 0),
               deadline)
    out = {"rate_asked": a.rate, "burst_ms": a.burst_ms, "warmup_s": a.warmup,
           "lines_written": written, "records_written": records_started, "bytes_written": nbytes,
           "window": win, "drained_after_writer_stopped_s": round(time.time() - t_end, 2)}
    if outage_from is not None:
        by = {st: [r for r in timeline if r[3] == st] for st in ("before", "outage", "after")}
        out["outage"] = {
            "at_s": a.outage_at, "seconds": a.outage_seconds, "timeline": timeline,
            "rss_max_kib": {st: max((r[1] for r in rows), default=None) for st, rows in by.items()},
            "spool_max_bytes": max((r[2] for r in timeline), default=0),
        }
    json.dump(out, sys.stdout)
    print()


def spool_bytes(spool_dir):
    """Bytes in the spool's segment files."""
    try:
        return sum(os.path.getsize(os.path.join(spool_dir, n)) for n in os.listdir(spool_dir)
                   if n.endswith(".seg"))
    except OSError:
        return 0


def cmd_idle(a):
    """Wait until the agent has read and delivered the quiet files, then measure --seconds."""
    files = [os.path.join(a.dir, n) for n in sorted(os.listdir(a.dir))]
    stats = [os.stat(p) for p in files]
    t0 = time.time()
    poll_until("the agent to read and deliver the quiet files",
               lambda: check_alive(a.pid) or (
                   all(checkpoint_offset(a.state, s) == s.st_size for s in stats)
                   and spool_unacked(os.path.join(a.state, "spool")) == 0),
               t0 + a.timeout)
    settled = time.time() - t0
    # The start-up read's peak is not idle: note it, then reset VmHWM so that it counts from
    # the window's start (proc(5), /proc/PID/clear_refs, value 5).
    startup_hwm = proc_mem_kib(a.pid)[0]
    with open("/proc/%d/clear_refs" % a.pid, "w") as f:
        f.write("5")
    w = Window(a.pid, a.clk_tck).start()
    rss_max = 0
    end = w.t0 + a.seconds
    while time.time() < end:
        check_alive(a.pid)
        rss_max = max(rss_max, proc_mem_kib(a.pid)[1])
        time.sleep(min(1.0, max(0.0, end - time.time())))  # the measurement window itself
    win = w.stop()
    win["agent_vmrss_max_sampled_kib"] = max(rss_max, win["agent_vmrss_kib"])
    json.dump({"files": len(files), "settled_after_s": round(settled, 2),
               "startup_vmhwm_kib": startup_hwm, "window": win}, sys.stdout)
    print()


# --------------------------------------------------------------------------------------------
# The report

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def stop_summary(log_path):
    """The fields of the agent's last 'outpost-agent stopped' log line."""
    try:
        with open(log_path, errors="replace") as f:
            lines = [ANSI.sub("", l) for l in f if "outpost-agent stopped" in l]
    except OSError:
        return None
    if not lines:
        return None
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", lines[-1])}


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def mib(kib):
    return None if kib is None else round(kib / 1024, 1)


def cmd_meta(a):
    json.dump(dict(kv.split("=", 1) for kv in a.pairs), sys.stdout, indent=2)
    print()


def cmd_report(a):
    work = a.work
    res = load(os.path.join(work, "meta.json")) or {}
    res["targets"] = {
        "catchup_ratio_to_zstd_min": 0.60, "catchup_peak_rss_mib_max": 64,
        "live_cpu_pct_max": 2.0, "live_rss_mib_max": 16,
        "idle_cpu_pct_max": 0.05, "idle_rss_mib_max": 10,
    }
    rows = []  # (phase, figure, measured, target, verdict)

    def row(phase, figure, value, unit, target=None, ok=None):
        verdict = "" if ok is None else ("met" if ok else "MISSED")
        rows.append((phase, figure, "%s %s" % (value, unit) if value is not None else "n/a",
                     target or "", verdict))

    def memory_rows(phase, win, limit_mib):
        # VmHWM lags (the kernel updates it lazily): the sampled VmRSS counts when higher.
        peak = max(win["agent_vmhwm_kib"], win["agent_vmrss_max_sampled_kib"])
        row(phase, "RSS max (VmHWM, or VmRSS sampled each second if higher)", mib(peak), "MiB",
            "< %d MiB" % limit_mib, peak < limit_mib * 1024)
        row(phase, "RSS at end (VmRSS)", mib(win["agent_vmrss_kib"]), "MiB")
        row(phase, "  of which anon / file",
            "%s / %s" % (mib(win["agent_rss_anon_kib"]), mib(win["agent_rss_file_kib"])), "MiB")

    c = load(os.path.join(work, "catchup.json"))
    refs = load(os.path.join(work, "refs.json"))
    if c:
        c["agent_stopped"] = stop_summary(os.path.join(work, "catchup-agent.log"))
        c["references"] = refs
        r = c["read_into_spool"]
        if refs:
            c["ratio_to_zstd"] = round(r["mb_per_s"] / refs["zstd"]["mb_per_s"], 4)
            row("catch-up", "cat FILE >/dev/null", refs["cat"]["mb_per_s"], "MB/s")
            row("catch-up", refs["zstd"]["command"].replace("<FILE >/dev/null", "FILE"), refs["zstd"]["mb_per_s"], "MB/s")
        row("catch-up", "agent: file read into spool", r["seconds"], "s")
        row("catch-up", "agent throughput", r["mb_per_s"], "MB/s")
        if refs:
            row("catch-up", "agent / zstd throughput", "%.1f" % (100 * c["ratio_to_zstd"]), "%",
                ">= 60 %", c["ratio_to_zstd"] >= 0.60)
        row("catch-up", "lines/s (records/s)", "%d (%d)" % (r["lines_per_s"], r["records_per_s"]), "")
        row("catch-up", "agent CPU per GB read", r["agent_cpu_s_per_gb"], "s")
        row("catch-up", "agent CPU over the read", "%.1f" % r["agent_cpu_pct_of_one_core"], "% of a core")
        row("catch-up", "peak RSS (VmHWM)", mib(r["agent_vmhwm_kib"]), "MiB", "< 64 MiB",
            r["agent_vmhwm_kib"] < 64 * 1024)
        if "rate_before_last_batch_mb_per_s" in r:
            row("catch-up", "rate before the last batch", r["rate_before_last_batch_mb_per_s"], "MB/s")
        row("catch-up", "all delivered to the sink", c["delivered"]["seconds"], "s")
        res["catchup"] = c
    lv = load(os.path.join(work, "live.json"))
    if lv:
        lv["agent_stopped"] = stop_summary(os.path.join(work, "live-agent.log"))
        win = lv["window"]
        row("live", "writer achieved", win["writer_lines_per_s"], "lines/s")
        row("live", "agent CPU", "%.2f" % win["agent_cpu_pct_of_one_core"], "% of a core", "< 2 %",
            win["agent_cpu_pct_of_one_core"] < 2.0)
        row("live", "agent wake-ups", win["agent_wakeups_per_s"], "/s")
        memory_rows("live", win, 16)
        row("live", "delivered after writer stopped", lv["drained_after_writer_stopped_s"], "s")
        res["live"] = lv
    og = load(os.path.join(work, "outage.json"))
    if og:
        og["agent_stopped"] = stop_summary(os.path.join(work, "outage-agent.log"))
        o = og["outage"]
        mx = o["rss_max_kib"]
        row("outage", "sink frozen (SIGSTOP)", "%g s, %g s into the window" % (o["seconds"], o["at_s"]), "")
        for st in ("before", "outage", "after"):
            if mx.get(st) is not None:
                row("outage", "VmRSS max " + st, mib(mx[st]), "MiB")
        row("outage", "spool at most", "%.1f" % (o["spool_max_bytes"] / 1e6), "MB")
        row("outage", "delivered after writer stopped", og["drained_after_writer_stopped_s"], "s")
        res["outage"] = og
    idl = load(os.path.join(work, "idle.json"))
    if idl:
        idl["agent_stopped"] = stop_summary(os.path.join(work, "idle-agent.log"))
        win = idl["window"]
        row("idle", "agent CPU", "%.3f" % win["agent_cpu_pct_of_one_core"],
            "%% of a core (%d ticks)" % win["agent_cpu_ticks"], "< 0.05 %",
            win["agent_cpu_pct_of_one_core"] < 0.05)
        row("idle", "agent wake-ups", win["agent_wakeups_per_s"], "/s")
        memory_rows("idle", win, 10)
        if idl.get("startup_vmhwm_kib"):
            row("idle", "RSS peak reading the quiet files at start (VmHWM; not idle)",
                mib(idl["startup_vmhwm_kib"]), "MiB")
        res["idle"] = idl
    # Lines in = lines out: the agent's own count of records against what was written.
    checks = []
    if c and c.get("agent_stopped"):
        s = c["agent_stopped"]
        # With multiline joining a record is a log event; without, every line is one.
        expected = c["records"] if res.get("multiline", "1") == "1" else c["lines"]
        checks.append(("catch-up records read/sent", expected, s.get("lines"), s.get("sent")))
    for phase, written in (("live", lv), ("outage", og)):
        if written and written.get("agent_stopped"):
            s = written["agent_stopped"]
            expected = written["records_written" if res.get("multiline", "1") == "1"
                               else "lines_written"]
            checks.append(("%s records read/sent (sent includes host metrics)" % phase, expected,
                           s.get("lines"), s.get("sent")))
    res["checks"] = [{"what": w, "expected": e, "read": r, "sent": s,
                      "ok": e == r and (s is None or s >= r)} for w, e, r, s in checks]
    with open(a.out, "w") as f:
        json.dump(res, f, indent=2)
        f.write("\n")

    widths = [max(len(str(r[i])) for r in rows + [("phase", "figure", "measured", "target", "")])
              for i in range(5)]
    line = "  ".join("%-*s" % (widths[i], h) for i, h in enumerate(
        ("phase", "figure", "measured", "target", "")))
    print(line.rstrip())
    print("  ".join("-" * w for w in widths[:4]))
    for r in rows:
        print("  ".join("%-*s" % (widths[i], r[i]) for i in range(5)).rstrip())
    for phase, key, win in (("catch-up", "catchup", (c or {}).get("read_into_spool")),
                            ("live", "live", (lv or {}).get("window")),
                            ("idle", "idle", (idl or {}).get("window"))):
        if win:
            print("%s: other processes' CPU in the window: %s" % (
                phase, ", ".join(
                    "%s %.2fs" % (n, s) for n, s in win["other_processes_cpu_s"]) or "none"))
    for ch in res["checks"]:
        print("%s: expected %s, agent read %s, sent %s: %s" % (
            ch["what"], ch["expected"], ch["read"], ch["sent"], "ok" if ch["ok"] else "MISMATCH"))
    print("results: %s" % a.out)


def cmd_discard(a):
    """A sink that takes every POST (reads the body, answers 200) and stores nothing: the
    catch-up phase's endpoint, so the figures are the agent's and not the sink's."""
    import http.server

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            n = int(self.headers.get("Content-Length", "0"))
            while n > 0:
                got = self.rfile.read(min(n, 1 << 20))
                if not got:
                    break
                n -= len(got)
            body = b'{"discarded":true}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"discard sink listening on http://127.0.0.1:{srv.server_address[1]}", flush=True)
    srv.serve_forever()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("file")
    g.add_argument("--size", type=int, required=True)
    g.add_argument("--seed", type=int, default=20261123)
    g.add_argument("--start", type=float, default=1795392000.0)  # 2026-11-23T00:00:00Z
    g.set_defaults(f=cmd_gen)
    r = sub.add_parser("refs")
    r.add_argument("--level", type=int, default=3)
    r.add_argument("file")
    r.set_defaults(f=cmd_refs)
    for name, f in (("catchup", cmd_catchup), ("live", cmd_live), ("idle", cmd_idle)):
        s = sub.add_parser(name)
        s.add_argument("--pid", type=int, required=True)
        s.add_argument("--state", required=True)
        s.add_argument("--clk-tck", type=int, required=True)
        s.add_argument("--timeout", type=float, default=600)
        s.set_defaults(f=f)
        if name in ("catchup", "live"):
            s.add_argument("--sink-pid", type=int, required=True)
            s.add_argument("--file", required=True)
        if name == "catchup":
            s.add_argument("--t0", type=float, required=True)
            s.add_argument("--lines", type=int, required=True)
            s.add_argument("--records", type=int, required=True)
        if name == "live":
            s.add_argument("--rate", type=int, default=10_000)
            s.add_argument("--burst-ms", type=int, default=10)
            s.add_argument("--seconds", type=float, default=60)
            s.add_argument("--warmup", type=float, default=2)
            s.add_argument("--seed", type=int, default=7)
            s.add_argument("--outage-at", type=float, default=10)
            s.add_argument("--outage-seconds", type=float, default=0)
        if name == "idle":
            s.add_argument("--dir", required=True)
            s.add_argument("--seconds", type=float, default=60)
    d = sub.add_parser("discard")
    d.set_defaults(f=cmd_discard)
    m = sub.add_parser("meta")
    m.add_argument("pairs", nargs="*")
    m.set_defaults(f=cmd_meta)
    rp = sub.add_parser("report")
    rp.add_argument("--work", required=True)
    rp.add_argument("--out", required=True)
    rp.set_defaults(f=cmd_report)
    a = p.parse_args()
    a.f(a)


if __name__ == "__main__":
    main()
