"""Platt scaling of the alarm heads: the fit, its file next to the alarm weights, predict_harm and the CLI."""

import json

import numpy as np
import pytest
import torch

from videosafety_r1.alarm import (
    add_alarm_tokens,
    apply_calibration,
    calibrate_alarm_heads,
    load_calibration,
    load_pretrained,
    predict_harm,
    save_calibration,
)
from videosafety_r1.alarm.calibration import fit_platt, harm_logits
from videosafety_r1.evaluation import expected_calibration_error


def test_fit_recovers_a_known_scale_and_lowers_ece():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 3, 4000)
    y = (rng.random(4000) < 1 / (1 + np.exp(-(z / 3.0 - 0.5)))).astype(int)  # true temperature 3, bias -0.5
    params = fit_platt(z, y)
    assert params["temperature"] == pytest.approx(3.0, rel=0.1) and params["bias"] == pytest.approx(-0.5, abs=0.15)
    raw = apply_calibration({"visual": z}, None)["visual"].numpy()
    fixed = apply_calibration({"visual": z}, {"visual": params})["visual"].numpy()
    assert expected_calibration_error(y, fixed) < 0.03 < expected_calibration_error(y, raw)


def test_separable_data_keeps_a_finite_temperature_and_one_class_is_an_error():
    params = fit_platt([-5.0, -4.0, 4.0, 5.0], [0, 0, 1, 1])
    assert 0 < params["temperature"] < 100
    with pytest.raises(ValueError, match="harmful and safe"):
        fit_platt([1.0, 2.0], [1, 1])


def test_save_load_and_validation(tmp_path):
    cal = {"visual": {"temperature": 2.0, "bias": 0.1}, "textual": {"temperature": 0.5, "bias": -1.0}}
    path = save_calibration(tmp_path, cal)
    assert path.name == "alarm_calibration.json" and load_calibration(tmp_path) == cal
    assert load_calibration(tmp_path / "missing") is None
    with pytest.raises(ValueError, match="positive temperature"):
        save_calibration(tmp_path, {**cal, "textual": {"temperature": 0.0, "bias": 0.0}})


@pytest.fixture(scope="module")
def calibrated(tiny_checkpoint, tmp_path_factory):
    """An alarm checkpoint with a calibration fitted on a synthetic calibration split (4 rows per split)."""
    from videosafety_r1.data import load_dataset_checked, make_synthetic_dataset

    root = tmp_path_factory.mktemp("cal")
    paths = make_synthetic_dataset(root / "data", 4, seed=0, n_eval=4)
    base, processor = load_pretrained(tiny_checkpoint)
    model = add_alarm_tokens(base, processor)
    with torch.no_grad():
        model.visual_head.weight.normal_(0, 1.0)
        model.textual_head.weight.normal_(0, 1.0)
    model.save_pretrained(root / "ckpt", processor=processor)
    rows, _ = load_dataset_checked(paths["calibration"], root / "data", kind="eval")
    cal = calibrate_alarm_heads(model, processor, rows, data_root=root / "data", fps=8.0, max_frames=4)
    save_calibration(root / "ckpt", cal)
    return root, model, processor, cal, rows


def test_calibrate_alarm_heads_fits_both_heads_on_the_calibration_split(calibrated):
    root, model, processor, cal, rows = calibrated
    assert set(cal) == {"visual", "textual"} and all(set(p) == {"temperature", "bias"} for p in cal.values())
    assert {r.split for r in rows} == {"HH", "SH", "SafeQ"} and any(r.media.type == "none" for r in rows)


def test_predict_harm_applies_the_saved_calibration(calibrated):
    root, model, processor, cal, rows = calibrated
    loaded, proc = load_pretrained(root / "ckpt")
    assert loaded.alarm_calibration == cal  # floats survive the JSON round trip exactly
    video = root / "data" / rows[0].media.path
    got = predict_harm(loaded, proc, [video, None], [rows[0].query, "hi"], fps=8.0, max_frames=4)
    logits = harm_logits(model, processor, [video, None], [rows[0].query, "hi"], fps=8.0, max_frames=4)
    for head in ("visual", "textual"):
        z = torch.as_tensor(logits[head], dtype=torch.float32)
        expected = torch.sigmoid(z / cal[head]["temperature"] + cal[head]["bias"])
        torch.testing.assert_close(got[head], expected, atol=1e-5, rtol=1e-4)
        assert not torch.allclose(got[head], torch.sigmoid(z), atol=1e-4)


