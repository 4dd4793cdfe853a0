"""How long `llem models make` takes and how much memory it needs; then load it and generate.

    python bench/model_make.py [--shape llama-3.2-1b] [--dtype bf16] [--device cpu] [--dir DIR]

The maker runs in a child process so its peak resident memory (ru_maxrss of the child) is its own;
the model's size on disk is printed beside it, so "bounded memory" reads as a ratio. Then the
model is loaded with from_pretrained in this process and generates a few tokens (timed too).
"""
from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", default="llama-3.2-1b")
    p.add_argument("--dtype", default="bf16")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dir", type=Path, default=None)
    p.add_argument("--new-tokens", type=int, default=4)
    a = p.parse_args()
    target = a.dir or Path(tempfile.mkdtemp(prefix="llem-make-bench-")) / a.shape
    shutil.rmtree(target, ignore_errors=True)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "llenergymeasure", "models", "make", "--shape", a.shape,
                    "--dtype", a.dtype, "--device", a.device, str(target)], check=True)
    make_s = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    size_gb = sum(f.stat().st_size for f in target.iterdir()) / 1e9
    print(f"make: {make_s:.1f} s, peak RSS {peak_mb:.0f} MB, model on disk {size_gb:.2f} GB "
          f"(peak RSS / model size = {peak_mb / 1e3 / size_gb:.2f})")

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(target, dtype=getattr(torch, {"bf16": "bfloat16", "fp16": "float16",
                                                                               "fp32": "float32"}[a.dtype]))
    tok = AutoTokenizer.from_pretrained(target)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = model.generate(**tok(["measuring energy"], return_tensors="pt"), max_new_tokens=a.new_tokens,
                         min_new_tokens=a.new_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
    gen_s = time.perf_counter() - t0
    print(f"from_pretrained: {load_s:.1f} s ({sum(x.numel() for x in model.parameters()):,} parameters); "
          f"generate {a.new_tokens} tokens: {gen_s:.1f} s -> ids {out[0, -a.new_tokens:].tolist()} (random text)")
    if a.dir is None:
        shutil.rmtree(target.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
