"""VideoGRPOTrainer behaviours behind TRL fields and the reward protocol: dropout, data order, generation settings,
advantages, dataset columns and log_extra for rewards, sample logging, sparse-reward logging, the zero-spread warning,
a tidy console and completions.jsonl across kill and resume."""

import json
import logging
import sys
import types
from types import SimpleNamespace

import pytest
import torch

from videosafety_r1.alarm import add_alarm_tokens
from videosafety_r1.grpo.logs import COMPLETIONS_FILE, TidyPrinterCallback, format_sample_table, tidy_number
from videosafety_r1.grpo.objective import ObjectiveMixin
from videosafety_r1.grpo.trainer import VideoGRPOTrainer
from videosafety_r1.testing import tiny_grpo_config, tiny_video_llm


def token_sum(completion_ids, **kwargs):
    return [float(sum(ids) % 11) for ids in completion_ids]


def _trainer(grpo_data, tmp_path, reward_funcs=(token_sum,), rows=None, **overrides):
    root, records = grpo_data
    model, processor = tiny_video_llm("qwen2_5_vl", seed=0)
    model = add_alarm_tokens(model, processor)
    config = tiny_grpo_config(tmp_path / "out", root, bf16=False, **overrides)
    dataset = rows if rows is not None else records
    return VideoGRPOTrainer(
        model, config, train_dataset=dataset, processing_class=processor, reward_funcs=list(reward_funcs)
    )


# --- model and data ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("disable", [True, False])
def test_disable_dropout(grpo_data, tmp_path, disable):
    root, records = grpo_data
    model, processor = tiny_video_llm("qwen2_5_vl", seed=0)
    model = add_alarm_tokens(model, processor)
    model.extra_dropout = torch.nn.Dropout(0.5)  # TRL's disable_dropout_in_model acts on nn.Dropout modules
    config = tiny_grpo_config(tmp_path / "out", root, bf16=False, disable_dropout=disable, beta=0.04)
    trainer = VideoGRPOTrainer(
        model, config, train_dataset=records, processing_class=processor, reward_funcs=[token_sum]
    )
    expected = 0.0 if disable else 0.5
    assert trainer.model.extra_dropout.p == expected and trainer.ref_model.extra_dropout.p == expected


@pytest.mark.parametrize("shuffle", [True, False])
def test_shuffle_dataset(grpo_data, tmp_path, shuffle):
    trainer = _trainer(grpo_data, tmp_path, shuffle_dataset=shuffle, per_device_train_batch_size=2)
    order = list(trainer._get_train_sampler())
    assert len(set(order)) >= 4
    assert (order == sorted(order)) != shuffle  # file order unshuffled; seed 0 permutes the prompts otherwise


def test_generation_batch_size_and_steps_per_generation(grpo_data, tmp_path):
    """generation_batch_size 8 with 4 completions per device step: one rollout feeds 2 micro-steps."""
    trainer = _trainer(grpo_data, tmp_path, generation_batch_size=8, steps_per_generation=None, max_steps=2)
    assert trainer.args.steps_per_generation == 2
    trainer.train()
    assert trainer._generation == 1 and len(trainer._buffer) == 2
    assert trainer._buffer[0]["num_items_in_batch"] == sum(b["completion_mask"].sum() for b in trainer._buffer)


# --- generation ---------------------------------------------------------------------------------------------------
def test_min_p_repetition_penalty_and_generation_kwargs_reach_generate(grpo_data, tmp_path):
    """generation_kwargs override the sampling defaults (TRL's rule), except suppress_tokens: a union, so the visual
    placeholders stay suppressed. Setting a key the trainer also sets used to crash with 'got multiple values'."""
    user = {"top_p": 0.5, "suppress_tokens": [11, 12], "no_repeat_ngram_size": 3}
    trainer = _trainer(
        grpo_data, tmp_path, min_p=0.05, repetition_penalty=1.3, generation_kwargs=user, max_steps=1, top_p=0.9
    )
    seen = {}
    generate = trainer.model.generate

    def spy(**kwargs):
        seen.update(kwargs)
        return generate(**kwargs)

    trainer.model.generate = spy
    trainer.train()
    assert (seen["min_p"], seen["repetition_penalty"], seen["no_repeat_ngram_size"]) == (0.05, 1.3, 3)
    assert seen["top_p"] == 0.5  # the user's value wins over the config's 0.9
    assert set(seen["suppress_tokens"]) == set(trainer.placeholder_ids) | {11, 12}
    ids = torch.cat([b["completion_ids"] for b in trainer._buffer])
    assert not torch.isin(ids, torch.tensor([11, 12] + trainer.placeholder_ids)).any()


def test_ds3_gather_for_generation_reaches_the_rollout(grpo_data, tmp_path, monkeypatch):
    import videosafety_r1.grpo.trainer as module

    seen = []
    original = module.unwrapped_for_generation

    def spy(model, accelerator, gather_zero3=True):
        seen.append(gather_zero3)
        return original(model, accelerator, gather_zero3=gather_zero3)

    monkeypatch.setattr(module, "unwrapped_for_generation", spy)
    _trainer(grpo_data, tmp_path, ds3_gather_for_generation=False, max_steps=1).train()
    assert seen == [False]


