#!/usr/bin/python3
"""PyTorch side of `npm run bench:engine` (bench/engine.ts runs it; it also runs alone).

MobileNetV2 as torchvision builds it, with RANDOM weights (no download: the
throughput does not depend on the values), on random inputs in [0, 1]:

- forward: eval mode, no autograd, `features` (up to the last ReLU6, i.e.
  Keras `out_relu`) + global average pool, images/s;
- fine-tune, whole model: input -> features -> head, backprop only into the
  unfrozen layers (the frozen prefix runs without autograd because nothing
  before the first trainable parameter needs a gradient);
- fine-tune, cached cut: the layers after the clean cut `--cut`, run on that
  cut's activations computed once (what tlsweep trials do), -> head.

Keras fine-tuning semantics: every BatchNorm runs in inference mode (running
statistics, none updated) in the frozen and the unfrozen part; gamma/beta of
unfrozen BatchNorms still train. The head is GAP -> Linear(1280, units) ->
ReLU -> Dropout -> Linear(units, classes), softmax cross-entropy, Adam.

Layers are named as in Keras (`block_15_expand`, `Conv_1_bn`, ...) so
`--first-trainable` and `--cut` take the same names the tfjs side uses.
Keras block_k is torchvision features[k + 1] (features[1] is Keras
`expanded_conv`, features[18] is Keras `Conv_1`/`Conv_1_bn`/`out_relu`).

  /usr/bin/python3 bench/engine_torch.py [--sizes 96,224] [--batch 16]
      [--warmup 3] [--steps 20] [--first-trainable block_15_expand]
      [--cut block_14_add] [--classes 5] [--threads 2]

Progress goes to stderr; stdout's last line is JSON.
"""
import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F
import torchvision


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Step:
    """One Keras-named layer of MobileNetV2, backed by a torchvision module."""

    def __init__(self, name, module, block, kind="module"):
        self.name = name
        self.starts_block = False  # set by keras_steps
        self.module = module  # None for Keras-only layers (ZeroPadding2D: torch convs pad themselves) and adds
        self.block = block  # index into model.features
        self.kind = kind  # "module" | "identity" | "add"


def keras_steps(model):
    """The torchvision MobileNetV2 features as Keras-named layers, in Keras order."""
    f = model.features
    steps = [
        Step("Conv1_pad", None, 0, "identity"),
        Step("Conv1", f[0][0], 0),
        Step("bn_Conv1", f[0][1], 0),
        Step("Conv1_relu", f[0][2], 0),
    ]
    for i in range(1, 18):
        block = f[i]
        prefix = "expanded_conv" if i == 1 else f"block_{i - 1}"
        conv = block.conv
        if len(conv) == 4:
            expand, dw, project, project_bn = conv[0], conv[1], conv[2], conv[3]
            steps += [
                Step(f"{prefix}_expand", expand[0], i),
                Step(f"{prefix}_expand_BN", expand[1], i),
                Step(f"{prefix}_expand_relu", expand[2], i),
            ]
        else:
            dw, project, project_bn = conv[0], conv[1], conv[2]
        if dw[0].stride == (2, 2):
            steps.append(Step(f"{prefix}_pad", None, i, "identity"))
        steps += [
            Step(f"{prefix}_depthwise", dw[0], i),
            Step(f"{prefix}_depthwise_BN", dw[1], i),
            Step(f"{prefix}_depthwise_relu", dw[2], i),
            Step(f"{prefix}_project", project, i),
            Step(f"{prefix}_project_BN", project_bn, i),
        ]
        if block.use_res_connect:
            steps.append(Step(f"{prefix}_add", None, i, "add"))
    steps += [
        Step("Conv_1", f[18][0], 18),
        Step("Conv_1_bn", f[18][1], 18),
        Step("out_relu", f[18][2], 18),
    ]
    seen = set()
    for s in steps:
        s.starts_block = s.block not in seen
        seen.add(s.block)
    return steps


def index_of(steps, name, flag):
    for k, s in enumerate(steps):
        if s.name == name:
            return k
    raise SystemExit(f"{flag}: unknown Keras MobileNetV2 layer '{name}'; expected one of {', '.join(s.name for s in steps)}")


def is_clean_cut(steps, cut):
    """Nothing after `cut` reads a tensor from before it: the next layer starts
    a block, or its block has no residual add."""
    nxt = steps[cut + 1]
    return nxt.starts_block or not any(s.block == nxt.block and s.kind == "add" for s in steps)


def run_steps(steps, x):
    """Runs `steps` in order on x. A residual add needs its block's input, so a
    run must not start inside a residual block (Keras: not a clean cut)."""
    block_input = {}
    for k, s in enumerate(steps):
        if s.starts_block:
            block_input[s.block] = x
        if s.kind == "identity":
            continue
        if s.kind == "add":
            if s.block not in block_input:
                raise SystemExit(f"--cut: '{s.name}' also reads its block's input; the cut is not clean")
            x = block_input[s.block] + x
            continue
        # In-place ReLU6 would overwrite a cached cut activation if it came first.
        if k == 0 and isinstance(s.module, torch.nn.ReLU6):
            x = F.relu6(x)
        else:
            x = s.module(x)
    return x


