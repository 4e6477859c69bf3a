"""The classic approach: a Flask app taking one base64 JSON POST per image.

It decodes the base64, verifies the image with Pillow (a full decode, as mobiletrain does) and
writes one file per image named by its sha256 — the shape of countless tutorials.
Run: python bench/flask_baseline.py PORT DIR
"""

from __future__ import annotations

import base64
import hashlib
import io
import sys
from pathlib import Path

from flask import Flask, jsonify, request
from PIL import Image

app = Flask(__name__)
STORE = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("flask-store")


@app.post("/upload")
def upload():  # type: ignore[no-untyped-def]
    """Store one image sent as {"image": base64, "label": str}."""
    body = request.get_json()
    data = base64.b64decode(body["image"])
    Image.open(io.BytesIO(data)).load()
    folder = STORE / body["label"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{hashlib.sha256(data).hexdigest()}.jpg").write_bytes(data)
    return jsonify({"status": "ok"})


if __name__ == "__main__":
    STORE.mkdir(parents=True, exist_ok=True)
    app.run(host="127.0.0.1", port=int(sys.argv[1]), threaded=True)
