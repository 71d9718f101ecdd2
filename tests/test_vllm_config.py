"""vLLM pieces that need no engine (main suite): config checks of TRL's vllm_* fields and vllm_weight_transport, the
IS correction, seeds, engine inputs, the weight names the engine gets, the weight-update group protocol over gloo
(two threads). The engine itself is tested in tests/vllm_engine/ (make test-vllm)."""

import math

import numpy as np
import pytest
import torch

from videosafety_r1.grpo.vllm_config import blocked_token_ids, check_vllm_fields, installed_vllm
from videosafety_r1.grpo.vllm_generator import engine_input, request_seed
from videosafety_r1.grpo.vllm_importance import importance_sampling_ratio
from videosafety_r1.testing import tiny_grpo_config


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(vllm_mode="server"), "vllm_mode='server' acts only with use_vllm=True"),
        (dict(vllm_gpu_memory_utilization=0.5), "vllm_gpu_memory_utilization=0.5 acts only with use_vllm"),
        (dict(vllm_importance_sampling_mode="token_mask"), "vllm_importance_sampling_mode='token_mask' acts only"),
        (dict(use_vllm=True, vllm_mode="remote", vllm_server_base_url="x"), "vllm_mode must be one of"),
        (dict(use_vllm=True, vllm_mode="server", vllm_server_base_url="localhost:8000"), "must start with http"),
        (dict(use_vllm=True, vllm_mode="server", vllm_tensor_parallel_size=2), "vllm_tensor_parallel_size acts only"),
        (
            dict(use_vllm=True, vllm_mode="server", vllm_group_port=1234),
            "vllm_group_port=1234 acts only with the nccl",
        ),
        (dict(use_vllm=True, vllm_mode="server", vllm_weight_transport="nccl"), "'nccl' needs the trainer on CUDA"),
        (dict(use_vllm=True, vllm_mode="server", vllm_weight_transport="shm"), "vllm_weight_transport must be one"),
        (dict(use_vllm=True, vllm_weight_transport="gloo"), "vllm_weight_transport acts only with vllm_mode='server'"),
        (dict(use_vllm=True, vllm_group_port=1234), "vllm_group_port acts only with vllm_mode='server'"),
        (dict(vllm_weight_transport="gloo"), "vllm_weight_transport='gloo' acts only with use_vllm=True"),
        (
            dict(use_vllm=True, vllm_mode="server", vllm_weight_transport="file", vllm_group_port=1234),
            "acts only with the nccl or gloo transport; the file transport",
        ),
        (dict(use_vllm=True, vllm_mode="server", vllm_importance_sampling_mode="x"), "vllm_importance_sampling_mode"),
        (dict(use_vllm=True, vllm_mode="server", vllm_structured_outputs_regex="a+"), "structured outputs"),
        (dict(use_vllm=True, vllm_server_port=9000), "vllm_server_port acts only with vllm_mode='server'"),
    ],
)
def test_vllm_fields_act_or_are_rejected_by_name(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        tiny_grpo_config(tmp_path, **kwargs)


def test_server_mode_config_is_accepted_without_a_local_engine(tmp_path):
    config = tiny_grpo_config(tmp_path, use_vllm=True, vllm_mode="server", vllm_server_base_url="http://h:1")
    assert check_vllm_fields(config) == []
    gloo = dict(use_vllm=True, vllm_mode="server", vllm_weight_transport="gloo", vllm_group_port=1234)
    assert tiny_grpo_config(tmp_path, **gloo).vllm_group_port == 1234


def test_auto_transport_is_nccl_on_cuda_and_the_file_push_otherwise(tmp_path, monkeypatch):
    import videosafety_r1.grpo.vllm_config as vc
    from videosafety_r1.grpo.vllm_transport import resolve_weight_transport

    assert resolve_weight_transport("auto", "cuda:1") == "nccl"
    assert resolve_weight_transport("auto", torch.device("cpu")) == "file"
    assert resolve_weight_transport("gloo", "cuda") == "gloo"
    with pytest.raises(ValueError, match="vllm_weight_transport must be one of"):
        resolve_weight_transport("tcp", "cpu")
    # on a CUDA trainer, auto means nccl, so a changed vllm_group_port acts and is accepted
    monkeypatch.setattr(vc, "trainer_on_cuda", lambda config: True)
    config = tiny_grpo_config(tmp_path, use_vllm=True, vllm_mode="server", vllm_group_port=1234)
    assert config.vllm_weight_transport == "auto" and config.vllm_group_port == 1234


def test_colocate_needs_an_installed_engine_and_sleep_mode_a_gpu_build(tmp_path, monkeypatch):
    import videosafety_r1.grpo.vllm_config as vc

    monkeypatch.setattr(vc, "installed_vllm", lambda: (None, False))
    with pytest.raises(ValueError, match="needs vLLM"):
        tiny_grpo_config(tmp_path, use_vllm=True)
    monkeypatch.setattr(vc, "installed_vllm", lambda: ("0.32.0+cpu", True))
    with pytest.raises(ValueError, match="vllm_enable_sleep_mode=True: the installed vLLM .* has no sleep mode"):
        tiny_grpo_config(tmp_path, use_vllm=True, vllm_enable_sleep_mode=True)
    assert tiny_grpo_config(tmp_path, use_vllm=True).use_vllm
    assert installed_vllm()[0] is None or isinstance(installed_vllm()[0], str)


def test_importance_sampling_modes_follow_trl():
    old = torch.tensor([[-1.0, -1.0, -1.0], [-2.0, -2.0, -2.0]])
    sampling = torch.tensor([[-1.5, -0.5, -1.0], [-1.0, -2.0, -9.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    w, stats = importance_sampling_ratio(old, sampling, mask, "token_truncate", clip_min=None, clip_max=1.5)
    expected = torch.tensor([[min(math.exp(0.5), 1.5), math.exp(-0.5), 1.0], [math.exp(-1.0), 1.0, 1.0]])
    torch.testing.assert_close(w, expected)
    w, _ = importance_sampling_ratio(old, sampling, mask, "token_mask", clip_min=0.5, clip_max=1.5)
    assert w[0, 0] == 0 and w[1, 0] == 0 and w[0, 1] == pytest.approx(math.exp(-0.5))
    w, _ = importance_sampling_ratio(old, sampling, mask, "sequence_truncate", clip_min=None, clip_max=3.0)
    assert w.shape == (2, 1)  # masked tokens do not count: the -9 in row 1 is outside the completion
    torch.testing.assert_close(w[:, 0], torch.tensor([1.0, math.exp(-1.0)]))
    w, stats = importance_sampling_ratio(old, sampling, mask, "sequence_mask", clip_min=0.5, clip_max=3.0)
    torch.testing.assert_close(w[:, 0], torch.tensor([1.0, 0.0]))
    assert stats["sampling/sampling_logp_difference/max"] == pytest.approx(1.0)
    assert stats["sampling/importance_sampling_ratio/min"] == 0.0
    with pytest.raises(ValueError, match="unknown vllm_importance_sampling_mode"):
        importance_sampling_ratio(old, sampling, mask, "tokens")


def test_importance_weights_scale_the_per_token_loss():
    from videosafety_r1.grpo import grpo_loss

    logps = torch.full((2, 3), -1.0, requires_grad=True)
    mask = torch.ones(2, 3)
    adv = torch.tensor([1.0, -1.0])
    plain = grpo_loss(logps, None, None, adv, mask, beta=0.0)
    weights = torch.tensor([[2.0], [0.0]])
    weighted = grpo_loss(logps, None, None, adv, mask, beta=0.0, importance_weights=weights)
    torch.testing.assert_close(weighted, torch.tensor(-1.0))  # row 0 doubled (-1 * 2), row 1 zeroed, mean of rows
    assert plain.item() == pytest.approx(0.0)


def test_request_seeds_are_distinct_per_prompt_and_reproducible():
    seeds = [request_seed(0, 0, 3, i, n=6) for i in range(5)]
    samples = {s + j for s in seeds for j in range(6)}
    assert len(samples) == 30  # no sample of one prompt shares a seed with another's
    assert seeds == [request_seed(0, 0, 3, i, n=6) for i in range(5)]
    assert request_seed(0, 1, 3, 0, 6) != seeds[0] and request_seed(0, 0, 4, 0, 6) != seeds[0]


def test_engine_input_carries_alarm_ids_and_the_decoded_frames():
    from transformers.video_utils import VideoMetadata

    from videosafety_r1.alarm import add_alarm_tokens, insert_alarm_tokens
    from videosafety_r1.testing import random_frames, tiny_video_llm

    model, processor = tiny_video_llm("qwen2_5_vl", 0)
    model = add_alarm_tokens(model, processor)
    text = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "what is this"}]}],
        add_generation_prompt=True,
    )
    text = insert_alarm_tokens(text, processor)
    frames = random_frames(4)
    meta = VideoMetadata(total_num_frames=16, fps=8.0, frames_indices=np.array([0, 5, 10, 15]), duration=2.0)
    out = engine_input(text, processor.tokenizer, "video", frames, meta)
    assert all(out["prompt_token_ids"].count(i) == 1 for i in model.alarm_token_ids)
    got_frames, got_meta = out["multi_modal_data"]["video"]
    assert got_frames is frames  # the very array the loss pass processes
    assert got_meta == {
        "fps": 8.0,
        "frames_indices": [0, 5, 10, 15],
        "total_num_frames": 16,
        "duration": 2.0,
        "do_sample_frames": False,
    }
    assert "multi_modal_data" not in engine_input("hi", processor.tokenizer, "none", None, None)
    blocked = blocked_token_ids(model.config)
    assert set(model.alarm_token_ids) <= set(blocked) and model.config.video_token_id in blocked


