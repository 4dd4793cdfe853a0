"""How many streamed tokens/s and requests/s can llem's load generator take on one client core, and
how exact are its per-token timestamps while it does?

Serving measurements are only about the server while the client keeps up: a client that falls
behind delays every recorded token time (TTFT, ITL) and throttles the load it was asked to offer.
This drives llem's real load generator (`llem_harness.serving.loadgen.drive`, closed loop) against
bench/loadgen_stub_server.py (a local OpenAI-compatible server streaming vLLM-shaped completion
chunks, in its own process, on other cores when there are any) with the client pinned to one core
(`os.sched_setaffinity`), and beside it, same stub, same run, interleaved, an independent client:
aiohttp reading the stream the way `vllm bench serve`'s OpenAI completions request function does.

Load points (each repetition runs all of them for both clients, alternating which goes first):
- `floor`: one stream at 200 tokens/s: the client does almost nothing, so its timestamp error here is
  this machine's wake-up latency (scheduler, loopback): the floor under every other point;
- `paced R`: C streams, each token `C/R` s after the previous one of its stream (offered R tokens/s);
- `flat out`: the stub streams as fast as the socket takes it (the client's ceiling, tokens/s);
- `short`: 4-token requests as fast as possible (the client's ceiling, requests/s).

Figures: achieved tokens/s and requests/s (first send to last completion), client CPU microseconds
per token (`time.process_time` of the client process: the least load-dependent figure; 1e6 / it is
what one dedicated core could take), and the timestamp error: the client's record of each token
minus the stub's `time.time()` right before it wrote that token to the socket (same host clock), an
upper bound that includes the loopback transfer and any wait in the client's socket buffer; p50/p99
over all tokens. `preempt/s`: the client's involuntary context switches per second (getrusage):
other processes taking its core, the usual cause of a large error on a busy machine. The capacity is the highest paced rate the client achieved (>= 95 % of offered)
with a timestamp error p99 < 1 ms; flat-out p99 is large by construction (a backlog in the socket).
Target: >= 20,000 streamed tokens/s on one core with p99 < 1 ms.

The output starts with the machine's load (os.getloadavg) and CPU count: rerun on a quiet machine
before quoting a figure. Needs aiohttp (pip install -e '.[bench]').

    python bench/loadgen_capacity.py [--reps 3] [--rates 5000,10000,20000,40000] [--client-cpu 0]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "harness"), str(REPO / "orchestrator")]

ERR_P99_TARGET_S = 1e-3
TARGET_TOKENS_PER_S = 20_000


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def _llem(url: str, bodies: list[dict], concurrency: int) -> list[tuple[str, float, float | None, list[float]]]:
    from llem_harness.serving.loadgen import LoadPlan, drive
    from llem_harness.serving.window import WindowTracker

    plan = LoadPlan(n_requests=len(bodies), concurrency=concurrency, request_timeout_s=120.0)
    traces = await drive(url, bodies, plan, WindowTracker(concurrency, n_total=len(bodies)), lambda _e: None)
    bad = [t.error or t.status for t in traces if not t.ok]
    if bad:
        raise RuntimeError(f"llem load generator: {len(bad)} failed requests, e.g. {bad[0]}")
    return [(bodies[t.prompt_index]["prompt"], t.send_s, t.done_s, t.chunk_times_s) for t in traces]


async def _aiohttp(url: str, bodies: list[dict], concurrency: int) -> list[tuple[str, float, float | None, list[float]]]:
    """As vllm's `async_request_openai_completions`: line by line from aiohttp, `data: ` stripped, json."""
    import aiohttp

    records = []
    queue = iter(bodies)
    timeout = aiohttp.ClientTimeout(total=120.0)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def worker() -> None:
            for body in queue:
                send_s, times = time.time(), []
                async with session.post(url + "/v1/completions", json=body) as response:
                    if response.status != 200:
                        raise RuntimeError(f"aiohttp client: HTTP {response.status}")
                    async for chunk_bytes in response.content:
                        chunk_bytes = chunk_bytes.strip()
                        if not chunk_bytes:
                            continue
                        chunk = chunk_bytes.decode("utf-8").removeprefix("data: ")
                        if chunk == "[DONE]":
                            continue
                        data = json.loads(chunk)
                        if data.get("choices"):
                            times.append(time.time())
                records.append((body["prompt"], send_s, time.time(), times))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return records


CLIENTS = {"llem": _llem, "aiohttp": _aiohttp}


