"""The stream pipeline: capture -> per-source state (preprocess) -> batched inference ->
merge + render -> sinks, each stage in its own thread, joined by small bounded buffers.

Each source has its own :class:`~visionsuite.streams.state.State`, made by the task when the
source opens and dropped at the end of input and when the source reconnects: it turns frames
into zero or more model inputs (one per frame, one per clip window, many tiles per volume) and
merges the named model outputs back into predictions. The task object holds no stream memory.

Stages overlap, so throughput is set by the slowest stage (normally inference), not by the sum
of the stages. Buffers are bounded, so memory stays flat however long the stream.

Between capture and inference, each source has its own buffer with its drop policy:

* files and image folders never drop: a full buffer makes the reader wait;
* drop policies act on whole model inputs: a state that windows frames (clips) gets every
  frame, and only its assembled inputs are dropped; tiles of one item are never dropped;
* live sources (cameras, URLs) under the ``"newest"`` policy (default) keep only the newest
  frame -- at capture *and* after preprocessing -- so a frame waits at most for the inference
  that is running when it arrives: capture-to-result latency stays under about two inference
  times even when the model is slower than the camera. ``"queue"`` keeps up to
  ``queue_size`` frames and makes the reader wait instead (the stream's own buffers fill).

Threads: capture (one per source), preprocess, inference, postprocess + render, sinks. A
hand-off between two of them costs 7-30 us per frame (``queue.Queue``, measured on a 2-core VM
at load 9-13), under 0.1 % of a frame at 25-200 FPS, so stages are not fused: separate threads
let them overlap where cores are free. Unless ``threads`` is given, the engine times the
first :data:`THREADS_PROBE_FRAMES` frames and sets the TFLite interpreter's threads from the
stage costs and the core count (:func:`choose_threads`), tries more threads for as many
frames and keeps them only when the model got 10 % faster (``stats["threads_choice"]``).

Each stage is timed (mean, p50, p95 in ms) and capture-to-result latency is measured per frame;
:attr:`Stream.stats` holds them after the run (and :func:`format_stats` prints them).

Example:
    >>> import visionsuite
    >>> for result in visionsuite.run("classification", "video.mp4",
    ...                               model="imagenet:efficientnet_lite0"):
    ...     print(result.index, result.record["label"])
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from visionsuite.errors import UsageError, VisionsuiteError
from visionsuite.streams.sources import (POLICIES, RECONNECT, RECONNECT_DELAY_MAX, Frame,
                                         Source, open_source)

log = logging.getLogger("visionsuite.streams")

_END = object()

# ``Stream.stopped_by`` when a live source was given up (its reconnection attempts ran out, a
# camera stopped delivering) and nothing else stopped the run first; the CLI then exits with
# EXIT_SOURCE_LOST so that a supervising script can tell it from a normal end.
SOURCE_LOST = "source lost"
EXIT_SOURCE_LOST = 3


@dataclasses.dataclass(frozen=True)
class _SourceEnd:
    """Put after a source's last frame: the engine drops that source's state."""

    source_id: int


@dataclasses.dataclass
class StreamResult:
    """One processed frame."""

    # (str) the source's name (URL passwords masked)
    source: str
    # (int) position of the source in the run's source list
    source_id: int
    # (int) frame index in its source
    index: int
    # (float) seconds: position in a file, Unix time for live sources, 0 for images
    timestamp: float
    # the task's Prediction
    prediction: object
    # (dict) the task's JSON record of the prediction
    record: dict
    # (float) seconds from capture to result
    latency: float
    # (np.ndarray | None) the annotated BGR frame (when rendering is on)
    frame: np.ndarray | None = None
    # (str | None) the image file, for folder and glob sources
    path: str | None = None
    # (np.ndarray | None) the captured BGR frame, unannotated (when a sink has needs_input)
    input: np.ndarray | None = None

    def to_json(self) -> dict:
        out = {"source": self.source, "frame": self.index, "timestamp": round(self.timestamp, 6),
               "latency_ms": round(self.latency * 1000, 3), "result": self.record}
        if self.path is not None:
            out["path"] = self.path
        return out


class _Timer:
    """Durations of one stage: count and total exactly, percentiles over the last 20,000."""

    def __init__(self):
        self.count = 0
        self.total = 0.0
        self.recent = collections.deque(maxlen=20000)

    def add(self, seconds: float, n: int = 1):
        self.count += n
        self.total += seconds
        per = seconds / max(n, 1)
        self.recent.extend([per] * n)

    def summary(self) -> dict:
        if not self.count:
            return {"count": 0}
        a = np.asarray(self.recent) * 1000
        return {"count": self.count, "mean_ms": round(self.total / self.count * 1000, 3),
                "p50_ms": round(float(np.percentile(a, 50)), 3),
                "p95_ms": round(float(np.percentile(a, 95)), 3),
                "max_ms": round(float(a.max()), 3)}


class _Hub:
    """Per-source buffers between two stages, served round-robin.

    A "newest" buffer keeps one item (a new one replaces it, counted as dropped); a "queue"
    buffer holds up to ``capacity`` items and makes ``put`` wait.
    """

    def __init__(self, policies: Sequence[str], capacity: int, stop: threading.Event):
        self.policies = list(policies)
        self.capacity = max(1, int(capacity))
        self.stop = stop
        self.buffers = [collections.deque() for _ in policies]
        self.open = set(range(len(policies)))
        self.dropped = [0] * len(policies)
        self.cond = threading.Condition()
        self._next = 0

    def put(self, sid: int, item) -> bool:
        with self.cond:
            buf = self.buffers[sid]
            if self.policies[sid] == "newest" and not isinstance(item, _SourceEnd):
                self.dropped[sid] += sum(not isinstance(b, _SourceEnd) for b in buf)
                kept = [b for b in buf if isinstance(b, _SourceEnd)]
                buf.clear()
                buf.extend(kept)
            else:
                while len(buf) >= self.capacity and not self.stop.is_set():
                    self.cond.wait(0.1)
            if self.stop.is_set():
                return False
            buf.append(item)
            self.cond.notify_all()
            return True

    def finish(self, sid: int):
        with self.cond:
            self.open.discard(sid)
            self.cond.notify_all()

    def get(self, max_items: int = 1) -> list | None:
        """Up to ``max_items`` items (at least one; never waits for more), ``None`` at the
        end of every source or on stop."""
        n = len(self.buffers)
        with self.cond:
            while not self.stop.is_set():
                items = []
                while len(items) < max_items:
                    for k in range(n):
                        sid = (self._next + k) % n
                        if self.buffers[sid]:
                            items.append(self.buffers[sid].popleft())
                            self._next = (sid + 1) % n
                            break
                    else:
                        break
                if items:
                    self.cond.notify_all()
                    return items
                if not self.open:
                    return None
                self.cond.wait(0.1)
            return None


def _put(q: queue.Queue, item, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _get(q: queue.Queue, stop: threading.Event):
    """The next item, or ``_END`` once ``stop`` is set."""
    while not stop.is_set():
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            continue
    return _END


def cpu_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


# frames timed before the engine picks the interpreter's thread count
THREADS_PROBE_FRAMES = 24


def choose_threads(inference_ms: float, other_ms: float, cores: int, current: int = 1,
                   max_threads: int = 4) -> int:
    """Interpreter threads for a stream, from its measured stage costs (ms per frame) and
    the core count.

    A stream runs the model in one thread and the other stages (decode, preprocess,
    postprocess, render, sinks: ``other_ms`` of CPU per frame) in others, all at once. With
    ``k`` interpreter threads its rate is about ``min(k_eff / t1, cores / (t1 + other))``:
    the model alone (``t1`` = its one-thread time; ``k_eff = 1 + 0.75 (k - 1)``, what
    XNNPACK gains per extra thread on these models) or every stage's CPU shared by the
    cores. Extra threads pay only where the other stages leave a core idle (a cheap task on
    a multi-core CPU); where they do not, they fight the other stages for the same cores (on
    a 2-core machine with 50 ms of postprocess and render per frame, 2 threads made a
    segmentation stream slower). The fewest threads within 5% of the best predicted rate.
    """
    t1 = max(inference_ms, 1e-3) * (1 + 0.75 * (current - 1))  # back to one thread
    best, rates = 1, {}
    for k in range(1, max(1, min(cores, max_threads)) + 1):
        rates[k] = min((1 + 0.75 * (k - 1)) / t1, cores / (t1 + max(other_ms, 0.0)))
    top = max(rates.values())
    for k in sorted(rates):
        if rates[k] >= 0.95 * top:
            best = k
            break
    return best


def _rss_mb() -> float | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


class Stream:
    """A running pipeline over one or more sources; iterate it to get :class:`StreamResult` s.

    Normally made by :func:`run`. Iterating starts the threads; leaving the loop (``break``,
    an exception, :meth:`stop`) stops them and closes the sources and sinks.

    Args:
        task: a :class:`~visionsuite.task.Task` instance.
        model: an :class:`~visionsuite.runtime.InferenceModel`.
        sources: opened :class:`~visionsuite.streams.sources.Source` objects.
        sinks: :class:`~visionsuite.streams.sinks.Sink` objects fed in the sink thread.
        policy: drop policy of live sources, "newest" or "queue".
        queue_size: capacity of the buffers that do not drop.
        render: draw predictions on ``result.frame`` (on when a sink needs frames).
        progress: tqdm bars with ETA for file and folder sources (``None``: when stderr is a
            terminal).
        max_frames: stop after this many results.
    """

    def __init__(self, task, model, sources: Sequence[Source], *, sinks: Sequence = (),
                 policy: str = "newest", queue_size: int = 8, render: bool = False,
                 progress: bool | None = None, max_frames: int | None = None):
        if policy not in POLICIES:
            raise UsageError(f"policy must be one of {', '.join(POLICIES)}. "
                             f"Received: policy={policy!r}")
        if queue_size < 1:
            raise UsageError(f"queue_size must be >= 1. Received: queue_size={queue_size}")
        self.task = task
        self.model = model
        self.sources = list(sources)
        self.sinks = list(sinks)
        self.policy = policy
        self.queue_size = int(queue_size)
        self.render = render or any(s.needs_frame for s in self.sinks)
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.max_frames = max_frames
        self.stats: dict = {}
        self.stopped_by: str | None = None
        self._stop = threading.Event()
        self._errors: list[BaseException] = []
        self._timers = {k: _Timer() for k in ("capture", "preprocess", "inference",
                                               "postprocess", "render", "sinks")}
        self._latency = _Timer()
        self._running = False
        self._threads_phase = 0  # 0: timing, 1: trying more threads, 2: settled
        # (dict | None) how the engine chose the interpreter threads (see choose_threads)
        self.threads_choice: dict | None = None
        # (list) per source: how many states the engine made (1 + reconnects, for tests)
        self.states_created = [0] * len(self.sources)
        probe = [self._new_state(s.source_id) for s in self.sources] if self.sources else []
        self._frame_drops = [st.frame_drops for st in probe]
        self._input_drops = [st.input_drops for st in probe]
        # results that went through every sink: what the stats count (a signal can stop the
        # run between a result being written and being handed to the caller)
        self._written = [0] * len(self.sources)

    # === Control ===
    def stop(self, reason: str = "stopped") -> None:
        """Ask every stage to stop (thread-safe, also from a signal handler)."""
        if self.stopped_by is None:
            self.stopped_by = reason
        self._stop.set()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop("closed")

    def _fail(self, exc: BaseException):
        self._errors.append(exc)
        self.stop("error")

    # === Stages ===
    def _capture(self, source: Source, hub: _Hub):
        timer = self._timers["capture"]
        try:
            it = source.frames(self._stop)
            while True:
                t0 = time.perf_counter()
                frame = next(it, None)
                if frame is None:
                    break
                timer.add(time.perf_counter() - t0)
                if not hub.put(source.source_id, frame):
                    break
        except Exception as exc:  # one broken source ends alone
            log.warning("%s: stopped reading (%s: %s)", source.name, type(exc).__name__, exc)
            source.counts["failed"] += 1
        finally:
            source.close()
            hub.put(source.source_id, _SourceEnd(source.source_id))
            hub.finish(source.source_id)

    def _new_state(self, sid: int):
        source = self.sources[sid]
        meta = self.model.metadata
        return self.task.new_state(source.name, meta.input_spec, meta.classes)

    def _preprocess(self, raw: _Hub, ready: _Hub):
        timer = self._timers["preprocess"]
        states: dict[int, tuple[int, object]] = {}  # source id -> (segment, state)
        try:
            while True:
                items = raw.get(1)
                if items is None:
                    break
                frame = items[0]
                if isinstance(frame, _SourceEnd):  # end of input: drop the source's state
                    _, state = states.pop(frame.source_id, (None, None))
                    if state is not None:
                        state.close()
                    continue
                segment, state = states.get(frame.source_id, (None, None))
                if state is None or segment != frame.segment:  # opened or reconnected
                    if state is not None:
                        state.close()
                    state = self._new_state(frame.source_id)
                    states[frame.source_id] = (frame.segment, state)
                    self.states_created[frame.source_id] += 1
                meta = {"source": self.sources[frame.source_id].name, "frame": frame.index,
                        "timestamp": frame.timestamp}
                if frame.path is not None:
                    meta["path"] = frame.path
                if frame.meta:
                    meta.update(frame.meta)
                t0 = time.perf_counter()
                pushed = state.push(frame.image, meta)
                while True:
                    x = next(pushed, None)
                    if x is None:
                        break
                    timer.add(time.perf_counter() - t0)
                    if not ready.put(frame.source_id, (frame, x[0], x[1], state)):
                        return
                    t0 = time.perf_counter()
        except Exception as exc:
            self._fail(exc)
        finally:
            for sid in range(len(self.sources)):
                ready.finish(sid)

    def _maybe_set_threads(self):
        """The interpreter threads, unless the caller chose them: after
        :data:`THREADS_PROBE_FRAMES` frames, :func:`choose_threads` from the measured stage
        costs; a choice of more threads is then tried for as many frames and kept only if
        the model got at least 10 % faster (on a loaded machine extra threads may not pay)."""
        timer = self._timers["inference"]
        if self._threads_phase == 0:
            if getattr(self.model, "threads_given", True) or \
                    not hasattr(self.model, "set_threads"):
                self._threads_phase = 2
                return
            means = {k: t.total / t.count * 1000 for k, t in self._timers.items() if t.count}
            inference = means.pop("inference", 0.0)
            other = sum(means.values())
            threads = choose_threads(inference, other, cpu_cores(), self.model.threads)
            self.threads_choice = {"inference_ms": round(inference, 2),
                                   "other_ms": round(other, 2), "cores": cpu_cores(),
                                   "start": self.model.threads, "chosen": threads,
                                   "threads": self.model.threads}
            if threads == self.model.threads:
                self._threads_phase = 2
                return
            self._threads_mark = (timer.count, timer.total, inference, self.model.threads)
            self.model.set_threads(threads)
            self._threads_phase = 1
            return
        count, total, before, start = self._threads_mark
        if timer.count - count < THREADS_PROBE_FRAMES:
            return
        after = (timer.total - total) / (timer.count - count) * 1000
        self.threads_choice["tried_ms"] = round(after, 2)
        if after > 0.9 * before:  # no real gain: back to the start
            self.model.set_threads(start)
        self.threads_choice["threads"] = self.model.threads
        log.info("interpreter threads: %d (inference %.1f ms with %d, %.1f ms with %d; other "
                 "stages %.1f ms per frame; %d cores)", self.model.threads, before, start,
                 after, self.threads_choice["chosen"], self.threads_choice["other_ms"],
                 cpu_cores())
        self._threads_phase = 2

    def _infer(self, ready: _Hub, out: queue.Queue):
        timer = self._timers["inference"]
        try:
            while True:
                if self._threads_phase < 2 and timer.count >= THREADS_PROBE_FRAMES:
                    self._maybe_set_threads()
                items = ready.get(self.model.batch_size)
                if items is None:
                    break
                batch = items[0][1][None] if len(items) == 1 else \
                    np.stack([item[1] for item in items])
                t0 = time.perf_counter()
                outputs = self.model(batch)
                timer.add(time.perf_counter() - t0, len(items))
                if not _put(out, (items, outputs), self._stop):
                    break
        except Exception as exc:
            self._fail(exc)
        finally:
            _put(out, _END, self._stop)

    def _needs_input(self) -> bool:
        return any(getattr(s, "needs_input", False) for s in self.sinks)

    def _postprocess(self, inp: queue.Queue, out: queue.Queue):
        post, draw = self._timers["postprocess"], self._timers["render"]
        names = {s.source_id: s.name for s in self.sources}
        try:
            while True:
                got = _get(inp, self._stop)
                if got is _END:
                    break
                items, outputs = got
                for i, (frame, _, ctx, state) in enumerate(items):
                    t0 = time.perf_counter()
                    one = {k: v[i] for k, v in outputs.items()}
                    prediction = state.merge(one, ctx)
                    if prediction is None:  # a state that needs more outputs (tiles)
                        post.add(time.perf_counter() - t0)
                        continue
                    record = self.task.to_record(prediction)
                    t1 = time.perf_counter()
                    post.add(t1 - t0)
                    image = None
                    if self.render:
                        image = self.task.render(frame.image, prediction)
                        draw.add(time.perf_counter() - t1)
                    done = time.perf_counter()
                    result = StreamResult(names[frame.source_id], frame.source_id, frame.index,
                                          frame.timestamp, prediction, record,
                                          done - frame.captured, image, frame.path,
                                          frame.image if self._needs_input() else None)
                    self._latency.add(result.latency)
                    if not _put(out, result, self._stop):
                        return
        except Exception as exc:
            self._fail(exc)
        finally:
            _put(out, _END, self._stop)

    def _sink(self, inp: queue.Queue, out: queue.Queue):
        timer = self._timers["sinks"]
        try:
            while True:
                result = _get(inp, self._stop)
                if result is _END:
                    break
                if self.max_frames and sum(self._written) >= self.max_frames:
                    break  # never write more than max_frames results
                t0 = time.perf_counter()
                for sink in self.sinks:
                    sink.write(result)
                self._written[result.source_id] += 1
                timer.add(time.perf_counter() - t0)
                if not _put(out, result, self._stop):
                    break
        except Exception as exc:
            self._fail(exc)
        finally:
            self._close_sinks()
            _put(out, _END, self._stop)

    def _close_sinks(self):
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as exc:  # close the others anyway
                self._errors.append(exc)

    # === Driver ===
    def __iter__(self) -> Iterator[StreamResult]:
        if self._running:
            raise UsageError("a Stream can be iterated once")
        self._running = True
        n = len(self.sources)
        live = [self.policy if s.live else "queue" for s in self.sources]
        # a windowed state gets every frame; only whole assembled inputs are dropped
        raw = _Hub([p if ok else "queue" for p, ok in zip(live, self._frame_drops)],
                   self.queue_size, self._stop)
        ready = _Hub([p if ok else "queue" for p, ok in zip(live, self._input_drops)],
                     max(self.queue_size, 2 * self.model.batch_size), self._stop)
        inferred: queue.Queue = queue.Queue(maxsize=2)
        # after inference, small buffers: they only absorb jitter, and each result holds
        # a full-size annotated frame
        small = max(4, 2 * self.model.batch_size)
        rendered: queue.Queue = queue.Queue(maxsize=small)
        results: queue.Queue = queue.Queue(maxsize=small)
        threads = [threading.Thread(target=self._capture, args=(s, raw), daemon=True,
                                    name=f"vs-capture-{s.source_id}") for s in self.sources]
        threads += [
            threading.Thread(target=self._preprocess, args=(raw, ready), daemon=True,
                             name="vs-preprocess"),
            threading.Thread(target=self._infer, args=(ready, inferred), daemon=True,
                             name="vs-inference"),
            threading.Thread(target=self._postprocess, args=(inferred, rendered), daemon=True,
                             name="vs-postprocess"),
        ]
        sink_thread = threading.Thread(target=self._sink, args=(rendered, results), daemon=True,
                                       name="vs-sinks")
        threads.append(sink_thread)
        bars = self._bars()
        rss = [_rss_mb()]
        started, frames, last_rss = time.perf_counter(), 0, time.monotonic()
        per_source = [0] * n
        for t in threads:
            t.start()
        try:
            while True:
                try:
                    result = results.get(timeout=0.1)
                except queue.Empty:
                    if not sink_thread.is_alive() and results.empty():
                        break
                    continue
                if result is _END:
                    break
                frames += 1
                per_source[result.source_id] += 1
                if bars[result.source_id] is not None:
                    bars[result.source_id].update(1)
                if time.monotonic() - last_rss > 1.0:
                    rss.append(_rss_mb())
                    last_rss = time.monotonic()
                yield result
                if self.max_frames and frames >= self.max_frames:
                    self.stop("max_frames")
                    break
        finally:
            if self.stopped_by is None and not self._errors:
                lost = [s for s in self.sources if s.live and s.counts.get("failed")]
                self.stopped_by = SOURCE_LOST if lost else "end of input"
            self._stop.set()
            for t in threads:
                t.join(timeout=5.0)
            if sink_thread.is_alive():  # a stuck sink: close the files from here
                self._close_sinks()
            for s in self.sources:
                s.close()
            for bar in bars:
                if bar is not None:
                    bar.close()
            rss.append(_rss_mb())
            wall = time.perf_counter() - started
            self.stats = self._summary(sum(self._written), list(self._written), wall, raw,
                                       ready, rss)
        if self._errors:
            exc = self._errors[0]
            if isinstance(exc, VisionsuiteError):
                raise exc
            raise VisionsuiteError(f"the stream failed: {type(exc).__name__}: {exc}") from exc

    def _bars(self):
        bars = []
        for s in self.sources:
            if self.progress and not s.live:
                from tqdm import tqdm

                bars.append(tqdm(total=s.total, desc=os.path.basename(s.name)[:30] or s.name,
                                 unit="frame", position=s.source_id, leave=True,
                                 dynamic_ncols=True))
            else:
                bars.append(None)
        return bars

    def _summary(self, frames, per_source, wall, raw, ready, rss) -> dict:
        sources = []
        for s in self.sources:
            info = s.describe()
            info["results"] = per_source[s.source_id]
            info["dropped"] = raw.dropped[s.source_id] + ready.dropped[s.source_id]
            sources.append(info)
        rss = [r for r in rss if r is not None]
        return {
            "frames": frames,
            "wall_s": round(wall, 3),
            "fps": round(frames / wall, 3) if wall > 0 else None,
            "stopped_by": self.stopped_by,
            "runtime": self.model.describe(),
            "threads_choice": self.threads_choice,
            "batch_size": self.model.batch_size,
            "policy": self.policy,
            "sources": sources,
            "stages": {k: t.summary() for k, t in self._timers.items()},
            "latency": self._latency.summary(),
            "rss_mb": ({"start": round(rss[0], 1), "end": round(rss[-1], 1),
                        "max": round(max(rss), 1)} if rss else None),
        }


def format_stats(stats: dict) -> str:
    """A few human-readable lines of a run's stats."""
    lines = [f"{stats['frames']} frames in {stats['wall_s']:.1f} s ({stats['fps'] or 0:.1f} FPS), "
             f"{stats['stopped_by']}; runtime {stats['runtime']}"]
    stages = ", ".join(f"{k} {v['mean_ms']:.1f}" for k, v in stats["stages"].items()
                       if v.get("count"))
    lines.append(f"stage mean ms: {stages}")
    lat = stats["latency"]
    if lat.get("count"):
        lines.append(f"capture-to-result latency: p50 {lat['p50_ms']:.1f} ms, "
                     f"p95 {lat['p95_ms']:.1f} ms")
    for s in stats["sources"]:
        extra = [f"{s['results']} results"]
        for key in ("dropped", "skipped", "outages"):
            if s.get(key):
                extra.append(f"{s[key]} {key}")
        if s.get("failed"):
            extra.append("gave up")
        lines.append(f"  {s['name']}: {', '.join(extra)}")
    return "\n".join(lines)


