"""What `--dry-run` learns from every configuration, read once in the plan's validation pass.

Why one pass: a study may have 100,000 configurations, and validating each a second time to print
it, estimate it and check it cost more than the plan itself. The scan keeps, per configuration,
only a key to an estimate shared by configurations alike in what the estimate reads (random seeds
and decoding settings do not change it), and, per kind of problem, the configurations it touches.

Problems found here are those a real run would fail on after starting (the run's own error says
so ~50 s later): a batch larger than the prompts, a prompt plus output beyond the model's context,
a CUDA-only transformers option on a host without a GPU or without flash-attn, a hub model that is
neither local nor cached where the hub cannot be reached, vLLM's CPU build asked for more memory
than is free. Nothing here imports torch or an engine: packages are looked up with
importlib.util.find_spec, GPUs with the host's probe (runners/gpu_presence.py).
"""
from __future__ import annotations

import importlib.util
import os
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path

# config.json keys that give a model's context length, in the order families use them.
CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "n_ctx",
                "max_sequence_length")
VLLM_DEFAULT_MEMORY_UTILIZATION = 0.92  # vLLM's EngineArgs default (docs/vllm.md)
HUB_PROBE_S = 0.8  # how long the dry-run waits to learn whether the hub answers
SHOWN_INDICES = 5  # configurations named per problem; the rest are counted


@dataclass
class Problem:
    """One kind of problem and the configurations (1-based numbers) it touches."""

    message: str
    numbers: list[int] = field(default_factory=list)
    count: int = 0

    def add(self, index: int) -> None:
        self.count += 1
        if len(self.numbers) < SHOWN_INDICES:
            self.numbers.append(index + 1)

    def line(self, n_configurations: int) -> str:
        if self.count == n_configurations and n_configurations > 1:
            where = "every configuration"
        else:
            where = "configuration" + ("s " if self.count > 1 else " ") + ", ".join(f"#{n}" for n in self.numbers)
            if self.count > len(self.numbers):
                where += f" and {self.count - len(self.numbers):,} more"
        return f"{where}: {self.message}"


def model_context_length(model_config: dict | None) -> tuple[int, str] | None:
    """(context length, the config.json key it came from), or None when the config does not say."""
    if not model_config:
        return None
    from ..domain.estimates import text_config

    cfg = text_config(model_config)
    for key in CONTEXT_KEYS:
        value = cfg.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value, key
    return None


