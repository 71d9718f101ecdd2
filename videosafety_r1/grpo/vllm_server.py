"""Server mode: ``videosafety-r1 vllm-serve --model EXPORT``, a thin HTTP server around one vLLM engine, and the
trainer's client (:class:`ServerEngine`).

TRL's ``trl vllm-serve`` has no video path, hence this one. Calls (JSON over HTTP):

- ``GET /health`` -> ``{"status": "ok"}``;
- ``POST /generate`` ``{"prompts": [...], "params": [...]}``: token prompts with video frames (uint8, base64) and
  their metadata, one ``SamplingParams`` dict per prompt -> per prompt, ``n`` samples of token ids and log-probs;
- ``POST /reset_prefix_cache``.

Weights reach the server by one of two transports (``vllm_weight_transport``, docs/grpo.md):

- **group** (``nccl`` or ``gloo``; :mod:`~videosafety_r1.grpo.vllm_transport`): ``GET /world_size`` (the engine's
  worker count ``W``); ``POST /init_communicator`` ``{"backend", "port", "world_size": W + 1, "timeout"}`` (the
  workers join the trainer's group, the store on this host at ``vllm_group_port``); ``POST /update_named_params``
  ``{"specs": [[name, dtype, shape], ...], "src": W}`` (the workers receive the announced tensors by broadcast from
  the trainer's rank and load them in place, then the caches are dropped); ``POST /close_communicator``;
- **file**: ``POST /update_weights`` ``{"path": FOLDER}``: reload the weights from the safetensors files in
  ``FOLDER`` in place (read by the server and handed to an in-process engine as tensors, or read by the engine's own
  process), then drop the prefix, encoder and multimodal caches. Trainer and server share a filesystem.
"""

from __future__ import annotations

import atexit
import base64
import importlib.util
import logging
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from .vllm_transport import WORKER_EXTENSION, make_communicator, send_weights, weight_spec

logger = logging.getLogger(__name__)

# what serve() imports: vLLM and the HTTP stack it ships with; all come with the optional extra below
SERVER_MODULES = ("vllm", "fastapi", "uvicorn")
SERVER_EXTRA = 'pip install "videosafety-r1[vllm]"'


