import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from hypothesis import settings

# Derandomized so that CI runs the same examples every time; no deadline (2 shared cores).
settings.register_profile("focal_ref", derandomize=True, database=None, deadline=None, max_examples=150)
settings.load_profile("focal_ref")
