"""The public surface is declared once in voxmill.__all__ and stays importable."""

from __future__ import annotations

import voxmill
import voxmill.audio
import voxmill.errors


def test_all_matches_the_public_names() -> None:
    public = {name for name in dir(voxmill) if not name.startswith("_")} - {"audio", "config", "errors"}
    assert set(voxmill.__all__) - {"__version__"} == public
    assert len(voxmill.__all__) == len(set(voxmill.__all__))


def test_every_exported_name_exists() -> None:
    for module in (voxmill, voxmill.audio, voxmill.errors):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"


def test_one_exception_tree() -> None:
    for name in voxmill.errors.__all__:
        assert issubclass(getattr(voxmill.errors, name), voxmill.errors.VoxmillError)
    assert issubclass(voxmill.AudioDecodeError, voxmill.AudioError)
    assert issubclass(voxmill.ModelTooLarge, voxmill.ModelError)