def hub_cache_dir() -> Path:
    """Where huggingface_hub caches models (its own environment variables, in its order)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return Path(home).expanduser() / "hub"


def in_hub_cache(model_id: str) -> Path | None:
    """The cached snapshot directory of a hub id, or None when nothing of it is cached here."""
    repo = hub_cache_dir() / ("models--" + model_id.replace("/", "--"))
    snapshots = repo / "snapshots"
    try:
        found = sorted(p for p in snapshots.iterdir() if p.is_dir()) if snapshots.is_dir() else []
    except OSError:
        return None
    return found[-1] if found else None


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def hub_unreachable_reason() -> str | None:
    """Why the hub cannot be reached from here (None: it answered), within HUB_PROBE_S."""
    from urllib.parse import urlparse

    endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    parsed = urlparse(endpoint)
    host, port = parsed.hostname or "huggingface.co", parsed.port or (80 if parsed.scheme == "http" else 443)
    outcome: list[str | None] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=HUB_PROBE_S).close()
            outcome.append(None)
        except OSError as exc:
            outcome.append(f"{host}:{port}: {exc.strerror or exc}")

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(HUB_PROBE_S + 0.1)
    if not outcome:
        return f"{host}:{port} did not answer within {HUB_PROBE_S:g} s"
    return outcome[0]


def memory_bytes() -> tuple[int, int] | None:
    """(total, available) host memory from /proc/meminfo, or None where it cannot be read."""
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines() if ":" in line)
        return int(fields["MemTotal"].split()[0]) * 1024, int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None


def _model_config(model: str) -> dict | None:
    from ..domain.estimates import read_local_model_config

    local = read_local_model_config(model)
    if local is not None or os.path.isabs(model):
        return local
    cached = in_hub_cache(model)
    return read_local_model_config(str(cached)) if cached else None


class PlanScan:
    """Collects, in the plan's validation pass, what the dry-run prints and checks (see the module doc)."""

    def __init__(self, keep_lines: int | None):
        """`keep_lines`: configurations whose line is printed (None: all)."""
        self.keep_lines = keep_lines
        self.model_configs: dict[str, dict | None] = {}
        self.estimate_of: list[tuple[int, tuple]] = []     # (index, estimate key) per valid configuration
        self.estimate_config: dict[tuple, object] = {}     # estimate key -> one config with that key
        self.vram: dict[int, str] = {}                     # index -> the VRAM part of its printed line
        self.window_warnings: dict[int, str] = {}          # index -> why its serving window cannot be measured
        self.problems: dict[tuple, Problem] = {}
        self.uses: dict[tuple, list[int]] = {}             # environment-dependent facts -> indices
        self.hub_models: dict[str, list[int]] = {}
        self._vram_memo: dict[tuple, str] = {}
        self._kept: dict[int, object] = {}                   # sections keyed by id(): kept alive
        self._section_facts: dict[int, tuple] = {}
        self._hub_checked: set[str] = set()
        self._context: dict[str, tuple[int, str] | None] = {}

    def model_config(self, model: str) -> dict | None:
        if model not in self.model_configs:
            self.model_configs[model] = _model_config(model)
        return self.model_configs[model]

    def _problem(self, key: tuple, message: str, index: int) -> None:
        self.problems.setdefault(key, Problem(message)).add(index)

    def visit(self, index: int, config) -> None:
        """Called by the plan for each valid configuration: a few microseconds, 100,000 times."""
        model = config.model
        model_config = self.model_configs[model] if model in self.model_configs else self.model_config(model)
        m = config.measurement
        if id(m) not in self._kept:
            self._kept[id(m)] = m  # keeps the section alive: its id stays unique while the scan lives
        engine, mode = config.engine, config.mode
        key = (engine, model, mode, config.serving.n_requests if mode == "serving" and config.serving else None,
               config.batch_size, config.n_prompts, config.max_input_tokens, config.max_output_tokens,
               config.precision, id(m))
        if key not in self.estimate_config:
            self.estimate_config[key] = config
        self.estimate_of.append((index, key))
        if self.keep_lines is None or index < self.keep_lines:
            self.vram[index] = self._vram(config, model_config)
        if mode == "serving" and config.serving is not None:
            warning = config.serving.window_warning(m.sampling_period_ms / 1000.0)
            if warning:
                self.window_warnings[index] = warning
        if mode != "serving" and config.batch_size > config.n_prompts:
            self._problem(("batch",), f"batch_size is larger than n_prompts (first: batch_size {config.batch_size}, "
                          f"n_prompts {config.n_prompts}): the run would measure one batch of {config.n_prompts} "
                          f"under the label bs={config.batch_size}; lower batch_size to at most n_prompts, or raise "
                          "n_prompts", index)
        section = getattr(config, engine, None)
        facts = self._section_facts.get(id(section)) if section is not None else ()
        if facts is None:
            facts = self._facts(engine, section)
        context = facts[0] if facts and facts[0] is not None else (
            self._context[model] if model in self._context else self._context_of(model, model_config))
        wanted = config.max_input_tokens + config.max_output_tokens
        if context and wanted > context[0]:
            self._problem(("context", model, context),
                          f"max_input_tokens + max_output_tokens is more than the model's context length "
                          f"{context[0]} ({context[1]}) (first: {config.max_input_tokens} + "
                          f"{config.max_output_tokens} = {wanted} tokens); lower max_input_tokens or "
                          "max_output_tokens", index)
        for fact in facts[1:]:
            self.uses.setdefault(fact, []).append(index)
        if model in self.hub_models or (model not in self._hub_checked and self._not_found(model, model_config)):
            self.hub_models.setdefault(model, []).append(index)

    def _context_of(self, model: str, model_config: dict | None):
        self._context[model] = model_context_length(model_config)
        return self._context[model]

    def _facts(self, engine: str, section) -> tuple:
        """(context length the engine section sets or None, *environment facts it implies), once per section."""
        self._kept[id(section)] = section
        facts: list = [None]
        if engine == "transformers":
            if section.device == "cuda":
                facts.append(("cuda", "transformers.device: cuda"))
            if section.attn_implementation == "flash_attention_2":
                facts += [("cuda", "transformers.attn_implementation: flash_attention_2"), ("flash_attn",)]
        elif engine == "vllm":
            if section.max_model_len:
                facts[0] = (section.max_model_len, "vllm.max_model_len")
            facts.append(("vllm_memory", section.gpu_memory_utilization or VLLM_DEFAULT_MEMORY_UTILIZATION))
        self._section_facts[id(section)] = tuple(facts)
        return self._section_facts[id(section)]

    def _vram(self, config, model_config: dict | None) -> str:
        if not model_config:
            return "VRAM estimate: unknown (no local config.json)"
        key = (config.model, config.precision, config.batch_size, config.max_input_tokens + config.max_output_tokens)
        if key not in self._vram_memo:
            from ..domain.estimates import dtype_bytes, estimate_vram_bytes

            width = dtype_bytes(config.precision, model_config) or 4
            vram = estimate_vram_bytes(model_config, config.batch_size, key[3], width)
            self._vram_memo[key] = (f"VRAM estimate {vram['total_bytes'] / 2**30:.2f} GiB" if "total_bytes" in vram
                                    else f"VRAM estimate: unknown ({vram.get('unavailable_reason')})")
        return self._vram_memo[key]

    def _not_found(self, model: str, model_config: dict | None) -> bool:
        """A hub id with no local directory and nothing in the hub cache (asked once per model)."""
        self._hub_checked.add(model)
        return not os.path.isabs(model) and model_config is None and in_hub_cache(model) is None

    def environment_problems(self, runners: dict[str, str], n_configurations: int,
                             unavailable: frozenset[str] = frozenset()) -> list[str]:
        """Problems that depend on this host (GPUs, packages, the hub, free memory), after runner resolution.

        `unavailable`: engines already named as unable to run here (their other problems would be noise)."""
        from ..runners.gpu_presence import visible_nvidia_gpus

        out: list[Problem] = list(self.problems.values())
        gpus: tuple[int, str] | None = None

        def no_gpu() -> str | None:
            nonlocal gpus
            if gpus is None:
                gpus = visible_nvidia_gpus()
            return None if gpus[0] else gpus[1]

        for fact, indices in self.uses.items():
            problem = None
            if fact[0] == "cuda" and (reason := no_gpu()) is not None:
                problem = Problem(f"{fact[1]} needs an NVIDIA GPU and this host has none ({reason}); set "
                                  "transformers.device: auto and leave attn_implementation unset (or sdpa), "
                                  "or run on a GPU host")
            elif fact[0] == "flash_attn" and runners.get("transformers", "local") == "local" \
                    and importlib.util.find_spec("flash_attn") is None and no_gpu() is None:
                problem = Problem("transformers.attn_implementation: flash_attention_2 needs the flash-attn package, "
                                  "which is not installed here; use sdpa, or install flash-attn "
                                  "(pip install flash-attn --no-build-isolation)")
            elif fact[0] == "vllm_memory" and "vllm" in runners and "vllm" not in unavailable \
                    and no_gpu() is not None:
                problem = self._vllm_memory_problem(fact[1])
            if problem is not None:
                for index in indices:
                    problem.add(index)
                out.append(problem)
        if self.hub_models:
            out += self._hub_problems()
        return [p.line(n_configurations) for p in out]

    def _vllm_memory_problem(self, share: float) -> Problem | None:
        memory = memory_bytes()
        if memory is None:
            return None
        total, available = memory
        if share * total <= available:
            return None
        fits = int(available / total * 100) / 100
        return Problem(f"vllm.gpu_memory_utilization: {share:g} of this host's {total / 2**30:.1f} GiB is "
                       f"{share * total / 2**30:.1f} GiB, more than the {available / 2**30:.1f} GiB free (vLLM's CPU "
                       f"build refuses to start); set vllm.gpu_memory_utilization to at most {fits:g}")

    def _hub_problems(self) -> list[Problem]:
        if hub_offline():
            why = "and HF_HUB_OFFLINE=1 forbids downloading it; unset HF_HUB_OFFLINE, or download it first"
        else:
            reason = hub_unreachable_reason()
            if reason is None:
                return []
            why = f"and the hub cannot be reached from this host ({reason}); download it where the hub is reachable"
        out = []
        for model, indices in self.hub_models.items():
            problem = Problem(f"model: {model!r} is neither a local directory nor in the Hugging Face cache "
                              f"({hub_cache_dir()}), {why} (huggingface-cli download {model}), or fix the "
                              "path if it was meant to be local")
            for index in indices:
                problem.add(index)
            out.append(problem)
        return out

    def estimates(self, runners: dict[str, str]):
        """{estimate key: (seconds, source, parts)}: one estimate per distinct key (see the module doc)."""
        from ..domain.estimates import estimate_run_wall_time_s
        from ..study.history import estimate_wall_s, load_history

        history = load_history()
        out, memo = {}, {}  # memo: what configs alike share (history filters, medians), computed once
        for key, config in self.estimate_config.items():
            crude = estimate_run_wall_time_s(config, self.model_config(config.model))
            out[key] = estimate_wall_s(config, runners.get(config.engine), history, crude, memo)
        return out, len(history)
