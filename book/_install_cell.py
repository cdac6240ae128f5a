# Install focal_ref when it is not importable (a fresh Colab runtime); does nothing otherwise.
# Its [book] extra adds the one package the chapters use that Colab lacks (kornia, a peer to compare with).
import importlib.util, os, subprocess, sys
if importlib.util.find_spec("focal_ref") is None:
    source = os.environ.get("FOCAL_REF_SOURCE", "focal_ref[book] @ git+https://github.com/focal-ref/focal_ref.git")
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", source])
