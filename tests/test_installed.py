"""The suite runs against the installed package (templates included), not the source tree."""

from pathlib import Path

from conftest import BIN

import looopbot


def test_tests_run_the_installed_wheel_with_its_templates() -> None:
    package = Path(looopbot.__file__).parent
    assert "site-packages" in package.parts, f"tests import looopbot from {package}"
    assert (package / "templates" / "looopbot.yaml").is_file()
    assert (package / "templates" / "sensors" / "today.sh").is_file()
    assert BIN.is_file()
