"""Stage the Space (this folder + the project's msn_core/ and demos/) and upload it.

    python hf_space/push.py --repo-id USER/SPACE        # stage to a temp folder and upload
    python hf_space/push.py --stage-only DIR            # only stage into DIR (to push with git)
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SPACE_FILES = ("README.md", "app.py", "requirements.txt")
PACKAGES = ("msn_core", "demos")
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints")


def stage(dest: Path) -> Path:
    """Copy the Space files and the two packages into ``dest`` (created; must be empty)."""
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise SystemExit(f"{dest} is not empty; give an empty or new folder")
    for name in SPACE_FILES:
        shutil.copy2(HERE / name, dest / name)
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, dest / pkg, ignore=IGNORE)
    (dest / ".gitattributes").write_text("*.safetensors filter=lfs diff=lfs merge=lfs -text\n")
    return dest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--repo-id", help="the Space to upload to, e.g. USER/msn-video-propagation")
    g.add_argument("--stage-only", type=Path, metavar="DIR", help="only copy the Space's files into DIR")
    args = p.parse_args(argv)
    if args.stage_only:
        print(f"staged the Space in {stage(args.stage_only)}")
        return 0
    from huggingface_hub import HfApi

    with tempfile.TemporaryDirectory() as tmp:
        folder = stage(Path(tmp) / "space")
        api = HfApi()
        api.create_repo(args.repo_id, repo_type="space", space_sdk="gradio", exist_ok=True)
        api.upload_folder(repo_id=args.repo_id, repo_type="space", folder_path=folder,
                          commit_message="Update the MSN demo")
    print(f"uploaded to https://huggingface.co/spaces/{args.repo_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