# --- advantages: TRL's formulas (the 2-process case: test_grpo_trl_parity, slow) -------------------------------------
def test_advantages_match_trl_formulas():
    from test_grpo_trl_parity import _advantage_check

    assert _advantage_check(rank=0, world=1) < 1e-5


def test_batch_scale_uses_the_gathered_std():
    """scale_rewards='batch': centring per group, the std of every process's rewards (here: a stand-in gather that
    returns a wider batch than this process's own)."""
    local = torch.tensor([[0.0], [1.0], [2.0], [4.0]])
    others = torch.tensor([10.0, 30.0, -5.0, 7.0])
    stub = SimpleNamespace(
        num_generations=2,
        reward_weights=torch.tensor([1.0]),
        accelerator=SimpleNamespace(gather=lambda t: torch.cat([t, others])),
        args=SimpleNamespace(multi_objective_aggregation="sum_then_normalize", scale_rewards="batch"),
    )
    _, advantages = ObjectiveMixin._advantages(stub, local)
    std = torch.cat([local[:, 0], others]).std()
    torch.testing.assert_close(advantages, torch.tensor([-0.5, 0.5, -1.0, 1.0]) / (std + 1e-4))


# --- rewards: every dataset column, log_extra, log_metric, sparse terms ---------------------------------------------
def test_every_column_reaches_rewards_and_log_extra_logs(grpo_data, tmp_path, caplog):
    root, records = grpo_data
    rows = [dict(r.to_dict(), difficulty=i, tags=["t", str(i)]) for i, r in enumerate(records)]
    seen = {}

    def by_difficulty(completions, difficulty, tags, problem, solution, id, log_extra, log_metric, **kwargs):
        seen.update(difficulty=difficulty, tags=tags, id=id, n=len(completions))
        assert len(problem) == len(solution) == len(completions)
        log_extra("judge_note", [f"d{d}" for d in difficulty])
        log_metric("my_metric", 2.0)
        return [None if d == 0 else float(d) for d in difficulty]  # sparse: no score for difficulty 0

    trainer = _trainer(grpo_data, tmp_path, reward_funcs=[by_difficulty], rows=rows, max_steps=2, logging_steps=2)
    with caplog.at_level(logging.WARNING):
        trainer.train()
    assert seen["n"] == 4 and len(seen["difficulty"]) == 4  # per completion: each prompt's value G times
    assert seen["difficulty"][0] == seen["difficulty"][1] and seen["tags"][0] == ["t", str(seen["difficulty"][0])]
    logged = [json.loads(line) for line in (tmp_path / "out" / COMPLETIONS_FILE).open()]
    assert len(logged) == 8 and all(r["judge_note"].startswith("d") for r in logged)
    log = trainer.state.log_history[0]
    assert log["my_metric"] == 2.0
    assert log["rewards/by_difficulty/mean"] == log["rewards/by_difficulty/mean"]  # a number, never nan
    assert "nan" not in json.dumps(trainer.state.log_history)


def test_sparse_term_window_mean_ignores_batches_without_scores(grpo_data, tmp_path):
    calls = []

    def sometimes(completions, **kwargs):
        calls.append(1)
        return [None] * len(completions) if len(calls) % 2 else [1.0] * len(completions)

    trainer = _trainer(
        grpo_data,
        tmp_path,
        reward_funcs=[sometimes, token_sum],
        max_steps=4,
        logging_steps=2,
        per_device_train_batch_size=2,
    )
    trainer.train()
    windows = [h for h in trainer.state.log_history if "rewards/sometimes/mean" in h]
    assert [h["rewards/sometimes/mean"] for h in windows] == [1.0, 1.0]  # nan-aware, not nan
    assert [s for s, _ in trainer.reward_term_history["sometimes"]] == [1, 3]  # the curve shows where it scored
    assert len(trainer.reward_term_history["token_sum"]) == 4


def test_zero_spread_warning_after_consecutive_batches(grpo_data, tmp_path, caplog):
    def constant(completions, **kwargs):
        return [1.0] * len(completions)

    trainer = _trainer(grpo_data, tmp_path, reward_funcs=[constant], max_steps=3, per_device_train_batch_size=2)
    with caplog.at_level(logging.WARNING, logger="videosafety_r1.grpo.logs"):
        trainer.train()
    warnings = [r for r in caplog.records if "no reward spread within any group" in r.getMessage()]
    assert len(warnings) == 1 and "3 generation batches" in warnings[0].getMessage()


# --- console and sample table -------------------------------------------------------------------------------------
def test_log_completions_prints_a_tidy_sample_table(grpo_data, tmp_path, caplog):
    trainer = _trainer(grpo_data, tmp_path, log_completions=True, num_completions_to_print=3, max_steps=1)
    with caplog.at_level(logging.INFO, logger="videosafety_r1.grpo.logs"):
        trainer.train()
    tables = [r.getMessage() for r in caplog.records if r.getMessage().startswith("samples at step")]
    assert len(tables) == 1
    lines = tables[0].splitlines()[1:]
    assert [c.strip() for c in lines[0].split(" | ")][:4] == ["step", "prompt", "completion", "reward"]
    assert len(lines) == 1 + 3
    reward_cell = lines[1].split(" | ")[3].strip()
    assert len(reward_cell.split(".")[1]) == 3  # 3 decimals
    quiet = _trainer(grpo_data, tmp_path, max_steps=1)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="videosafety_r1.grpo.logs"):
        quiet.train()
    assert not [r for r in caplog.records if r.getMessage().startswith("samples at step")]


