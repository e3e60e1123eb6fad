"""A Hub-ready model repository: the weight files, config.json and the model card (README.md).

The card's code is written for the files actually exported: a pipeline is shown only when its
propagation net and its MSN are both in the folder, loaded by name when the files are the ones
pinned in the weights table (and the repo is the default one), else by their downloaded paths.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path

from msn_core.errors import InputError, WeightsError
from msn_core.hub.files import read_weights, sha256_file
from msn_core.hub.resolve import REPO_ENV, REVISION_ENV, resolve_weights, weights_dir
from msn_core.hub.table import DEFAULT_REPO, DEFAULT_REVISION, WEIGHT_NAMES, WEIGHTS, WeightSpec, get_spec

log = logging.getLogger(__name__)

_TAGS = ["video-object-segmentation", "video-colorization", "pytorch", "safetensors"]

_CITATION = """@inproceedings{wu2020memory,
  title     = {Memory Selection Network for Video Propagation},
  author    = {Wu, Ruizheng and Lin, Huaijia and Qi, Xiaojuan and Jia, Jiaya},
  booktitle = {European Conference on Computer Vision (ECCV)},
  year      = {2020}
}"""

_EXAMPLE = "dog"  # a clip bundled with msn_core, so the card's code runs as it stands


def readme_results(readme: Path | None = None) -> str | None:
    """Body of the first '... Results ...' section of ``readme`` (default: the repository
    README), or None if it has none."""
    readme = readme or Path(__file__).resolve().parents[2] / "README.md"
    if not readme.is_file():
        return None
    lines = readme.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^(#{1,6})\s+.*\bresults?\b", line, flags=re.IGNORECASE)
        if m:
            level = len(m.group(1))
            body = []
            for nxt in lines[i + 1 :]:
                h = re.match(r"^(#{1,6})\s", nxt)
                if h and len(h.group(1)) <= level:
                    break
                body.append(nxt)
            return "\n".join(body).strip() or None
    return None


def _find_local(name: str, source_dir: Path | None) -> Path | None:
    spec = WEIGHTS[name]
    if source_dir is not None and (source_dir / spec.filename).is_file():
        return source_dir / spec.filename
    try:
        return resolve_weights(name, local_only=True)
    except WeightsError:
        return None


def _pipelines(names: set[str]) -> list[tuple[str, str, list[str], str]]:
    """(propagator, task, propagation-net names, MSN name) of every pipeline whose files are all in ``names``."""

    found = []
    for (propagator, task), (model, msn) in WEIGHT_NAMES.items():
        members = model.split("+")
        if {*members, msn} <= names:
            found.append((propagator, task, members, msn))
    return found


def _load_section(rows: list[tuple[WeightSpec, str]], repo_id: str, revision: str) -> str:
    """'How to load': msn_core.load for the first complete pipeline (if any), then one file by hand."""
    sha = {s.name: digest for s, digest in rows}
    file = {s.name: s.filename for s, _ in rows}
    first, first_sha = rows[0]
    by_hand = f"""```python
from huggingface_hub import hf_hub_download
from msn_core.hub import load_weights

path = hf_hub_download("{repo_id}", "{first.filename}", revision="{revision}")
sha256 = "{first_sha}"  # from the table above
state_dict, config = load_weights(path, expected_sha256=sha256)  # any other file is refused
print(len(state_dict), "tensors")
```"""
    pipelines = _pipelines(set(sha))
    if not pipelines:
        return (
            "This repository holds no complete pipeline (a propagation net with its MSN), so\n"
            "`msn_core.load` does not apply; read a file by hand:\n\n" + by_hand
        )

    def pinned(names: list[str]) -> bool:  # msn_core.load(...) by name fetches exactly these files
        return all(
            sha[n] == WEIGHTS[n].sha256 and (repo_id, revision) == (WEIGHTS[n].repo_id, WEIGHTS[n].revision)
            for n in names
        )

    def weights_arg(members: list[str], msn: str) -> str:  # msn_core.load(..., weights=) by path
        model = ", ".join(f'fetch("{file[n]}")' for n in members)
        model = f"[{model}]" if len(members) > 1 else model
        return f'{{"model": {model}, "msn": fetch("{file[msn]}")}}'

    propagator, task, members, msn = pipelines[0]
    if pinned([*members, msn]):
        imports, load = (
            "import msn_core\n",
            (
                f"# downloads {' and '.join(file[n] for n in [*members, msn])} from {repo_id}@{revision},\n"
                "# checks them against the sha256 pinned in msn_core and loads them strictly\n"
                f'pipe = msn_core.load("{propagator}", "{task}")'
            ),
        )
    else:
        imports = "from huggingface_hub import hf_hub_download\n\nimport msn_core\n\n"
        load = (
            "def fetch(filename):\n"
            f'    return hf_hub_download("{repo_id}", filename, revision="{revision}")\n\n\n'
            "# these files are not the ones pinned in msn_core, so they are passed by path: the digest\n"
            "# stored in each file is still checked and the networks load strictly\n"
            f"weights = {weights_arg(members, msn)}\n"
            f'pipe = msn_core.load("{propagator}", "{task}", weights=weights)'
        )
    first_input = "frames, masks[0]" if task == "mask" else "frames"
    what = "masks" if task == "mask" else "colours"
    others = "".join(
        f'\n- `msn_core.load("{p}", "{t}")`'
        if pinned([*m, s])
        else f'\n- `msn_core.load("{p}", "{t}", weights={weights_arg(m, s)})`'
        for p, t, m, s in pipelines[1:]
    )
    others = f"\n\nThe other pipelines whose files are here load the same way:{others}" if others else ""
    return f"""```python
{imports}
{load}
frames, masks = msn_core.example_sequence("{_EXAMPLE}", max_frames=3)  # a clip bundled with msn_core
for r in pipe.propagate({first_input}):  # propagates the first frame's {what}
    print(r.index, r.guides)
```{others}

