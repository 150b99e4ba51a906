"""The bad-input and fault corpus (scripts/fault_corpus.py) end to end: every case must hold."""
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "fault_corpus.py"


def test_every_fault_case_holds(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True, timeout=600)
    failures = [line for line in done.stdout.splitlines() if line.startswith("FAIL")]
    assert done.returncode == 0 and not failures, "\n".join(failures) or done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1].endswith("cases ok")
