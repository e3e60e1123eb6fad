"""Weights files and the Hub: real hf_hub_download against a Hub-like server on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import json
import logging
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from hubserver import HubServer, child_env, commit_for, isolate_hub_env
from safetensors import safe_open
from torch import nn

from msn_core import cli
from msn_core import hub as H
from msn_core.errors import InputError, WeightsError
from msn_core.hub import resolve

REPO = "test-org/msn-test"
BUNDLED = Path(H.__file__).resolve().parents[1] / "weights"
CONFIG = {"task": "mask", "width": 4, "nested": {"k": [1, 2]}}


def _module() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))


@pytest.fixture
def env(tmp_path, monkeypatch):
    """Server + an environment of its own, whatever the caller exported (HF_HUB_OFFLINE,
    HF_ENDPOINT, MSN_WEIGHTS_DIR, ...): online, an empty default cache, bundled weights in a
    temp folder, no endpoint remembered as unreachable, telemetry off (it would add a request).
    """
    isolate_hub_env(monkeypatch, tmp_path)
    H.forget_unreachable()
    bundled = tmp_path / "bundled"
    bundled.mkdir()
    monkeypatch.setenv(H.WEIGHTS_DIR_ENV, str(bundled))
    with HubServer(tmp_path / "served") as server:
        monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
        yield dataclasses.make_dataclass("Env", ["hub", "bundled", "cache", "tmp"])(
            server, bundled, tmp_path / "cache", tmp_path
        )


def _publish(env, revision: str = "v1", name: str = "tpn-mask") -> tuple[dict, Path]:
    sd = _module().state_dict()
    src = env.tmp / "src" / H.WEIGHTS[name].filename
    H.save_weights(sd, src, CONFIG, name)
    env.hub.publish(REPO, revision, src)
    return sd, src


def _resolve(env, revision: str = "v1", name: str = "tpn-mask", **kw) -> Path:
    return H.resolve_weights(name, repo_id=REPO, revision=revision, cache_dir=env.cache, **kw)


# ----------------------------------------------------------------------- download


def test_download_round_trip_then_cache(env):
    sd, _ = _publish(env)
    path = _resolve(env)
    assert env.cache in path.parents and path.name == "tpn_mask.safetensors"
    gets = env.hub.count("GET", "/resolve/v1/tpn_mask.safetensors")
    assert gets == 1 and env.hub.count("HEAD", "/resolve/v1/") == 1
    loaded, config = H.load_weights(path)
    assert config == CONFIG and set(loaded) == set(sd)
    for k, v in sd.items():
        assert loaded[k].dtype == (torch.float32 if v.is_floating_point() else v.dtype)
        assert torch.equal(loaded[k], v)
    again = _resolve(env)  # a tag is re-checked with HEAD, the body comes from the cache
    assert again == path and env.hub.count("GET") == gets and env.hub.count("HEAD") == 2


def test_commit_revision_served_from_cache_without_requests(env):
    rev = "0123456789abcdef0123456789abcdef01234567"
    _publish(env, rev)
    first = _resolve(env, rev)
    assert commit_for(REPO, rev) in str(first)
    n = len(env.hub.requests)
    assert _resolve(env, rev) == first and len(env.hub.requests) == n


def test_lfs_style_redirect_to_other_host(env):
    env.hub.lfs_redirect = True
    sd, src = _publish(env)
    path = _resolve(env)
    assert env.hub.count("GET", "/cdn/") == 1 and env.hub.count("GET", "/resolve/") == 0
    assert H.sha256_file(path) == H.sha256_file(src)
    assert torch.equal(H.load_weights(path)[0]["0.weight"], sd["0.weight"])


def test_env_overrides_repo_and_revision(env, monkeypatch):
    _publish(env, "v2")
    monkeypatch.setenv(H.REPO_ENV, REPO)
    monkeypatch.setenv(H.REVISION_ENV, "v2")
    path = H.resolve_weights("tpn-mask", cache_dir=env.cache)
    assert env.cache in path.parents and env.hub.count("GET", f"/{REPO}/resolve/v2/") == 1


# ------------------------------------------------------------------ fallbacks


def test_offline_uses_bundled_without_touching_server(env, monkeypatch):
    _publish(env)
    H.save_weights(_module().state_dict(), env.bundled / "tpn_mask.safetensors", CONFIG, "tpn-mask")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert _resolve(env) == env.bundled / "tpn_mask.safetensors"
    assert env.hub.requests == []


def test_offline_still_uses_the_cache(env, monkeypatch):
    _publish(env)
    cached = _resolve(env)
    n = len(env.hub.requests)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert _resolve(env) == cached
    assert _resolve(env, local_only=True) == cached and len(env.hub.requests) == n


@pytest.mark.parametrize("published", [False, True], ids=["repo-404", "entry-404"])
def test_404_falls_back_to_bundled_with_warning(env, caplog, published):
    if published:
        _publish(env, name="stm")  # repo exists, file does not
    H.save_weights(_module().state_dict(), env.bundled / "tpn_mask.safetensors", CONFIG, "tpn-mask")
    with caplog.at_level(logging.WARNING, logger="msn_core.hub"):
        path = _resolve(env)
    assert path == env.bundled / "tpn_mask.safetensors"
    assert env.hub.count("HEAD", f"/{REPO}/resolve/v1/tpn_mask.safetensors") >= 1
    assert "bundled" in caplog.text and ("NotFound" in caplog.text)


def test_endpoint_that_is_not_a_hub_is_not_asked_again_for_a_while(env, monkeypatch, caplog):
    env.hub.not_hub = True
    for n in ("tpn-mask", "stm"):
        H.save_weights(_module().state_dict(), env.bundled / H.WEIGHTS[n].filename, CONFIG, n)
    with caplog.at_level(logging.WARNING, logger="msn_core.hub"):
        assert _resolve(env) == env.bundled / "tpn_mask.safetensors"
        assert len(env.hub.requests) == 1 and "HF_HUB_OFFLINE=1" in caplog.text
        assert _resolve(env, name="stm") == env.bundled / "stm.safetensors"
    assert len(env.hub.requests) == 1 and "unreachable" in caplog.text
    monkeypatch.setattr(resolve, "UNREACHABLE_RETRY_S", 0.0)
    _resolve(env, name="stm")
    assert len(env.hub.requests) == 2


def test_nothing_anywhere_lists_what_was_tried(env):
    with pytest.raises(WeightsError) as err:
        _resolve(env)
    msg = str(err.value)
    assert f"{REPO}@v1/tpn_mask.safetensors" in msg and "RepositoryNotFound" in msg
    assert str(env.bundled / "tpn_mask.safetensors") in msg


def test_explicit_path_and_bad_names(env, tmp_path):
    f = tmp_path / "mine.safetensors"
    H.save_weights(_module().state_dict(), f, CONFIG, "tpn-mask")
    assert H.resolve_weights("tpn-mask", f) == f and env.hub.requests == []
    with pytest.raises(WeightsError, match="does not exist"):
        H.resolve_weights("tpn-mask", tmp_path / "nope.safetensors")
    with pytest.raises(InputError, match="known names"):
        H.resolve_weights("resnet")


# -------------------------------------------------------------- file checks


def _saved(tmp_path, **kw) -> tuple[dict, Path, str]:
    sd = _module().state_dict()
    path = tmp_path / "w.safetensors"
    return sd, path, H.save_weights(sd, path, CONFIG, "tpn-mask", **kw)


def test_save_is_atomic_and_returns_sha(tmp_path):
    _, path, sha = _saved(tmp_path)
    assert sha == H.sha256_file(path) and [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    assert (
        meta["format"] == "msn_core" and meta["name"] == "tpn-mask" and json.loads(meta["config"]) == CONFIG
    )
    with pytest.raises(InputError, match="JSON"):
        H.save_weights({}, tmp_path / "x.safetensors", {"a": object()}, "tpn-mask")
    assert not (tmp_path / "x.safetensors").exists()


def test_tampered_file_is_refused(tmp_path):
    _, path, sha = _saved(tmp_path)
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0x01  # one bit of tensor data
    path.write_bytes(bytes(raw))
    with pytest.raises(WeightsError, match="does not match the digest"):
        H.load_weights(path)
    with pytest.raises(WeightsError) as err:
        H.load_weights(path, expected_sha256=sha)
    assert sha in str(err.value) and H.sha256_file(path) in str(err.value)


def test_truncated_file_is_refused(tmp_path):
    _, path, _ = _saved(tmp_path)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(WeightsError, match="truncated"):
        H.load_weights(path)
    path.write_bytes(b"\x10\x00")
    with pytest.raises(WeightsError, match="not a safetensors"):
        H.load_weights(path)


class _Canary:
    """Unpickling this creates a file: proof that a loader ran the pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("how", ["pickle", "torch.save"])
