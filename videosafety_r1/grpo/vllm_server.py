"""Server mode: ``videosafety-r1 vllm-serve --model EXPORT``, a thin HTTP server around one vLLM engine, and the
trainer's client (:class:`ServerEngine`).

TRL's ``trl vllm-serve`` has no video path, hence this one. Calls (JSON over HTTP):

- ``GET /health`` -> ``{"status": "ok"}``;
- ``POST /generate`` ``{"prompts": [...], "params": [...]}``: token prompts with video frames (uint8, base64) and
  their metadata, one ``SamplingParams`` dict per prompt -> per prompt, ``n`` samples of token ids and log-probs;
- ``POST /update_weights`` ``{"path": FOLDER}``: reload the weights from the safetensors files in ``FOLDER``
  (names as the trainer's model has them) in place (read by the server, handed to the engine as tensors), then drop the prefix, encoder and multimodal caches. The trainer writes that folder:
  trainer and server must share a filesystem (one node, or a shared mount). This transport works on CPU and GPU;
  an NCCL broadcast (TRL's) is not implemented;
- ``POST /reset_prefix_cache``.
"""

from __future__ import annotations

import base64
import logging
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)


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

    ``scratch`` is the folder weight pushes are written to (the server must be able to read it). One server serves
    every training process (``shared``): rank 0 alone pushes weights.
    """

    shared = True

    def __init__(self, base_url: str, timeout: float = 240.0, scratch: str | Path = "vllm-push") -> None:
        import requests

        self.url, self.timeout, self.scratch = base_url.rstrip("/"), timeout, Path(scratch)
        self.session = requests.Session()
        self._last_push: Path | None = None
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

    @app.post("/reset_prefix_cache")
    def reset_prefix_cache() -> dict[str, str]:
        with lock:
            llm.reset_prefix_cache()
        return {"status": "ok"}

    return app


def serve(model: str, host: str = "0.0.0.0", port: int = 8000, **engine_kwargs: Any) -> None:
    """Start the engine on ``model`` (a plain export) and serve it until interrupted."""
    import uvicorn
    from vllm import LLM

    from .vllm_generator import _blocker_registered, cpu_engine_defaults
    from .vllm_logits import AlarmTokenBlocker

    kwargs = {"logprobs_mode": "processed_logprobs", **{k: v for k, v in engine_kwargs.items() if v is not None}}
    kwargs.update(cpu_engine_defaults(kwargs))
    if not _blocker_registered():
        kwargs["logits_processors"] = [AlarmTokenBlocker]
    llm = LLM(model=model, **kwargs)
    logger.info("vllm-serve: %s on http://%s:%d", model, host, port)
    uvicorn.run(build_app(llm), host=host, port=port, log_level="warning")
