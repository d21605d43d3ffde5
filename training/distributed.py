"""Where a training process runs: device, precision and its place among torchrun's processes.

One process per device. Under `torchrun --nproc_per_node=N` the launcher sets RANK,
LOCAL_RANK and WORLD_SIZE; each process joins the process group (nccl on GPUs, gloo on CPU)
and PyTorch's DistributedDataParallel averages gradients in backward. Started without
torchrun, the same code runs as a group of one and no process group is created.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    rank: int = 0
    world_size: int = 1
    precision: str = "fp32"

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 validates, writes checkpoints and logs; the others wait at a barrier."""
        return self.rank == 0

    def autocast(self):
        """bf16/fp16 autocast on CUDA; a no-op context for fp32."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """fp16 gradients underflow without loss scaling; bf16 and fp32 need none."""
        return torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def sum(self, *values: float) -> list[float]:
        """Element-wise sum of `values` over all processes (the values themselves alone)."""
        if not self.distributed:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64, device=self._collective_device())
        dist.all_reduce(tensor)
        return tensor.tolist()

    def broadcast(self, value: float) -> float:
        """Rank 0's value, on every process."""
        if not self.distributed:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self._collective_device())
        dist.broadcast(tensor, src=0)
        return tensor.item()

    def gather(self, obj) -> list:
        """Every process's `obj`, in rank order, on every process."""
        if not self.distributed:
            return [obj]
        gathered = [None] * self.world_size
        dist.all_gather_object(gathered, obj)
        return gathered

    def average_gradients(self, parameters) -> None:
        """Average the parameters' gradients over all processes: for a step that does not
        train through a DistributedDataParallel forward, which would do it in backward."""
        if not self.distributed:
            return
        for p in parameters:
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad /= self.world_size

    def _collective_device(self) -> torch.device:
        # nccl only moves CUDA tensors; gloo only CPU ones.
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")


def select_device(name: str, local_rank: int = 0) -> torch.device:
    """--device auto|cpu|cuda (or cuda:N). auto picks CUDA when a GPU is visible."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError("--device cuda: no CUDA GPU is visible to this process "
                             "(use --device cpu or auto)")
        if name == "cuda":
            name = f"cuda:{local_rank % torch.cuda.device_count()}"
        device = torch.device(name)
        torch.cuda.set_device(device)
        return device
    if name != "cpu":
        raise ValueError(f"--device must be auto, cpu or cuda, not {name!r}")
    return torch.device("cpu")


def setup(device: str = "auto", precision: str = "fp32") -> Runtime:
    """Join torchrun's process group when launched by it; choose the device and precision."""
    if precision not in PRECISIONS:
        raise ValueError(f"--precision must be one of {', '.join(PRECISIONS)}")
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    chosen = select_device(device, local_rank)
    if precision == "fp16" and chosen.type != "cuda":
        raise ValueError("--precision fp16 needs a CUDA device (use bf16 or fp32 on CPU)")
    if world_size > 1 and not dist.is_initialized():
        # Other ranks wait at a barrier while rank 0 builds the feature cache or validates:
        # allow that longer than the default 10 (nccl) or 30 (gloo) minutes.
        dist.init_process_group("nccl" if chosen.type == "cuda" else "gloo",
                                timeout=timedelta(hours=2))
    return Runtime(chosen, rank, world_size, precision)


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