def _get_json(url: str):
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


def one_run(client: str, url: str, tag: str, point: dict) -> dict:
    """One client, one load point: throughput, client CPU per token, timestamp error vs the stub's log."""
    bodies = [{"model": "stub", "prompt": f"{tag}-{i}", "max_tokens": point["tokens"], "stream": True,
               "stream_options": {"include_usage": True}, "temperature": 0.0, "stub_itl_s": point["itl_s"]}
              for i in range(point["requests"])]
    _get_json(url + "/sendlog")  # clear
    cpu0, preempt0, wall0 = time.process_time(), resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw, time.time()
    records = asyncio.run(CLIENTS[client](url, bodies, point["concurrency"]))
    cpu_s, wall_s = time.process_time() - cpu0, time.time() - wall0
    preempted = resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw - preempt0
    sent = _get_json(url + "/sendlog")
    errors, tokens = [], 0
    for prompt, _send, _done, times in records:
        stub_times = sent.get(prompt, [])
        if len(stub_times) != len(times):
            raise RuntimeError(f"{client}: {prompt} recorded {len(times)} tokens, the stub sent {len(stub_times)}")
        errors += [got - put for got, put in zip(times, stub_times)]
        tokens += len(times)
    span_s = max(r[2] for r in records) - min(r[1] for r in records)
    return {"tokens_per_s": tokens / span_s, "requests_per_s": len(records) / span_s,
            "cpu_us_per_token": 1e6 * cpu_s / tokens, "preempt_per_s": preempted / wall_s, "err_p50_s": _pct(errors, 0.5), "err_p99_s": _pct(errors, 0.99)}


def load_points(rates: list[float], concurrency: int, tokens: int, seconds: float) -> dict[str, dict]:
    points = {"floor": {"concurrency": 1, "tokens": 64, "itl_s": 1 / 200, "requests": 4, "offered": 200.0}}
    for rate in rates:
        n = concurrency * max(2, round(rate * seconds / tokens / concurrency))  # whole waves: no half-empty drain
        points[f"paced {rate:g}"] = {"concurrency": concurrency, "tokens": tokens, "itl_s": concurrency / rate,
                                     "requests": n, "offered": rate}
    points["flat out"] = {"concurrency": concurrency, "tokens": tokens, "itl_s": 0.0, "requests": 4 * concurrency,
                          "offered": None}
    points["short"] = {"concurrency": concurrency, "tokens": 4, "itl_s": 0.0, "requests": 20 * concurrency,
                       "offered": None}
    return points


def start_stub(stub_cpus: set[int]) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, str(REPO / "bench" / "loadgen_stub_server.py"), "--port", "0",
                             "--cpus", ",".join(map(str, sorted(stub_cpus)))], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("PORT "):
        proc.kill()
        raise RuntimeError(f"stub server did not start: {line!r}")
    return proc, f"http://127.0.0.1:{int(line.split()[1])}"


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):,.0f} [{min(values):,.0f}-{max(values):,.0f}]"