def check_keras_order(model, steps):
    """The Keras-named steps compute exactly torchvision's features."""
    model.eval()
    with torch.no_grad():
        x = torch.rand(2, 3, 64, 64)
        diff = (run_steps(steps, x) - model.features(x)).abs().max().item()
    if diff > 1e-5:
        raise SystemExit(f"Keras-named MobileNetV2 steps differ from torchvision's features by {diff}")


def make_head(units, classes, dropout):
    return torch.nn.Sequential(
        torch.nn.Linear(1280, units), torch.nn.ReLU(), torch.nn.Dropout(dropout), torch.nn.Linear(units, classes)
    )


def set_trainable(model, steps, first):
    for p in model.parameters():
        p.requires_grad_(False)
    for s in steps[first:]:
        if s.module is not None:
            for p in s.module.parameters():
                p.requires_grad_(True)


def keras_fine_tune_mode(model, head):
    """Dropout trains; every BatchNorm stays in inference mode (Keras fine-tuning guide)."""
    model.eval()
    head.train()


def timed(warmup, steps, batch, fn):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    return {"imagesPerSec": round(batch / median, 2), "medianMs": round(median * 1000, 1), "steps": steps}


def guarded(label, fn):
    try:
        return fn()
    except Exception as err:  # noqa: BLE001 - a figure that fails is reported, the others still run
        log(f"{label} failed: {err}")
        return {"error": f"{type(err).__name__}: {err}"}


def bench_size(args, size, first, cut):
    torch.manual_seed(1)
    model = torchvision.models.mobilenet_v2()  # random weights: nothing is downloaded
    steps = keras_steps(model)
    check_keras_order(model, steps)
    head = make_head(args.head_units, args.classes, args.dropout)
    set_trainable(model, steps, first)
    x = torch.rand(args.batch, 3, size, size)
    y = torch.randint(0, args.classes, (args.batch,))
    trainable = [p for p in list(model.parameters()) + list(head.parameters()) if p.requires_grad]
    out = {"trainableParams": sum(p.numel() for p in trainable)}

    def forward():
        model.eval()
        with torch.inference_mode():
            model.features(x).mean((2, 3))

    out["forward"] = guarded(f"{size}px forward", lambda: timed(args.warmup, args.steps, args.batch, forward))
    log(f"torch {size}px forward: {json.dumps(out['forward'])}")

    def fine_tune(inputs, features):
        optimizer = torch.optim.Adam(trainable, lr=args.lr)

        def step():
            keras_fine_tune_mode(model, head)
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(head(features(inputs).mean((2, 3))), y)
            loss.backward()
            optimizer.step()

        return timed(args.warmup, args.steps, args.batch, step)

    def cached_cut():
        with torch.no_grad():
            model.eval()
            activations = run_steps(steps[: cut + 1], x)
        tail = steps[cut + 1 :]
        return fine_tune(activations, lambda a: run_steps(tail, a))

    out["fineTuneCachedCut"] = guarded(f"{size}px cached cut", cached_cut)
    log(f"torch {size}px fine-tune on cached '{steps[cut].name}': {json.dumps(out['fineTuneCachedCut'])}")
    out["fineTuneWholeModel"] = guarded(f"{size}px whole model", lambda: fine_tune(x, model.features))
    log(f"torch {size}px fine-tune whole model: {json.dumps(out['fineTuneWholeModel'])}")
    return out


def positive(text):
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {text}")
    return v


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="96,224", help="comma-separated square input sizes (default 96,224)")
    p.add_argument("--batch", type=positive, default=16)
    p.add_argument("--warmup", type=int, default=3, help="untimed steps before the timed ones (default 3)")
    p.add_argument("--steps", type=positive, default=20, help="timed steps per figure (default 20)")
    p.add_argument("--first-trainable", default="block_15_expand", help="first unfrozen Keras layer (default block_15_expand)")
    p.add_argument("--cut", default="block_14_add", help="Keras layer whose output is cached (default block_14_add)")
    p.add_argument("--classes", type=positive, default=5)
    p.add_argument("--head-units", type=positive, default=128)
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--threads", type=positive, default=2)
    args = p.parse_args()
    try:
        sizes = [int(s) for s in args.sizes.split(",")]
    except ValueError:
        raise SystemExit(f"--sizes: expected comma-separated integers such as 96,224; got '{args.sizes}'")
    if any(s < 32 for s in sizes):
        raise SystemExit(f"--sizes: every size must be >= 32 (MobileNetV2's minimum); got {args.sizes}")

    torch.set_num_threads(args.threads)
    names = keras_steps(torchvision.models.mobilenet_v2())
    first = index_of(names, args.first_trainable, "--first-trainable")
    cut = index_of(names, args.cut, "--cut")
    if cut >= first:
        raise SystemExit(f"--cut '{args.cut}' must come before --first-trainable '{args.first_trainable}'")
    if not is_clean_cut(names, cut):
        raise SystemExit(f"--cut '{args.cut}' is not a clean cut: a residual add after it reads its block's input")

    result = {
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "threads": torch.get_num_threads(),
        "weights": "random init (torchvision architecture, nothing downloaded)",
        "inputs": "random uniform [0, 1]",
        "firstTrainable": args.first_trainable,
        "cut": args.cut,
        "batch": args.batch,
        "warmupSteps": args.warmup,
        "timedSteps": args.steps,
        "sizes": {},
    }
    for size in sizes:
        result["sizes"][str(size)] = bench_size(args, size, first, cut)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
