"""An exponential moving average of a model's weights, kept while it trains.

Polyak averaging, as YOLOv5, timm and detectron2-based recipes keep it: after every
optimizer step each floating-point parameter and buffer (BatchNorm's moving statistics
too) moves a little towards the live model's,

    average <- average + (1 - d_t) * (live - average),   d_t = min(decay, (1 + t) / (10 + t)),

t the number of updates so far (the ramp keeps the first averages from holding on to
the random initial weights). The optimizer keeps training the live weights; a caller
that wants the average puts it in with ``copy_to`` (benchmarks.train_shapes
--average-decay scores both and keeps the average). A training checkpoint holds both,
so a resumed run continues both exactly.
"""

from __future__ import annotations

from typing import Dict, Optional

import torch


def _float_state(model) -> Dict[str, torch.Tensor]:
    """The model's floating-point parameters and buffers by state_dict name (detached,
    sharing storage with the model)."""
    return {name: t for name, t in model.state_dict().items() if t.is_floating_point()}


class WeightAverage:
    """The moving average of ``model``'s floating-point state, starting from its
    current values; ``decay`` in [0, 1) (0.999: about the last 1000 steps weigh)."""

    def __init__(self, model, decay: float, start: Optional[Dict[str, torch.Tensor]] = None):
        """start: the averaged tensors to continue from (a saved average), by state_dict
        name; they must be exactly ``model``'s floating-point state."""
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"the weight average's decay must lie in [0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        live = _float_state(model)
        if start is not None and set(start) != set(live):
            missing, extra = sorted(set(live) - set(start)), sorted(set(start) - set(live))
            raise ValueError(f"the saved weight average does not fit this model (missing {missing[:3]}, "
                             f"unexpected {extra[:3]})")
        # clone keeps the live tensors' memory format (channels-last in training): a
        # mixed-format lerp is ~2x slower
        self.tensors = {name: (t if start is None else start[name]).detach().clone() for name, t in live.items()}

    @torch.no_grad()
    def update(self, model) -> None:
        """One step towards ``model``'s current state (after each optimizer step)."""
        self.updates += 1
        weight = 1.0 - min(self.decay, (1 + self.updates) / (10 + self.updates))
        live = _float_state(model)
        names = list(self.tensors)
        torch._foreach_lerp_([self.tensors[n] for n in names], [live[n] for n in names], weight)

    @torch.no_grad()
    def copy_to(self, model) -> None:
        """Overwrite ``model``'s floating-point state with the average (integer buffers,
        such as BatchNorm's step counts, stay the model's)."""
        live = _float_state(model)
        for name, tensor in self.tensors.items():
            live[name].copy_(tensor)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "tensors": self.tensors}

    @classmethod
    def from_state_dict(cls, state: dict, model) -> WeightAverage:
        """The average saved by ``state_dict``, checked against ``model``'s state names."""
        average = cls(model, float(state["decay"]), start=state["tensors"])
        average.updates = int(state["updates"])
        return average
