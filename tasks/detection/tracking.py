"""Multi-object tracking (ByteTrack-style), line and zone counting, and MOT metrics.

    >>> tracker = ByteTracker()
    >>> for dets in detections_per_frame:           # boxes (N, 4), scores (N,), classes (N,)
    ...     ids = tracker.update(dets.boxes, dets.scores, dets.classes)   # (N,) ids, -1: none
    >>> counter = LineCounter((0, 240, 640, 240))
    >>> counter.update(boxes, ids)                  # -> crossing events of this frame

**Tracker.** Each track holds a constant-velocity Kalman filter on ``(cx, cy, a, h)``
(centre, aspect w/h, height) whose noise scales with the box height. Per frame:

1. every track's state is predicted one frame ahead;
2. detections with ``score >= high_thresh`` are matched to the confirmed and lost tracks by
   IoU (Hungarian assignment, ``scipy.optimize.linear_sum_assignment``; pairs below
   ``match_iou`` rejected);
3. detections with ``low_thresh <= score < high_thresh`` are matched to the confirmed tracks
   left over, at ``low_match_iou`` -- the ByteTrack idea: an occluded or blurred object scores
   low but still continues its track instead of breaking it;
4. tentative tracks (seen once) are matched to the remaining high detections; the rest are
   removed;
5. lost tracks still unmatched are matched to the remaining high detections of their class
   by centre distance, within ``recover_distance`` track heights and for a box height
   within 0.7-1.4x (an addition to ByteTrack: an object that reappears off its predicted
   path no longer overlaps the prediction; ``recover_distance=0`` turns it off);
6. high detections still unmatched with ``score >= new_track_thresh`` start tentative
   tracks, confirmed at their second consecutive hit (at once on the first frame);
7. tracks unmatched for more than ``max_lost`` frames are deleted.

Measured on synthetic moving objects (8 objects, 300 frames, a simulated detector with box
noise, 10 % misses, low scores under occlusion and false positives; 6 seeds): IDF1
0.84-0.93 (median 0.91) with 0-3 ID switches; without step 5 0.75-0.91 (median 0.88) with
1-5; an oracle that gives every detection its true id reaches 0.94. On vtest.avi with the
default NanoDet: 20 person ids, 19 lasting 50+ frames and covering 99.6 % of the tracked
boxes (``tools/check_default_detector.py --track``).

Memory is bounded: a track is a fixed-size record (no history), deleted tracks are
forgotten, and at most ``max_tracks`` exist (the longest-lost go first). With
``class_aware`` a detection only continues a track of its own class.

``update`` returns one id per input detection, aligned with it (``-1`` for detections not
assigned to a confirmed track); the boxes stay the detector's (the filter only predicts).

**Counting.** :class:`LineCounter` counts a track when its anchor point (box centre, or
bottom centre with ``anchor="bottom"``) moves from one side of the segment to the other,
both sides confirmed by a distance of at least ``hysteresis`` pixels from the line: jitter
inside that band never counts, and a track counts again only after a real return. ``in``
is a move to the side where the cross product of the line direction and (point - start) is
positive: for a line drawn left to right, downwards on screen. :class:`ZoneCounter` keeps
the set of tracks inside a polygon, entering and leaving with the same hysteresis.

**MOT metrics.** :func:`mot_metrics` scores tracks against ground truth: CLEAR-MOT matching
per frame (matches of the previous frame kept while IoU >= threshold, then Hungarian),
ID switches, MOTA, and IDF1 (one-to-one assignment of predicted to true identities that
maximises the frames where they match).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import numpy as np

from visionsuite.errors import UsageError
from visionsuite_tasks.detection.boxes import iou_matrix

_INF_COST = 1e6


# === Kalman filter ===
class KalmanBoxFilter:
    """Constant-velocity Kalman filter on ``(cx, cy, a, h)`` with noise proportional to the
    box height; the state is ``(cx, cy, a, h, vcx, vcy, va, vh)``.

    Args:
        position_noise: standard deviation of position noise, as a fraction of the height.
        velocity_noise: standard deviation of velocity noise, as a fraction of the height.
    """

    def __init__(self, position_noise: float = 1.0 / 20, velocity_noise: float = 1.0 / 160):
        self.position_noise = position_noise
        self.velocity_noise = velocity_noise
        self.motion = np.eye(8)
        self.motion[:4, 4:] = np.eye(4)
        self.observe = np.eye(4, 8)

    def _std(self, h, pos_scale, vel_scale):
        p, v = self.position_noise * h * pos_scale, self.velocity_noise * h * vel_scale
        return np.array([p, p, 1e-2, p, v, v, 1e-5, v])

    def initiate(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean = np.concatenate([z, np.zeros(4)])
        std = self._std(z[3], 2.0, 10.0)
        return mean, np.diag(std ** 2)

    def predict(self, mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        q = np.diag(self._std(mean[3], 1.0, 1.0) ** 2)
        return self.motion @ mean, self.motion @ cov @ self.motion.T + q

    def update(self, mean, cov, z) -> tuple[np.ndarray, np.ndarray]:
        p = self.position_noise * mean[3]
        r = np.diag(np.array([p, p, 1e-1, p]) ** 2)
        s = self.observe @ cov @ self.observe.T + r
        gain = np.linalg.solve(s, (cov @ self.observe.T).T).T
        mean = mean + gain @ (z - self.observe @ mean)
        cov = cov - gain @ s @ gain.T
        return mean, cov


def xyxy_to_xyah(box) -> np.ndarray:
    x1, y1, x2, y2 = (float(v) for v in box)
    h = max(y2 - y1, 1e-3)
    return np.array([(x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / h, h])


def xyah_to_xyxy(z) -> np.ndarray:
    cx, cy, a, h = z[:4]
    w = a * h
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], np.float32)


# === Tracker ===
@dataclasses.dataclass
class Track:
    """One tracked object (fixed size: no history)."""

    track_id: int
    cls: int
    score: float
    mean: np.ndarray
    cov: np.ndarray
    state: str = "tentative"  # tentative | confirmed | lost
    hits: int = 1
    lost_for: int = 0
    start_frame: int = 0

    @property
    def box(self) -> np.ndarray:
        """The predicted/filtered xyxy box."""
        return xyah_to_xyxy(self.mean)


class ByteTracker:
    """ByteTrack-style multi-object tracker (see the module docstring).

    Args:
        high_thresh: detections at or above this score enter the first association.
        low_thresh: detections in ``[low_thresh, high_thresh)`` enter the second one.
        new_track_thresh: an unmatched high detection starts a track from this score.
        match_iou: minimum IoU of the first association (and of tentative tracks).
        low_match_iou: minimum IoU of the second association.
        max_lost: frames a lost track is kept for re-association before it is deleted.
        max_tracks: the most tracks kept at once (bounded memory).
        class_aware: detections only continue tracks of their own class.
        recover_distance: step 5's gate in track heights (0: off).

    Example:
        >>> tracker = ByteTracker(max_lost=30)
        >>> ids = tracker.update(boxes, scores, classes)
    """

    def __init__(self, high_thresh: float = 0.5, low_thresh: float = 0.1,
                 new_track_thresh: float = 0.6, match_iou: float = 0.1,
                 low_match_iou: float = 0.5, max_lost: int = 30, max_tracks: int = 1000,
                 class_aware: bool = True, recover_distance: float = 2.0):
        if not 0 <= low_thresh <= high_thresh <= 1:
            raise UsageError(f"need 0 <= low_thresh <= high_thresh <= 1. Received: "
                             f"low_thresh={low_thresh}, high_thresh={high_thresh}")
        if max_lost < 0 or max_tracks < 1:
            raise UsageError(f"need max_lost >= 0 and max_tracks >= 1. Received: "
                             f"max_lost={max_lost}, max_tracks={max_tracks}")
        self.high_thresh = high_thresh
        self.low_thresh = low_thresh
        self.new_track_thresh = new_track_thresh
        self.match_iou = match_iou
        self.low_match_iou = low_match_iou
        self.max_lost = int(max_lost)
        self.max_tracks = int(max_tracks)
        self.class_aware = class_aware
        self.recover_distance = float(recover_distance)
        self.kalman = KalmanBoxFilter()
        self.tracks: list[Track] = []
        self.frame = 0
        self._next_id = 1

    def get_config(self) -> dict:
        return {k: getattr(self, k) for k in (
            "high_thresh", "low_thresh", "new_track_thresh", "match_iou", "low_match_iou",
            "max_lost", "max_tracks", "class_aware", "recover_distance")}

    def reset(self) -> None:
        self.tracks, self.frame, self._next_id = [], 0, 1

    def _match(self, tracks: list[Track], boxes, classes, det_index, min_iou):
        """Hungarian IoU matching; returns (pairs [(track, det)], unmatched tracks,
        unmatched detection indices)."""
        if not tracks or not len(det_index):
            return [], list(tracks), list(det_index)
        iou = iou_matrix(np.stack([t.box for t in tracks]), boxes[det_index])
        cost = 1.0 - iou
        if self.class_aware:
            same = np.array([t.cls for t in tracks])[:, None] == classes[det_index][None, :]
            cost = np.where(same, cost, _INF_COST)
        cost = np.where(iou >= min_iou, cost, _INF_COST)
        from scipy.optimize import linear_sum_assignment

        rows, cols = linear_sum_assignment(cost)
        pairs, used_t, used_d = [], set(), set()
        for r, c in zip(rows, cols):
            if cost[r, c] < _INF_COST:
                pairs.append((tracks[r], int(det_index[c])))
                used_t.add(r)
                used_d.add(c)
        return (pairs, [t for k, t in enumerate(tracks) if k not in used_t],
                [int(d) for k, d in enumerate(det_index) if k not in used_d])

    def _match_distance(self, tracks, boxes, classes, det_index):
        """Hungarian matching on centre distance / track height (gated by
        ``recover_distance``)."""
        if not tracks or not len(det_index):
            return [], list(tracks), list(det_index)
        from scipy.optimize import linear_sum_assignment

        tb = np.stack([t.box for t in tracks])
        db = boxes[det_index]
        tc, dc = (tb[:, :2] + tb[:, 2:]) / 2, (db[:, :2] + db[:, 2:]) / 2
        th = np.maximum(tb[:, 3] - tb[:, 1], 1.0)
        dist = np.linalg.norm(tc[:, None] - dc[None], axis=-1) / th[:, None]
        dh = (db[:, 3] - db[:, 1])[None, :] / th[:, None]
        ok = (dist <= self.recover_distance) & (dh > 0.7) & (dh < 1.4)
        if self.class_aware:
            ok &= np.array([t.cls for t in tracks])[:, None] == classes[det_index][None, :]
        cost = np.where(ok, dist, _INF_COST)
        rows, cols = linear_sum_assignment(cost)
        pairs, used_t, used_d = [], set(), set()
        for r, c in zip(rows, cols):
            if cost[r, c] < _INF_COST:
                pairs.append((tracks[r], int(det_index[c])))
                used_t.add(r)
                used_d.add(c)
        return (pairs, [t for k, t in enumerate(tracks) if k not in used_t],
                [int(d) for k, d in enumerate(det_index) if k not in used_d])

    def update(self, boxes, scores, classes=None) -> np.ndarray:
        """Advance one frame with its detections; returns one track id per detection
        (``-1``: not part of a confirmed track)."""
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        scores = np.asarray(scores, np.float32).reshape(-1)
        classes = (np.zeros(len(boxes), np.int64) if classes is None
                   else np.asarray(classes, np.int64).reshape(-1))
        if not (len(boxes) == len(scores) == len(classes)):
            raise UsageError(f"boxes, scores and classes must have the same length. Received: "
                             f"{len(boxes)}, {len(scores)}, {len(classes)}")
        self.frame += 1
        ids = np.full(len(boxes), -1, np.int64)
        for t in self.tracks:
            t.mean, t.cov = self.kalman.predict(t.mean, t.cov)
        high = np.nonzero(scores >= self.high_thresh)[0]
        low = np.nonzero((scores >= self.low_thresh) & (scores < self.high_thresh))[0]
        active = [t for t in self.tracks if t.state in ("confirmed", "lost")]
        tentative = [t for t in self.tracks if t.state == "tentative"]

        # 1. high-score detections <-> confirmed and lost tracks
        pairs, left, high_left = self._match(active, boxes, classes, high, self.match_iou)
        # 2. low-score detections <-> confirmed tracks left over (lost ones are not revived
        #    by low-score boxes)
        pairs2, left2, _ = self._match([t for t in left if t.state == "confirmed"], boxes,
                                       classes, low, self.low_match_iou)
        # 3. tentative tracks <-> remaining high detections
        pairs3, unconfirmed_left, high_left = self._match(tentative, boxes, classes,
                                                          np.asarray(high_left, np.int64),
                                                          self.match_iou)
        # 3b. lost tracks <-> remaining high detections by centre distance (an object that
        #     reappears off its predicted path no longer overlaps the prediction)
        pairs4 = []
        if self.recover_distance > 0:
            lost = [t for t in left if t.state == "lost"]
            pairs4, _, high_left = self._match_distance(lost, boxes, classes,
                                                        np.asarray(high_left, np.int64))
        for track, d in pairs + pairs2 + pairs3 + pairs4:
            track.mean, track.cov = self.kalman.update(track.mean, track.cov,
                                                       xyxy_to_xyah(boxes[d]))
            track.score, track.cls = float(scores[d]), int(classes[d])
            track.hits += 1
            track.lost_for = 0
            track.state = "confirmed"
            ids[d] = track.track_id
        gone = {id(t) for t in unconfirmed_left}
        for t in left2 + [t for t in left if t.state == "lost"]:
            t.state = "lost"
            t.lost_for += 1
            if t.lost_for > self.max_lost:
                gone.add(id(t))
        self.tracks = [t for t in self.tracks if id(t) not in gone]
        # 4. new tracks from confident unmatched detections
        for d in high_left:
            if scores[d] < self.new_track_thresh:
                continue
            mean, cov = self.kalman.initiate(xyxy_to_xyah(boxes[d]))
            track = Track(self._next_id, int(classes[d]), float(scores[d]), mean, cov,
                          start_frame=self.frame)
            self._next_id += 1
            if self.frame == 1:
                track.state = "confirmed"
                ids[d] = track.track_id
            self.tracks.append(track)
        if len(self.tracks) > self.max_tracks:  # bounded: drop the longest-lost first
            self.tracks.sort(key=lambda t: (-t.lost_for, t.start_frame))
            self.tracks = self.tracks[len(self.tracks) - self.max_tracks:]
        return ids


# === Counting ===
def _parse_points(values, what: str, count: int | None = None) -> np.ndarray:
    if isinstance(values, str):
        try:
            values = [float(v) for v in values.replace(";", ",").split(",") if v.strip()]
        except ValueError:
            raise UsageError(f"{what} must be comma-separated numbers. Received: "
                             f"{values!r}") from None
    pts = np.asarray(values, np.float64).reshape(-1)
    if pts.size % 2 or (count is not None and pts.size != 2 * count) or (
            count is None and pts.size < 6) or not np.all(np.isfinite(pts)):
        need = f"{count} points" if count else "at least 3 points"
        raise UsageError(f"{what} needs {need} (x, y pairs). Received: {list(pts)}")
    return pts.reshape(-1, 2)


def anchor_points(boxes, anchor: str = "center") -> np.ndarray:
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    cx = (b[:, 0] + b[:, 2]) / 2
    if anchor == "bottom":
        return np.stack([cx, b[:, 3]], 1)
    if anchor == "center":
        return np.stack([cx, (b[:, 1] + b[:, 3]) / 2], 1)
    raise UsageError(f"anchor must be 'center' or 'bottom'. Received: anchor={anchor!r}")


class LineCounter:
    """Counts tracks crossing a line segment, with per-track hysteresis.

    Args:
        line: ``(x1, y1, x2, y2)`` or ``"x1,y1,x2,y2"``, in source pixels.
        hysteresis: distance (pixels) from the line a point must reach on a side for that side
            to count; default 2 % of the line length, at least 2 px.
        anchor: ``center`` or ``bottom`` (bottom centre: feet of walkers) of the box.
        forget_after: frames after which an unseen track's side is forgotten.
    """

    def __init__(self, line, hysteresis: float | None = None, anchor: str = "center",
                 forget_after: int = 300):
        pts = _parse_points(line, "line", 2)
        self.start, self.end = pts[0], pts[1]
        d = self.end - self.start
        self.length = float(np.hypot(*d))
        if self.length == 0:
            raise UsageError(f"line end points must differ. Received: line={pts.ravel().tolist()}")
        self.hysteresis = float(hysteresis if hysteresis is not None
                                else max(2.0, 0.02 * self.length))
        self.anchor = anchor
        self.forget_after = int(forget_after)
        self.counts = {"in": 0, "out": 0}
        self._side: dict[int, tuple[int, int]] = {}  # id -> (confirmed side, last seen frame)
        self._frame = 0

    @property
    def line(self) -> tuple[float, float, float, float]:
        return (*self.start.tolist(), *self.end.tolist())

    def update(self, boxes, track_ids) -> list[tuple[int, str]]:
        """Feed one frame; returns this frame's crossings ``[(track_id, "in"|"out")]``."""
        self._frame += 1
        pts = anchor_points(boxes, self.anchor)
        d = self.end - self.start
        events = []
        for p, tid in zip(pts, np.asarray(track_ids).reshape(-1)):
            tid = int(tid)
            if tid < 0:
                continue
            rel = p - self.start
            signed = (d[0] * rel[1] - d[1] * rel[0]) / self.length  # > 0: the "in" side
            along = (rel @ d) / self.length
            side = 1 if signed >= self.hysteresis else -1 if signed <= -self.hysteresis else 0
            within = -self.hysteresis <= along <= self.length + self.hysteresis
            prev = self._side.get(tid)
            if side == 0 or not within:
                if prev is not None:
                    self._side[tid] = (prev[0], self._frame)
                continue
            if prev is not None and prev[0] != side:
                direction = "in" if side > 0 else "out"
                self.counts[direction] += 1
                events.append((tid, direction))
            self._side[tid] = (side, self._frame)
        if self._frame % 64 == 0:  # bounded: forget tracks not seen for a while
            self._side = {k: v for k, v in self._side.items()
                          if self._frame - v[1] <= self.forget_after}
        return events


