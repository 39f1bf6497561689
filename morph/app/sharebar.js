function render({ model, el }) {
  const bar = document.createElement("div");
  bar.className = "morph-share";
  bar.style.cssText = "display:flex;flex-wrap:wrap;gap:8px;align-items:center;margin:6px 0";
  const copy = document.createElement("button");
  copy.className = "jupyter-button morph-copy-link";
  copy.textContent = "Copy link";
  const field = document.createElement("input");
  field.type = "text";
  field.readOnly = true;
  field.className = "morph-link";
  field.setAttribute("aria-label", "Link to these settings");
  field.style.cssText = "flex:1 1 420px;min-width:240px;font-family:monospace;font-size:12px";
  const status = document.createElement("span");
  status.className = "morph-copy-status";
  status.setAttribute("role", "status");
  const frontier = document.createElement("a");
  frontier.className = "morph-download-frontier";
  frontier.textContent = "Download frontier (CSV)";
  frontier.download = "morph-frontier.csv";
  const selection = document.createElement("a");
  selection.className = "morph-download-selection";
  selection.textContent = "Download selection (CSV)";
  selection.download = "morph-selection.csv";
  bar.append(copy, field, status, frontier, selection);
  el.appendChild(bar);

  // The link carries the dashboard's own settings and nothing else: the
  // query is the kernel's validated, canonical form, and every other key in
  // the address (a login token, a theme, a template, anything a hostile link
  // added) is dropped, so a shared link never spreads what it was opened with.
  function link() {
    const query = new URLSearchParams(model.get("query"));
    if (!model.get("sync_url")) {
      const text = query.toString();
      return text ? "?" + text : "";
    }
    const url = new URL(window.location.href);
    url.search = query.toString();
    url.hash = "";
    return url.toString();
  }
  function sync() {
    const href = link();
    field.value = href;
    if (model.get("sync_url") && href !== window.location.href) {
      window.history.replaceState(window.history.state, "", href);
    }
  }
  function csv(anchor, name) {
    anchor.href = "data:text/csv;charset=utf-8," + encodeURIComponent(model.get(name));
  }
  copy.addEventListener("click", async () => {
    sync();
    try {
      await navigator.clipboard.writeText(field.value);
      status.textContent = "Link copied.";
    } catch (error) {
      // No clipboard access (plain http on another host): the link is in the field, selected.
      field.focus();
      field.select();
      status.textContent = "Copy the selected link with Ctrl+C.";
    }
  });
  field.addEventListener("focus", () => field.select());
  model.on("change:query", sync);
  model.on("change:frontier_csv", () => csv(frontier, "frontier_csv"));
  model.on("change:selection_csv", () => csv(selection, "selection_csv"));
  sync();
  csv(frontier, "frontier_csv");
  csv(selection, "selection_csv");
}
export default { render };
