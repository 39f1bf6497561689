// plotly.js with the trace types Morph's figure widgets draw, and no more.
//
// Every trace module registered here is evaluated by every page that shows a figure: a
// page's browser CPU grows with this list. plotly.js's cartesian partial bundle, used before,
// also carried the world-calendars component and box, heatmap, histogram, 2D-histogram,
// violin, ternary, image and pie traces, none of which Morph's widgets draw: evaluating it
// took more than twice as long.
//
// tests/test_bundle.py scans Morph's code and notebooks for the trace types they create and
// fails when the build lacks one, or holds one that nothing draws. The paths are relative so
// that esbuild's alias of "plotly.js" to this file does not apply to them.
"use strict";

var Plotly = require("./node_modules/plotly.js/lib/core"); // with the scatter trace

Plotly.register([
  require("./node_modules/plotly.js/lib/bar"), // the speculative-decoding view's step times
  require("./node_modules/plotly.js/lib/contour"), // the compute view's loss over parameters and tokens
]);

module.exports = Plotly;