class ZoneCounter:
    """Occupancy of a polygon zone, with per-track hysteresis at its border.

    Args:
        polygon: ``[(x, y), ...]`` (3+ points) or ``"x1,y1,x2,y2,x3,y3,..."``.
        hysteresis: a track enters when its anchor is this many pixels inside, and leaves
            when it is this many pixels outside (default 2 px).
        anchor: ``center`` or ``bottom``.
    """

    def __init__(self, polygon, hysteresis: float = 2.0, anchor: str = "center"):
        self.polygon = _parse_points(polygon, "zone")
        self.hysteresis = float(hysteresis)
        self.anchor = anchor
        self.inside: set[int] = set()
        self.entered = 0

    def signed_distance(self, points) -> np.ndarray:
        """Distance of each point to the border, > 0 inside."""
        import cv2

        contour = self.polygon.astype(np.float32).reshape(-1, 1, 2)
        return np.array([cv2.pointPolygonTest(contour, (float(x), float(y)), True)
                         for x, y in np.asarray(points).reshape(-1, 2)])

    def update(self, boxes, track_ids) -> int:
        """Feed one frame; returns the number of tracks inside. Tracks absent from the
        frame leave the zone."""
        ids = np.asarray(track_ids).reshape(-1)
        dist = self.signed_distance(anchor_points(boxes, self.anchor))
        now = set()
        for tid, d in zip(ids, dist):
            tid = int(tid)
            if tid < 0:
                continue
            if d >= self.hysteresis or (tid in self.inside and d > -self.hysteresis):
                now.add(tid)
        self.entered += len(now - self.inside)
        self.inside = now
        return len(now)


