"""Web page cost: `tokenpost serve` as a real process on loopback, with a home of 200 settings
(1 SMTP + 199 POP), each holding an Acquired token the sandbox granted (a device grant each,
approved through its control API), with realistic one-hour expiries written through the store
API. In one run:

(a) Requests per second of the status page (signed in through the login form: a session cookie)
    and of `/api/v1/status` (an API token from `tokenpost admin token create`), each against a
    static file served by the same server (/static/tokenpost.css). Target: ratio >= 0.3. The
    load generator is `wrk` (Debian's package, installed with apt-get when missing): a separate
    C process, one thread, --connections keep-alive connections, --seconds per run. The static
    file runs before, between and after the two others; its mean is the baseline. wrk must see
    no error and no 4xx/5xx; after each run the credential must still get 200 and every setting
    (so a redirect to the login page cannot pass for an answer).
(b) The status page's p99 latency while `serve` refreshes every token at once, against its p99
    when idle, from one probe process (Python, http.client, --probe-connections keep-alive
    connections requesting back to back) that runs throughout. Before this `serve` starts,
    every token is rewritten through the store API as a one-hour token obtained 50 minutes
    before a moment T, so with serve's default refresh margin (10 minutes) all are due at T;
    the sandbox answers at once. Idle: the requests within --idle seconds before T (after
    start-up has settled). Refreshing: the requests overlapping [T, the last refresh]. The store
    must then show every token refreshed in that window (a new access token, obtained at or
    after T), and the sandbox as many refresh grants.
(c) `serve` start-up, from starting the process to the first answered GET /login, against
    `python3 -c pass` (this interpreter), alternately, median of --runs each; after (a), so the
    page cache and .pyc files are warm for both.

POP settings point at a loopback port that refuses connections, so the receive pass serve makes
when it starts (one attempt per setting; then hourly) stays cheap and local.

    .venv/bin/python bench/web.py [--settings 200] [--seconds 15] [--runs 10] [--idle 30]
    .venv/bin/python bench/web.py --quick    # 10 settings, short runs: checks that it works

A full run takes minutes, most of them granting the 200 tokens.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from sandbox_support import SandboxControl, start_sandbox
from tokenpost.services.authorize import DevicePrompt, Prompt
from tokenpost.settings.model import (
    AuthMethod,
    Flow,
    PopSetting,
    Preset,
    Provider,
    Security,
    SmtpSetting,
)
from tokenpost.tokens.state import Acquired
from tokenpost.wiring import open_app

ACCOUNT = "alice@example.test"
ADMIN = "bench"
ADMIN_PASSWORD = "bench-password-not-secret"  # noqa: S105 - a throwaway home's account
STATIC = "/static/tokenpost.css"
STATUS_PAGE = "/"
API_STATUS = "/api/v1/status"
LIFETIME = 3600.0  # what a provider typically grants
MARGIN = 600.0  # serve's default --refresh-margin


# --- the home --------------------------------------------------------------------------------


def setting_ids(count: int) -> list[str]:
    return ["smtp"] + [f"pop:box{n:03d}" for n in range(1, count)]


async def fill_home(
    home: Path, work: Path, count: int, *, issuer: str, ca_file: Path, client_id: str,
    control: SandboxControl, refused_port: int,
) -> None:  # fmt: skip
    """A provider, the SMTP setting and count-1 POP settings, each with a token from the
    sandbox (device grant, approved through the control API)."""
    env = {**os.environ, "TOKENPOST_HOME": str(home)}
    async with open_app(home, env) as app:
        await app.settings.put_provider(
            Provider("sbx", Preset.GENERIC, client_id, flow=Flow.DEVICE, issuer=issuer,
                     scope=("mail.send", "offline_access"), ca_file=str(ca_file))
        )  # fmt: skip
        await app.settings.put_smtp(
            SmtpSetting("smtp.example.test", 587, Security.STARTTLS, 30, "Scanner",
                        "scanner@example.test", AuthMethod.OAUTH2, provider="sbx",
                        account=ACCOUNT)
        )  # fmt: skip
        for sid in setting_ids(count)[1:]:
            name = sid.removeprefix("pop:")
            await app.settings.put_pop(
                PopSetting(name, "127.0.0.1", refused_port, Security.TLS, 3600,
                           AuthMethod.OAUTH2, str(work / "mail" / name), provider="sbx",
                           account=ACCOUNT)
            )  # fmt: skip

        async def approve(prompt: Prompt) -> None:
            assert isinstance(prompt, DevicePrompt)
            await asyncio.to_thread(control.approve, prompt.user_code, user=ACCOUNT)

        gate = asyncio.Semaphore(32)

        async def obtain(sid: str) -> None:
            async with gate:
                await app.authorizer.obtain(sid, approve)

        await asyncio.gather(*(obtain(sid) for sid in setting_ids(count)))


async def rewrite_tokens(home: Path, count: int, due_at: float | None) -> dict[str, str]:
    """Give every token realistic one-hour times, through the store API: obtained up to half
    an hour ago (none due for at least 20 minutes), or, with `due_at`, all obtained so that
    serve's refresh margin makes them due at that moment. Returns each access token."""
    env = {**os.environ, "TOKENPOST_HOME": str(home)}
    now = time.time()
    before: dict[str, str] = {}
    async with open_app(home, env) as app:
        for sid in setting_ids(count):
            record = await app.store.load_token(sid)
            state = record.state
            assert isinstance(state, Acquired), (sid, state)
            if due_at is None:
                obtained = now - random.uniform(0, 1800)
            else:
                obtained = due_at + MARGIN - LIFETIME
            fresh = replace(state, obtained_at=obtained, expires_at=obtained + LIFETIME)
            await app.store.save_token(
                sid, fresh, binding=record.binding, expected_version=record.version
            )
            before[sid] = state.access_token.reveal()
    return before


