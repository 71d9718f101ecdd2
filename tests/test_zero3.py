"""ZeRO-3 helpers and guards, without DeepSpeed running (tests/test_slow_deepspeed.py runs the real thing).

A ZeRO-3 parameter is faked the way DeepSpeed leaves it outside a forward: an empty tensor with `ds_id` and the
real shape in `ds_shape`.
"""

import pytest
import torch
from torch import nn

from videosafety_r1 import zero3


def _partition(param: nn.Parameter) -> nn.Parameter:
    param.ds_id, param.ds_shape, param.ds_numel = 0, param.shape, param.numel()
    param.data = torch.empty(0, dtype=param.dtype)
    return param


def test_full_shape_and_checksum_of_plain_parameters():
    layer = nn.Linear(3, 2)
    assert not zero3.is_partitioned(layer.weight) and zero3.full_shape(layer.weight) == (2, 3)
    assert not zero3.any_partitioned(layer)
    with zero3.gathered(layer.parameters()):  # nothing partitioned: no DeepSpeed needed
        pass
    expected = float(layer.weight.detach().double().sum() + layer.bias.detach().double().sum())
    assert zero3.parameter_checksum(layer) == pytest.approx(expected, rel=1e-12)


def test_full_shape_of_a_partitioned_parameter():
    p = _partition(nn.Parameter(torch.ones(4, 5)))
    assert zero3.is_partitioned(p) and p.shape == (0,) and zero3.full_shape(p) == (4, 5)


@pytest.mark.deepspeed
def test_zero3_init_disabled_hides_and_restores_the_registered_config():
    from transformers.integrations import HfDeepSpeedConfig, is_deepspeed_zero3_enabled, unset_hf_deepspeed_config

    config = HfDeepSpeedConfig({"zero_optimization": {"stage": 3}, "train_micro_batch_size_per_gpu": 1})
    try:
        assert is_deepspeed_zero3_enabled()
        with zero3.zero3_init_disabled():
            assert not is_deepspeed_zero3_enabled()
        assert is_deepspeed_zero3_enabled()
    finally:
        unset_hf_deepspeed_config()
        del config
    with zero3.zero3_init_disabled():  # nothing registered: a no-op
        assert not is_deepspeed_zero3_enabled()


@pytest.fixture
def partitioned_embedding_model():
    """A tiny base model whose input embedding looks ZeRO-3 partitioned (padded vocabulary: no resize needed)."""
    from videosafety_r1.testing import tiny_video_llm

    model, processor = tiny_video_llm("qwen2_5_vl", seed=0)
    emb = model.get_input_embeddings().weight
    shape = tuple(emb.shape)
    assert shape[0] > len(processor.tokenizer) + 2
    _partition(emb)
    return model, processor, shape


@pytest.mark.deepspeed
def test_add_alarm_tokens_reads_the_real_embedding_shape(partitioned_embedding_model):
    from videosafety_r1.alarm import add_alarm_tokens

    model, processor, shape = partitioned_embedding_model
    emb = model.get_input_embeddings().weight
    wrapped = add_alarm_tokens(model, processor)
    assert model.get_input_embeddings().weight is emb, "a padded vocabulary was resized"
    assert zero3.full_shape(emb) == shape
    assert wrapped.alarm_embedding.weight.shape == (2, shape[1])
    assert wrapped.visual_head.weight.shape == (1, shape[1])


@pytest.mark.deepspeed
def test_save_and_export_refuse_partial_alarm_weights(partitioned_embedding_model, tmp_path):
    from videosafety_r1.alarm import add_alarm_tokens, export_plain_checkpoint, save_pretrained

    model, processor, shape = partitioned_embedding_model
    wrapped = add_alarm_tokens(model, processor)
    full = {f"base.{k}": v for k, v in wrapped.base.state_dict().items()}
    alarm = wrapped.alarm_state_dict()
    for key, empty in ((k, v.new_empty(0)) for k, v in alarm.items()):
        with pytest.raises(ValueError, match="incomplete alarm weights"):
            save_pretrained(wrapped, tmp_path / key, state_dict={**full, **alarm, key: empty})
    missing = {k: v for k, v in alarm.items() if k != "visual_head.bias"}
    with pytest.raises(ValueError, match="visual_head.bias: missing"):
        save_pretrained(wrapped, tmp_path / "missing", state_dict={**full, **missing})
    with pytest.raises(ValueError, match="ZeRO-3"):
        export_plain_checkpoint(wrapped, processor, tmp_path / "export")


def test_close_process_group_is_a_no_op_in_one_process():
    import torch.distributed as dist

    from videosafety_r1.zero3 import close_process_group

    close_process_group()
    close_process_group()  # twice: nothing to wait for, nothing to destroy
    assert not dist.is_initialized()


CONSECUTIVE = [("a", 0, 0), ("a", 1, 1), ("b", 2, 0), ("b", 3, 1)]
INTERLEAVED = [("a", 0, 0), ("b", 1, 0), ("a", 2, 1), ("b", 3, 1)]  # e.g. a scheduler placing ranks round-robin


@pytest.mark.parametrize(
    "layout, expected",
    [(CONSECUTIVE, {"a": 0, "b": 2}), (INTERLEAVED, {"a": 0, "b": 1}), ([("a", 3, 0), ("a", 0, 1)], {"a": 3})],
)
def test_node_writers_is_the_local_main_process_for_any_rank_layout(layout, expected):
    from videosafety_r1.grpo.vllm_generator import node_writers

    assert node_writers(layout) == expected


@pytest.mark.parametrize(
    "layout, match",
    [([("a", 0, 0), ("a", 1, 0)], "two processes"), ([("a", 0, 0), ("b", 1, 1)], r"\['b'\] have no process")],
)
def test_node_writers_refuses_a_broken_layout(layout, match):
    from videosafety_r1.grpo.vllm_generator import node_writers

    with pytest.raises(RuntimeError, match=match):
        node_writers(layout)


@pytest.mark.parametrize("rank, writes, folder", [(1, True, "rank1"), (2, False, "rank0"), (3, False, "rank1")])
def test_colocate_zero3_export_writer_and_folder_with_interleaved_ranks(monkeypatch, tmp_path, rank, writes, folder):
    """Ranks 0, 2 on node a and 1, 3 on node b: rank 3 (local index 1) starts from node b's export, rank1/, which
    rank 1 writes (rank arithmetic, process_index - local_process_index, would name rank2/, which nobody writes)."""
    import accelerate
    import accelerate.utils

    from videosafety_r1.grpo import vllm_generator

    layout = [(f"host/{node}", index, local) for node, index, local in INTERLEAVED]  # hostname/GROUP_RANK

    class State:  # this process's view, as accelerate's PartialState gives it
        process_index, local_process_index = rank, layout[rank][2]

        def wait_for_everyone(self):
            pass

    def gather_object(mine):
        assert mine == [layout[rank]]
        return layout

    written = []
    monkeypatch.setattr(accelerate, "PartialState", State)
    monkeypatch.setattr(accelerate.utils, "gather_object", gather_object)
    monkeypatch.setattr("socket.gethostname", lambda: "host")
    monkeypatch.setenv("GROUP_RANK", INTERLEAVED[rank][0])
    monkeypatch.setattr(zero3, "any_partitioned", lambda model: True)
    monkeypatch.setattr(
        vllm_generator, "write_engine_export", lambda m, p, out, write, barrier: written.append(write) or out
    )
    out = vllm_generator._engine_export(nn.Linear(1, 1), None, str(tmp_path), rank)
    assert out == str(tmp_path / "vllm-engine" / folder) and written == [writes]
