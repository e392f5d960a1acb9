"""Registering every plugin reads declarations only: no torch, transformers, scipy or matplotlib.

``harness plugins`` and ``harness leaderboard`` load every plugin; the heavy libraries load when a
plugin builds a model, trains or evaluates. Checked in a fresh interpreter, where nothing else has
imported them yet.
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "transformers", "scipy", "matplotlib")


def loaded_after(code: str) -> list[str]:
    """The heavy modules a fresh interpreter holds after running ``code``."""
    probe = f"import json, sys\n{code}\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_registering_every_plugin_imports_no_heavy_library():
    code = "from harness.core.registry import default_manager\nmanager = default_manager()\n"
    code += "assert len(manager.names('upstream')) >= 4 and len(manager.names('downstream')) >= 6"
    assert loaded_after(code) == []


def test_the_check_sees_a_heavy_import():
    """The probe itself: building a model does load torch."""
    code = (
        "from harness.core.registry import default_manager\n"
        "plugin = default_manager().create('upstream', 'fbank')\n"
        "plugin.build(plugin.Params(), seed=0)"
    )
    assert "torch" in loaded_after(code)
