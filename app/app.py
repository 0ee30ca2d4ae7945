"""Launch the s2dlab dashboard from a clone, or as a Hugging Face Space's entry point (`app_file: app/app.py`).

    python app/app.py runs                 # = s2dlab app runs; http://127.0.0.1:7860
    python app/app.py runs --port 8000 --share

The dashboard itself is the `s2dlab.views.dashboard` package, which ships in the wheel (`pip install "s2dlab[app]"`).
"""

import sys
from pathlib import Path

try:
    import s2dlab  # noqa: F401  (installed)
except ModuleNotFoundError:  # a clone that was not pip-installed: use the package next to this folder
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from s2dlab.views.dashboard import main  # noqa: E402

if __name__ == "__main__":
    main()