async def refreshed_at(home: Path, count: int, before: dict[str, str]) -> dict[str, float]:
    """Each setting whose access token changed, with when the new one was obtained."""
    env = {**os.environ, "TOKENPOST_HOME": str(home)}
    out: dict[str, float] = {}
    async with open_app(home, env) as app:
        for sid in setting_ids(count):
            state = (await app.store.load_token(sid)).state
            if isinstance(state, Acquired) and state.access_token.reveal() != before[sid]:
                out[sid] = state.obtained_at
    return out


def tokenpost(env: dict[str, str], *args: str, stdin: str = "") -> str:
    command = [str(Path(sys.executable).with_name("tokenpost")), *args]
    done = subprocess.run(
        command, env=env, input=stdin, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"tokenpost {' '.join(args)}: exit {done.returncode}\n{done.stderr}")
    return done.stdout


# --- serve as a process ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Serve:
    """`tokenpost serve --listen 127.0.0.1:PORT`; its output goes to files in `logs`."""

    def __init__(self, env: dict[str, str], logs: Path, tag: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.started = time.perf_counter()
        self._err = (logs / f"serve-{tag}.log").open("wb")
        command = [str(Path(sys.executable).with_name("tokenpost")), "serve",
                   "--listen", f"127.0.0.1:{self.port}"]  # fmt: skip
        self.process = subprocess.Popen(
            command, env=env, stdout=self._err, stderr=subprocess.STDOUT
        )
        self.log = logs / f"serve-{tag}.log"

    def first_answer(self, timeout: float = 60.0) -> float:
        """Seconds from the process start to the first answered GET /login."""
        deadline = time.perf_counter() + timeout
        while True:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            try:
                connection.request("GET", "/login")
                status = connection.getresponse().status
                answered = time.perf_counter()
                if status != 200:
                    raise SystemExit(f"serve answered GET /login with {status}")
                return answered - self.started
            except ConnectionRefusedError:
                if self.process.poll() is not None or time.perf_counter() > deadline:
                    raise SystemExit(f"serve did not answer; see {self.log}") from None
                time.sleep(0.005)
            finally:
                connection.close()

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._err.close()
        if code != 0:
            raise SystemExit(f"serve exited {code}; see {self.log}")


@contextmanager
def serving(env: dict[str, str], logs: Path, tag: str) -> Iterator[Serve]:
    serve = Serve(env, logs, tag)
    try:
        serve.first_answer()
        yield serve
    finally:
        serve.stop()


def get(base_port: int, path: str, headers: dict[str, str]) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", base_port, timeout=30)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        connection.close()


def sign_in(serve: Serve) -> str:
    """The session cookie of ADMIN, signed in through the login form."""
    connection = http.client.HTTPConnection("127.0.0.1", serve.port, timeout=30)
    try:
        connection.request("GET", "/login")
        form = connection.getresponse()
        page = form.read().decode()
        cookie = _session_cookie(form.getheader("set-cookie", ""))
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)
        assert csrf is not None, page
        body = f"name={ADMIN}&password={ADMIN_PASSWORD}&csrf={csrf.group(1)}"
        connection.request("POST", "/login", body=body, headers={
            "Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie,
            "Origin": serve.base,
        })  # fmt: skip
        signed_in = connection.getresponse()
        signed_in.read()
        if signed_in.status != 303:
            raise SystemExit(f"sign-in refused: {signed_in.status}")
        return _session_cookie(signed_in.getheader("set-cookie", ""))
    finally:
        connection.close()


