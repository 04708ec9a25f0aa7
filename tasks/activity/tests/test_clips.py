"""Clip data: datasets (class folders, frame folders, CSV segments), TSN and dense sampling,
frame-exact decoding by seeking (mp4v, MJPG), clip-consistent augmentation, tf.data."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from visionsuite.errors import DataError, UsageError
from visionsuite_tasks.activity.clips import (
    ClipLoader,
    VideoRef,
    clip_transform,
    dense_windows,
    load_video_dataset,
    read_frames,
    seek_is_exact,
    transform_clip,
    tsn_indices,
)

N = 40  # frames of the test videos
BASE, LEVEL = 20, 5  # frame i is mostly grey level BASE + i * LEVEL: the decoded frame tells its index


def _frame(i, size=48):
    img = np.full((size, size, 3), BASE + i * LEVEL, np.uint8)
    cv2.putText(img, str(i), (4, size - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1)
    return img


def write_numbered_video(path, n=N, codec="mp4v", fps=10.0):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, (48, 48))
    for i in range(n):
        writer.write(_frame(i))
    writer.release()
    return path


def _index_of(frame, darkening=3):
    """The frame number a decoded frame shows (its background level; the codecs' colour
    conversion darkens it by 2-4 levels, PNG frames by 0)."""
    return int(round((float(np.median(frame)) - BASE + darkening) / LEVEL))


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    return {"mp4v": write_numbered_video(root / "a.mp4", codec="mp4v"),
            "MJPG": write_numbered_video(root / "a.avi", codec="MJPG")}


@pytest.mark.parametrize("codec", ["mp4v", "MJPG"])
def test_seeking_is_frame_exact(videos, codec):
    path = videos[codec]
    assert seek_is_exact(path)
    order = [33, 2, 17, 17, 39, 0, 25, 9]   # jumps forward and back, a repeat
    seeked = read_frames(path, order, seek=True)
    stepped = read_frames(path, order, seek=False)
    assert seeked.shape == (len(order), 48, 48, 3) and seeked.dtype == np.uint8
    np.testing.assert_array_equal(seeked, stepped)
    assert [_index_of(f) for f in seeked] == order


def test_read_frames_errors_are_one_line(videos, tmp_path):
    with pytest.raises(DataError, match="cannot decode frame 40"):
        read_frames(videos["mp4v"], [3, 40])
    with pytest.raises(DataError, match="video not found"):
        read_frames(tmp_path / "none.mp4", [0])
    with pytest.raises(UsageError, match="at least one index"):
        read_frames(videos["mp4v"], [])


def test_tsn_sampling_centres_and_random_offsets():
    np.testing.assert_array_equal(tsn_indices(16, 4, training=False), [2, 6, 10, 14])
    np.testing.assert_array_equal(tsn_indices(16, 4, training=False, start=100),
                                  [102, 106, 110, 114])
    rng = np.random.default_rng(0)
    draws = np.stack([tsn_indices(16, 4, training=True, rng=rng) for _ in range(200)])
    for k in range(4):  # each draw stays inside its segment and covers it
        assert set(draws[:, k]) == set(range(4 * k, 4 * k + 4))
    short = tsn_indices(3, 8, training=False)   # shorter than the clip: frames repeat
    assert len(short) == 8 and set(short) == {0, 1, 2} and np.all(np.diff(short) >= 0)


def test_dense_windows_every_stride_frames():
    w = dense_windows(10, 4, 3)
    np.testing.assert_array_equal(w, [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]])
    with pytest.raises(DataError, match="shorter than a window of 8. Received: num_frames=5"):
        dense_windows(5, 8, 1)


@pytest.fixture(scope="module")
def folder_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    for cls in ("jump", "wave"):
        (root / cls).mkdir()
        write_numbered_video(root / cls / "v1.mp4", n=12)
        write_numbered_video(root / cls / "v2.avi", n=12, codec="MJPG")
    frames = root / "wave" / "frames_clip"
    frames.mkdir()
    for i in range(10):
        cv2.imwrite(str(frames / f"{i:04d}.png"), _frame(i))
    (root / "jump" / "broken.mp4").write_bytes(b"\x00not a video" * 50)
    write_numbered_video(root / "jump" / "short.mp4", n=3)
    (root / "jump" / "notes.txt").write_text("ignored")
    return root


def test_folder_dataset_reads_videos_and_frame_folders_and_reports_bad_ones(folder_dataset):
    ds = load_video_dataset(folder_dataset, min_frames=8)
    assert ds.classes == ["jump", "wave"]
    kinds = sorted((s.target, s.image.kind, s.image.num_frames) for s in ds.samples)
    assert kinds == [(0, "video", 12), (0, "video", 12), (1, "frames", 10),
                     (1, "video", 12), (1, "video", 12)]
    reasons = {p.split("/")[-1]: r for p, r in ds.skipped}
    assert set(reasons) == {"broken.mp4", "short.mp4"}
    assert "OpenCV cannot open" in reasons["broken.mp4"] or "no decodable" in reasons["broken.mp4"]
    assert "shorter than a clip of 8" in reasons["short.mp4"]
    with pytest.raises(DataError, match="broken.mp4"):
        load_video_dataset(folder_dataset, strict=True)
    frames_ref = next(s.image for s in ds.samples if s.image.kind == "frames")
    assert [_index_of(f, 0) for f in read_frames(frames_ref, [9, 0, 4])] == [9, 0, 4]
    with pytest.raises(DataError, match="the folder has 10 frames"):
        read_frames(frames_ref, [10])
    with pytest.raises(DataError, match="not among the classes"):
        load_video_dataset(folder_dataset, classes=["jump"])


def test_csv_segments_and_out_of_range_segments(videos, tmp_path):
    csv = tmp_path / "segments.csv"
    csv.write_text(f"video,label,start,end\n{videos['mp4v']},walk,0,10\n"
                   f"{videos['MJPG']},run,20,40\n{videos['mp4v']},run,30,55\n"
                   f"{videos['mp4v'].name},walk,1.0,2.5\n")
    (tmp_path / videos["mp4v"].name).symlink_to(videos["mp4v"])
    ds = load_video_dataset(csv)
    assert ds.classes == ["run", "walk"]
    assert [(s.target, s.image.start, s.image.end) for s in ds.samples] == [
        (1, 0, 10), (0, 20, 40), (1, 1, 2)]   # the last row: frames 1.0 and 2.5 rounded
    assert len(ds.skipped) == 1
    assert "line 4" in ds.skipped[0][1] and "beyond the video's 40 frames" in ds.skipped[0][1]
    with pytest.raises(DataError, match=r"line 4: .*beyond the video's 40 frames. Received: start=30, end=55"):
        load_video_dataset(csv, strict=True)
    sec = tmp_path / "seconds.csv"
    sec.write_text(f"{videos['mp4v']},walk,0.5,2\n")   # no header; 10 fps
    ref = load_video_dataset(sec, time_unit="seconds").samples[0].image
    assert (ref.start, ref.end, ref.fps) == (5, 20, 10.0)
    clip = read_frames(ref, tsn_indices(ref.num_frames, 3, training=False, start=ref.start))
    assert [_index_of(f) for f in clip] == [7, 12, 17]


def test_clip_transform_applies_one_sampled_transform_to_every_frame():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
    clip = np.stack([image] * 6)
    transform = clip_transform(6, 40, training=True, strength=1.0, hflip=True, affine=True,
                               seed=3)
    results = []
    for _ in range(5):
        out = transform_clip(transform, clip)
        assert out.shape == (6, 40, 40, 3) and out.dtype == np.uint8
        for f in out[1:]:   # identical frames in -> identical frames out: one transform
            np.testing.assert_array_equal(f, out[0])
        results.append(out[0])
    # ... and the transform is random from call to call (crop, flip, colour differ).
    assert len({r.tobytes() for r in results}) == 5
    # Different frames keep their differences (the transform is not collapsing them).
    moving = np.stack([np.roll(image, 4 * t, axis=1) for t in range(6)])
    out = transform_clip(clip_transform(6, 40, training=False), moving)
    assert not np.array_equal(out[0], out[5])
    with pytest.raises(DataError, match="Received: shape"):
        transform_clip(transform, image)


def test_clip_loader_feeds_the_tf_data_pipeline(folder_dataset):
    import tensorflow as tf

    from visionsuite.data.pipeline import make_tf_dataset

    ds = load_video_dataset(folder_dataset, min_frames=8)
    loader = ClipLoader(4, training=True, seed=1)
    tf_ds = make_tf_dataset(
        ds, output_signature=(tf.TensorSpec((4, 32, 32, 3), tf.float32),
                              tf.TensorSpec((), tf.int32)),
        batch_size=3, training=True, load=loader,
        transform=clip_transform(4, 32, training=True), to_arrays=loader.to_arrays)
    clips, labels = next(iter(tf_ds))
    assert clips.shape == (3, 4, 32, 32, 3) and labels.shape == (3,)
    assert set(labels.numpy()) <= {0, 1}
    eval_loader = ClipLoader(4, training=False)
    ref = VideoRef(str(folder_dataset / "jump" / "v1.mp4"), 0, 12, 10.0)
    inputs = eval_loader(type(ds.samples[0])(ref, 0))
    assert [_index_of(inputs[k]) for k in ("image", "image1", "image2", "image3")] == [1, 4, 7, 10]
    dense = ClipLoader(4, training=False, sampling="dense")
    np.testing.assert_array_equal(dense.indices(ref), [4, 5, 6, 7])
    dense_train = ClipLoader(4, training=True, sampling="dense", seed=0)
    starts = {int(dense_train.indices(ref)[0]) for _ in range(100)}
    assert starts == set(range(9))
    with pytest.raises(DataError, match="shorter than a clip of 16"):
        ClipLoader(16, training=True, sampling="dense").indices(ref)
