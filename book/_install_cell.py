# Install focal_ref if it is missing (a fresh Colab runtime); silent unless pip fails.
# The [book] extra adds kornia, a peer the chapters compare with that Colab lacks.
import importlib, importlib.util, os, subprocess, sys

if importlib.util.find_spec("focal_ref") is None:
    src = os.environ.get(
        "FOCAL_REF_SOURCE",
        "focal_ref[book] @ git+https://github.com/focal-ref/focal_ref.git")
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", src],
                         capture_output=True, text=True)
    if pip.returncode:
        raise RuntimeError(f"pip install {src!r} failed:\n{pip.stdout}{pip.stderr}")
    importlib.invalidate_caches()
