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