def check_server_modules() -> None:
    """Raise ``ImportError`` naming the missing modules and the optional extra that installs them, instead of a
    bare ``ModuleNotFoundError`` from deep inside :func:`serve` (the base install has no vLLM)."""
    missing = [name for name in SERVER_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(f"vllm-serve needs {', '.join(missing)}, not installed: {SERVER_EXTRA}")


# --- wire format ----------------------------------------------------------------------------------------------
def encode_prompt(prompt: dict[str, Any]) -> dict[str, Any]:
    """A vLLM token prompt as JSON: video frames as base64 bytes with their shape."""
    out: dict[str, Any] = {"prompt_token_ids": list(prompt["prompt_token_ids"])}
    video = prompt.get("multi_modal_data", {}).get("video")
    if video is not None:
        frames, meta = video
        frames = np.ascontiguousarray(frames, dtype=np.uint8)
        out["video"] = {"data": base64.b64encode(frames.tobytes()).decode(), "shape": list(frames.shape), "meta": meta}
    if "image" in prompt.get("multi_modal_data", {}):
        image = np.asarray(prompt["multi_modal_data"]["image"], dtype=np.uint8)
        out["image"] = {"data": base64.b64encode(image.tobytes()).decode(), "shape": list(image.shape)}
    return out


def decode_prompt(wire: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`encode_prompt`."""
    out: dict[str, Any] = {"prompt_token_ids": wire["prompt_token_ids"]}
    if "video" in wire:
        v = wire["video"]
        frames = np.frombuffer(base64.b64decode(v["data"]), dtype=np.uint8).reshape(v["shape"]).copy()  # [T, H, W, 3]
        out["multi_modal_data"] = {"video": (frames, v["meta"])}
    if "image" in wire:
        from PIL import Image

        i = wire["image"]
        pixels = np.frombuffer(base64.b64decode(i["data"]), dtype=np.uint8).reshape(i["shape"])
        out.setdefault("multi_modal_data", {})["image"] = Image.fromarray(pixels)
    return out


# --- client -----------------------------------------------------------------------------------------------------
class ServerEngine:
    """The trainer's side of server mode: the same calls as ``ColocateEngine``, over HTTP.

    ``transport`` is how pushes travel: ``"file"`` writes them under ``scratch`` (a folder the server can read) and
    calls ``/update_weights``; ``"nccl"`` / ``"gloo"`` broadcast them over a weight-update group whose store listens
    on the server's host at ``group_port`` (joined at the first push; ``device`` is where NCCL sends from). One
    server serves every training process (``shared``): rank 0 alone pushes weights.
    """

    shared = True

    def __init__(
        self,
        base_url: str,
        timeout: float = 240.0,
        scratch: str | Path = "vllm-push",
        transport: str = "file",
        group_port: int = 51216,
        device: Any = None,
    ) -> None:
        import requests

        if transport not in ("file", "nccl", "gloo"):
            raise ValueError(f"transport must be 'file', 'nccl' or 'gloo', got {transport!r}")
        self.url, self.timeout, self.scratch = base_url.rstrip("/"), timeout, Path(scratch)
        self.transport, self.group_port, self.device = transport, group_port, device
        self.session = requests.Session()
        self._last_push: Path | None = None
        self._group: Any = None
        self._rank = 0
        self.wait_until_up()

    def wait_until_up(self) -> None:
        """Poll ``/health`` for up to ``timeout`` seconds; ``ConnectionError`` naming the URL otherwise."""
        import requests

        deadline = time.monotonic() + self.timeout
        while True:
            try:
                if self.session.get(f"{self.url}/health", timeout=5).ok:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise ConnectionError(
                    f"no vLLM server at {self.url} after {self.timeout:.0f} s (vllm_server_timeout): start it with "
                    "`videosafety-r1 vllm-serve --model EXPORT`"
                )
            time.sleep(1.0)

    def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        response = self.session.post(f"{self.url}{path}", json=payload, timeout=None)
        if not response.ok:
            raise RuntimeError(f"vLLM server {self.url}{path}: HTTP {response.status_code}: {response.text[:500]}")
        return response.json()

    def generate(self, prompts: list[dict[str, Any]], params: list[dict[str, Any]]) -> list[list[tuple]]:
        out = self._post("/generate", {"prompts": [encode_prompt(p) for p in prompts], "params": params})
        return [[(s["token_ids"], s["logprobs"]) for s in per_prompt] for per_prompt in out["samples"]]

    def update_weights(self, weights: Any) -> None:
        """Push ``weights``: ``engine_weights(model)``, or any ``(name, tensor)`` pairs (read once up front then)."""
        if self.transport == "file":
            self._push_file(weights)
        else:
            self._push_group(weights)

    def _push_file(self, weights: Any) -> None:
        from safetensors.torch import save_file

        folder = self.scratch / f"push-{time.time_ns()}"
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {name: t.detach().to("cpu").contiguous().clone() for name, t in weights}
        save_file(tensors, str(folder / "model.safetensors"))
        self._post("/update_weights", {"path": str(folder.resolve())})
        # the engine's model path may point at the last push (vLLM repoints it): keep that one, drop older ones
        if self._last_push is not None:
            shutil.rmtree(self._last_push, ignore_errors=True)
        self._last_push = folder

    def _concurrently(self, path: str, payload: dict[str, Any], work: Any) -> Any:
        """POST ``path`` while ``work()`` runs here: the server blocks in the group's collective until this side
        joins it. When ``work`` fails, the server is left waiting in the collective (restart it)."""
        pool = ThreadPoolExecutor(max_workers=1)
        future = pool.submit(self._post, path, payload)
        try:
            result = work()
        except BaseException:
            pool.shutdown(wait=False)
            raise
        future.result()
        pool.shutdown()
        return result

    def init_communicator(self) -> None:
        """Join the server's workers in a weight-update group (the trainer is its last rank, as in TRL)."""
        workers = int(self.session.get(f"{self.url}/world_size", timeout=30).json()["world_size"])
        host = urlparse(self.url).hostname or "127.0.0.1"
        payload = {
            "backend": self.transport,
            "port": self.group_port,
            "world_size": workers + 1,
            "timeout": self.timeout,
        }
        self._rank = workers
        self._group = self._concurrently(
            "/init_communicator",
            payload,
            lambda: make_communicator(
                self.transport, host, self.group_port, workers, workers + 1, self.device, self.timeout
            ),
        )
        atexit.register(self.close_communicator)
        logger.info("weight-update group (%s) joined: %s:%d, rank %d", self.transport, host, self.group_port, workers)

    def _push_group(self, weights: Any) -> None:
        if self._group is None:
            self.init_communicator()
        if hasattr(weights, "specs"):  # engine_weights: announced without reading the values
            specs = weights.specs()
        else:
            weights = list(weights)
            specs = [weight_spec(name, tensor) for name, tensor in weights]
        self._concurrently(
            "/update_named_params",
            {"specs": specs, "src": self._rank},
            lambda: send_weights(self._group, weights, specs),
        )

    def close_communicator(self) -> None:
        """Leave the weight-update group (the server's workers leave it too)."""
        if self._group is None:
            return
        try:
            self._post("/close_communicator", {})
        except Exception as err:  # the server may be gone already at exit
            logger.debug("close_communicator: %s", err)
        self._group.close()
        self._group = None

    def reset_prefix_cache(self) -> None:
        self._post("/reset_prefix_cache", {})


# --- server -----------------------------------------------------------------------------------------------------
def build_app(llm: Any) -> Any:
    """The FastAPI app serving ``llm`` (a ``vllm.LLM``)."""
    from fastapi import FastAPI
    from vllm import SamplingParams

    from .vllm_generator import _sample, reset_caches

    app = FastAPI(title="videosafety-r1 vllm-serve")
    lock = threading.Lock()  # one engine, many training processes: calls into it run one at a time

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/generate")
    def generate(request: dict[str, Any]) -> dict[str, Any]:
        prompts = [decode_prompt(p) for p in request["prompts"]]
        params = [SamplingParams(**p) for p in request["params"]]
        with lock:
            outputs = llm.generate(prompts, params, use_tqdm=False)
        samples = [[dict(zip(("token_ids", "logprobs"), _sample(c))) for c in out.outputs] for out in outputs]
        return {"samples": samples}

    @app.post("/update_weights")
    def update_weights(request: dict[str, Any]) -> dict[str, str]:
        from safetensors.torch import load_file

        if type(llm.llm_engine.engine_core).__name__ != "InprocClient":  # the engine's own process reads the files
            kwargs: dict[str, Any] = {"weights_path": request["path"]}
        else:  # in-process, reload_weights(weights_path=...) would repoint this process's processor at the folder
            files = sorted(Path(request["path"]).glob("*.safetensors"))
            kwargs = {"weights_iterator": [(n, t) for f in files for n, t in load_file(f).items()]}
        with lock:
            llm.collective_rpc("reload_weights", kwargs=kwargs)
            reset_caches(llm)
        return {"status": "ok"}

    @app.get("/world_size")
    def world_size() -> dict[str, int]:
        config = llm.llm_engine.vllm_config.parallel_config
        return {"world_size": int(config.world_size)}

    @app.post("/init_communicator")
    def init_communicator(request: dict[str, Any]) -> dict[str, str]:
        args = (request["backend"], "127.0.0.1", int(request["port"]), int(request["world_size"]))
        with lock:
            llm.collective_rpc("init_weight_group", args=(*args, float(request.get("timeout", 300.0))))
        return {"status": "ok"}

    @app.post("/update_named_params")
    def update_named_params(request: dict[str, Any]) -> dict[str, Any]:
        with lock:
            counts = llm.collective_rpc("receive_weights", args=(request["specs"], int(request["src"])))
            reset_caches(llm)
        return {"status": "ok", "received": counts}

    @app.post("/close_communicator")
    def close_communicator() -> dict[str, str]:
        with lock:
            llm.collective_rpc("close_weight_group")
        return {"status": "ok"}

    @app.post("/reset_prefix_cache")
    def reset_prefix_cache() -> dict[str, str]:
        with lock:
            llm.reset_prefix_cache()
        return {"status": "ok"}

    return app


def serve(model: str, host: str = "0.0.0.0", port: int = 8000, **engine_kwargs: Any) -> None:
    """Start the engine on ``model`` (a plain export) and serve it until interrupted."""
    check_server_modules()
    import uvicorn
    from vllm import LLM

    from .vllm_generator import _blocker_registered, cpu_engine_defaults
    from .vllm_logits import AlarmTokenBlocker

    kwargs = {"logprobs_mode": "processed_logprobs", **{k: v for k, v in engine_kwargs.items() if v is not None}}
    kwargs.setdefault("worker_extension_cls", WORKER_EXTENSION)  # the workers' side of the weight-update group
    kwargs.update(cpu_engine_defaults(kwargs))
    if not _blocker_registered():
        kwargs["logits_processors"] = [AlarmTokenBlocker]
    llm = LLM(model=model, **kwargs)
    logger.info("vllm-serve: %s on http://%s:%d", model, host, port)
    uvicorn.run(build_app(llm), host=host, port=port, log_level="warning")
