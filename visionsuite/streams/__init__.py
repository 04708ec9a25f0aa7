"""Real-time streams: sources (camera, file, URL, images), the threaded pipeline, sinks.

    >>> import visionsuite
    >>> for result in visionsuite.run("classification", "video.mp4", model="best.keras"):
    ...     print(result.source, result.index, result.record)
"""

from visionsuite.streams.pipeline import Stream, StreamResult, format_stats, run, save_stats
from visionsuite.streams.sources import Frame, Source, mask_url, open_source

__all__ = ["Frame", "Source", "Stream", "StreamResult", "format_stats", "mask_url",
           "open_source", "run", "save_stats"]
