"""Every EvalConfig field acts: each is read on the path that does the work (not only written into results.json or
the fingerprint), and the generation / video / judge settings reach the calls they configure."""

import dataclasses
import json
from pathlib import Path

import pytest

from videosafety_r1.evaluation import EvalConfig, run_evaluation
from videosafety_r1.evaluation import run as run_mod

FIELDS = {f.name for f in dataclasses.fields(EvalConfig)}
READ: set[str] = set()


class RecordingConfig(EvalConfig):
    """An EvalConfig that records which fields the evaluation reads while ``_recording`` is on."""

    def __getattribute__(self, name):
        if name in FIELDS and object.__getattribute__(self, "__dict__").get("_recording"):
            READ.add(name)
        return object.__getattribute__(self, name)

    def to_dict(self):  # writing the config into results.json is not acting on it
        self.__dict__["_recording"] = False
        try:
            return super().to_dict()
        finally:
            self.__dict__["_recording"] = True


def _recording(**kw) -> RecordingConfig:
    config = RecordingConfig(**kw)
    config.__dict__["_recording"] = True
    return config


@pytest.fixture(scope="module")
def setup(tiny_checkpoint, tmp_path_factory):
    from videosafety_r1.alarm import add_alarm_tokens, load_pretrained
    from videosafety_r1.data import make_synthetic_dataset

    root = tmp_path_factory.mktemp("fields")
    model, processor = load_pretrained(tiny_checkpoint)
    add_alarm_tokens(model, processor).save_pretrained(root / "alarm", processor=processor)
    make_synthetic_dataset(root / "data", n=8, seed=0)
    rows = [json.loads(line) for line in (root / "data" / "eval.jsonl").read_text().splitlines()]
    mixed = [r for r in rows if r["split"] == "SH"][:2] + [r for r in rows if r["split"] == "SafeQ"][:2]
    (root / "data" / "eval_mixed.jsonl").write_text("".join(json.dumps(r) + "\n" for r in mixed))  # both splits
    return root


def test_every_eval_config_field_is_read_where_it_acts(setup, tmp_path, monkeypatch):
    import videosafety_r1.evaluation.http_judge as http_judge
    import videosafety_r1.evaluation.local_judge as local_judge

    real_fingerprint = run_mod.eval_fingerprint

    def quiet_fingerprint(config, model=None):  # comparing fingerprints is not acting on the settings either
        config.__dict__["_recording"] = False
        try:
            return real_fingerprint(config, model)
        finally:
            config.__dict__["_recording"] = True

    monkeypatch.setattr(run_mod, "eval_fingerprint", quiet_fingerprint)
    READ.clear()
    first = tmp_path / "first"
    common = dict(
        model_name_or_path=str(setup / "alarm"), eval_file=str(setup / "data" / "eval_mixed.jsonl"),
        data_root=str(setup / "data"), max_samples=4, max_new_tokens=4, batch_size=2, bootstrap_samples=20,
        video_fps=2.0, video_max_frames=4, temperature=0.7, top_p=0.9, seed=1, text_only_pass=True,
        prompt_format="reasoning", dtype="float32", attn_implementation="eager", on_bad_row="skip",
    )  # fmt: skip
    run_evaluation(EvalConfig(output_dir=str(first), plots=False, **common))
    run_evaluation(_recording(output_dir=str(tmp_path / "second"), checkpoints=[str(first)], dsr_split="SH", **common))
    assert (tmp_path / "second" / "dsr_vs_frr.png").exists()  # plots + checkpoints + dsr_split acted

    class FakeJudge:
        def __init__(self, *args, **kwargs):
            self.kwargs = kwargs

    class FakeLM:
        def to(self, device):
            return self

        def eval(self):
            return self

    import transformers

    monkeypatch.setattr(local_judge, "TransformersJudge", FakeJudge)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: object())
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", lambda *a, **k: FakeLM())
    judge = run_mod.make_judge(
        _recording(
            judge="transformers",
            judge_model="lm",
            judge_template="guard_safe_unsafe",
            judge_batch_size=3,
            judge_use_chat_template=True,
        )  # fmt: skip
    )
    assert judge.kwargs["batch_size"] == 3 and judge.kwargs["use_chat_template"] is True
    monkeypatch.setattr(http_judge, "OpenAIJudge", FakeJudge)
    judge = run_mod.make_judge(
        _recording(
            judge="http",
            judge_model="served",
            judge_base_url="http://h:1/v1",
            judge_api_key_env="K",
            judge_concurrency=2,
            judge_cache=False,
            output_dir=str(tmp_path),
        )  # fmt: skip
    )
    assert judge.kwargs["base_url"] == "http://h:1/v1" and judge.kwargs["concurrency"] == 2
    assert judge.kwargs["cache_path"] is None
    unread = FIELDS - READ
    assert not unread, f"EvalConfig fields never read by the evaluation: {sorted(unread)}"