def test_pickle_renamed_is_refused_and_never_unpickled(tmp_path, how):
    marker = tmp_path / "unpickled"
    payload = {"0.weight": torch.zeros(2), "canary": _Canary(marker)}
    path = tmp_path / "evil.safetensors"
    if how == "pickle":
        path.write_bytes(pickle.dumps(payload, protocol=4))
        pickle.loads(path.read_bytes())  # the canary is live
        assert marker.exists()
        marker.unlink()
    else:
        torch.save(payload, path)
    with pytest.raises(WeightsError, match="pickle"):
        H.load_weights(path)
    assert not marker.exists()


def test_fp16_save_loads_as_float32(tmp_path):
    sd, path, _ = _saved(tmp_path, half=True)
    with safe_open(str(path), "pt") as f:
        assert f.get_tensor("0.weight").dtype == torch.float16
        assert f.get_tensor("1.num_batches_tracked").dtype == torch.int64
    loaded, _ = H.load_weights(path)
    assert loaded["0.weight"].dtype == torch.float32
    for k, v in sd.items():
        assert torch.allclose(loaded[k], v.to(loaded[k].dtype), atol=1e-3, rtol=0)
    with pytest.raises(InputError, match="float16"):
        H.save_weights({"w": torch.tensor([1e6])}, tmp_path / "big.safetensors", {}, "x", half=True)


