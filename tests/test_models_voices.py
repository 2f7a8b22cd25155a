"""Voice configs and model resolution: one parser of ``.onnx.json``, one resolver, leases of a spec as it is."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from voxmill.errors import ModelLoadError, ModelNotFound
from voxmill.models import ModelManager, ModelSpec, Registry, VoiceConfig
from voxmill.models import voice_config as voice_config_module

VOICE = "piper:en_US-joe-medium"
MIB = 2**20
NOWHERE = "/nonexistent-voxmill-voices"


@pytest.fixture(scope="module")
def joe() -> ModelSpec:
    return Registry(voices_dir=NOWHERE).resolve(VOICE)


def _copy_voice(joe: ModelSpec, folder: Path, stem: str, config: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    onnx = folder / f"{stem}.onnx"
    os.symlink(joe.path, onnx)  # the model's bytes are not under test: a link keeps the test fast
    if config:
        assert joe.config_path is not None
        shutil.copy(joe.config_path, folder / f"{stem}.onnx.json")
    return onnx


# ---- VoiceConfig -------------------------------------------------------------------------------------


def test_voice_config_parses_the_bundled_voice(joe: ModelSpec) -> None:
    voice = joe.voice
    assert isinstance(voice, VoiceConfig)
    assert (voice.sample_rate, voice.espeak_voice, voice.language, voice.locale) == (22050, "en-us", "en", "en_US")
    assert (voice.num_speakers, voice.phoneme_type, voice.quality) == (1, "espeak", "medium")
    assert len(voice.digest) == 16 and int(voice.digest, 16) >= 0
    assert voice == VoiceConfig.read(joe.config_path)  # type: ignore[arg-type]
    config = voice.piper_config()
    assert (config.sample_rate, config.noise_scale, config.noise_w_scale) == (22050, voice.noise_scale, voice.noise_w)


def test_voice_config_defaults_are_pipers(tmp_path: Path) -> None:
    path = tmp_path / "v.onnx.json"
    path.write_text(json.dumps({"audio": {"sample_rate": 16000}, "espeak": {"voice": "pt-br"}}))
    voice = VoiceConfig.read(path)
    assert (voice.length_scale, voice.noise_scale, voice.noise_w) == (1.0, 0.667, 0.8)
    assert (voice.language, voice.num_speakers, voice.speaker_id_map) == ("pt", 1, {})
    path.write_text(json.dumps({"audio": {"sample_rate": 16000}, "inference": {"noise_scale": 0.3}}))
    voice = VoiceConfig.read(path)
    assert (voice.noise_scale, voice.noise_w, voice.language) == (0.3, 0.8, "en")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe garbage", "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"audio": {"sample_rate": "22050"}}', "audio.sample_rate must be a positive integer"),
        (b'{"audio": {"sample_rate": 22050}, "inference": {"noise_scale": NaN}}', "inference.noise_scale"),
        (b'{"audio": {"sample_rate": 22050}, "speaker_id_map": {"a": "x"}}', "speaker_id_map"),
        (b'{"audio": 5}', "audio must be a JSON object"),
    ],
)
def test_a_bad_voice_config_names_the_file_and_why(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "bad.onnx.json"
    path.write_bytes(content)
    with pytest.raises(ModelLoadError, match=reason) as caught:
        VoiceConfig.read(path)
    assert str(path) in str(caught.value)


def test_a_missing_or_irregular_voice_config(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"missing\.onnx\.json is missing: a Piper voice needs its config"):
        VoiceConfig.read(tmp_path / "missing.onnx.json")
    fifo = tmp_path / "fifo.onnx.json"
    os.mkfifo(fifo)
    with pytest.raises(ModelLoadError, match="not a regular file"):  # would block forever if read
        VoiceConfig.read(fifo)


# ---- Registry.resolve ----------------------------------------------------------------------------------


def test_resolve_by_name_bare_name_and_kind(joe: ModelSpec) -> None:
    registry = Registry(voices_dir=NOWHERE)
    assert registry.resolve("en_US-joe-medium", kind="piper") == joe
    assert registry.resolve("en_US-joe-medium") == joe
    assert registry.resolve(joe) is joe
    assert registry.resolve("silero-vad").kind == "silero-vad"
    with pytest.raises(ModelNotFound, match=r"unknown model 'silero-vad'.*; available piper models: "):
        registry.resolve("silero-vad", kind="piper")
    with pytest.raises(ModelNotFound, match=r"silero-vad is a silero-vad model, not piper; available piper"):
        registry.resolve(registry.get("silero-vad"), kind="piper")
    with pytest.raises(ModelNotFound, match=rf"did you mean {VOICE}.*available piper models: .*{VOICE}"):
        registry.resolve("en_US-joe-medum", kind="piper")


def test_names_never_become_paths(tmp_path: Path, joe: ModelSpec, monkeypatch: pytest.MonkeyPatch) -> None:
    _copy_voice(joe, tmp_path, "secret")
    monkeypatch.chdir(tmp_path)
    registry = Registry(voices_dir=NOWHERE)
    for name in ("piper:secret", "secret", "piper:../secret", "onnx:secret"):
        with pytest.raises(ModelNotFound):
            registry.resolve(name, kind="piper" if name == "secret" else None)


def test_resolve_a_path_and_a_voices_dir(tmp_path: Path, joe: ModelSpec) -> None:
    onnx = _copy_voice(joe, tmp_path / "voices", "en_US-copy-medium")
    by_path = Registry(voices_dir=NOWHERE).resolve(str(onnx), kind="piper")
    assert (by_path.name, by_path.source, by_path.path) == ("piper:en_US-copy-medium", "path", onnx)
    assert by_path.voice is not None and by_path.voice.digest == joe.voice.digest  # type: ignore[union-attr]
    in_dir = Registry(voices_dir=tmp_path / "voices").resolve("en_US-copy-medium", kind="piper")
    assert in_dir.source.startswith("voices dir") and in_dir.voice == by_path.voice
    # Without a config beside it, an .onnx given as a path is a plain ONNX model, unless a voice is asked for.
    plain = tmp_path / "plain.onnx"
    os.symlink(joe.path, plain)
    assert Registry(voices_dir=NOWHERE).resolve(plain).kind == "onnx"


def test_a_voice_without_its_config_says_so(tmp_path: Path, joe: ModelSpec) -> None:
    voices = tmp_path / "voices"
    onnx = _copy_voice(joe, voices, "en_US-lost-medium", config=False)
    _copy_voice(joe, voices, "en_US-fine-medium")
    registry = Registry(voices_dir=voices)
    message = r"en_US-lost-medium\.onnx\.json is missing: a Piper voice needs its config beside the model"
    with pytest.raises(ModelLoadError, match=message):
        registry.resolve("en_US-lost-medium", kind="piper")
    with pytest.raises(ModelLoadError, match=message):
        registry.resolve("piper:en_US-lost-medium")
    with pytest.raises(ModelLoadError, match=message):
        Registry(voices_dir=NOWHERE).resolve(onnx, kind="piper")
    (broken,) = registry.broken("piper")
    assert broken.name == "piper:en_US-lost-medium" and "is missing" in broken.reason
    assert "piper:en_US-fine-medium" in {s.name for s in registry.all("piper")}


def test_a_user_voice_overrides_a_broken_packaged_one_and_back(tmp_path: Path, joe: ModelSpec) -> None:
    voices = tmp_path / "voices"
    _copy_voice(joe, voices, "en_US-joe-medium", config=False)
    registry = Registry(voices_dir=voices)
    # The user's broken copy shadows the packaged voice: naming it says why, rather than silently using another.
    with pytest.raises(ModelLoadError, match="is missing"):
        registry.resolve(VOICE)


# ---- leases of a resolved spec -------------------------------------------------------------------------


class _NoLookups(Registry):
    """A registry that fails the test if the manager looks anything up by name or scans for models."""

    def _discover_once(self) -> dict[str, ModelSpec]:
        raise AssertionError("the manager re-resolved a spec it was given")


def test_lease_of_a_spec_needs_no_registry_lookup_and_no_second_parse(
    tmp_path: Path, joe: ModelSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = Registry(voices_dir=NOWHERE).resolve(_copy_voice(joe, tmp_path, "en_US-mine-medium"), kind="piper")

    def no_read(path: object) -> None:
        raise AssertionError(f"{path} parsed a second time")

    monkeypatch.setattr(voice_config_module.VoiceConfig, "read", classmethod(lambda cls, path: no_read(path)))
    manager = ModelManager(budget_bytes=1024 * MIB, registry=_NoLookups(voices_dir=NOWHERE), device="cpu")
    with manager.lease(spec) as voice:
        assert voice.config.sample_rate == 22050 and voice.config.espeak_voice == "en-us"
    with manager.lease(spec) as again:  # registered under its name: the same loaded instance
        assert again is voice
    assert [row.name for row in manager.status()] == ["piper:en_US-mine-medium"]
    assert manager.unload(spec) is True


# ---- the CLI: broken voices are listed with their reason ---------------------------------------------


def test_cli_lists_a_broken_voice_from_the_yaml_voices_dir(
    tmp_path: Path, joe: ModelSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hostile import no_traceback, voxmill

    monkeypatch.delenv("VOXMILL_VOICES_DIR", raising=False)  # the yaml's folder must be the one used
    voices = tmp_path / "voices"
    _copy_voice(joe, voices, "en_US-lost-medium", config=False)
    _copy_voice(joe, voices, "en_US-fine-medium")
    (tmp_path / "voxmill.yaml").write_text(f"voices_dir: {voices}\n")
    listed = voxmill("voices", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "piper:en_US-fine-medium" in listed.stdout
    assert "broken piper:en_US-lost-medium" in " ".join(listed.stdout.split())
    assert "en_US-lost-medium.onnx.json is missing" in "".join(listed.stdout.split("\n"))
    rows = [json.loads(line) for line in voxmill("voices", "--json", cwd=tmp_path).stdout.splitlines()]
    (broken,) = [r for r in rows if "broken" in r]
    assert broken["name"] == "piper:en_US-lost-medium" and "is missing" in broken["broken"]
    report = json.loads(voxmill("doctor", "--json", cwd=tmp_path).stdout)
    assert [b["name"] for b in report["broken_models"]] == ["piper:en_US-lost-medium"]
    load = voxmill("models", "status", "--load", "piper:en_US-lost-medium", cwd=tmp_path)
    no_traceback(load)
    assert load.returncode == 1 and "a Piper voice needs its config beside the model" in load.stderr


def test_specs_and_registries_cross_to_workers(joe: ModelSpec) -> None:
    import pickle

    copy = pickle.loads(pickle.dumps(joe))
    assert copy == joe and copy.voice == joe.voice and copy.voice is not None
    assert copy.voice.raw == joe.voice.raw  # type: ignore[union-attr]
    registry = pickle.loads(pickle.dumps(Registry(voices_dir=NOWHERE)))
    assert registry.resolve(VOICE) == joe
