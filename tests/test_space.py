"""The Hugging Face Space folder: its YAML, its pins, and the staged app answering a request."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import gradio
import pytest
import yaml
from demo_server import free_port

ROOT = Path(__file__).resolve().parents[1]
SPACE = ROOT / "hf_space"
REQUIRED = {"title", "emoji", "sdk", "sdk_version", "python_version", "app_file", "suggested_hardware",
            "license", "models"}


def front_matter(path: Path) -> dict:
    text = path.read_text()
    assert text.startswith("---\n"), "the Space README must open with YAML front matter"
    return yaml.safe_load(text.split("---\n", 2)[1])


def test_yaml_parses_and_holds_the_required_keys():
    meta = front_matter(SPACE / "README.md")
    assert REQUIRED <= set(meta), f"missing: {REQUIRED - set(meta)}"
    assert meta["sdk"] == "gradio"
    assert meta["sdk_version"] == gradio.__version__  # pinned to the Gradio the tests ran
    assert (SPACE / meta["app_file"]).is_file()
    assert str(meta["python_version"]).startswith("3.")
    assert meta["models"] and all("/" in m for m in meta["models"])


def test_space_requirements_match_the_project_pins():
    def pins(path):
        return {
            line.split("==")[0].lower(): line.split("==")[1].strip()
            for line in path.read_text().splitlines()
            if "==" in line and not line.startswith("#")
        }

    space, project = pins(SPACE / "requirements.txt"), pins(ROOT / "requirements.txt")
    for name, version in space.items():
        assert project.get(name) == version, f"{name}: Space pins {version}, project pins {project.get(name)}"
    assert {"torch", "torchvision", "huggingface_hub"} <= set(space)


@pytest.mark.slow
def test_staged_space_builds_and_answers_a_request(tmp_path):
    """Stage the Space exactly as push.py uploads it, start its app.py from the staged
    folder (so it imports the staged msn_core/ and demos/), and drive it with gradio_client."""
    from gradio_client import Client

    staged = tmp_path / "space"
    subprocess.run([sys.executable, str(SPACE / "push.py"), "--stage-only", str(staged)], check=True)
    assert {"app.py", "README.md", "requirements.txt", "msn_core", "demos"} <= {p.name for p in staged.iterdir()}
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
           "HF_HUB_OFFLINE": "1", "MSN_DEMO_MAX_SIDE": "240", "MSN_DEMO_MAX_FRAMES": "6",
           "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONPATH": ""}
    # run from a neutral folder so only the staged packages can be imported
    proc = subprocess.Popen([sys.executable, str(staged / "app.py")], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 120
        client = None
        while time.monotonic() < deadline and client is None:
            if proc.poll() is not None:
                pytest.fail(f"the Space app exited: {proc.stdout.read()[-3000:]}")
            try:
                client = Client(url, verbose=False)
            except Exception:
                time.sleep(1)
        assert client is not None, "the Space app did not come up within 120 s"
        client.predict("dog", api_name="/segment_load_example")
        status, _live, video, files = client.predict("tpn", "msn", 4, api_name="/segment_run")
        assert "Done" in status and "4 frames" in status
        assert Path(video).stat().st_size > 0 and len(files) == 3
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
