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


# --- hostile clips (issue #12, items 3, 4 and 10): written with PyAV, every frame's pts set explicitly ---------------


def write_clip(path, times, size=(64, 64), codec="libx264", faststart=False, rate=8):
    """A clip whose frame i shows grey level 15*i and is presented at ``times[i]`` seconds (ms time base)."""
    import fractions

    import av

    width, height, ms = *size, fractions.Fraction(1, 1000)
    with av.open(str(path), "w", options={"movflags": "faststart"} if faststart else {}) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = stream.codec_context.time_base = ms
        if codec == "libx264":
            stream.options = {"preset": "ultrafast"}  # no B-frames: pts order = decode order
        for i, t in enumerate(times):
            frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), 15 * i % 256, np.uint8), format="rgb24")
            frame.pts, frame.time_base = round(t * 1000), ms  # (stream.time_base reads back as the muxer's)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def codecs():
    import av

    return [("mp4", "libx264"), ("mkv", "libx264")] + ([("webm", "libvpx")] if "libvpx" in av.codecs_available else [])


@pytest.mark.parametrize(("ext", "codec"), codecs())
@pytest.mark.parametrize("backend", ["decord", "pyav", "auto"])
def test_every_container_decodes(tmp_path, ext, codec, backend):
    clip = write_clip(tmp_path / f"c.{ext}", [i / 8 for i in range(16)], codec=codec)
    frames, meta = load_video(clip, fps=2.0, backend=backend)
    assert meta.frames_indices == [0, 4, 8, 12] and meta.total_num_frames == 16 and meta.fps == pytest.approx(8.0)
    assert meta.timestamps == pytest.approx([0.0, 0.5, 1.0, 1.5])
    assert np.abs(frames.mean(axis=(1, 2, 3)) - [0, 60, 120, 180]).max() < 3  # the right frames, in order


@pytest.mark.parametrize("size", [(48, 48), (16, 64), (24, 48)])
def test_tiny_clips_fall_back_to_pyav(tmp_path, size):
    clip = write_clip(tmp_path / "tiny.mp4", [i / 8 for i in range(16)], size=size)
    with pytest.raises(VideoDecodeError, match="tiny.mp4"):
        load_video(clip, backend="decord")  # decord cannot copy these frames out
    frames, meta = load_video(clip, backend="auto")
    assert frames.shape == (2, size[1], size[0], 3) and meta.video_backend == "pyav"


@pytest.mark.parametrize("backend", ["decord", "pyav", "auto"])
def test_cut_file_is_a_decode_error_not_copies(tmp_path, backend):
    whole = write_clip(tmp_path / "whole.mp4", [i / 8 for i in range(64)], faststart=True)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(VideoDecodeError, match="cut.mp4"):
        load_video(cut, fps=None, backend=backend)


VFR_TIMES = [i * 0.1 for i in range(8)] + [0.8 + i for i in range(1, 9)]  # 8 frames at 10 fps, then 8 at 1 fps


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_variable_frame_rate_timestamps_are_real(tmp_path, backend):
    clip = write_clip(tmp_path / "vfr.mp4", VFR_TIMES)
    frames, meta = load_video(clip, fps=None, backend=backend)
    assert meta.frames_indices == list(range(16))
    assert meta.timestamps == pytest.approx(VFR_TIMES, abs=1e-3)  # index / average fps would be off by up to 2.3 s
    assert np.abs(frames.mean(axis=(1, 2, 3)) - [15 * i for i in range(16)]).max() < 3  # no repeated frames
    _, meta = load_video(clip, fps=1.0, backend=backend)  # one frame per second: the frame nearest each second
    count = len(meta.frames_indices)  # floor(duration) samples; the container's duration decides 8.8 s vs 8.9 s
    assert count >= 8 and meta.frames_indices == [0, 7, 8, 9, 10, 11, 12, 13, 14][:count]
    assert meta.timestamps == pytest.approx([0.0, 0.7, 1.8, 2.8, 3.8, 4.8, 5.8, 6.8, 7.8][:count], abs=1e-3)


def test_padding_keeps_exact_metadata(tmp_path):
    clip = write_clip(tmp_path / "three.mp4", [0.0, 1.0, 2.0], rate=1)
    frames, meta = load_video(clip, fps=1.0, num_frames_multiple=2)
    assert meta.frames_indices == [0, 1, 2, 2] and meta.timestamps == pytest.approx([0.0, 1.0, 2.0, 2.0])
    assert np.array_equal(frames[3], frames[2])


@pytest.mark.parametrize("backend", ["decord", "auto"])
def test_validation_accepts_exactly_what_training_loads(tmp_path, backend):
    from videosafety_r1.data.video import MediaChecker

    write_clip(tmp_path / "tiny.mp4", [i / 8 for i in range(16)], size=(48, 48))
    whole = write_clip(tmp_path / "whole.mp4", [i / 8 for i in range(64)], faststart=True)
    (tmp_path / "cut.mp4").write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    checker = MediaChecker(tmp_path, check_videos=True, fps=1.0, max_frames=90, backend=backend)
    for name in ("tiny.mp4", "cut.mp4", "whole.mp4"):
        accepted = checker("video", name) == []
        try:
            load_video(tmp_path / name, fps=1.0, max_frames=90, backend=backend)
            loads = True
        except VideoDecodeError:
            loads = False
        assert accepted == loads, name
    assert checker("video", "cut.mp4")[0].kind == "video_undecodable"
