"""Import TensorFlow without its C++ start-up noise on the terminal.

TensorFlow 2.21 logs through absl before ``TF_CPP_MIN_LOG_LEVEL`` applies ("All log messages
before absl::InitializeLog()...", oneDNN and CUDA-driver notices, a cuInit error on machines
without a GPU). No environment variable silences these, so the CLI imports TensorFlow with
file descriptor 2 captured and prints back every line that is not one of those notices.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator

_NOISE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IW]\d{4} [\d:.]+\s+\d+ \S+:\d+\] .*"
    r"|E\d{4} [\d:.]+\s+\d+ cuda_platform\.cc:\d+\] failed call to cuInit: .*"
    r"|To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler flags\."
)


# LiteRT's notice when an interpreter first applies its default CPU delegate.
LITERT_NOISE = re.compile(r"INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.")


@contextlib.contextmanager
def filtered_stderr(noise: re.Pattern = _NOISE) -> Iterator[None]:
    """Capture file descriptor 2 (what C++ libraries print) for the duration of the block,
    then print back every line that is not ``noise``. No environment variable silences these
    notices; Python-level writes to ``sys.stderr`` are captured and replayed the same way."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode("utf-8", "replace").splitlines():
                if not noise.fullmatch(line):
                    print(line, file=sys.stderr)


def import_tensorflow_quietly():
    """Import TensorFlow (and start its devices) with the start-up notices filtered out."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with filtered_stderr(_NOISE):
        import tensorflow as tf

        tf.config.list_physical_devices()
    return tf
