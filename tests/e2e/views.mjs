// What the six views must draw for a trace, from its `eprof show --json` summary:
// selector -> element count. Shared by the browser tests (viewer, firefox, live).
export function expectedCounts(s) {
  const phasesWithEnergy = s.phases.filter((p) => (p.energy?.joules ?? 0) > 0).length;
  return {
    "tl-phase": s.phases.length, "tl-sec": s.sections.length, "pw-band": s.phases.length,
    "hm-cell": s.layer_components.length, "tm-node": phasesWithEnergy,
    "sk-node[data-col='2'][data-layer]": s.layers.length, "sk-node[data-col='4']": s.components.length,
    "wf-tok": s.tokens.length,
  };
}
