"""load_config: YAML plus CLI overrides, unknown keys rejected, types converted by HfArgumentParser."""

from dataclasses import dataclass, field

import pytest

from videosafety_r1.config import load_config, parse_overrides
from videosafety_r1.grpo import GRPOConfig


@dataclass
class Small:
    name: str = field(default="a", metadata={"help": "a name"})
    rate: float = field(default=0.5, metadata={"help": "a float"})
    steps: int = field(default=1, metadata={"help": "an int"})
    flag: bool = field(default=True, metadata={"help": "a bool"})
    limit: int | None = field(default=None, metadata={"help": "an optional int"})
    weights: list[float] = field(default_factory=lambda: [1.0], metadata={"help": "a list"})


def write(tmp_path, text, name="config.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_yaml_values_and_type_conversion(tmp_path):
    path = write(tmp_path, "name: b\nrate: 1e-6\nsteps: 3\nflag: false\nlimit: 7\nweights: [1, 0.5]\n")
    config = load_config(Small, path, [])
    assert config == Small(name="b", rate=1e-6, steps=3, flag=False, limit=7, weights=[1.0, 0.5])
    assert isinstance(config.rate, float) and all(isinstance(w, float) for w in config.weights)


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["--rate", "0.25"], {"rate": 0.25}),
        (["--rate=0.25"], {"rate": 0.25}),
        (["rate=0.25", "steps=4"], {"rate": 0.25, "steps": 4}),
        (["--weights", "2", "3"], {"weights": [2.0, 3.0]}),
        (["--flag", "false"], {"flag": False}),
        (["--no_flag"], {"flag": False}),
        (["--flag"], {"flag": True}),
        (["--limit", "5", "--name", "x=y"], {"limit": 5, "name": "x=y"}),
        (["--name=a b"], {"name": "a b"}),
    ],
)
def test_overrides_win_over_yaml(tmp_path, overrides, expected):
    path = write(tmp_path, "rate: 0.1\nsteps: 2\nflag: true\nlimit: 1\n")
    config = load_config(Small, path, overrides)
    for key, value in expected.items():
        assert getattr(config, key) == value
    assert config.steps == expected.get("steps", 2)


def test_unknown_yaml_key_names_file_and_key(tmp_path):
    path = write(tmp_path, "rate: 0.1\nrtae: 0.2\n", name="stage.yaml")
    with pytest.raises(ValueError, match=r"stage\.yaml.*'rtae'.*did you mean 'rate'"):
        load_config(Small, path, [])


def test_unknown_override_key(tmp_path):
    with pytest.raises(ValueError, match=r"command-line override: unknown key 'stpes'"):
        load_config(Small, write(tmp_path, ""), ["--stpes", "3"])


@pytest.mark.parametrize(
    "text, match",
    [
        ("rate: 0.1\nrate: 0.2\n", "duplicate key 'rate'"),
        ("- rate\n- steps\n", "mapping"),
        ("steps: many\n", "'steps'"),
        ("rate: [unclosed\n", "config.yaml"),
    ],
)
def test_bad_yaml(tmp_path, text, match):
    with pytest.raises(ValueError, match=match):
        load_config(Small, write(tmp_path, text), [])


def test_bad_override_value_and_shape(tmp_path):
    with pytest.raises(ValueError, match="'rate'"):
        load_config(Small, None, ["--rate", "fast"])
    with pytest.raises(ValueError, match="neither"):
        load_config(Small, None, ["rate"])
    with pytest.raises(ValueError, match="one value"):
        load_config(Small, None, ["--rate", "0.1", "0.2"])
    with pytest.raises(ValueError, match="one value"):
        load_config(Small, None, ["rate=0.1", "junk"])


def test_no_yaml_and_empty_yaml_give_defaults(tmp_path):
    assert load_config(Small, None) == Small()
    assert load_config(Small, write(tmp_path, "# only a comment\n"), []) == Small()


def test_parse_overrides_forms():
    assert parse_overrides(["--a", "1", "b=2", "--c-d=3", "--e", "x", "y", "--f"]) == [
        ("a", ["1"]),
        ("b", ["2"]),
        ("c_d", ["3"]),
        ("e", ["x", "y"]),
        ("f", []),
    ]


def test_grpo_config_from_yaml(tmp_path):
    path = write(
        tmp_path,
        f"output_dir: {tmp_path / 'out'}\nuse_cpu: true\nreport_to: none\nlearning_rate: 1e-6\n"
        "reward_funcs: [format, visual_label, textual_label, dra_rouge]\nreward_weights: [1, 1, 1, 0.5]\n"
        "model_name_or_path: ckpt/stage3\ndata_root: data\ntrain_file: data/grpo.jsonl\n",
    )
    config = load_config(GRPOConfig, path, ["--beta", "0.1", "num_iterations=2", "--no_freeze_alarm"])
    assert isinstance(config, GRPOConfig)
    assert config.learning_rate == 1e-6 and config.beta == 0.1 and config.num_iterations == 2
    assert config.freeze_alarm is False and config.report_to == []
    assert config.reward_weights == [1.0, 1.0, 1.0, 0.5]
    assert config.train_file == ["data/grpo.jsonl"] and config.data_root == ["data"] and config.loss_type == "grpo"


