"""The PP-OCR models ship in the rapidocr wheel, the plate head in this repository; both load with the network cut
off."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# Any attempt to open a socket or resolve a name fails in the child, so a download would be an error.
_CHILD = textwrap.dedent(
    """
    import socket

    def _refuse(*args, **kwargs):
        raise OSError("network disabled in this test")

    socket.socket.connect = _refuse
    socket.create_connection = _refuse
    socket.getaddrinfo = _refuse

    import numpy as np
    import cv2
    from services.recognition.engine import RapidOcrEngine
    from services.recognition.decoding import PlateDecoder

    engine = RapidOcrEngine(threads=1, plate_head=True)
    line = np.full((48, 200, 3), 255, np.uint8)
    cv2.putText(line, "XYZ789", (8, 38), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (0, 0, 0), 3)
    scores = engine.recognize([line])[0]
    assert scores.plate is not None and scores.plate.shape == (len(scores.probs), 37)
    assert np.allclose(scores.plate.sum(axis=1), 1.0, atol=1e-4)
    print(PlateDecoder(engine.charset).decode(scores.probs, scores.plate).text)
    """
)


def test_models_load_and_read_without_network() -> None:
    done = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "XYZ789"
