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
  frontier.href = "#";
  const selection = document.createElement("a");
  selection.className = "morph-download-selection";
  selection.textContent = "Download selection (CSV)";
  selection.href = "#";
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
  // A table is written by the kernel when its download is clicked (not sent on every move):
  // ask for it, then save what comes back under the table's file name.
  function ask(name) {
    return (event) => {
      event.preventDefault();
      model.send({ want: name });
    };
  }
  function save(message) {
    if (!message || typeof message.csv !== "string" || !message.csv) return;
    const files = { frontier: "morph-frontier.csv", selection: "morph-selection.csv" };
    const file = files[message.table];
    if (!file) return;
    const url = URL.createObjectURL(new Blob([message.csv], { type: "text/csv;charset=utf-8" }));
    const anchor = document.createElement("a");
    anchor.href = url;
    anchor.download = file;
    anchor.style.display = "none";
    bar.appendChild(anchor);
    anchor.click();
    anchor.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
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
  frontier.addEventListener("click", ask("frontier"));
  selection.addEventListener("click", ask("selection"));
  model.on("msg:custom", save);
  sync();
}
export default { render };