def test_cli_predict_harm_writes_one_line_per_row(calibrated, tmp_path):
    from videosafety_r1.cli import main

    root, _, _, cal, rows = calibrated
    out = tmp_path / "pred.jsonl"
    code = main(
        ["predict-harm", "--model", str(root / "ckpt"), "--data", str(root / "data" / "calibration.jsonl"),
         "--out", str(out), "--fps", "8", "--max-frames", "4"]
    )  # fmt: skip
    assert code == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["id"] for line in lines] == [r.id for r in rows]
    for line in lines:
        assert line["calibrated"] is True and 0 < line["visual_prob"] < 1
        assert line["visual_harmful"] == (line["visual_prob"] >= 0.5)
    assert main(["predict-harm", "--model", str(tmp_path / "none"), "--data", str(out), "--out", str(out)]) == 2


def test_cli_predict_harm_refuses_a_model_without_heads_and_a_folder_as_out(
    calibrated, tiny_checkpoint, tmp_path, capsys
):
    """One line and exit 2, not a traceback after loading (no heads) or after scoring every row (--out a folder)."""
    from videosafety_r1.cli import main

    root = calibrated[0]
    data = ["--data", str(root / "data" / "calibration.jsonl")]
    assert main(["predict-harm", "--model", str(tiny_checkpoint), *data, "--out", str(tmp_path / "p.jsonl")]) == 2
    assert "this model has no harm heads" in capsys.readouterr().out and not (tmp_path / "p.jsonl").exists()
    assert main(["predict-harm", "--model", str(root / "ckpt"), *data, "--out", str(tmp_path)]) == 2
    assert f"--out {tmp_path} is a folder" in capsys.readouterr().out


def test_export_carries_the_calibration(calibrated, tmp_path):
    from videosafety_r1.alarm import export_plain_checkpoint

    root, _, _, cal, _ = calibrated
    loaded, proc = load_pretrained(root / "ckpt")
    export_plain_checkpoint(loaded, proc, tmp_path / "export")
    assert load_calibration(tmp_path / "export" / "alarm") == cal  # beside the heads, under EXPORT/alarm/
    assert not (tmp_path / "export" / "alarm_calibration.json").exists()  # the top level holds only model files
    assert load_pretrained(tmp_path / "export")[0].alarm_calibration == cal


def test_save_pretrained_carries_the_calibration_and_drops_a_stale_one(calibrated, tmp_path):
    root, _, _, cal, _ = calibrated
    loaded, proc = load_pretrained(root / "ckpt")
    assert loaded.alarm_calibration == cal
    loaded.save_pretrained(tmp_path / "again", processor=proc)
    assert load_pretrained(tmp_path / "again")[0].alarm_calibration == cal
    loaded.alarm_calibration = None  # heads refitted or calibration removed: the old file must not survive
    loaded.save_pretrained(tmp_path / "again", processor=proc)
    assert load_pretrained(tmp_path / "again")[0].alarm_calibration is None


def test_reexport_into_the_same_folder_keeps_no_stale_alarm_files(calibrated, tmp_path):
    from videosafety_r1.alarm import export_plain_checkpoint

    root, _, _, cal, _ = calibrated
    loaded, proc = load_pretrained(root / "ckpt")
    export_plain_checkpoint(loaded, proc, tmp_path / "export")
    loaded.alarm_calibration = None
    export_plain_checkpoint(loaded, proc, tmp_path / "export")
    assert not (tmp_path / "export" / "alarm" / "alarm_calibration.json").exists()
    assert load_pretrained(tmp_path / "export")[0].alarm_calibration is None


def test_an_export_missing_its_heads_file_is_refused(calibrated, tmp_path):
    from videosafety_r1.alarm import export_plain_checkpoint

    root, _, _, _, _ = calibrated
    loaded, proc = load_pretrained(root / "ckpt")
    export_plain_checkpoint(loaded, proc, tmp_path / "export")
    (tmp_path / "export" / "alarm" / "heads.safetensors").unlink()
    with pytest.raises(ValueError, match="holds no alarm/heads.safetensors"):
        load_pretrained(tmp_path / "export")


def test_save_calibration_into_an_export_writes_beside_the_heads(calibrated, tmp_path):
    from videosafety_r1.alarm import export_plain_checkpoint, save_calibration

    root, _, _, cal, _ = calibrated
    loaded, proc = load_pretrained(root / "ckpt")
    loaded.alarm_calibration = None
    export_plain_checkpoint(loaded, proc, tmp_path / "export")
    path = save_calibration(tmp_path / "export", cal)
    assert path == tmp_path / "export" / "alarm" / "alarm_calibration.json"
    assert load_pretrained(tmp_path / "export")[0].alarm_calibration == cal


def test_predict_harm_names_bad_batches(calibrated):
    from videosafety_r1 import predict_harm

    root, _, _, _, _ = calibrated
    model, proc = load_pretrained(root / "ckpt")
    with pytest.raises(ValueError, match="same length"):
        predict_harm(model, proc, [None], [])
    with pytest.raises(ValueError, match="empty batch"):
        predict_harm(model, proc, [], [])
    with pytest.raises(ValueError, match="no alarm tokens"):
        predict_harm(model.get_base_model(), proc, [None], ["hi"])