or read one file by hand:

{by_hand}"""


def _model_card(rows: list[tuple[WeightSpec, str]], repo_id: str, revision: str, results: str) -> str:
    from huggingface_hub import ModelCardData

    data = ModelCardData(library_name="msn_core", license="mit", tags=_TAGS, datasets=["davis"])
    table = "\n".join(f"| `{s.name}` | `{s.filename}` | {s.description} | `{sha}` |" for s, sha in rows)
    return f"""---
{data.to_yaml()}
---

# msn_core weights: Memory Selection Network for video propagation

Weights for `msn_core`, an open implementation of *Memory Selection
Network for Video Propagation* (Wu, Lin, Qi, Jia, ECCV 2020). MSN scores every frame held in a memory
pool and picks the best guide frame for propagating masks (TPN, STM-1) or colours (TPN).

## Files

Every file is safetensors; its metadata holds the model config (also in `config.json`).

| name | file | what it is | sha256 |
|---|---|---|---|
{table}

## Training data

DAVIS-2016 (Perazzi et al., CVPR 2016, https://davischallenge.org): a subset of 15 of its
sequences, 854x480, one binary object mask per frame. The sequences were split **by sequence**
(never by frame) into a training part and a validation part; every number below is measured on the
validation sequences only. DAVIS is released for research use. The paper trains on far larger data,
so absolute numbers are lower than its tables; compare the baseline and +MSN rows.

## Evaluation

{results}

## How to load

{_load_section(rows, repo_id, revision)}

## Citation

```bibtex
{_CITATION}
```
"""


def export_hub_repo(
    out_dir: str | Path,
    names: list[str] | None = None,
    results_md: str | None = None,
    *,
    source_dir: str | Path | None = None,
) -> Path:
    """Write a Hub-ready model repo to ``out_dir``: weight files, config.json, README.md.

    Files come from ``source_dir`` (e.g. a training output folder), else the Hub cache or the
    bundled folder. ``names=None`` exports every name found; named ones must all be found.
    The card names the repo ``$MSN_HUB_REPO`` at ``$MSN_HUB_REVISION`` (default: the published one).
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(
            f"export-hub: {out} exists and is not a folder; give a folder to write the repo into"
        )
    src_dir = Path(source_dir) if source_dir is not None else None
    if src_dir is not None and not src_dir.is_dir():
        raise InputError(f"export-hub: source folder {src_dir} does not exist")
    wanted = list(WEIGHTS) if names is None else list(names)
    for n in wanted:
        get_spec(n)
    found = {n: p for n in wanted if (p := _find_local(n, src_dir)) is not None}
    missing = [n for n in wanted if n not in found]
    where = f"{src_dir}, " if src_dir else ""
    if names is not None and missing:
        raise WeightsError(
            f"export-hub: no local weights for {missing}; looked in {where}the Hub cache and {weights_dir()}"
        )
    if not found:
        raise WeightsError(f"export-hub: no weights files found in {where}the Hub cache or {weights_dir()}")
    for n in missing:
        log.warning("export-hub: no local weights for %r, left out", n)

    out.mkdir(parents=True, exist_ok=True)
    configs: dict[str, dict] = {}
    rows: list[tuple[WeightSpec, str]] = []
    for n, p in found.items():
        spec = WEIGHTS[n]
        _, config, meta = read_weights(p)
        if meta.get("name") != n:
            raise WeightsError(f"export-hub: {p} holds {meta.get('name')!r} weights, not {n!r}")
        dst = out / spec.filename
        if p.resolve() != dst.resolve():
            shutil.copyfile(p, dst)
        configs[n] = config
        rows.append((spec, sha256_file(dst)))
    (out / "config.json").write_text(json.dumps(configs, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (out / ".gitattributes").write_text(
        "*.safetensors filter=lfs diff=lfs merge=lfs -text\n", encoding="utf-8"
    )
    results = (results_md or "").strip() or readme_results() or "_No evaluation results recorded yet._"
    repo_id = os.environ.get(REPO_ENV) or DEFAULT_REPO
    revision = os.environ.get(REVISION_ENV) or DEFAULT_REVISION
    (out / "README.md").write_text(_model_card(rows, repo_id, revision, results), encoding="utf-8")
    return out