# === MOT metrics ===
def _frame_matches(gt_ids, gt_boxes, pr_ids, pr_boxes, previous: dict, threshold: float):
    """CLEAR-MOT matching of one frame: {gt_id: pred_id}."""
    from scipy.optimize import linear_sum_assignment

    if not len(gt_ids) or not len(pr_ids):
        return {}
    iou = iou_matrix(gt_boxes, pr_boxes)
    matches = {}
    gt_pos = {g: k for k, g in enumerate(gt_ids)}
    pr_pos = {p: k for k, p in enumerate(pr_ids)}
    for g, p in previous.items():  # keep last frame's matches while they still overlap
        if g in gt_pos and p in pr_pos and iou[gt_pos[g], pr_pos[p]] >= threshold:
            matches[g] = p
    free_g = [k for k, g in enumerate(gt_ids) if g not in matches]
    used_p = set(matches.values())
    free_p = [k for k, p in enumerate(pr_ids) if p not in used_p]
    if free_g and free_p:
        sub = iou[np.ix_(free_g, free_p)]
        cost = np.where(sub >= threshold, 1 - sub, _INF_COST)
        rows, cols = linear_sum_assignment(cost)
        for r, c in zip(rows, cols):
            if cost[r, c] < _INF_COST:
                matches[gt_ids[free_g[r]]] = pr_ids[free_p[c]]
    return matches