def test_foreign_safetensors_is_refused(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(WeightsError, match="not an msn_core weights file"):
        H.load_weights(path)


def test_load_named_checks_pinned_sha_and_name(env, monkeypatch):
    _, src = _publish(env)
    spec = H.WEIGHTS["tpn-mask"]
    kw = {"repo_id": REPO, "revision": "v1", "cache_dir": env.cache}
    monkeypatch.setitem(H.WEIGHTS, "tpn-mask", dataclasses.replace(spec, sha256=H.sha256_file(src)))
    sd, config = H.load_named("tpn-mask", **kw)
    assert config == CONFIG and torch.equal(sd["0.bias"], _module().state_dict()["0.bias"])
    monkeypatch.setitem(H.WEIGHTS, "tpn-mask", dataclasses.replace(spec, sha256="0" * 64))
    with pytest.raises(WeightsError, match="expected 0000"):
        H.load_named("tpn-mask", **kw)
    with pytest.raises(WeightsError, match="holds 'tpn-mask' weights, not 'stm'"):
        H.load_named("stm", src)


def test_load_into_is_strict(tmp_path):
    _, path, _ = _saved(tmp_path)
    sd, _ = H.load_weights(path)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    H.load_into(model, sd)
    assert torch.equal(model[0].weight, sd["0.weight"])
    with pytest.raises(WeightsError, match=r"missing keys \['1.bias'\].*unexpected keys \['extra'\]"):
        H.load_into(model, {**{k: v for k, v in sd.items() if k != "1.bias"}, "extra": torch.zeros(1)})
    with pytest.raises(WeightsError, match="shape mismatch"):
        H.load_into(nn.Sequential(nn.Conv2d(3, 5, 3), nn.BatchNorm2d(4)), sd)


# -------------------------------------------------------------------- export


def _front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_export_hub_repo(env, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    sha = H.save_weights(_module().state_dict(), env.bundled / "tpn_mask.safetensors", CONFIG, "tpn-mask")
    out = H.export_hub_repo(env.tmp / "repo", results_md="| method | J |\n|---|---|\n| TPN | 0.5 |")
    assert env.hub.requests == []
    meta = _front_matter((out / "README.md").read_text())
    assert meta["library_name"] == "msn_core" and meta["datasets"] == ["davis"] and meta["license"]
    assert set(meta["tags"]) >= {"video-object-segmentation", "video-colorization", "pytorch", "safetensors"}
    card = (out / "README.md").read_text()
    assert "| TPN | 0.5 |" in card and sha in card
    # one file, no pipeline: only the by-hand block, pinned to the exported file (run below for full repos)
    (block,) = _python_blocks(card)
    assert "msn_core.load(" not in card and "no complete pipeline" in card
    assert f'hf_hub_download("{H.DEFAULT_REPO}", "tpn_mask.safetensors"' in block and sha in block
    assert "DAVIS-2016" in card and "validation" in card
    assert json.loads((out / "config.json").read_text()) == {"tpn-mask": CONFIG}
    assert H.sha256_file(out / "tpn_mask.safetensors") == sha
    with pytest.raises(WeightsError, match="stm"):
        H.export_hub_repo(env.tmp / "repo2", names=["tpn-mask", "stm"])


def _python_blocks(card: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", card, flags=re.MULTILINE | re.DOTALL)


# Runs each code block (a JSON list on stdin) in a fresh namespace, as a reader pasting it would,
# then prints what the block made.
_RUN_BLOCKS = """
import json, sys
for i, code in enumerate(json.load(sys.stdin)):
    ns = {"__name__": "__main__"}
    exec(compile(code, f"<model card block {i}>", "exec"), ns)
    made = {}
    if "pipe" in ns:
        info = ns["pipe"].weights_info
        made["pipeline"] = [ns["pipe"].cfg.propagator, ns["pipe"].cfg.task]
        made["weights"] = [info["model"]["name"], info["msn"]["name"]]
    if "state_dict" in ns:
        made["tensors"] = len(ns["state_dict"])
    print("BLOCK", i, json.dumps(made), flush=True)
"""


@pytest.mark.parametrize(
    "repo,revision",
    [(H.DEFAULT_REPO, H.DEFAULT_REVISION), ("someone/msn-retrained", "main")],
    ids=["published-repo", "own-repo"],
)
def test_model_card_code_runs_against_the_exported_repo(env, monkeypatch, repo, revision):
    """The bundled weights exported, the folder served as that Hub repo, and every python block of its
    card run in a fresh process whose bundled folder is empty: it downloads from the served folder,
    loads the pipeline (by name when the files are the pinned ones of the published repo, by path
    otherwise), propagates a bundled clip and reads a file by hand."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the export reads local files only
    monkeypatch.setenv(H.WEIGHTS_DIR_ENV, str(BUNDLED))
    monkeypatch.setenv(H.REPO_ENV, repo)
    monkeypatch.setenv(H.REVISION_ENV, revision)
    out = H.export_hub_repo(env.tmp / "repo")
    assert env.hub.requests == []
    for f in out.iterdir():
        env.hub.publish(repo, revision, f)
    blocks = _python_blocks((out / "README.md").read_text())
    assert len(blocks) == 2
    by_name = 'pipe = msn_core.load("tpn", "mask")\n'
    assert (by_name in blocks[0]) == (repo == H.DEFAULT_REPO)
    by_path = 'weights = {"model": fetch("tpn_mask.safetensors"), "msn": fetch("msn_tpn.safetensors")}\n'
    assert (by_path in blocks[0]) == (repo != H.DEFAULT_REPO)
    empty = env.tmp / "nothing-bundled"
    empty.mkdir()
    child = child_env(
        HF_ENDPOINT=env.hub.endpoint,
        HF_HUB_CACHE=str(env.tmp / "reader-cache"),
        MSN_WEIGHTS_DIR=str(empty),
        OMP_NUM_THREADS="1",
    )
    proc = subprocess.run(
        [sys.executable, "-c", _RUN_BLOCKS], input=json.dumps(blocks), env=child, cwd=env.tmp,
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    made = [json.loads(line.split(" ", 2)[2]) for line in lines if line.startswith("BLOCK ")]
    assert made == [
        {"pipeline": ["tpn", "mask"], "weights": ["tpn-mask", "msn-tpn"]},
        {"tensors": len(H.load_weights(BUNDLED / "tpn_mask.safetensors")[0])},
    ]
    frames = [line.split(" ", 1) for line in lines if re.match(r"^\d+ \[", line)]
    assert [int(i) for i, _ in frames] == [0, 1, 2] and frames[1][1] == "[0]"
    for name in ("tpn_mask", "msn_tpn"):
        assert env.hub.count("GET", f"/{repo}/resolve/{revision}/{name}.safetensors") == 1


def test_results_section_taken_from_readme(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n## Results (DAVIS-16 val)\n\n| a | b |\n\n### detail\nmore\n\n## Next\nno\n")
    assert H.readme_results(readme) == "| a | b |\n\n### detail\nmore"
    readme.write_text("# x\n## Usage\n")
    assert H.readme_results(readme) is None


def test_cli_export_hub(env, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    trained = env.tmp / "trained"
    sha = H.save_weights(_module().state_dict(), trained / "stm.safetensors", CONFIG, "stm")
    results = env.tmp / "results.md"
    results.write_text("| STM-1 + MSN | 0.7 |\n")
    out = env.tmp / "repo"
    rc = cli.main(
        ["export-hub", str(out), "--names", "stm", "--results", str(results), "--from", str(trained)]
    )
    assert rc == 0
    assert {p.name for p in out.iterdir()} >= {"stm.safetensors", "config.json", "README.md"}
    assert "| STM-1 + MSN | 0.7 |" in (out / "README.md").read_text()
    assert sha in capsys.readouterr().out
    assert cli.main(["export-hub", str(out), "--names", "nope"]) == 2
    assert "unknown weights name 'nope'" in capsys.readouterr().err
