"""Server mode: `videosafety-r1 vllm-serve --model EXPORT` in its own process, the trainer as its client.
(d) 4 GRPO steps with video, rewards logged, HF generate never called; weights pushed as a safetensors file; then
2 steps with the weight-update group protocol over gloo (the NCCL communicator runs the same protocol code and is
untested here: no GPU)."""

import os
import socket
import subprocess
import sys

import pytest

pytestmark = pytest.mark.vllm


def mean_token_id(completion_ids, **kwargs):
    """Mean token id of the completion (a continuous value: two samples of a group tie only if they hold the same
    ids, so every step has non-zero advantages; a share of even ids tied often enough to zero a whole step)."""
    return [sum(ids) / max(len(ids), 1) / 1000 for ids in completion_ids]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from videosafety_r1.alarm import add_alarm_tokens, export_plain_checkpoint
    from videosafety_r1.testing import tiny_video_llm

    root = tmp_path_factory.mktemp("vllm_server")
    model, processor = tiny_video_llm("qwen2_5_vl", 0, head_dim=64)
    model.config.vision_config.tokens_per_second = 1  # see test_vllm_rollouts.py
    model = add_alarm_tokens(model, processor)
    export = export_plain_checkpoint(model, processor, root / "export")
    port = _free_port()
    env = dict(
        os.environ
    )  # VLLM_ENABLE_V1_MULTIPROCESSING=0 (conftest): one process, starts faster; weights go by file either way
    log = open(root / "server.log", "w")
    cmd = [sys.executable, "-m", "videosafety_r1.cli", "vllm-serve", "--model", str(export), "--host", "127.0.0.1"]
    proc = subprocess.Popen(
        [*cmd, "--port", str(port), "--dtype", "float32", "--max-model-len", "1024"], stdout=log, stderr=log, env=env
    )
    yield f"http://127.0.0.1:{port}", root, proc
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def _server_trainer(url, tmp_path, max_steps, **config_kwargs):
    from videosafety_r1.alarm import add_alarm_tokens
    from videosafety_r1.data import load_dataset_checked, make_synthetic_dataset
    from videosafety_r1.grpo.trainer import VideoGRPOTrainer
    from videosafety_r1.testing import tiny_grpo_config, tiny_video_llm

    paths = make_synthetic_dataset(tmp_path / "data", 4, seed=0)
    records, _ = load_dataset_checked(paths["grpo"], tmp_path / "data")
    model, processor = tiny_video_llm("qwen2_5_vl", 0, head_dim=64)
    model.config.vision_config.tokens_per_second = 1
    model = add_alarm_tokens(model, processor)
    config = tiny_grpo_config(
        tmp_path / "out",
        tmp_path / "data",
        use_vllm=True,
        vllm_mode="server",
        vllm_server_base_url=url,
        vllm_server_timeout=240,
        bf16=False,
        max_completion_length=8,
        max_steps=max_steps,
        temperature=0.7,
        top_p=1.0,
        **config_kwargs,
    )
    trainer = VideoGRPOTrainer(
        model, config, train_dataset=records, processing_class=processor, reward_funcs=[mean_token_id]
    )

    def no_hf_generate(*a, **k):
        raise AssertionError("HF generate was called under use_vllm")

    model.generate = model.base.generate = no_hf_generate
    return trainer


def test_d_four_grpo_steps_in_server_mode(server, tmp_path):
    from videosafety_r1.grpo.vllm_server import ServerEngine

    url, root, proc = server
    trainer = _server_trainer(url, tmp_path, 4)  # on CPU, vllm_weight_transport='auto' is the file push
    assert trainer.generator.engine.transport == "file"
    assert isinstance(trainer.generator.engine, ServerEngine)
    trainer.train()
    assert proc.poll() is None, (root / "server.log").read_text()[-3000:]
    assert [s for s, _ in trainer.reward_history] == [0, 1, 2, 3]
    assert trainer.generator.pushes == 4  # one push per generation: the policy changed every step
    logged = [h for h in trainer.state.log_history if "reward" in h]
    # the engine scores the sampled tokens as the trainer does (same weights after every push): IS ratio ~ 1
    assert all(h["sampling/sampling_logp_difference/max"] < 1e-3 for h in logged), logged
    assert len(list((tmp_path / "out" / "vllm-push").glob("push-*"))) == 1  # only the last push is kept


def test_weight_group_over_gloo_pushes_the_policy(server, tmp_path):
    """The group protocol (announce, broadcast, in-place load, cache reset) over gloo: the server holds the weights
    the previous test left there, so the engine scores the trainer's fresh policy only if the pushes arrive."""
    from videosafety_r1.grpo.vllm_server import ServerEngine

    url, root, proc = server
    trainer = _server_trainer(url, tmp_path, 2, vllm_weight_transport="gloo", vllm_group_port=_free_port())
    engine = trainer.generator.engine
    assert isinstance(engine, ServerEngine) and engine.transport == "gloo"
    trainer.train()
    assert proc.poll() is None, (root / "server.log").read_text()[-3000:]
    assert trainer.generator.pushes == 2 and engine._group is not None
    assert not (tmp_path / "out" / "vllm-push").exists()  # nothing went by file
    logged = [h for h in trainer.state.log_history if "reward" in h]
    assert len(logged) == 2
    assert all(h["sampling/sampling_logp_difference/max"] < 1e-3 for h in logged), logged
    engine.close_communicator()
    assert engine._group is None