def mot_metrics(ground_truth: Sequence[Iterable], predictions: Sequence[Iterable], *,
                iou_threshold: float = 0.5) -> dict:
    """Score tracks: ``ground_truth[f]`` and ``predictions[f]`` list ``(id, (x1, y1, x2,
    y2))`` for frame ``f``. Returns ``idf1``, ``idp``, ``idr``, ``id_switches``, ``mota``,
    ``matches``, ``false_positives``, ``misses``, ``gt``, ``predicted``."""
    from scipy.optimize import linear_sum_assignment

    if len(ground_truth) != len(predictions):
        raise UsageError(f"need one prediction list per frame. Received: {len(ground_truth)} "
                         f"ground-truth frames, {len(predictions)} predicted")
    previous, last_match = {}, {}
    switches = matched = n_gt = n_pr = 0
    pair_frames: dict[tuple, int] = {}
    for gt, pr in zip(ground_truth, predictions):
        gt, pr = list(gt), list(pr)
        gt_ids = [int(g) for g, _ in gt]
        pr_ids = [int(p) for p, _ in pr]
        gt_boxes = np.asarray([b for _, b in gt], np.float32).reshape(-1, 4)
        pr_boxes = np.asarray([b for _, b in pr], np.float32).reshape(-1, 4)
        n_gt += len(gt_ids)
        n_pr += len(pr_ids)
        matches = _frame_matches(gt_ids, gt_boxes, pr_ids, pr_boxes, previous, iou_threshold)
        for g, p in matches.items():
            if g in last_match and last_match[g] != p:
                switches += 1
            last_match[g] = p
        matched += len(matches)
        previous = matches
        # identity matching counts every frame where a (gt, pred) pair overlaps enough
        if len(gt_ids) and len(pr_ids):
            iou = iou_matrix(gt_boxes, pr_boxes)
            for i, j in zip(*np.nonzero(iou >= iou_threshold)):
                key = (gt_ids[i], pr_ids[j])
                pair_frames[key] = pair_frames.get(key, 0) + 1
    gts = sorted({g for g, _ in pair_frames})
    prs = sorted({p for _, p in pair_frames})
    idtp = 0
    if gts and prs:
        weight = np.zeros((len(gts), len(prs)))
        gi, pi = {g: k for k, g in enumerate(gts)}, {p: k for k, p in enumerate(prs)}
        for (g, p), n in pair_frames.items():
            weight[gi[g], pi[p]] = n
        rows, cols = linear_sum_assignment(-weight)
        idtp = int(weight[rows, cols].sum())
    fp, fn = n_pr - matched, n_gt - matched
    return {"idf1": 2 * idtp / (n_gt + n_pr) if n_gt + n_pr else 1.0,
            "idp": idtp / n_pr if n_pr else 1.0, "idr": idtp / n_gt if n_gt else 1.0,
            "id_switches": switches, "mota": 1 - (fn + fp + switches) / n_gt if n_gt else 1.0,
            "matches": matched, "false_positives": fp, "misses": fn, "gt": n_gt,
            "predicted": n_pr}