def test_engine_weights_bake_alarm_rows_and_merge_lora():
    from peft import LoraConfig, get_peft_model

    from videosafety_r1.alarm import add_alarm_tokens
    from videosafety_r1.grpo.vllm_weights import engine_weights
    from videosafety_r1.testing import tiny_video_llm

    base, processor = tiny_video_llm("qwen2_5_vl", 0)
    lora = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj"], init_lora_weights=False))
    model = add_alarm_tokens(lora, processor)
    with torch.no_grad():
        model.alarm_embedding.weight.fill_(0.5)
    pushed = dict(engine_weights(model))
    assert not any("lora_" in n or "base_layer" in n for n in pushed)
    q = "model.language_model.layers.0.self_attn.q_proj.weight"
    layer = lora.get_base_model().model.language_model.layers[0].self_attn.q_proj
    merged = layer.base_layer.weight + layer.get_delta_weight("default")
    torch.testing.assert_close(pushed[q], merged)  # LoRA merged into the pushed weight ...
    assert not torch.equal(layer.base_layer.weight, merged)  # ... and unmerged in the model again
    emb = pushed["model.language_model.embed_tokens.weight"]
    assert torch.equal(emb[model.alarm_token_ids], torch.full((2, emb.shape[1]), 0.5))


def _tiny_alarm_model(lora: bool = False):
    from videosafety_r1.alarm import add_alarm_tokens
    from videosafety_r1.testing import tiny_video_llm

    base, processor = tiny_video_llm("qwen2_5_vl", 0)
    if lora:
        from peft import LoraConfig, get_peft_model

        base = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj"], init_lora_weights=False))
    model = add_alarm_tokens(base, processor)
    with torch.no_grad():
        model.alarm_embedding.weight.fill_(0.5)
    return model


