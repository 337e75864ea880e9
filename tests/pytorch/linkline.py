"""An app built against a generated library with exactly the link line that
cnnc printed (the API's promise: nothing else to link)."""

import re
import shlex
import subprocess


def build_app(cnnc_stdout, source, work):
    """Writes `source` to work/app.cpp and builds work/app with the printed
    line (plus -I work for the header); returns (path, None), or (None, the
    reason) when there is no line or the build fails."""
    found = re.search(r"link with: (.*)", cnnc_stdout)
    if not found:
        return None, f"cnnc printed no link line: {cnnc_stdout.strip()[:500]}"
    (work / "app.cpp").write_text(source)
    command = shlex.split(found.group(1))
    command = [w if w != "app.cpp" else str(work / "app.cpp") for w in command]
    command[command.index("-o") + 1] = str(work / "app")
    built = subprocess.run(command + ["-I", str(work)], capture_output=True, text=True)
    if built.returncode != 0:
        return None, f"app does not build with the printed line: {built.stderr.strip()[:2000]}"
    return work / "app", None