# === Per-stream glue ===
class TrackAndCount:
    """A tracker with optional line and zone counters: what one video stream's state owns.

    Args:
        line: counting line ``(x1, y1, x2, y2)`` or ``"x1,y1,x2,y2"`` (None: no line).
        zone: polygon ``[(x, y), ...]`` or ``"x1,y1,x2,y2,x3,y3,..."`` (None: no zone).
        anchor: box point used by the counters: ``center`` or ``bottom``.
        **tracker_kwargs: :class:`ByteTracker` arguments.

    Example:
        >>> tc = TrackAndCount(line="0,300,768,300")
        >>> dets = detections_from_outputs(outputs, meta, conf=tc.tracker.low_thresh)
        >>> shown, ids, info = tc.step(dets, conf=0.35)   # info: counts, events, occupancy
    """

    def __init__(self, line=None, zone=None, anchor: str = "center", **tracker_kwargs):
        self.tracker = ByteTracker(**tracker_kwargs)
        self.line = LineCounter(line, anchor=anchor) if line is not None else None
        self.zone = ZoneCounter(zone, anchor=anchor) if zone is not None else None

    def step(self, dets, conf: float):
        """Track one frame's detections (NMS'd with a threshold at or below the tracker's
        ``low_thresh``); returns the detections to show -- score >= ``conf``, or continuing
        a track -- their track ids (-1: untracked), and ``{"counts", "events",
        "occupancy"}`` for the counters present."""
        ids = self.tracker.update(dets.boxes, dets.scores, dets.classes)
        keep = (dets.scores >= conf) | (ids >= 0)
        shown, ids = dets.select(keep), ids[keep]
        info = {}
        if self.line is not None:
            events = self.line.update(shown.boxes, ids)
            info["events"] = [{"track_id": t, "direction": d} for t, d in events]
            info["counts"] = dict(self.line.counts)
        if self.zone is not None:
            info["occupancy"] = self.zone.update(shown.boxes, ids)
        return shown, ids, info
