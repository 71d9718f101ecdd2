"""Video decoding: sampled indices, timestamps and counts; decord vs PyAV; errors; the processor contract."""

import numpy as np
import pytest

from videosafety_r1.data import VideoDecodeError, load_video, sample_frame_indices, write_synthetic_video


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    # 40 frames at 8 fps = 5 s
    return write_synthetic_video(tmp_path_factory.mktemp("video") / "clip.mp4", num_frames=40, fps=8, seed=3)


@pytest.mark.parametrize(
    ("fps", "max_frames", "indices"),
    [
        (1.0, 90, [0, 8, 16, 24, 32]),
        (2.0, 90, [0, 4, 8, 12, 16, 20, 24, 28, 32, 36]),
        (2.0, 4, [0, 12, 24, 36]),  # uniform thinning of the 2-fps samples
        (8.0, 90, list(range(40))),
        (None, 5, [0, 10, 20, 29, 39]),  # every frame, capped
        (0.1, 90, [0]),  # shorter than one period: still one frame
        (16.0, 90, list(range(40))),  # above the native rate: every frame once
    ],
)
@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_sampling(clip, backend, fps, max_frames, indices):
    frames, meta = load_video(clip, fps=fps, max_frames=max_frames, backend=backend)
    assert frames.dtype == np.uint8 and frames.shape == (len(indices), 64, 64, 3)
    assert meta.frames_indices == indices
    assert meta.timestamps == pytest.approx([i / 8 for i in indices])
    assert (meta.total_num_frames, meta.fps, meta.duration) == (40, 8.0, 5.0)
    assert meta.video_backend == backend and (meta.width, meta.height) == (64, 64)


def test_sample_frame_indices_long_clip():
    # a 2-minute 30 fps clip at the paper's 1 fps / 90 frames: 90 uniformly spread, inside the clip
    indices = sample_frame_indices(3600, 30.0, fps=1.0, max_frames=90)
    assert len(indices) == 90 and indices[0] == 0 and indices[-1] <= 3599
    assert indices == sorted(set(indices))
    assert sample_frame_indices(0, 30.0) == []


def test_decord_and_pyav_agree(clip):
    a, meta_a = load_video(clip, fps=3.0, backend="decord")
    b, meta_b = load_video(clip, fps=3.0, backend="pyav")
    assert meta_a.frames_indices == meta_b.frames_indices
    assert np.abs(a.astype(int) - b.astype(int)).mean() < 1.0


def test_num_frames_multiple_pads_with_last_frame(clip):
    frames, meta = load_video(clip, fps=1.0, num_frames_multiple=2)
    assert len(frames) == 6 and meta.frames_indices[-2:] == [32, 32]
    assert np.array_equal(frames[-1], frames[-2])


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_errors_name_the_file(tmp_path, backend):
    with pytest.raises(VideoDecodeError, match="missing.mp4"):
        load_video(tmp_path / "missing.mp4", backend=backend)
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"garbage" * 100)
    with pytest.raises(VideoDecodeError, match="corrupt.mp4"):
        load_video(corrupt, backend=backend)
    with pytest.raises(ValueError, match="backend"):
        load_video(corrupt, backend="opencv")


def test_processor_accepts_frames_and_metadata(clip):
    testing = pytest.importorskip("videosafety_r1.testing")
    processor = testing.tiny_processor("qwen2_5_vl")
    frames, meta = load_video(clip, fps=2.0)
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "What is shown?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    out = processor(text=[text], videos=[frames], video_metadata=[meta], do_sample_frames=False, return_tensors="pt")
    assert out["video_grid_thw"][0, 0].item() == len(frames) // 2  # temporal patch 2: all 10 frames kept
    assert out["second_per_grid_ts"].tolist() == [1.0]  # 2 frames per grid step at 2 sampled fps
