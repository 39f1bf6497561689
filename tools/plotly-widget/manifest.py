"""Write the manifest and the licence of the built figure-widget script.

Run by ``make plotly-bundle`` after esbuild, with the build's metafile:
``python manifest.py OUT_DIR TOOLS_DIR METAFILE``. The manifest records the
plotly.js version, the trace types the script registers, every npm package
bundled into it and the script's sha256; morph.app.bundle reads it to name the
served file and to check that the script matches the installed plotly.py's
plotly.js. ``LICENSE`` holds the licence of every package the metafile shows
in the script, so what ships is what is attributed.
"""

import hashlib
import json
import re
import sys
from pathlib import Path

MIT = """Permission is hereby granted, free of charge, to any person obtaining a copy of this software and
associated documentation files (the "Software"), to deal in the Software without restriction,
including without limitation the rights to use, copy, modify, merge, publish, distribute,
sublicense, and/or sell copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or
substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT
NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES
OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN
CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE."""


def bundled_packages(metafile: Path, tools: Path) -> list[Path]:
    """The package folders (under node_modules) whose code is in the script, sorted by name.

    The metafile's paths are relative to where esbuild ran: ``tools``.
    """
    meta = json.loads(metafile.read_text())
    (output,) = meta["outputs"].values()
    folders = set()
    for path, info in output["inputs"].items():
        # A stylesheet of a trace type left out of the build is loaded as an empty module.
        if info["bytesInOutput"] == 0 or path.endswith(".css") or "node_modules/" not in path:
            continue
        top = path.rsplit("node_modules/", 1)[0]
        name = re.match(r"(@[^/]+/[^/]+|[^/]+)", path.rsplit("node_modules/", 1)[1]).group(1)
        folders.add(tools / (top + "node_modules") / name)
    return sorted(folders, key=lambda folder: str(folder).rsplit("node_modules/", 1)[1])


def licence_text(folder: Path) -> str:
    """The package's licence file; else its README's licence section, with MIT's text where it only names MIT."""
    package = json.loads((folder / "package.json").read_text())
    for candidate in sorted(folder.iterdir()):
        if re.fullmatch(r"licen[cs]e(\.md|\.txt)?", candidate.name, flags=re.IGNORECASE):
            return candidate.read_text().strip()
    text = "(no licence file in the package"
    readme = next((p for p in sorted(folder.iterdir()) if p.name.lower() == "readme.md"), None)
    section = readme and re.search(r"^#+\s*licen[cs]e\s*$(.*?)(?=^#|\Z)", readme.read_text(), re.I | re.M | re.S)
    text += f"; its README says:)\n{section.group(1).strip()}" if section else ")"
    author = package.get("author")
    author = author.get("name") if isinstance(author, dict) else author
    if "Permission is hereby granted" in text:
        return text
    if package.get("license") == "MIT" and author:
        return f"{text}\npackage.json: MIT, author {author}\n\nCopyright (c) {author}\n\n{MIT}"
    raise SystemExit(f"no licence text found for {folder}: add it before shipping the build")


def main(out: Path, tools: Path, metafile: Path) -> None:
    plotlyjs = json.loads((tools / "node_modules" / "plotly.js" / "package.json").read_text())
    script = (out / "widget.js").read_bytes()
    packages = bundled_packages(metafile, tools)
    versions = {}
    notices = ["widget.js bundles plotly.py's figure widget and the npm packages below; their licences follow.", "",
               "== plotly.py's figure widget (js/src/widget.ts)", (tools / "LICENSE.plotly.py.txt").read_text().strip()]
    for folder in packages:
        package = json.loads((folder / "package.json").read_text())
        versions[package["name"]] = package["version"]
        notices += ["", f"== {package['name']} {package['version']} ({package.get('license', 'see below')})",
                    licence_text(folder)]
    (out / "LICENSE").write_text("\n".join(notices) + "\n")
    manifest = {
        "bundle": "plotly.js lib/core and the trace modules of tools/plotly-widget/plotly-partial.js",
        "plotly.js": plotlyjs["version"],
        "traces": sorted({name.decode() for name in re.findall(rb'moduleType:"trace",name:"([a-z0-9]+)"', script)}),
        "packages": versions,
        "widget": "plotly.py js/src/widget.ts, its defaults not reported back (tools/plotly-widget/widget.ts)",
        "sha256": hashlib.sha256(script).hexdigest(),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps(manifest, indent=2))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
