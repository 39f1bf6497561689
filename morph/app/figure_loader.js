// plotly's figure widget, bound to its model at once and drawn when plotly's script is there.
//
// anywidget gives a widget's module 2 s to load and bind; past that, it rejects the
// model's "ready" promise for good and silently drops every later message to the model.
// plotly's script is about 5 MB, and on a busy page (a class opening the dashboard
// at once, a slow laptop) fetching and evaluating it takes longer: the plot was
// drawn once and never followed the controls again. This module binds immediately,
// records the figure edits that arrive while plotly loads, and hands them to plotly,
// in order, once it is there. morph.app.bundle fills in the two __PLOTLY_...__ names.

// The traits through which the kernel sends edits; plotly applies each on its "change" event.
const EDITS = [
  "_py2js_addTraces", "_py2js_deleteTraces", "_py2js_moveTraces", "_py2js_restyle",
  "_py2js_relayout", "_py2js_update", "_py2js_animate",
  "_py2js_removeLayoutProps", "_py2js_removeTraceProps",
];

// One load per page, shared by every figure on it (a global: each figure's copy of
// this module is a module of its own).
function loadPlotly() {
  const key = Symbol.for(__PLOTLY_KEY__);
  globalThis[key] ??= __PLOTLY_IMPORT__;
  return globalThis[key];
}

// A dashboard's figure is built before the page says how wide it is, and the kernel lays it
// out again once it knows (morph.app.layout.WidthProbe). Drawing it before that layout arrives
// draws it twice, the first time at the wrong size. While the model's "_morph_hold" is true, the
// first draw waits for it to turn false (the kernel sends the layout first), or HOLD_MS at most:
// a page whose width is never reported (a hidden output, a busy kernel) still gets its figure.
const HOLD_MS = 3000;

function released(model, signal) {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      model.off("change:_morph_hold", check);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const check = () => { if (!model.get("_morph_hold")) done(); };
    const timer = setTimeout(done, HOLD_MS);
    model.on("change:_morph_hold", check);
    signal?.addEventListener("abort", done);
  });
}

export default () => {
  let plotly = null;

  return {
    initialize({ model, signal, experimental }) {
      const handlers = new Map(EDITS.map((name) => [name, []]));
      let recorded = [];  // [trait, value] pairs, until plotly's handlers exist
      let replaying = null;

      // What plotly sees as its model: its edit handlers are called from here, and
      // while a recorded edit is replayed, reading that trait gives the recorded value
      // (plotly reads the trait's current value, which later edits have overwritten).
      const view = {
        ...model,
        get: (name) => (replaying !== null && replaying[0] === name ? replaying[1] : model.get(name)),
        on: (event, callback) => {
          const name = event.startsWith("change:") ? event.slice("change:".length) : "";
          if (handlers.has(name)) handlers.get(name).push(callback);
          else model.on(event, callback);
        },
      };
      for (const name of EDITS) {
        model.on(`change:${name}`, () => {
          if (recorded !== null) recorded.push([name, model.get(name)]);
          else for (const callback of handlers.get(name)) callback();
        });
      }

      plotly = loadPlotly().then(async (module) => {
        const definition = typeof module.default === "function" ? await module.default() : module.default;
        await definition.initialize?.({ model: view, signal, experimental });
        // Synchronous from here to the end: no edit can arrive between the replay and going live.
        for (const edit of recorded) {
          replaying = edit;
          for (const callback of handlers.get(edit[0])) callback();
        }
        replaying = null;
        recorded = null;
        return definition;
      });
    },

    async render(context) {
      const definition = await plotly;
      if (context.model?.get("_morph_hold")) await released(context.model, context.signal);
      if (context.signal?.aborted) return undefined;
      return definition.render?.(context);
    },
  };
};
