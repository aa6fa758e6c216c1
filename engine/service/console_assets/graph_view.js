/* callflow console: zoom and pan on a flow's SVG graph. Plain JavaScript, no dependency.
 *
 * callflowGraph.zoomable(viewport, svg) -> {zoomBy(factor), fit(), scale()}
 *   The SVG's viewBox is the camera: the wheel zooms around the pointer, a drag pans, the
 *   toolbar's buttons zoom in, out and back to the whole graph ("fit"). The element keeps its
 *   size on the page; the drawing stays sharp at any zoom (it is vector). `viewport` carries
 *   the zoom level as `data-zoom` (1 = the whole graph). A drag does not count as a click, so
 *   clicking a node still selects it and dragging across one does not.
 */
"use strict";

(() => {
  const MIN_SCALE = 0.5; // zoomed out: the whole graph at half its fitted size
  const MAX_SCALE = 8;
  const DRAG_PX = 4; // a pointer that moves less than this between down and up clicks

  function initialBox(svg) {
    const vb = (svg.getAttribute("viewBox") || "").trim().split(/[\s,]+/).map(Number);
    if (vb.length === 4 && vb.every(Number.isFinite) && vb[2] > 0 && vb[3] > 0) {
      return {x: vb[0], y: vb[1], w: vb[2], h: vb[3]};
    }
    const w = parseFloat(svg.getAttribute("width")) || 800, h = parseFloat(svg.getAttribute("height")) || 600;
    return {x: 0, y: 0, w, h};
  }

  function zoomable(viewport, svg) {
    const full = initialBox(svg);
    let view = {...full};

    const apply = () => {
      svg.setAttribute("viewBox", `${view.x} ${view.y} ${view.w} ${view.h}`);
      viewport.setAttribute("data-zoom", (full.w / view.w).toFixed(3));
    };

    /** A point on the screen, in the drawing's coordinates. */
    const toDrawing = (clientX, clientY, ctm) => {
      const m = ctm || svg.getScreenCTM();
      if (!m) return {x: view.x + view.w / 2, y: view.y + view.h / 2};
      const p = new DOMPoint(clientX, clientY).matrixTransform(m.inverse());
      return {x: p.x, y: p.y};
    };

    /** Zoom by `factor` (> 1: closer) keeping the drawing's point under (cx, cy) in place. */
    const zoomBy = (factor, cx, cy) => {
      const scale = full.w / view.w;
      const next = Math.min(Math.max(scale * factor, MIN_SCALE), MAX_SCALE);
      const k = scale / next;
      let at;
      if (cx === undefined) {
        at = {x: view.x + view.w / 2, y: view.y + view.h / 2};
      } else {
        at = toDrawing(cx, cy);
      }
      view = {x: at.x - (at.x - view.x) * k, y: at.y - (at.y - view.y) * k, w: view.w * k, h: view.h * k};
      apply();
    };

    const fit = () => {
      view = {...full};
      apply();
    };

    svg.addEventListener("wheel", (ev) => {
      ev.preventDefault(); // the page does not scroll while the pointer zooms the graph
      const lines = ev.deltaMode === 1 ? 16 : ev.deltaMode === 2 ? 400 : 1;
      zoomBy(Math.exp(-ev.deltaY * lines * 0.0015), ev.clientX, ev.clientY);
    }, {passive: false});

    let drag = null; // {id, x, y, view, ctm, moved}
    svg.addEventListener("pointerdown", (ev) => {
      if (ev.button !== 0) return;
      drag = {id: ev.pointerId, x: ev.clientX, y: ev.clientY, view: {...view}, ctm: svg.getScreenCTM(), moved: false};
    });
    svg.addEventListener("pointermove", (ev) => {
      if (!drag || ev.pointerId !== drag.id) return;
      if (!drag.moved && Math.hypot(ev.clientX - drag.x, ev.clientY - drag.y) < DRAG_PX) return;
      if (!drag.moved) {
        drag.moved = true;
        svg.setPointerCapture(ev.pointerId);
        viewport.classList.add("dragging");
      }
      const a = toDrawing(drag.x, drag.y, drag.ctm), b = toDrawing(ev.clientX, ev.clientY, drag.ctm);
      view = {...drag.view, x: drag.view.x - (b.x - a.x), y: drag.view.y - (b.y - a.y)};
      apply();
    });
    let dragged = false; // set from the end of a drag until its click has gone by
    svg.addEventListener("click", (c) => {
      if (dragged) c.stopPropagation(); // the click that ends a drag is not a click on a node
    }, {capture: true});
    const end = (ev) => {
      if (!drag || ev.pointerId !== drag.id) return;
      if (drag.moved) {
        viewport.classList.remove("dragging");
        dragged = true;
        setTimeout(() => { dragged = false; }, 0); // after the click the same input dispatches
      }
      drag = null;
    };
    svg.addEventListener("pointerup", end);
    svg.addEventListener("pointercancel", end);

    apply();
    return {zoomBy, fit, scale: () => full.w / view.w};
  }

  window.callflowGraph = {zoomable};
})();
