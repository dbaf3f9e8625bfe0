"""Writes the seed corpus of fuzz_sample.cpp (runtimes/native/fuzz/corpus/sample/).

FuzzedDataProvider reads control values from the end of the input (one byte per table pick,
8 for the seed) and the plan JSON from the front, so a seed is plan bytes + the control bytes
reversed. Run from the repository root: python runtimes/native/fuzz/make_sample_seeds.py
"""
import json
import pathlib

HERE = pathlib.Path(__file__).parent
OUT = HERE / "corpus" / "sample"
N = [0, 1, 2, 3, 4, 10**6, 10**6 + 1, 2**32 - 1]
SAMPLERS = [None, "ddim", "ddpm", "", "euler", "DDIM", "ddim ", "ddim-50"]
STEPS = [1, 2, 3, 0, -1, 4, 5, 1000, 1001, "INT_MAX", "INT_MIN"]
BATCH = [0, 1, 2, 3, 4, 64, 2**32 - 1]
DOUBLE = ["nan", 0.0, -0.0, 1.0, 0.5, 3.0, -1.0, "inf", "-inf", 1e-300, 1e300, "max", "denorm"]
I64 = [-1, 0, 1, 9, 10, 11, -2, 255, 256, "min", "max"]


def seed(flags=0, n=1, sampler=None, steps=2, eta=0.0, seed=0, label=-1, guidance="nan", batch=64,
         labels=(), prompt=None, codes=None, stop_at=0, keys_cap=64, plan=b""):
    c = [flags, N.index(n), SAMPLERS.index(sampler), STEPS.index(steps), DOUBLE.index(eta)]
    c += list(seed.to_bytes(8, "big"))  # consumed most significant byte first
    c += [I64.index(label), DOUBLE.index(guidance), BATCH.index(batch), DOUBLE.index("nan"), I64.index(-1),
          DOUBLE.index("nan")]
    c += [I64.index(v) for v in labels]
    if prompt is not None:
        length, count, ids = prompt
        c += [length, count] + [I64.index(v) for v in ids]
    if codes is not None:
        c += [codes]
    c += [stop_at, keys_cap]
    return plan + bytes(reversed(c))


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    full = json.loads((HERE / "corpus" / "plan" / "ddim-50.json").read_text())
    short = dict(full, steps=full["steps"][:2], params=dict(full["params"], steps=2))
    seeds = {
        "ddim-2-n2": seed(n=2, sampler="ddim", steps=2),
        "ddpm-3-labels-progress": seed(flags=2 | 16, n=1, sampler="ddpm", steps=3, guidance=3.0, batch=1,
                                       labels=[0], stop_at=2),
        "plan-json-2-steps": seed(flags=1, n=2, batch=1, plan=json.dumps(short).encode()),
        "out-one-short": seed(flags=0x80, n=3, steps=1, label=10),
        "huge-n-codes": seed(flags=8 | 0x40, n=2**32 - 1, codes=4),
        "cancel-first-prompt": seed(flags=32 | 4, n=2, steps=1, prompt=(2, 1, [1, 9])),
    }
    for name, data in seeds.items():
        (OUT / name).write_bytes(data)


if __name__ == "__main__":
    main()