def _session_cookie(header: str) -> str:
    found = re.search(r"(tokenpost_session=[^;]+)", header)
    assert found is not None, header
    return found.group(1)


def check_answers(serve: Serve, path: str, headers: dict[str, str], count: int) -> None:
    """The credential still works and the answer shows every setting."""
    status, body = get(serve.port, path, headers)
    if status != 200:
        raise SystemExit(f"GET {path}: {status}")
    if path == API_STATUS:
        rows = json.loads(body)
        rows = rows.get("settings", rows) if isinstance(rows, dict) else rows
        if len(rows) != count:
            raise SystemExit(f"GET {path}: {len(rows)} settings, expected {count}")
    elif path == STATUS_PAGE:
        for sid in (setting_ids(count)[0], setting_ids(count)[-1]):
            if sid not in body:
                raise SystemExit(f"GET {path}: {sid} not on the page")


# --- (a) throughput with wrk -----------------------------------------------------------------


def ensure_wrk() -> str:
    """wrk from Debian's packages, installed with apt-get (as root or through sudo) if missing."""
    found = shutil.which("wrk")
    if found:
        return found
    as_root = [] if os.geteuid() == 0 else ["sudo"]
    if as_root and shutil.which("sudo") is None:
        raise SystemExit("wrk is missing and this is not root: apt-get install wrk")
    print("installing wrk (apt-get)", file=sys.stderr)
    apt = [*as_root, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]
    install = [*apt, "install", "-y", "-qq", "--no-install-recommends", "wrk"]
    if subprocess.run(install, capture_output=True, check=False).returncode != 0:
        subprocess.run([*apt, "update", "-qq"], capture_output=True, check=True)
        subprocess.run(install, capture_output=True, check=True)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk still missing after apt-get install wrk")
    return found


@dataclass(frozen=True, slots=True)
class Rate:
    path: str
    per_second: float
    requests: int
    p50_ms: float
    p99_ms: float


def wrk(
    binary: str, serve: Serve, path: str, headers: dict[str, str], *, seconds: float,
    connections: int,
) -> Rate:  # fmt: skip
    command = [binary, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
               "--timeout", "120s"]  # fmt: skip
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    done = subprocess.run([*command, serve.base + path], capture_output=True, text=True, check=True)
    out = done.stdout
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    if bad or errors:
        raise SystemExit(f"wrk {path}: not every request was answered 200\n{out}")
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    if not (rps and total and p50 and p99):
        raise SystemExit(f"wrk {path}: unexpected output\n{out}")
    return Rate(path, float(rps.group(1)), int(total.group(1)), _ms(p50), _ms(p99))