def test_log_unique_prompts_dedupes_the_wandb_table(monkeypatch):
    logged = {}
    fake = types.ModuleType("wandb")
    fake.run = object()
    fake.Table = lambda columns, data: SimpleNamespace(columns=columns, data=data)
    fake.log = logged.update
    monkeypatch.setitem(sys.modules, "wandb", fake)
    from videosafety_r1.grpo.logs import RolloutLogMixin

    rows = [{"step": 0, "prompt": p, "completion": c, "reward": 1.0} for p, c in [("a", "x"), ("a", "y"), ("b", "z")]]
    for unique, expected in ((False, 3), (True, 2)):
        stub = SimpleNamespace(
            _latest_rows=rows,
            state=SimpleNamespace(global_step=0),
            args=SimpleNamespace(num_completions_to_print=None, report_to=["wandb"], log_unique_prompts=unique),
        )
        RolloutLogMixin._show_samples(stub)
        assert len(logged["completions"].data) == expected


def test_console_numbers_are_tidy(grpo_data, tmp_path, caplog):
    assert [tidy_number(v) for v in (0.123456, 4.0, 2e-6, True, "x")] == ["0.123", 4, "2.000e-06", True, "x"]
    assert "1.235" in format_sample_table([{"r": 1.23456, "t": "a\nb"}]) and "a b" in format_sample_table(
        [{"t": "a\nb"}]
    )
    trainer = _trainer(grpo_data, tmp_path, max_steps=1)  # disable_tqdm: the printer callback
    assert any(isinstance(cb, TidyPrinterCallback) for cb in trainer.callback_handler.callbacks)
    with caplog.at_level(logging.INFO, logger="videosafety_r1.grpo.logs"):
        trainer.train()
    printed = [r.getMessage() for r in caplog.records if "'completions/mean_length'" in r.getMessage()][0]
    assert "'completions/min_length': " in printed and "." not in printed.split("'completions/min_length': ")[1][:3]


# --- completions.jsonl after kill and resume (#12 item 6) ---------------------------------------------------------
def test_resume_trims_replayed_steps_from_completions(grpo_data, tmp_path):
    """A run killed after step 4 resumes from checkpoint-2: steps 2 and 3 are sampled again, and written once."""
    kw = dict(max_steps=4, save_strategy="steps", save_steps=2, per_device_train_batch_size=2, learning_rate=1e-3)
    first = _trainer(grpo_data, tmp_path, **kw)
    first.train()
    path = tmp_path / "out" / COMPLETIONS_FILE
    steps = [json.loads(line)["step"] for line in path.open()]
    assert steps == [0, 0, 1, 1, 2, 2, 3, 3]
    second = _trainer(grpo_data, tmp_path, **kw)
    second.train(resume_from_checkpoint=str(tmp_path / "out" / "checkpoint-2"))
    rows = [json.loads(line) for line in path.open()]
    assert [r["step"] for r in rows] == [0, 0, 1, 1, 2, 2, 3, 3]


# --- the loss options end to end in the trainer (their math: test_grpo_trl_parity) ---------------------------------
def test_loss_options_train_and_the_entropy_controller_resumes(grpo_data, tmp_path):
    kw = dict(
        max_steps=2,
        save_strategy="steps",
        save_steps=1,
        loss_type="dapo",
        importance_sampling_level="sequence",
        delta=2.0,
        use_bias_correction_kl=True,
        top_entropy_quantile=0.5,
        off_policy_mask_threshold=0.1,
        use_adaptive_entropy=True,
        entropy_coef=0.1,
        entropy_coef_delta=0.05,
        entropy_target=100.0,  # always below: the coefficient rises each step
    )
    trainer = _trainer(grpo_data, tmp_path, **kw)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    trainer.train()
    assert any(not torch.equal(p, before[n]) for n, p in trainer.model.named_parameters() if n in before)
    assert trainer.entropy_coef == pytest.approx(0.2)
    logs = trainer.state.log_history
    assert [h["entropy_coef"] for h in logs if "entropy_coef" in h] == pytest.approx([0.15, 0.2])
    assert all(h["policy_loss"] == h["policy_loss"] for h in logs if "policy_loss" in h)
    state = json.loads((tmp_path / "out" / "checkpoint-1" / "entropy_ctrl_state.json").read_text())
    assert state["entropy_coef"] == pytest.approx(0.15)
    resumed = _trainer(grpo_data, tmp_path, **kw)
    resumed.train(resume_from_checkpoint=str(tmp_path / "out" / "checkpoint-1"))
    assert resumed.entropy_coef == pytest.approx(0.2)  # 0.15 restored, one more step; 0.15 without the restore
