"""Open the app headless (streamlit.testing's AppTest), pick a checkpoint of the server's model
folder by name and caption one photo: the check of docs/own_photos.md on a machine without a
browser. Prints the model's description and the caption the page shows.

    CAPTIONER_MODEL_DIR=runs/own_photos/models python scripts/app_caption_check.py \
        coco_dev_coco.pt ../shared/data/coco_dev/images/191381.jpg
"""
from __future__ import annotations

import sys
from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = Path(__file__).resolve().parents[1] / "app.py"


def main(model: str, photo: str) -> int:
    app = AppTest.from_file(str(APP), default_timeout=300).run()
    app.sidebar.radio(key="model_source").set_value("folder").run()
    offered = app.selectbox(key="model_file").options
    print(f"model folder offers: {', '.join(offered)}")
    app.selectbox(key="model_file").set_value(model).run()
    # The photo uploader's key changes when an example clears it: find it by its prefix.
    [uploader] = [u for u in app.file_uploader if u.key.startswith("upload_")]
    uploader.set_value((Path(photo).name, Path(photo).read_bytes(), "image/jpeg"))
    app.run()
    problems = [e.value for e in app.error] + [str(e.value) for e in app.exception]
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    described = [c.value for c in app.sidebar.caption]
    print(f"model: {model} ({'; '.join(described)})")
    print(f"caption of {Path(photo).name}: {app.main.header[0].value}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