def save_stats(stats: dict, path: str | Path) -> Path:
    """Write ``stats`` as JSON (atomically)."""
    from visionsuite.files import write_json_atomic

    return write_json_atomic(path, stats, default=str)


def run(task, source, *, model=None, runtime: str = "auto", threads: int | None = None,
        batch_size: int = 1, vid_stride: int = 1, policy: str = "newest", queue_size: int = 8,
        timeout: float = 10.0, reconnect: int = RECONNECT, reconnect_delay: float = 0.5,
        reconnect_delay_max: float = RECONNECT_DELAY_MAX, show: bool = False, save=None,
        results=None,
        save_frames=None, render: bool = False, progress: bool | None = False,
        max_frames: int | None = None, task_options: dict | None = None,
        sinks: Sequence = (), sources: Sequence[Source] | None = None) -> Stream:
    """Run ``task`` on one or more sources; iterate the returned :class:`Stream` for results.

    Args:
        task: a task name (``"classification"``) or a Task instance.
        source: a source spec or a list of them: camera index, video file, URL (rtsp, http(s),
            udp ...), image folder, glob or image file; the task's
            :meth:`~visionsuite.task.Task.open_source` is asked first (volumes).
        model: a model reference (see :func:`visionsuite.runtime.load_runtime`); default: the
            task's ``default_model`` when it has one.
        runtime: "auto", "keras", "savedmodel" or "tflite".
        threads: TFLite interpreter threads; default: chosen by the engine after the first
            frames from the measured stage costs and the core count (:func:`choose_threads`).
        batch_size: frames per inference call.
        vid_stride: decode every Nth video frame.
        policy: live sources keep the "newest" frame or a bounded "queue".
        queue_size: capacity of the bounded buffers.
        timeout: seconds to open a URL and to wait for a frame.
        reconnect: reconnection attempts per URL outage; ``reconnect_delay`` /
            ``reconnect_delay_max``: first and longest backoff wait in seconds (the waits
            never exceed ``timeout`` either).
        show / save / results / save_frames: sinks (window, annotated video, JSON lines,
            annotated JPEGs).
        render: draw predictions on ``result.frame`` even without a frame sink.
        progress: progress bars for files and folders (``None``: when stderr is a terminal).
        max_frames: stop after this many results.
        task_options: task config overrides, e.g. ``{"top_k": 3}``.
        sinks: more sinks, after the task's own (:meth:`~visionsuite.task.Task.sinks`)
            and before the ones above.
        sources: already made (unopened) sources instead of ``source`` specs.
    """
    from visionsuite.plugins import task_for_model
    from visionsuite.runtime import load_runtime, resolve_model
    from visionsuite.streams import sinks as sink_mod

    if model is None:
        from visionsuite.plugins import get_task_class
        from visionsuite.task import Task

        plugin = task if isinstance(task, Task) else get_task_class(str(task))()
        model = plugin.default_model()  # Task contract: a model reference or None
        if model is None:
            raise UsageError(f"task {plugin.name!r} has no default model; pass one. "
                             f"Received: model=None")
    _, metadata = resolve_model(model)
    task_obj = task_for_model(metadata, task, task_options, source=str(model))
    specs = list(sources) if sources is not None else (
        list(source) if isinstance(source, (list, tuple)) else [source])
    if not specs:
        raise UsageError("no source given. Received: source=[]")
    if save is not None:
        sink_mod.video_paths(save, len(specs))  # a bad suffix fails before anything opens
    opened: list[Source] = []
    try:
        for i, spec in enumerate(specs):
            if isinstance(spec, Source):
                spec.source_id = i
                opened.append(spec.open())
                continue
            own = task_obj.open_source(spec, i)  # a source the task reads itself (volumes)
            if own is not None:
                own.source_id = i
                opened.append(own.open())
                continue
            opened.append(open_source(spec, i, vid_stride=vid_stride, timeout=timeout,
                                      reconnect=reconnect, reconnect_delay=reconnect_delay,
                                      reconnect_delay_max=reconnect_delay_max))
        net = load_runtime(model, runtime=runtime, threads=threads, batch_size=batch_size,
                           stream=task_obj)
        stream_sinks = list(task_obj.sinks()) + list(sinks)
        stream = Stream(task_obj, net, opened, policy=policy, queue_size=queue_size,
                        render=render, progress=progress, max_frames=max_frames)
        if show:
            stream_sinks.append(sink_mod.WindowSink(on_quit=lambda: stream.stop("quit")))
        if save is not None:
            stream_sinks.append(sink_mod.VideoSink(save, [s.fps for s in opened]))
        if results is not None:
            stream_sinks.append(sink_mod.JsonlSink(results))
        if save_frames is not None:
            stream_sinks.append(sink_mod.FramesSink(save_frames))
        stream.sinks = stream_sinks
        stream.render = render or any(s.needs_frame for s in stream_sinks)
        return stream
    except BaseException:
        for s in opened:
            s.close()
        raise
