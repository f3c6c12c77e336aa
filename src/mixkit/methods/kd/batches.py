"""Teacher logits over a whole training set, shared by the KD trainer and the T. stddev
audit (the cache used when x is fixed, ``base_aug="none"``)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mixkit import accel, feeds


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    feed: feeds.MemoryFeed | feeds.LoaderFeed,
    device: str | torch.device,
    chunk: int = 512,
    amp: str = "off",
) -> Tensor:
    """Logits of the feed's training images in index order (their evaluation view), model in
    eval mode: (N, K) on the CPU."""
    was = model.training
    model.eval()
    out = []
    for x in feed.ordered(chunk, torch.device(device)):
        with accel.autocast(device, amp):
            out.append(model(feed.normalize(feed.eval_view(x))).float().cpu())
    model.train(was)
    return torch.cat(out)
