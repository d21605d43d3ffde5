"""The optimizers a training stage can use: name -> builder(param_groups, lr, weight_decay).
The stage config's check and its --optimizer choices read this one dict."""
from __future__ import annotations

from typing import Callable

import torch

OptimizerBuilder = Callable[[list[dict], float, float], torch.optim.Optimizer]


def _adam(param_groups: list[dict], lr: float, weight_decay: float) -> torch.optim.Optimizer:
    return torch.optim.Adam(param_groups, lr, weight_decay=weight_decay)


def _rmsprop(param_groups: list[dict], lr: float, weight_decay: float) -> torch.optim.Optimizer:
    return torch.optim.RMSprop(param_groups, lr, weight_decay=weight_decay)


def _sgd(param_groups: list[dict], lr: float, weight_decay: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(param_groups, lr, momentum=0.9, weight_decay=weight_decay)


OPTIMIZERS: dict[str, OptimizerBuilder] = {"adam": _adam, "rmsprop": _rmsprop, "sgd": _sgd}