@pytest.mark.parametrize(
    "kw, expect",
    [
        ({"temperature": 0.0}, {"do_sample": False, "max_new_tokens": 4}),
        ({"temperature": 0.5, "top_p": 0.8}, {"do_sample": True, "temperature": 0.5, "top_p": 0.8}),
        ({"max_new_tokens": 7}, {"max_new_tokens": 7}),
    ],
)
def test_generation_settings_reach_generate(setup, kw, expect, monkeypatch):
    from videosafety_r1.alarm import load_pretrained
    from videosafety_r1.data import load_dataset_checked

    model, processor = load_pretrained(setup / "alarm")
    seen = {}
    real = model.generate

    def spy(**kwargs):
        seen.update(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(model, "generate", spy)
    config = EvalConfig(model_name_or_path="m", eval_file="e", **{"max_new_tokens": 4, **kw})
    records, _ = load_dataset_checked(setup / "data" / "eval.jsonl", setup / "data", kind="eval")
    items = run_mod.build_eval_items(records[:2], setup / "data", False)
    inputs = run_mod.build_eval_inputs(processor, items, 2.0, 4, True, prompt_format="query")
    run_mod.generate_batch(model, processor, inputs, config)
    for key, value in expect.items():
        assert seen[key] == value, key


def test_video_settings_reach_frame_sampling(setup, monkeypatch, tmp_path):
    seen = []
    real = run_mod.build_eval_inputs

    def spy(processor, items, fps, max_frames, *a, **k):
        seen.append((fps, max_frames))
        return real(processor, items, fps, max_frames, *a, **k)

    monkeypatch.setattr(run_mod, "build_eval_inputs", spy)
    run_evaluation(
        EvalConfig(
            model_name_or_path=str(setup / "alarm"),
            eval_file=str(Path(setup) / "data" / "eval.jsonl"),
            output_dir=str(tmp_path),
            max_samples=2,
            max_new_tokens=2,
            batch_size=2,
            bootstrap_samples=10,
            video_fps=3.0,
            video_max_frames=5,
            plots=False,
        )  # fmt: skip
    )
    assert seen and set(seen) == {(3.0, 5)}


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"max_samples": 0}, "max_samples must be >= 1"),
        ({"max_samples": -1}, "max_samples must be >= 1"),  # records[:-1] dropped the last row
        ({"judge_keywords": "klingon"}, "judge_keywords must be one of ['default', 'gcg'"),
        ({"judge_model": "lm"}, "judge_model would be ignored: judge=keyword"),
        ({"judge_template": "guard_safe_unsafe"}, "judge_template would be ignored"),
        ({"dsr_split": "XX"}, "dsr_split must be one of ('HH', 'SH')"),
    ],
)
def test_settings_that_cannot_act_are_refused(kw, message):
    with pytest.raises(ValueError) as err:
        EvalConfig(model_name_or_path="m", eval_file="e", **kw)
    assert message in str(err.value)
    EvalConfig(model_name_or_path="m", eval_file="e", judge="http", judge_model="served", dsr_split="SH")
