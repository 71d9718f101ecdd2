"""The GRPO sample table reaches wandb (offline run) as well as completions.jsonl, with the same rows."""

import json

import wandb

from videosafety_r1.alarm import add_alarm_tokens
from videosafety_r1.data import load_dataset_checked, make_synthetic_dataset
from videosafety_r1.grpo.trainer import COMPLETIONS_FILE, VideoGRPOTrainer
from videosafety_r1.testing import tiny_grpo_config, tiny_video_llm


def char_count(completions, **kwargs):
    return [float(len(c)) for c in completions]


def test_sample_table_goes_to_wandb_and_jsonl(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    paths = make_synthetic_dataset(tmp_path / "data", 4, seed=0)
    records, _ = load_dataset_checked(paths["grpo"], tmp_path / "data")
    model, processor = tiny_video_llm()
    model = add_alarm_tokens(model, processor)
    config = tiny_grpo_config(
        tmp_path / "out",
        tmp_path / "data",
        report_to=["wandb"],
        run_name="grpo-table-test",
        learning_rate=1e-6,
        log_completions=True,
    )
    trainer = VideoGRPOTrainer(
        model, config, train_dataset=records, processing_class=processor, reward_funcs=[char_count]
    )
    try:
        trainer.train()
    finally:
        wandb.finish()
    tables = sorted((tmp_path / "wandb").glob("offline-run-*/files/media/table/completions_*.table.json"))
    assert len(tables) == 2, tables  # one per logging step
    jsonl = [json.loads(line) for line in (tmp_path / "out" / COMPLETIONS_FILE).open()]
    logged = []
    for path in tables:
        table = json.loads(path.read_text())
        assert {"prompt", "completion", "reward", "rewards/char_count", "advantage"} <= set(table["columns"])
        logged += [dict(zip(table["columns"], row)) for row in table["data"]]
    assert len(logged) == len(jsonl) == 2 * 4
    assert sorted(r["completion"] for r in logged) == sorted(r["completion"] for r in jsonl)
    assert all(r["reward"] == float(len(r["completion"])) for r in logged)


def test_reward_term_history_and_two_panel_curve(tmp_path):
    from PIL import Image

    from videosafety_r1.evaluation.plots import plot_reward_curve

    paths = make_synthetic_dataset(tmp_path / "data", 4, seed=0)
    records, _ = load_dataset_checked(paths["grpo"], tmp_path / "data")
    model, processor = tiny_video_llm()
    model = add_alarm_tokens(model, processor)
    config = tiny_grpo_config(tmp_path / "out", tmp_path / "data", max_steps=3)
    trainer = VideoGRPOTrainer(
        model, config, train_dataset=records, processing_class=processor, reward_funcs=[char_count, "format"]
    )
    trainer.train()
    terms = trainer.reward_term_history
    assert list(terms) == ["char_count", "format"] and all(len(v) == 3 for v in terms.values())
    # total = sum of the (unit-weighted) term means, step by step
    for (step, total), a, b in zip(trainer.reward_history, terms["char_count"], terms["format"]):
        assert step == a[0] == b[0] and abs(total - (a[1] + b[1])) < 1e-4
    one = plot_reward_curve(trainer.reward_history, tmp_path / "one.png")
    two = plot_reward_curve(trainer.reward_history, tmp_path / "two.png", window=2, terms=terms)
    with Image.open(one) as a, Image.open(two) as b:
        assert b.size[0] > 1.8 * a.size[0] and b.size[1] == a.size[1]