@pytest.mark.parametrize("lora", [False, True])
def test_announced_specs_match_the_pushed_weights_without_reading_them(lora):
    from videosafety_r1.grpo.vllm_weights import engine_weights

    weights = engine_weights(_tiny_alarm_model(lora))
    pushed = list(weights)
    assert weights.specs() == [(n, str(t.dtype).removeprefix("torch."), list(t.shape)) for n, t in pushed]
    assert len(list(weights)) == len(pushed)  # iterable again: each push reads the weights anew


def _gloo_pair(port):
    """Rank 0 (the receiver, as a vLLM worker) and rank 1 (the trainer), built concurrently (a rendezvous)."""
    from concurrent.futures import ThreadPoolExecutor

    from videosafety_r1.grpo.vllm_transport import make_communicator

    with ThreadPoolExecutor(2) as pool:
        worker = pool.submit(make_communicator, "gloo", "127.0.0.1", port, 0, 2, None, 60.0)
        trainer = pool.submit(make_communicator, "gloo", "127.0.0.1", port, 1, 2, None, 60.0)
        return worker.result(), trainer.result()


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_group_protocol_over_gloo_delivers_the_engine_weights():
    """The push protocol (announce, broadcast from the trainer's rank, receive into fresh buffers) over the gloo
    communicator, in two threads: what the receiver gets equals engine_weights, alarm rows included."""
    from concurrent.futures import ThreadPoolExecutor

    from videosafety_r1.grpo.vllm_transport import receive_weights, send_weights
    from videosafety_r1.grpo.vllm_weights import engine_weights

    model = _tiny_alarm_model()
    weights = engine_weights(model)
    specs = weights.specs()
    worker, trainer = _gloo_pair(_free_port())
    with ThreadPoolExecutor(1) as pool:
        got = pool.submit(lambda: dict(receive_weights(worker, specs, src=1)))
        assert send_weights(trainer, weights, specs) == len(specs)
        received = got.result(timeout=60)
    expected = dict(weights)
    assert list(received) == list(expected)
    for name, tensor in expected.items():
        assert torch.equal(received[name], tensor), name
    emb = received["model.language_model.embed_tokens.weight"]
    assert torch.equal(emb[model.alarm_token_ids], torch.full((2, emb.shape[1]), 0.5))
    worker.close(), trainer.close()


def test_a_push_that_differs_from_its_announcement_is_refused_before_sending():
    from videosafety_r1.grpo.vllm_transport import send_weights

    class Recorder:
        rank, device = 1, torch.device("cpu")
        sent: list = []

        def broadcast(self, tensor, src):
            self.sent.append(tensor.shape)

        def barrier(self):
            pass

    weights = [("a", torch.zeros(2, 3)), ("b", torch.zeros(4))]
    comm = Recorder()
    with pytest.raises(RuntimeError, match=r"announced \('b', 'float32', \[5\]\)"):
        send_weights(comm, weights, [("a", "float32", [2, 3]), ("b", "float32", [5])])
    assert comm.sent == [torch.Size([2, 3])]  # the first went, the wrong one did not
    with pytest.raises(RuntimeError, match="announced 1 tensors, sent 2|announced nothing more"):
        send_weights(Recorder(), weights, [("a", "float32", [2, 3])])