def test_grpo_config_validation_runs_through_load_config(tmp_path):
    path = write(tmp_path, f"output_dir: {tmp_path}\nuse_cpu: true\nreport_to: none\n")
    with pytest.raises(ValueError, match="loss_type"):
        load_config(GRPOConfig, path, ["--loss_type", "sapo"])
    with pytest.raises(ValueError, match="per_device_train_batch_size"):
        load_config(GRPOConfig, path, ["--per-device-train-batch-size", "two"])


@dataclass
class Paired:
    low: int = field(default=0, metadata={"help": "lower bound"})
    high: int = field(default=1, metadata={"help": "upper bound"})
    note: str = field(default="", metadata={"help": "not part of the check"})

    def __post_init__(self):
        if self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")


def test_value_error_names_the_yaml_line(tmp_path):
    path = write(tmp_path, "name: x\nsteps: many\n", name="stage.yaml")
    with pytest.raises(ValueError, match=r"stage\.yaml, line 2: bad value \['many'\] for 'steps'"):
        load_config(Small, path, [])
    path = write(tmp_path, "rate: 0.1\nweights: yes\n", name="typed.yaml")
    with pytest.raises(ValueError, match=r"typed\.yaml, line 2: 'weights' expects"):
        load_config(Small, path, [])


def test_cross_field_error_names_file_and_where_each_field_was_set(tmp_path):
    path = write(tmp_path, "note: lowhigh\nhigh: 3\nlow: 5\n", name="pair.yaml")
    with pytest.raises(ValueError) as err:
        load_config(Paired, path, [])
    assert str(err.value) == "pair.yaml: low (5) must be below high (3) [set at: high line 2, low line 3]".replace(
        "pair.yaml", str(path)
    )
    with pytest.raises(ValueError, match=r"\[set at: high line 2, low on the command line\]$"):
        load_config(Paired, path, ["--low", "4"])
    with pytest.raises(
        ValueError, match=r"^command-line overrides: low \(2\) must be below high \(1\) \[set at: low on"
    ):
        load_config(Paired, None, ["--low", "2"])
    # a field left at its default is not listed: it was set nowhere
    path = write(tmp_path, "high: 0\n", name="only_high.yaml")
    with pytest.raises(
        ValueError, match=r"only_high\.yaml: low \(0\) must be below high \(0\) \[set at: high line 1\]$"
    ):
        load_config(Paired, path, [])


def test_yaml_syntax_error_names_the_file_in_its_marks(tmp_path):
    path = write(tmp_path, "rate: 0.1\nweights: [1, 2\n", name="broken.yaml")
    with pytest.raises(ValueError) as err:
        load_config(Small, path, [])
    assert f'in "{path}", line 2' in str(err.value) and "<unicode string>" not in str(err.value)


def test_trl_messages_point_at_the_fields_they_are_about(tmp_path):
    """TRL's own checks name a derived value ("generation_batch_size") or none at all; the error still says which
    lines set the fields behind them."""
    path = write(
        tmp_path, f"output_dir: {tmp_path}\nuse_cpu: true\nnum_generations: 3\nper_device_train_batch_size: 8\n"
    )
    with pytest.raises(ValueError, match=r"\[set at: num_generations line 3, per_device_train_batch_size line 4\]$"):
        load_config(GRPOConfig, path, [])
    with pytest.raises(ValueError, match=r"generations per prompt.*\[set at: num_generations on the command line\]$"):
        load_config(GRPOConfig, path, ["--num_generations", "1"])


def test_a_list_of_problems_names_the_line_of_each(tmp_path):
    """Our configs gather every problem ("invalid GRPOConfig:" and one indented line each): one problem is one line;
    several keep their list, each with the line that set its field."""
    path = write(tmp_path, f"output_dir: {tmp_path}\nuse_cpu: true\ntemperature: 0\n", name="g.yaml")
    with pytest.raises(ValueError) as err:
        load_config(GRPOConfig, path, [])
    assert str(err.value) == f"{path}: temperature must be a finite number > 0, got 0.0 [set at: temperature line 3]"
    with pytest.raises(ValueError) as err:
        load_config(GRPOConfig, path, ["--top_p", "2"])
    assert str(err.value).splitlines() == [
        f"{path}: invalid GRPOConfig:",
        "  temperature must be a finite number > 0, got 0.0 [set at: temperature line 3]",
        "  top_p must be in (0, 1], got 2.0 [set at: top_p on the command line]",
    ]


def test_a_negative_number_in_scientific_notation_is_a_value(tmp_path):
    """argparse reads "-1e-3" after a bare option as another option; the override is still a value."""
    for argv in (["--rate", "-1e-3"], ["--rate=-1e-3"], ["rate=-1e-3"]):
        assert load_config(Small, None, argv).rate == -1e-3
