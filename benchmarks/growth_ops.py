"""Time to apply each growth operator to the reference config, and whether it kept the function.

The model is `clip-base` (or --model) after one AdamW step, so moments are carried too. For each
operator: the dimension it grows, exact by its own account, the largest change of any image or
text embedding on 8 random pairs (measured, not assumed), parameters before and after, and the
median time of --repeats applications (weights + moments, PIM m = 1).

    python -m benchmarks.growth_ops [--model clip-base] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from growclip.growth import GrowthState, grow_state, is_exact, parse_op
from growclip.model import PAD_ID, create_model, load_config, model_cost
from growclip.model.loss import clip_loss
from growclip.train.optim import make_optimizer

GROWTHS = [["width=512"], ["width=512,heads=scale"], ["width=384"], ["heads=8"], ["mlp_ratio=8"],
           ["embed_dim=512"], ["vision_layers+1"], ["text_layers+1"], ["shared_layers+1"],
           ["vision_layers+1,init=copy"], ["share"], ["width=512", "shared_layers+2", "mlp_ratio=6"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="clip-base")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    config = load_config(args.model)
    torch.manual_seed(0)
    model = create_model(config).eval()
    images = torch.randn(8, 3, config.image_size, config.image_size)
    tokens = torch.randint(3, config.vocab_size, (8, config.context_length))
    tokens[:, 20:] = PAD_ID
    optimizer = make_optimizer(model, 1e-3, 0.1)
    clip_loss(*model(images, tokens)).backward()
    optimizer.step()
    state = GrowthState.capture(model, optimizer)
    with torch.no_grad():
        before = model(images, tokens)[:2]
    params = model_cost(config).params
    print(f"{args.model}: {params / 1e6:.2f} M params, {torch.get_num_threads()} threads, median of {args.repeats}")
    print("| operator | grows | exact | max embedding change | params after | time |\n|---|---|---|---|---|---|")
    for specs in GROWTHS:
        ops = [parse_op(spec) for spec in specs]
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            grown = grow_state(state, ops)
            times.append(time.perf_counter() - start)
        with torch.no_grad():
            after = grown.build_model().eval()(images, tokens)[:2]
        change = max((F.pad(b, (0, a.shape[1] - b.shape[1])) - a).abs().max().item() for b, a in zip(before, after))
        grows = ", ".join(sorted({op.dimension for op in ops}))
        print(f"| `{' '.join(specs)}` | {grows} | {'yes' if is_exact(config, ops) else 'no'} | {change:.1e} | "
              f"{model_cost(grown.config).params / 1e6:.2f} M | {statistics.median(times) * 1000:.0f} ms |")


if __name__ == "__main__":
    main()
