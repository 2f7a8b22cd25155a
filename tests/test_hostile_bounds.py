"""Memory and workers bounded whatever the input: huge texts, absurd rates, absurd worker counts."""

from __future__ import annotations
