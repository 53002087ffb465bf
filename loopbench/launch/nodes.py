"""Cells across machines: every process of the command is one rank that torchrun (or SLURM's srun) started.

Where the suite's own launcher (loopbench.launch.distributed) starts a cell's processes on one machine, here the
cluster's launcher has started them on every node, and each runs the same cells in the same order, in process:

- the job's key-value store (torchrun's agent store; under srun, rank 0 hosts one at MASTER_PORT) carries what
  the ranks must agree on: the processes per node, a fresh port for each cell's own process group (rank 0's
  choice, as the local launcher gives each cell its own port), and each rank's result;
- rank 0 merges the ranks' results into the cell's one result, as the local launcher does;
- a watchdog in every rank ends the job in bounded time where a rank fails, is killed or hangs: it beats in the
  store every BEAT_S, and a rank silent for SILENT_S, a failed result, or a cell over its time ends every rank
  with that rank's reason (the others would otherwise wait in a collective until gloo's 30-minute timeout).

    torchrun --nnodes 2 --nproc-per-node 1 --rdzv-backend c10d --rdzv-endpoint HOST:29400 --rdzv-id JOB \\
        -m loopbench.launch.nodes CONFIGS.json RESULTS.json     (a batch of cells; the CLI's --launcher too)
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

from loopbench.core.types import RunConfig, RunResult, UsageError
from loopbench.launch.child import run_one
from loopbench.launch.distributed import free_port, merge

BEAT_S = 0.5  # how often each rank says it is alive
SILENT_S = 20.0  # a rank not heard from for this long is taken for dead (killed, stopped, or its node lost)
SILENT_AFTER_FAILURE_S = 3.0  # the same, once this rank's own collective failed: a live rank still beats
TORCHRUN = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "MASTER_ADDR", "MASTER_PORT")
SLURM = ("SLURM_PROCID", "SLURM_LOCALID", "SLURM_NTASKS", "SLURM_NTASKS_PER_NODE", "SLURM_NODEID", "SLURM_NODELIST")


@dataclasses.dataclass(frozen=True)
class Place:
    """One process's place in the job, in torchrun's terms."""

    rank: int
    local_rank: int
    world: int
    local_world: int  # processes on this node
    node: int
    addr: str  # the job's store: MASTER_ADDR:MASTER_PORT
    port: int

    @property
    def nodes(self) -> int:
        return self.world // self.local_world

    def torchrun_env(self) -> dict[str, str]:
        """torchrun's variables for this place: what the plain loop's `init_process_group` reads."""
        values = (self.rank, self.local_rank, self.world, self.local_world, self.node, self.addr, self.port)
        return dict(zip(TORCHRUN, map(str, values), strict=True))


def started_by_torchrun(env: dict[str, str] | os._Environ = os.environ) -> bool:
    return "TORCHELASTIC_RUN_ID" in env


def place(launcher: str, env: dict[str, str] | os._Environ = os.environ) -> Place:
    """This process's place, read from its launcher's environment; one line where it is missing or incoherent."""
    names = TORCHRUN[:5] if launcher == "torchrun" else SLURM
    missing = [v for v in names if v not in env]
    if missing:
        starter = "torchrun" if launcher == "torchrun" else "srun"
        raise UsageError(f"--launcher {launcher}: {', '.join(missing)} not set: start this command with {starter} "
                         "(docs/data-parallel.md)")  # fmt: skip
    if launcher == "torchrun":
        got = Place(*(int(env[v]) for v in TORCHRUN[:5]), env.get("MASTER_ADDR", ""), int(env.get("MASTER_PORT", 0)))
    else:  # as Lightning's SLURMEnvironment reads it: the first node hosts, the port follows from the job id
        per_node = int(env["SLURM_NTASKS_PER_NODE"])  # set by --ntasks-per-node, as Lightning requires
        job = env.get("SLURM_JOB_ID")
        port = int(env.get("MASTER_PORT", int(job[-4:]) + 15000 if job else 12910))
        ids = (int(env[v]) for v in ("SLURM_PROCID", "SLURM_LOCALID", "SLURM_NTASKS"))
        addr = env.get("MASTER_ADDR") or _first(env["SLURM_NODELIST"])
        got = Place(*ids, per_node, int(env["SLURM_NODEID"]), addr, port)
    if got.world % got.local_world:
        raise UsageError(f"--launcher {launcher}: {got.world} processes in all is not a whole number of nodes of "
                         f"{got.local_world}: start every node with the same processes per node")  # fmt: skip
    return got


def _first(nodelist: str) -> str:
    """The first host of a SLURM node list ("host[5-9],other" is host5), as Lightning resolves it."""
    nodes = re.sub(r"\[(.*?)[,-].*\]", "\\1", nodelist)
    return re.sub(r"\[(.*?)\]", "\\1", nodes).split(" ")[0].split(",")[0]


class Job:
    """This rank's side of the job: `run(config)` runs one cell here, beside every other rank running it too, and
    returns the merged result on rank 0 (its own on the others)."""

    def __init__(self, launcher: str, join_timeout_s: float, timeout_s: float):
        from torch.distributed import TCPStore

        self.place, self.timeout_s, self.cells = place(launcher), timeout_s, 0
        os.environ.update(self.place.torchrun_env())
        agent = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"  # torchrun's agent serves MASTER_PORT
        p = self.place
        try:
            self.store = TCPStore(p.addr, p.port, p.world, is_master=p.rank == 0 and not agent,
                                  timeout=timedelta(seconds=join_timeout_s), wait_for_workers=False)  # fmt: skip
            job = os.environ.get("TORCHELASTIC_RUN_ID", os.environ.get("SLURM_JOB_ID", ""))
            self.prefix = f"loopbench/{job}/{os.environ.get('TORCHELASTIC_RESTART_COUNT', 0)}"
            self._agree(launcher, join_timeout_s)
        except (RuntimeError, TimeoutError) as e:
            raise UsageError(
                f"--launcher {launcher}: the job's store at {p.addr}:{p.port} did not answer in "
                f"{join_timeout_s:g} s (--join-timeout): {str(e).splitlines()[0][:120]}"
            ) from None
        # each cell's process group gets a port of its own, served by its rank 0, not by the agent
        os.environ["TORCHELASTIC_USE_AGENT_STORE"] = "False"
        self.store.set_timeout(timedelta(seconds=timeout_s))
        self._cell: tuple[int, RunConfig, float] | None = None  # the cell under way: index, config, start
        self._done = threading.Event()
        threading.Thread(target=self._watch, daemon=True).start()

    def _key(self, *parts: object) -> str:
        return "/".join((self.prefix, *map(str, parts)))

    def _agree(self, launcher: str, join_timeout_s: float) -> None:
        """Every rank must join, and count the same processes per node (torchrun lets each agent start its own
        number); rank 0, which may host the store, stays until every rank has read what it needs."""
        p, deadline = self.place, time.monotonic() + join_timeout_s
        keys = [self._key("local_world", r) for r in range(p.world)]
        self.store.set(keys[p.rank], str(p.local_world))
        self._until(lambda: self.store.check(keys), deadline, keys, launcher, join_timeout_s)
        counts = [int(self.store.get(key)) for key in keys]
        self.store.add(self._key("read"), 1)
        if p.rank == 0:
            read = lambda: int(self.store.add(self._key("read"), 0)) == p.world  # noqa: E731
            self._until(read, deadline, None, launcher, join_timeout_s)
        if len(set(counts)) > 1:
            per_rank = ", ".join(f"rank {r}: {n}" for r, n in enumerate(counts))
            raise UsageError(f"--launcher {launcher}: the nodes start different numbers of processes ({per_rank}); "
                             "give every node the same --nproc-per-node")  # fmt: skip
        if p.rank == 0:
            print(f"{launcher}: {p.world} processes on {p.nodes} nodes joined", file=sys.stderr, flush=True)

    def _until(self, done, deadline: float, keys: list[str] | None, launcher: str, join_timeout_s: float) -> None:
        while not done():
            if time.monotonic() > deadline:
                missing = [str(r) for r, key in enumerate(keys or []) if not self.store.check([key])]
                who = f"rank {', '.join(missing)}" if missing else "not every rank"
                raise UsageError(f"--launcher {launcher}: {who} of {self.place.world} did not join in "
                                 f"{join_timeout_s:g} s (--join-timeout)")  # fmt: skip
            time.sleep(0.05)

    def run(self, config: RunConfig) -> RunResult:
        p, k = self.place, self.cells
        self.cells += 1
        config = dataclasses.replace(config, processes=p.local_world, nodes=p.nodes)
        self._cell = (k, config, time.monotonic())
        if p.rank == 0:
            self.store.set(self._key("port", k), str(free_port()))
        os.environ.update(self.place.torchrun_env())  # as launched: a Lightning cell's teardown deletes WORLD_SIZE
        os.environ["MASTER_PORT"] = self.store.get(self._key("port", k)).decode()
        result = run_one(config)
        self.store.set(self._key("result", k, p.rank), json.dumps(result.to_dict()))
        if not result.ok and p.world > 1:
            result = self._failed(k, result)
        if p.rank != 0 or not result.ok:
            self._cell = None
            return result
        keys = [self._key("result", k, r) for r in range(p.world)]
        self.store.wait(keys)
        results = [result] + [RunResult.from_dict(json.loads(self.store.get(key))) for key in keys[1:]]
        self._cell = None
        return merge(config, results)

    def _failed(self, k: int, result: RunResult) -> RunResult:
        """This rank's cell failed. Where the others are alive and well, it is the first reason; where one of them
        failed or went silent (a collective with a killed rank fails at once), that is, and this one follows from
        it. The others are then stopped (their watchdogs read the cell's `abort`)."""
        self._cell = None  # this rank's own watchdog stands down: the reason is found here
        p, heard, others = self.place, {}, []
        deadline = time.monotonic() + SILENT_AFTER_FAILURE_S + 2 * BEAT_S
        while time.monotonic() < deadline and not others:
            for r in range(p.world):
                if r != p.rank:
                    why = self._failure(k, r) or self._silence(r, heard, SILENT_AFTER_FAILURE_S)
                    others += [why] if why else []
            time.sleep(BEAT_S)
        reason = "; ".join([*others, f"rank {p.rank}: {result.status}: {result.message}"])
        self.store.set(self._key("abort", k), reason)
        return dataclasses.replace(result, status="error" if others else result.status, message=reason)

    def _failure(self, k: int, r: int) -> str | None:
        key = self._key("result", k, r)
        if self.store.check([key]):
            got = RunResult.from_dict(json.loads(self.store.get(key)))
            return None if got.ok else f"rank {r}: {got.status}: {got.message}"
        return None

    def _silence(self, r: int, heard: dict[int, tuple[int, float]], limit: float = SILENT_S) -> str | None:
        """Rank `r`'s silence, where its beats have not moved for `limit` (`heard`: what was seen, and when)."""
        beats, now = int(self.store.add(self._key("beat", r), 0)), time.monotonic()
        if heard.get(r, (None,))[0] != beats:
            heard[r] = (beats, now)
        elif now - heard[r][1] > limit:
            return f"rank {r}: not heard from for {limit:g} s: killed, stopped, or its node lost"
        return None

    def close(self) -> None:
        self._done.set()

    def _watch(self) -> None:
        """Beat, and end this process where the cell under way can no longer finish (see the module's doc)."""
        heard: dict[int, tuple[int, float]] = {}  # rank: (its beats, when they last moved)
        while not self._done.wait(BEAT_S):
            try:
                self.store.add(self._key("beat", self.place.rank), 1)
                cell = self._cell
                reason = self._reason(cell, heard) if cell else None
            except Exception as e:  # the store is gone: its host, node 0, ended
                cell, reason = self._cell, f"the job's store stopped answering ({type(e).__name__})"
            if reason and cell:
                if self.place.rank == 0:
                    self.store.set(self._key("abort", cell[0]), reason)
                print(f"{cell[1].label}: {reason}", file=sys.stderr, flush=True)
                os._exit(1)

    def _reason(self, cell: tuple[int, RunConfig, float], heard: dict[int, tuple[int, float]]) -> str | None:
        """Why the cell under way cannot finish, if it cannot: rank 0 watches every rank, the others rank 0."""
        k, _, start = cell
        now = time.monotonic()
        if now - start > self.timeout_s:
            return f"timeout: no result after {self.timeout_s:g} s; every process was ended"
        if self.place.rank != 0:
            if self.store.check([self._key("abort", k)]):  # this cell's: a failed cell need not end the job
                return "stopped: " + self.store.get(self._key("abort", k)).decode()
            return self._silence(0, heard)
        for r in range(1, self.place.world):
            why = self._failure(k, r) if self.store.check([self._key("result", k, r)]) else self._silence(r, heard)
            if why:
                return why
        return None


def main(cfg_path: str, out_path: str, launcher: str = "torchrun") -> int:
    """Run the configs in `cfg_path` one after another as this rank; rank 0 writes the merged results."""
    configs = [RunConfig.from_dict(d) for d in json.loads(Path(cfg_path).read_text())]
    try:
        job = Job(launcher, join_timeout_s=120.0, timeout_s=1800.0)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    results = [job.run(dataclasses.replace(c, launcher=launcher)) for c in configs]
    job.close()
    if job.place.rank == 0:
        Path(out_path).write_text(json.dumps([r.to_dict() for r in results]))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
