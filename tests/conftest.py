"""Shared fixtures: real git repos in tmp dirs and the real CLI as a subprocess.

Tests never touch the network, the developer's $HOME or git config: every subprocess gets
a private HOME, GIT_CONFIG_NOSYSTEM and fixed identities.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).parent
BIN = Path(sys.executable).parent / "looopbot"
FAKE_RUNNER = f"{sys.executable} {TESTS / 'fake_runner.py'}"
FAKE_WORKER = f"{sys.executable} {TESTS / 'fake_worker.py'} {{prompt_file}}"


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    for k, v in {
        "GIT_AUTHOR_NAME": "Test Human",
        "GIT_AUTHOR_EMAIL": "human@example.invalid",
        "GIT_COMMITTER_NAME": "Test Human",
        "GIT_COMMITTER_EMAIL": "human@example.invalid",
    }.items():
        monkeypatch.setenv(k, v)
    for k in list(os.environ):
        if k.startswith("LOOOPBOT_"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("TZ", "UTC")


def git(cwd: Path, *args: str, check: bool = True) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Repo:
    """A data repo made by the real `looopbot init`, wired to the scripted runner."""

    root: Path
    fake: Path
    env: dict[str, str] = field(default_factory=dict)

    def run(
        self,
        *args: str,
        input: str | None = None,
        timeout: float = 60,
        env: dict[str, str] | None = None,
    ) -> Run:
        full_env = {**os.environ, **self.env, **(env or {})}
        proc = subprocess.run(
            [str(BIN), "-C", str(self.root), *args],
            input=input,
            capture_output=True,
            text=True,
            env=full_env,
            timeout=timeout,
            check=False,
        )
        return Run(proc.returncode, proc.stdout, proc.stderr)

    def tick(self, *args: str, **kw: Any) -> Run:
        return self.run("tick", "--json", *args, **kw)

    def queue(self, *steps: dict[str, Any]) -> None:
        """Queue runner answers; each is {stdout, stderr, exit, decision_file, sleep}."""
        q = self.fake / "queue"
        q.mkdir(parents=True, exist_ok=True)
        start = len(list(q.iterdir())) + len(self.prompts())
        for i, step in enumerate(steps):
            (q / f"{start + i:04d}.json").write_text(json.dumps(step))

    def decide(self, *decisions: dict[str, Any]) -> None:
        """Queue decisions printed on stdout, the way a plain runner answers."""
        self.queue(*({"stdout": json.dumps(d)} for d in decisions))

    def prompts(self) -> list[str]:
        d = self.fake / "prompts"
        return [p.read_text() for p in sorted(d.iterdir())] if d.exists() else []

    def calls(self) -> int:
        return len(self.prompts())

    def sensor(self, name: str, script: str, executable: bool = True) -> None:
        path = self.root / "sensors" / f"{name}.sh"
        path.write_text(script)
        path.chmod(0o755 if executable else 0o644)

    def write(self, rel: str, text: str) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def read(self, rel: str) -> str:
        return (self.root / rel).read_text()

    def git(self, *args: str, check: bool = True) -> str:
        return git(self.root, *args, check=check)

    def head(self) -> str:
        return self.git("rev-parse", "HEAD").strip()

    def commits(self) -> int:
        return int(self.git("rev-list", "--count", "HEAD").strip())

    def trailers(self, rev: str = "HEAD") -> dict[str, str]:
        out = self.git("log", "-1", "--format=%(trailers:only,unfold)", rev)
        pairs = (line.split(": ", 1) for line in out.splitlines() if ": " in line)
        return {k: v for k, v in pairs}

    def state(self) -> dict[str, Any]:
        return json.loads(self.read(".looopbot/state.json"))

    def status_porcelain(self) -> str:
        return self.git("status", "--porcelain")


def make_repo(tmp_path: Path, *, sensors: bool = False) -> Repo:
    root = tmp_path / "data"
    fake = tmp_path / "fake"
    proc = subprocess.run(
        [str(BIN), "init", str(root), "--runner", "example"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    repo = Repo(
        root, fake, env={"FAKE_RUNNER_DIR": str(fake), "LOOOPBOT_TICK_COMMAND": FAKE_RUNNER}
    )
    if not sensors:
        # The seeded date sensor would make tests depend on the calendar.
        (root / "sensors" / "today.sh").unlink()
        repo.git("rm", "-q", "--cached", "sensors/today.sh")
        repo.git("commit", "-qm", "tests: no date sensor")
    return repo


def installed(name: str, path: Path | str | None) -> Path:
    """A tool the README's test command (or .ci/run) installs: the test is skipped with the
    reason when it is missing here, but fails under CI=true, where it must be there."""
    if path is not None and Path(path).exists():
        return Path(path)
    why = f"{name} is not installed: run the README's test command"
    if os.environ.get("CI") == "true":
        pytest.fail(why + " (CI=true: it must be)")
    pytest.skip(why)


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repo]:
    yield make_repo(tmp_path)


NOOP = {"action": "noop", "reason": "nothing to do"}


# --- processes --------------------------------------------------------------------------


def is_dead(pid: int) -> bool:
    """Gone, or a zombie: killed, only its table entry left for a reaper that is not us.

    (In a container whose PID 1 does not reap orphans, a killed grandchild stays a zombie
    forever; it runs no code and holds no pipe, so for these tests it is dead.)
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def wait_dead(pids: list[int], within: float = 10.0) -> list[int]:
    """Poll until the pids are dead (a SIGKILL is delivered asynchronously); the survivors."""
    end = time.monotonic() + within
    alive = list(pids)
    while alive and time.monotonic() < end:
        alive = [p for p in alive if not is_dead(p)]
        if alive:
            time.sleep(0.02)
    return alive