def report(points: dict, runs: dict) -> None:
    print(f"\n{'point':<14}{'client':<9}{'tokens/s med [min-max]':>28}{'req/s med':>11}{'CPU us/tok':>12}"
          f"{'ts err p50 ms':>15}{'p99 ms':>9}{'preempt/s':>11}")
    for name in points:
        for client in CLIENTS:
            rs = runs[name][client]
            print(f"{name:<14}{client:<9}{_spread([r['tokens_per_s'] for r in rs]):>28}"
                  f"{statistics.median(r['requests_per_s'] for r in rs):>11,.0f}"
                  f"{statistics.median(r['cpu_us_per_token'] for r in rs):>12.1f}"
                  f"{1e3 * statistics.median(r['err_p50_s'] for r in rs):>15.3f}"
                  f"{1e3 * statistics.median(r['err_p99_s'] for r in rs):>9.3f}"
                  f"{statistics.median(r['preempt_per_s'] for r in rs):>11.0f}")
    print("\nllem / aiohttp, per repetition (median [min-max]):")
    for name in points:
        pairs = list(zip(runs[name]["llem"], runs[name]["aiohttp"]))
        tput = [a["tokens_per_s"] / b["tokens_per_s"] for a, b in pairs]
        cpu = [a["cpu_us_per_token"] / b["cpu_us_per_token"] for a, b in pairs]
        print(f"  {name:<14} tokens/s {statistics.median(tput):.2f} [{min(tput):.2f}-{max(tput):.2f}]   "
              f"CPU per token {statistics.median(cpu):.2f} [{min(cpu):.2f}-{max(cpu):.2f}]")
    print()

    def med(name: str, client: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[name][client])

    for client in CLIENTS:
        kept = [med(n, client, "tokens_per_s") for n, p in points.items() if n.startswith("paced")
                and med(n, client, "err_p99_s") < ERR_P99_TARGET_S and med(n, client, "tokens_per_s") >= 0.95 * p["offered"]]
        cap = max(kept, default=None)
        line = (f"{client}: capacity with timestamp error p99 < 1 ms: "
                f"{f'{cap:,.0f} tokens/s' if cap else 'none of the paced points'} "
                f"(target {TARGET_TOKENS_PER_S:,}: {'met' if cap and cap >= TARGET_TOKENS_PER_S else 'NOT met here'}); "
                f"this machine's floor (1 stream) p50 {1e3 * med('floor', client, 'err_p50_s'):.3f} ms, "
                f"p99 {1e3 * med('floor', client, 'err_p99_s'):.3f} ms")
        if "flat out" in runs:
            cpu = med("flat out", client, "cpu_us_per_token")
            line += (f"; flat out {med('flat out', client, 'tokens_per_s'):,.0f} tokens/s at {cpu:.1f} CPU us/token "
                     f"(= {1e6 / cpu:,.0f} tokens/s for a dedicated core); "
                     f"{med('short', client, 'requests_per_s'):,.0f} requests/s of 4 tokens")
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--rates", default="5000,10000,20000,40000", help="paced offered tokens/s, comma-separated")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=128, help="tokens per request (paced and flat-out points)")
    parser.add_argument("--seconds", type=float, default=2.0, help="about how long each paced run lasts")
    parser.add_argument("--paced-only", action="store_true",
                        help="skip the flat-out and short points (they take a whole core: e.g. under chrt)")
    parser.add_argument("--client-cpu", type=int, default=None, help="core for the client (default: the first allowed)")
    args = parser.parse_args()

    allowed = sorted(os.sched_getaffinity(0))
    client_cpu = allowed[0] if args.client_cpu is None else args.client_cpu
    stub_cpus = set(allowed) - {client_cpu} or {client_cpu}
    try:
        import aiohttp  # noqa: F401 - the independent client
    except ImportError:
        sys.exit("the independent client needs aiohttp: .venv/bin/pip install -e '.[bench]'")
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs; client on CPU "
          f"{client_cpu}, stub on CPU(s) {sorted(stub_cpus)}"
          f"{'  (SAME core: the stub competes with the client)' if client_cpu in stub_cpus else ''}")
    points = load_points([float(r) for r in args.rates.split(",")], args.concurrency, args.tokens, args.seconds)
    if args.paced_only:
        points = {n: p for n, p in points.items() if n not in ("flat out", "short")}
    policy = {os.SCHED_OTHER: "normal", os.SCHED_FIFO: "FIFO", os.SCHED_RR: "RR"}.get(os.sched_getscheduler(0), "other")
    print(f"scheduling policy {policy}, nice {os.nice(0)}")
    stub, url = start_stub(stub_cpus)
    os.sched_setaffinity(0, {client_cpu})
    runs = {name: {c: [] for c in CLIENTS} for name in points}
    try:
        for client in CLIENTS:  # imports, first connections: not measured
            one_run(client, url, f"warm-{client}", {"concurrency": args.concurrency, "tokens": 4, "itl_s": 0.0,
                                                   "requests": args.concurrency})
        for rep in range(args.reps):
            order = list(CLIENTS) if rep % 2 == 0 else list(reversed(CLIENTS))
            for name, point in points.items():
                for client in order:
                    r = one_run(client, url, f"{rep}-{name}-{client}", point)
                    runs[name][client].append(r)
                    print(f"rep {rep} {name:<14} {client:<8} {r['tokens_per_s']:>10,.0f} tok/s "
                          f"{r['requests_per_s']:>7,.0f} req/s {r['cpu_us_per_token']:>6.1f} us/tok "
                          f"err p50 {1e3 * r['err_p50_s']:.3f} ms p99 {1e3 * r['err_p99_s']:.3f} ms "
                          f"preempt {r['preempt_per_s']:.0f}/s", flush=True)
    finally:
        stub.terminate()
        stub.wait(timeout=10)
    report(points, runs)
    load = os.getloadavg()
    print(f"\nload average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
