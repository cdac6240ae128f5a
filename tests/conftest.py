import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from hypothesis import settings  # noqa: E402

# Derandomized so that CI runs the same examples every time; no deadline (2 shared cores).
settings.register_profile("focal_ref", derandomize=True, database=None, deadline=None, max_examples=150)
# The differential search's long run, by hand: HYPOTHESIS_PROFILE=long python -m pytest tests/test_search.py
# (and tests/test_search_keras.py once per Keras backend). Random (not derandomized) examples, many more of
# them; tests/test_search.py scales its own counts from this profile and prints what it searched.
settings.register_profile("long", derandomize=False, database=None, deadline=None, max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "focal_ref"))


def pytest_terminal_summary(terminalreporter):
    """Print the differential search's coverage: examples per function, framework, dtype and backend."""
    for name in ("test_search", "test_search_keras"):
        module = sys.modules.get(name)
        if module is not None and getattr(module, "COUNTS", None):
            terminalreporter.section(f"{name}: what the search covered")
            for line in module.coverage_lines():
                terminalreporter.write_line(line)
