"""Write the manifest of the built figure-widget script: its plotly.js version and sha256.

Run by ``make plotly-bundle``; morph.app.bundle reads the manifest to name the served
file and to check that the script matches the installed plotly.py's plotly.js.
"""

import hashlib
import json
import sys
from pathlib import Path

out = Path(sys.argv[1])
modules = Path(sys.argv[2])
package = json.loads((modules / "plotly.js-cartesian-dist-min" / "package.json").read_text())
manifest = {
    "bundle": package["name"],
    "plotly.js": package["version"],
    "widget": "plotly.py js/src/widget.ts, its defaults not reported back (tools/plotly-widget/widget.ts)",
    "sha256": hashlib.sha256((out / "widget.js").read_bytes()).hexdigest(),
}
(out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
print(json.dumps(manifest, indent=2))