def _ms(found: re.Match[str]) -> float:
    return float(found.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[found.group(2)]


def throughput(
    serve: Serve, cookie: str, api_token: str, count: int, *, seconds: float, connections: int
) -> None:
    binary = ensure_wrk()
    page = {"Cookie": cookie}
    api = {"Authorization": f"Bearer {api_token}"}
    check_answers(serve, STATUS_PAGE, page, count)
    check_answers(serve, API_STATUS, api, count)
    if seconds > 1:
        wrk(binary, serve, STATIC, {}, seconds=1, connections=connections)  # warm-up
    runs: list[Rate] = []
    for path, headers in ((STATIC, {}), (STATUS_PAGE, page), (STATIC, {}), (API_STATUS, api),
                          (STATIC, {})):  # fmt: skip
        runs.append(wrk(binary, serve, path, headers, seconds=seconds, connections=connections))
        if path != STATIC:
            check_answers(serve, path, headers, count)
    static = [r for r in runs if r.path == STATIC]
    base = statistics.fmean(r.per_second for r in static)
    print(f"(a) wrk, 1 thread, {connections} connections, {seconds:g} s per run, {count} settings")
    print(
        f"    static {STATIC}: {base:8.1f} req/s "
        f"({', '.join(f'{r.per_second:.1f}' for r in static)}), p50 {static[0].p50_ms:.2f} ms"
    )
    for rate in runs:
        if rate.path == STATIC:
            continue
        label = "status page /" if rate.path == STATUS_PAGE else f"API {rate.path}"
        print(
            f"    {label}: {rate.per_second:8.1f} req/s, p50 {rate.p50_ms:.1f} ms, "
            f"p99 {rate.p99_ms:.1f} ms ({rate.requests} requests)"
        )
        print(f"    ratio {label} / static: {rate.per_second / base:.3f} (target >= 0.3)")


# --- (b) latency while refreshing ------------------------------------------------------------


def probe(port: int, path: str, cookie: str, connections: int) -> None:
    """The probe process: GET `path` back to back on `connections` keep-alive connections until
    SIGTERM, then print one JSON list of [start (epoch s), latency (s), status]."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    samples: list[tuple[float, float, int]] = []

    def loop() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while not stop.is_set():
            wall, start = time.time(), time.perf_counter()
            connection.request("GET", path, headers={"Cookie": cookie})
            response = connection.getresponse()
            response.read()
            samples.append((wall, time.perf_counter() - start, response.status))
        connection.close()

    threads = [threading.Thread(target=loop) for _ in range(connections)]
    for thread in threads:
        thread.start()
    while not stop.wait(0.1):
        pass
    for thread in threads:
        thread.join()
    json.dump(samples, sys.stdout)


def p99(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


def refresh_latency(
    env: dict[str, str], home: Path, logs: Path, control: SandboxControl, *, count: int,
    idle: float, settle: float, connections: int, up_s: float, rewrite_s: float,
) -> None:  # fmt: skip
    started = time.time()
    # Rewriting the tokens, then serve's start-up to signed in (each as long as it took before,
    # with room to spare), settling, the idle window: then T.
    lead = 1.5 * (rewrite_s + up_s) + 0.5 + settle + idle
    due = started + lead
    before = asyncio.run(rewrite_tokens(home, count, due))
    grants = control.stats().grants_by_type.get("refresh_token", 0)
    if time.time() > due - idle - settle:
        raise SystemExit("rewriting the tokens took too long")
    with serving(env, logs, "refresh") as serve:
        cookie = sign_in(serve)
        here = Path(__file__).resolve()
        command = [sys.executable, str(here), "--probe", str(serve.port), cookie,
                   str(connections)]  # fmt: skip
        prober = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        try:
            deadline = due + 120
            while control.stats().grants_by_type.get("refresh_token", 0) - grants < count:
                if time.time() > deadline:
                    raise SystemExit("serve did not refresh every token in time")
                time.sleep(0.25)
            time.sleep(0.5)
        finally:
            prober.send_signal(signal.SIGTERM)
            output, _ = prober.communicate(timeout=60)
    samples: list[list[float]] = json.loads(output)
    if any(int(status) != 200 for _, _, status in samples):
        raise SystemExit("the probe got an answer other than 200")
    done = asyncio.run(refreshed_at(home, count, before))
    if len(done) != count or min(done.values()) < due - 0.01:
        raise SystemExit(f"the store shows {len(done)} of {count} tokens refreshed at or after T")
    end = max(done.values())
    quiet = [lat for start, lat, _ in samples if due - idle <= start and start + lat < due]
    busy = [lat for start, lat, _ in samples if start < end and start + lat > due]
    print(
        f"(b) status page, probe process with {connections} keep-alive connection(s); "
        f"{count} tokens due at T"
    )
    print(
        f"    store: {len(done)} of {count} tokens refreshed in {end - due:.2f} s after T "
        f"(first {min(done.values()) - due:.3f} s after T); sandbox: "
        f"{control.stats().grants_by_type.get('refresh_token', 0) - grants} refresh grants"
    )
    for label, values in (("idle", quiet), ("while refreshing", busy)):
        if not values:
            raise SystemExit(f"no request of the probe fell in the {label} window")
        print(
            f"    {label:17s} p99 {p99(values) * 1000:7.1f} ms, "
            f"p50 {statistics.median(values) * 1000:6.1f} ms, "
            f"max {max(values) * 1000:7.1f} ms ({len(values)} requests)"
        )
    print(f"    ratio p99 refreshing / idle: {p99(busy) / p99(quiet):.2f}")


# --- (c) start-up ----------------------------------------------------------------------------


def startup(env: dict[str, str], logs: Path, runs: int) -> float:
    """Prints the figures; returns serve's median start-up in seconds."""
    ours: list[float] = []
    base: list[float] = []
    for n in range(runs):  # after (a): the page cache and .pyc files are warm
        serve = Serve(env, logs, f"startup-{n}")
        try:
            ours.append(serve.first_answer())
        finally:
            serve.stop()
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
        base.append(time.perf_counter() - start)
    m_ours, m_base = statistics.median(ours), statistics.median(base)
    print(f"(c) start-up, median of {runs} runs each, alternately")
    print(f"    python3 -c pass: {m_base * 1000:7.1f} ms")
    print(f"    tokenpost serve to the first answered GET /login: {m_ours * 1000:7.1f} ms")
    print(f"    ratio {m_ours / m_base:.1f}x")
    return m_ours


# --- the run ---------------------------------------------------------------------------------


def run(args: argparse.Namespace, work: Path) -> None:
    home, logs = work / "home", work / "logs"
    logs.mkdir()
    env = {**os.environ, "TOKENPOST_HOME": str(home), "TOKENPOST_LANG": "en"}
    ensure_wrk()
    # A bound socket that never listens: connections to it are refused at once.
    refusing = socket.socket()
    refusing.bind(("127.0.0.1", 0))
    sandbox = start_sandbox(work / "sandbox")
    try:
        ready = sandbox.ready
        with SandboxControl.of(ready) as control:
            control.config(device_interval=0)
            t0 = time.perf_counter()
            filling = fill_home(
                home, work, args.settings, issuer=ready.issuer, ca_file=ready.ca_file,
                client_id=ready.clients.public, control=control,
                refused_port=refusing.getsockname()[1],
            )  # fmt: skip
            asyncio.run(filling)
            rewriting = time.perf_counter()
            asyncio.run(rewrite_tokens(home, args.settings, None))
            rewrite_s = time.perf_counter() - rewriting
            tokenpost(env, "admin", "add", ADMIN, "--password", "-",
                      stdin=ADMIN_PASSWORD + "\n")  # fmt: skip
            api_token = tokenpost(env, "admin", "token", "create", "bench-api").strip()
            print(
                f"home: 1 SMTP + {args.settings - 1} POP settings, each Acquired from the "
                f"sandbox ({time.perf_counter() - t0:.1f} s to prepare)"
            )
            with serving(env, logs, "load") as serve:
                cookie = sign_in(serve)
                up_s = time.perf_counter() - serve.started  # started, answering, signed in
                time.sleep(args.settle)
                throughput(serve, cookie, api_token, args.settings, seconds=args.seconds,
                           connections=args.connections)  # fmt: skip
            startup_s = startup(env, logs, args.runs)
            refresh_latency(env, home, logs, control, count=args.settings, idle=args.idle,
                            settle=args.settle, connections=args.probe_connections,
                            up_s=max(up_s, startup_s), rewrite_s=rewrite_s)  # fmt: skip
    finally:
        sandbox.stop()
        refusing.close()


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--probe":
        probe(int(sys.argv[2]), STATUS_PAGE, sys.argv[3], int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--settings", type=int, default=200, help="1 SMTP + N-1 POP")
    parser.add_argument("--seconds", type=float, default=15, help="length of each wrk run")
    parser.add_argument("--connections", type=int, default=4, help="wrk's connections")
    parser.add_argument("--runs", type=int, default=10, help="start-up runs")
    parser.add_argument("--idle", type=float, default=30, help="idle window of (b), seconds")
    parser.add_argument("--settle", type=float, default=3, help="after start-up, seconds")
    parser.add_argument("--probe-connections", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="small and short: a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.settings, args.seconds, args.runs, args.idle, args.settle = 10, 1, 1, 1, 0.5
        args.connections = 2
    if args.settings < 2:
        parser.error("--settings must be at least 2")
    with tempfile.TemporaryDirectory() as tmp:
        run(args, Path(tmp))


if __name__ == "__main__":
    main()