def read_pids(path: Path) -> list[int]:
    return [int(x) for x in path.read_text().split()] if path.exists() else []


@pytest.fixture
def pidfile(tmp_path: Path) -> Iterator[Path]:
    """Where test scripts record the pids of their background children.

    Whatever survives a failing test is killed here, so no `sleep 300` outlives the run.
    """
    path = tmp_path / "pids"
    yield path
    for pid in read_pids(path):
        if not is_dead(pid) and b"sleep" in Path(f"/proc/{pid}/cmdline").read_bytes():
            os.kill(pid, signal.SIGKILL)


def end_workers(repo: Repo) -> None:
    """Kill whatever a test's workers left running (supervisors and worker groups)."""
    from looopbot.workers.identity import Identity, alive

    for state in (repo.root / ".looopbot" / "workers").glob("*/state.json"):
        try:
            rec = json.loads(state.read_text())
        except ValueError:
            continue
        for key in ("supervisor", "process"):
            ident = rec.get(key) and Identity(rec[key]["pid"], rec[key]["start"])
            if ident and alive(ident):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(ident.pid, signal.SIGKILL)


@pytest.fixture
def wrepo(tmp_path: Path) -> Iterator[Repo]:
    """A data repo whose runner's worker command is the scripted tests/fake_worker.py."""
    repo = make_repo(tmp_path)
    repo.env["LOOOPBOT_WORKER_COMMAND"] = FAKE_WORKER
    yield repo
    end_workers(repo)


def task(wid: str, **spec: Any) -> str:
    """A worker prompt that scripts tests/fake_worker.py (its `FAKE {json}` line)."""
    return f"Work for {wid}.\nFAKE {json.dumps(spec)}\n"


def worker_record(repo: Repo, wid: str) -> dict[str, Any]:
    return json.loads(repo.read(f".looopbot/workers/{wid}/state.json"))


def wait_state(repo: Repo, wid: str, *states: str, within: float = 20) -> dict[str, Any]:
    """Poll the worker's record until its state is one of `states`; the record."""
    end = time.monotonic() + within
    while time.monotonic() < end:
        rec = worker_record(repo, wid)
        if rec["state"] in states:
            return rec
        time.sleep(0.05)
    raise AssertionError(f"{wid} stayed {worker_record(repo, wid)['state']}, wanted {states}")


def wait_lines(path: Path, n: int, within: float = 30) -> list[str]:
    """Poll until `path` holds at least `n` lines (written by another process); the lines."""
    end = time.monotonic() + within
    while time.monotonic() < end:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= n:
            return lines
        time.sleep(0.02)
    raise AssertionError(f"{path} never got {n} line(s)")


def fsck(root: Path) -> None:
    """`git fsck --full` is clean: no corrupt or missing object, no broken ref."""
    r = subprocess.run(
        ["git", "fsck", "--full", "--no-dangling", "--no-progress"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0 and not r.stdout.strip(), r.stdout + r.stderr
