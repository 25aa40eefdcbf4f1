"""Reading the pages' vega-embed charts back: the data points Vega actually drew.

The pages call the global ``vegaEmbed(target, spec, {renderer: "svg"})``. :data:`INIT_SCRIPT` (installed in every
page and frame by the ``page`` fixture) wraps that global so each resulting Vega ``View`` is kept in
``window.__modelwatchViews[<target id>]``. :func:`marks` walks the view's scenegraph: every data mark (role
``mark``: the layers of the spec, not axes or legends) with its type, Vega-Lite name, the datum of each item and the
number of SVG elements drawn for it. Symbols, rects and rules draw one element per item; a line or an area draws one
path for all its items.

Times in a datum are epoch milliseconds (Vega-Lite parses the specs' ISO strings); :func:`at` turns them back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

INIT_SCRIPT = """(() => {
  const views = (window.__modelwatchViews = {});
  let real;
  const wrapped = function (el, spec, opts) {
    return real(el, spec, opts).then((res) => {
      views[typeof el === "string" ? el.replace(/^#/, "") : el.id] = res.view;
      return res;
    });
  };
  Object.defineProperty(window, "vegaEmbed", {
    configurable: true,
    get() { return real === undefined ? undefined : wrapped; },
    set(value) { real = value; Object.assign(wrapped, value); },
  });
})();"""

# every chart of the page (each <script class="vl-spec" data-target=...>) has its view and has drawn its marks
ALL_CHARTS_RENDERED = """() => {
  const specs = [...document.querySelectorAll('script.vl-spec')];
  const views = window.__modelwatchViews || {};
  return specs.length > 0 && specs.every(s => views[s.dataset.target] &&
    document.getElementById(s.dataset.target).querySelector('svg g.role-mark'));
}"""

CHART_IDS = "() => [...document.querySelectorAll('script.vl-spec')].map(s => s.dataset.target)"

READ_MARKS = """(id) => {
  const view = (window.__modelwatchViews || {})[id];
  if (!view) return null;
  const svg = document.getElementById(id).querySelector("svg");
  const plain = (d) => Object.fromEntries(
    Object.entries(d || {}).map(([k, v]) => [k, v instanceof Date ? v.getTime() : v]));
  const out = [];
  const walk = (node) => {
    if (node.marktype && node.marktype !== "group" && node.role === "mark") {
      const g = node.name ? svg.querySelector(`g.role-mark.${CSS.escape(node.name)}`) : null;
      out.push({type: node.marktype, name: node.name || "", drawn: g ? g.children.length : 0,
                data: node.items.map((i) => plain(i.datum))});
    }
    for (const item of node.items || []) for (const child of item.items || []) walk(child);
  };
  walk(view.scenegraph().root);
  return out;
}"""


@dataclass(frozen=True)
class Mark:
    type: str  # symbol, line, rect, area, rule, ...
    name: str  # Vega-Lite's name of the layer, e.g. concat_0_layer_1_layer_1_marks
    drawn: int  # SVG elements drawn in the mark's group
    data: list[dict[str, Any]]  # the datum of each item

    @property
    def count(self) -> int:
        return len(self.data)


def at(ms: float) -> datetime:
    """A datum's time (epoch milliseconds) as a UTC datetime."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def wait_for_charts(page, timeout: float = 30_000) -> list[str]:
    """Wait until every chart of the page (or frame) has rendered; returns the charts' target ids."""
    page.wait_for_function(ALL_CHARTS_RENDERED, timeout=timeout)
    return page.evaluate(CHART_IDS)


def marks(page, chart_id: str) -> list[Mark]:
    """The data marks Vega drew for chart ``chart_id`` (the target div's id, e.g. ``timeline``), each checked to be
    in the SVG: one element per item for symbols, rects and rules, a path for a non-empty line or area."""
    raw = page.evaluate(READ_MARKS, chart_id)
    assert raw is not None, f"no Vega view for chart #{chart_id}"
    found = [Mark(r["type"], r["name"], r["drawn"], r["data"]) for r in raw]
    for m in found:
        expected = m.count if m.type in ("symbol", "rect", "rule") else min(m.count, 1)
        assert m.drawn >= expected, f"#{chart_id} {m.type} {m.name}: {m.count} items but {m.drawn} drawn in the SVG"
    return found


def points(found: list[Mark], type_: str, field: str) -> list[dict[str, Any]]:
    """The data of every ``type_`` mark whose items carry ``field`` (e.g. symbols with ``drift_score``)."""
    return [d for m in found if m.type == type_ for d in m.data if field in d]
