// The SDR synthetic sweep's SVG figure (the sweep itself is in analysis/synthetic-sweep.ts).
// It takes the rows and options by shape, so the chart does not import the sweep that calls it.
import type { SdrModelOptions } from './generative-model.js';
import { renderLineCharts } from './svg-chart.js';

const COLORS: Record<string, string> = { PCA: '#7f7f7f', PLS: '#1f77b4', CCA: '#d62728', rCCA: '#2ca02c' };

interface SweepRowShape {
  method: string;
  samples: number;
  subspaceQuality: number;
  reconstructedScore: number;
}

/** The sweep's options as the title needs them: the generative model's sizes and signal strengths. */
type SweepOptionsShape = Required<Pick<SdrModelOptions, 'dx' | 'dy' | 'sharedSignals' | 'selfSignals' | 'snrShared' | 'snrSelf'>> & {
  methods: readonly string[];
  k: number;
  repeats: number;
};

/** The synthetic sweep's figure: subspace recovery and reconstructed correlation versus samples. */
export function syntheticSweepSvg(rows: ReadonlyArray<SweepRowShape>, o: SweepOptionsShape, chance: number): string {
  const series = (field: 'subspaceQuality' | 'reconstructedScore') =>
    o.methods.map((m) => ({
      name: m === 'PCA' ? 'PCA (independent)' : m === 'rCCA' ? 'rCCA (cross-validated)' : m,
      color: COLORS[m],
      dashed: m === 'PCA',
      points: rows.filter((r) => r.method === m).map((r) => ({ x: r.samples, y: r[field] })),
    }));
  return renderLineCharts(
    [
      {
        title: 'Shared-subspace recovery',
        xLabel: 'training samples',
        yLabel: 'mean cos² of principal angles to true loadings',
        series: series('subspaceQuality'),
        xLog: true,
        yRange: [0, 1],
        hLines: [{ y: chance, label: `chance k/d = ${Number(chance.toPrecision(2))}` }],
      },
      {
        title: 'Held-out reconstructed correlation',
        xLabel: 'training samples',
        yLabel: '(raw − shuffled) / (oracle − shuffled)',
        series: series('reconstructedScore'),
        xLog: true,
        yRange: [0, 1],
      },
    ],
    {
      title:
        `Synthetic SDR model: dx=${o.dx}, dy=${o.dy}, shared=${o.sharedSignals}, self=${o.selfSignals}, ` +
        `γshared=${o.snrShared}, γself=${o.snrSelf}, k=${o.k}, ${o.repeats} repeats`,
    },
  );
}
